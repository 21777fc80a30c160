"""``quantsr export``'s core: a checkpoint to verified ``.pte`` / ``.mlpackage`` artifacts, each with a model card
(JSON) beside it that an app or a benchmark can read without PyTorch."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quantsr.artifacts.atomic import write_text_atomic
from quantsr.artifacts.cards import DEFAULT_PTE_MAX_SIDE
from quantsr.export.model_card import artifact_card

__all__ = ["FORMATS", "export_checkpoint"]

FORMATS = ("pte", "coreml")


class ArtifactModule(nn.Module):
    """An artifact runner as a module, so ``quantsr.eval.evaluate`` can score it."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def set5_psnr(model: nn.Module, scale: int) -> float:
    from quantsr.eval.evaluate import evaluate

    return evaluate(model, ["Set5"], scale, progress=False, ssim=False)["Set5"].psnr


def calibration_inputs(scale: int, side: int, batches: int = 8) -> list[torch.Tensor]:
    """LR patches from T91 for observer calibration (int8 PTQ export)."""
    from quantsr.data.datasets import PatchDataset, default_data_root
    from quantsr.quant.ptq import calibration_batches

    data = PatchDataset([default_data_root() / "train" / "T91"], scale, lr_patch=side, batch_size=4)
    return list(calibration_batches(data, batches))


def _static_int8_program(model: nn.Module, scale: int, program: str | Path | None, max_side: int,
                         stage: Callable[[str], None], ptq=None):
    """The static all-int8 graph of ``model`` (with a fine-tuned program file's arithmetic and constants);
    ``ptq``: the int8 PTQ config of an FP model."""
    from quantsr.export.int8_program import load_program, static_int8_graph
    from quantsr.runtime.upscale import min_side_of

    stage("PT2E static int8 graph (calibrate)")
    converted = static_int8_graph(model, calibration_inputs(scale, 64), max_side=max_side, min_side=min_side_of(model),
                                  ptq=ptq)
    return converted if program is None else load_program(program, converted)


def _static_int8_pte(converted, min_side: int, scale: int, path: Path, max_side: int,
                     stage: Callable[[str], None]) -> dict[str, Any]:
    """A static all-int8 .pte, checked code for code against its integer-faithful model on the Set5 LR images
    that fit."""
    from quantsr.data.datasets import BenchmarkSet
    from quantsr.data.image_io import to_tensor
    from quantsr.export.int8_program import export_int8_program

    checks = [x for x in (to_tensor(im.lr) for im in BenchmarkSet.from_name("Set5", scale))
              if max(x.shape[-2:]) <= max_side]
    return export_int8_program(converted, path, max_side=max_side, min_side=min_side, check_inputs=checks,
                               stage=stage)


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, *, formats: tuple[str, ...] = FORMATS,
                      tile: int | None = None, quant: str | None = None, evaluate_set5: bool = True,
                      max_side: int = DEFAULT_PTE_MAX_SIDE, program: str | Path | None = None,
                      coreml_target: str = "iOS18",
                      stage: Callable[[str], None] = lambda s: None) -> list[dict[str, Any]]:
    """Export a quantsr (or public) checkpoint to ``out_dir/<stem>.pte`` and/or ``<stem>.mlpackage`` with a
    ``.json`` card beside each. ``quant``: default ``learned`` for a QAT checkpoint, ``fp32`` otherwise.
    ``tile``: fixed input side (default: dynamic H/W up to ``max_side`` for .pte, 64 for Core ML; ExecuTorch
    plans memory for the largest shape, so ``max_side`` bounds the runtime's RSS: 320 covers 256-px tiles with
    32-px margins and every Set5 image at x2-x4). ``quant="static-int8"``: the all-int8 program XNNPACK runs
    fastest, checked code for code against its integer-faithful model; ``program``: a fine-tuned program file
    for it (``benchmarks/int8_finetune.py``); with the ``coreml`` format it gives a package with int8 activations
    (W8A8, low-bit weights at 4 bits for ``coreml_target="iOS18"``) of the same program. Returns the cards."""
    from quantsr.checkpoints.load import load_model_and_info
    from quantsr.export.coreml import export_coreml
    from quantsr.export.pte import export_pte
    from quantsr.runtime.pte import PteModule
    from quantsr.runtime.upscale import min_side_of

    checkpoint = Path(checkpoint)
    model, info = load_model_and_info(checkpoint)
    if info.format_version is None:
        raise ValueError(f"{checkpoint} is not a quantsr checkpoint (no metadata naming its architecture); "
                         "export models trained or quantized with quantsr")
    scale = info.scale
    quant = quant or ("learned" if info.recipe is not None else "fp32")
    if program is not None and quant != "static-int8":
        raise ValueError("a fine-tuned int8 program exports with --quant static-int8")
    out_dir = Path(out_dir)
    stem = checkpoint.stem if checkpoint.stem not in ("model", "best", "last") else checkpoint.parent.name
    eager_psnr = set5_psnr(model, scale) if evaluate_set5 else None
    converted = None
    if quant == "static-int8":
        if tile and "pte" in formats:
            raise ValueError("static-int8 exports have dynamic H/W; leave --tile out")
        from quantsr.export.pt2e_quantizer import recommended_int8_config

        ptq = recommended_int8_config(info.model, scale) if info.recipe is None else None  # as the benchmarks do
        converted = _static_int8_program(model, scale, program, max_side, stage, ptq)
    cards = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
        if fmt == "pte" and quant == "static-int8":
            path = out_dir / f"{stem}.pte"
            result = _static_int8_pte(converted, min_side_of(model), scale, path, max_side, stage)
            psnr = set5_psnr(ArtifactModule(PteModule(path)), scale) if evaluate_set5 else None
            extra = {"max_side": max_side, "min_side": result["min_side"],
                     "delegated_fraction": round(result["delegated_nodes"] / max(
                         1, result["delegated_nodes"] + result["non_delegated_nodes"]), 4),
                     "non_delegated_ops": result["non_delegated_ops"],
                     "identical_to_integer_faithful": round(result["identical_fraction"], 6),
                     "max_levels_vs_integer_faithful": result["max_levels"],
                     "program": None if program is None else Path(program).name,
                     "eager_set5_psnr": eager_psnr}
            card = artifact_card(path, model_name=info.model, scale=scale, model=model, backend="executorch-xnnpack",
                                 quant=quant, input_shape=None, tile=None, set5_psnr=psnr,
                                 psnr_source="the .pte through the ExecuTorch runtime", extra=extra)
        elif fmt == "pte":
            path = out_dir / f"{stem}.pte"
            size = (3, tile, tile) if tile else (3, 64, 64)
            result = export_pte(model, path, quant=quant, input_size=size, dynamic=tile is None, stage=stage,
                                max_side=max_side,
                                calibration=calibration_inputs(scale, size[1]) if quant == "int8" else ())
            psnr = set5_psnr(ArtifactModule(PteModule(path)), scale) if evaluate_set5 and tile is None else None
            extra = {"max_side": None if tile else max_side,  # the largest H/W the dynamic .pte accepts
                     "min_side": min_side_of(model),  # smaller inputs are padded up to it
                     "delegated_fraction": round(result.delegated_fraction, 4),
                     "non_delegated_ops": result.non_delegated_ops,  # what runs outside XNNPACK, op -> count
                     "agreement_psnr_vs_eager": round(result.agreement_psnr, 2), "eager_set5_psnr": eager_psnr}
            card = artifact_card(path, model_name=info.model, scale=scale, model=model, backend="executorch-xnnpack",
                                 quant=quant, input_shape=None if tile is None else list(size), tile=tile,
                                 set5_psnr=psnr, psnr_source="the .pte through the ExecuTorch runtime", extra=extra)
        elif quant == "static-int8":
            path = out_dir / f"{stem}.mlpackage"
            card = _coreml_int8_card(converted, model, info.model, scale, path, tile or 64, coreml_target, program,
                                     evaluate_set5, stage)
        else:
            path = out_dir / f"{stem}.mlpackage"
            side = tile or 64
            result = export_coreml(model, path, input_size=(3, side, side), stage=stage)
            extra = {"weights_exact": result.weights_exact, "int8_layers": result.int8_layers,
                     "minimum_deployment_target": "iOS17"}
            card = artifact_card(path, model_name=info.model, scale=scale, model=model, backend="coreml",
                                 quant=quant, input_shape=[3, side, side], tile=side, set5_psnr=eager_psnr,
                                 psnr_source="the eager model (Core ML prediction needs macOS)", extra=extra)
        write_text_atomic(json.dumps(card, indent=1), path.with_name(path.name + ".json"))
        cards.append(card)
    return cards


def _coreml_int8_card(converted, model: nn.Module, model_name: str, scale: int, path: Path, side: int, target: str,
                      program: str | Path | None, evaluate_set5: bool, stage: Callable[[str], None]) -> dict[str, Any]:
    from quantsr.export.coreml_int8 import export_coreml_int8
    from quantsr.quant.int8_graph import integer_faithful

    result = export_coreml_int8(converted, path, input_size=(3, side, side), target=target, stage=stage)
    psnr = set5_psnr(integer_faithful(converted).eval(), scale) if evaluate_set5 else None
    extra = {"minimum_deployment_target": target, "activations": "int8", "compute_precision": "float16",
             "activation_quantizers": result.activation_quantizers, "weight_bits": result.weight_bits,
             "codes_exact": result.codes_exact, "qparams_exact": result.qparams_exact,
             "program": None if program is None else Path(program).name}
    return artifact_card(path, model_name=model_name, scale=scale, model=model, backend="coreml",
                         quant="static-int8", input_shape=[3, side, side], tile=side, set5_psnr=psnr,
                         psnr_source="the integer-faithful model of the same program (Core ML prediction needs "
                                     "macOS; the package computes it in float16)", extra=extra)
