"""The low-bit student of QAT: the teacher's copy rebuilt to the quantization recipe, and its optimizer groups."""
from __future__ import annotations

import copy

from torch import nn

from quantsr.qat.config import TrainRecipe
from quantsr.quant.recipe import QuantRecipe, build_quantized_

__all__ = ["is_quantizer_param", "make_student", "param_groups"]


def make_student(teacher: nn.Module, recipe: QuantRecipe) -> nn.Module:
    """A copy of the FP ``teacher`` rebuilt to the recipe's architecture (slimmable if QSA is on, quantized
    layers initialised from the teacher's weights); the teacher is left untouched."""
    return build_quantized_(copy.deepcopy(teacher), recipe)


def is_quantizer_param(name: str) -> bool:
    return ".act_quantizer." in name or ".weight_quantizer." in name or name.split(".")[-1] in ("tau", "step")


def param_groups(student: nn.Module, train: TrainRecipe) -> list[dict]:
    """Network weights at ``lr``; quantizer parameters (tau, steps, s_i, beta_i) at ``lr * quantizer_lr_scale``.
    At the paper's 500k iterations lr 2e-4 moves tau far enough; at a CPU budget of ~2k steps it cannot."""
    quant, net = [], []
    for name, p in student.named_parameters():
        (quant if is_quantizer_param(name) else net).append(p)
    return [{"params": net, "lr": train.lr}, {"params": quant, "lr": train.lr * train.quantizer_lr_scale}]
