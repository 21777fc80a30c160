"""The last stage of training: fine-tune the integer-faithful form of a static int8 program (issue 13).

The program is the graph ``convert_pt2e`` makes of a QAT model (its learned steps as fixed qparams, every other
tensor int8 at calibrated scales); :func:`quantsr.quant.int8_graph.integer_faithful` turns it into a module
whose forward is what XNNPACK computes, bit for bit. Training it (weights and biases; activation scales fixed, or
trained too with ``scale_lr``: a public FP net's calibrated int8 program, fitted to the net itself) makes
the ``.pte`` the model that was trained, instead of a model that saw fp32 glue and never an int8 requantization.
Like :class:`~quantsr.train.trainer.Trainer`, it receives its program, teacher and data as arguments."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from quantsr.data.datasets import BenchmarkSet
from quantsr.qat.output_distill import OutputDistillLoss
from quantsr.quant.int8_graph import program_signature
from quantsr.train.trainer import TrainConfig, Trainer, TrainHistory

__all__ = ["Int8FinetuneRecipe", "OutputDistillLoss", "finetune_int8"]


@dataclass(frozen=True)
class Int8FinetuneRecipe:
    """How the integer-faithful program is fine-tuned (versioned: a saved program records it)."""

    version: int = 2
    iterations: int = 1500
    lr: float = 2e-5  # Adam, cosine-decayed to 0; small: the weights sit on a 2-4 bit grid at fixed steps
    scale_lr: float = 0.0  # of the activation scales' factors (0: scales fixed); the program must learn them
    batch_size: int = 16
    lr_patch: int = 48
    distill_weight: float = 1.0  # L1 to the FP teacher's output, next to L1 to the HR image
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def finetune_int8(program: fx.GraphModule, teacher: nn.Module, data, recipe: Int8FinetuneRecipe, *,
                  val_sets: list[BenchmarkSet] = (), out_dir: str | Path | None = None,
                  max_train_seconds: float | None = None, val_every: int = 250, progress: bool = True,
                  metadata: dict[str, Any] | None = None, resume: bool = True) -> TrainHistory:
    """Train ``program`` (an integer-faithful module, in place) against ``data`` (a ``PatchDataset``) and the
    teacher's output; keeps ``out_dir/last.pt`` (resumable) and ``best.pt`` (best validation PSNR)."""
    scales = set(getattr(program, "trainable_scales", {}))
    if bool(scales) != bool(recipe.scale_lr):
        raise ValueError(f"recipe scale_lr={recipe.scale_lr} for a program with {len(scales)} trainable activation "
                         "scales: build it with integer_faithful(..., learn_scales=scale_lr > 0)")
    named = [(n, p) for n, p in program.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if n not in scales], "lr": recipe.lr}]
    if scales:
        groups.append({"params": [p for n, p in named if n in scales], "lr": recipe.scale_lr})
    optimizer = torch.optim.Adam(groups)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, recipe.iterations) / recipe.iterations)))
    config = TrainConfig(iterations=recipe.iterations, val_every=val_every if val_sets else 0,
                         checkpoint_every=val_every, out_dir=str(out_dir) if out_dir else None, progress=progress,
                         max_train_seconds=max_train_seconds)
    meta = {"kind": "int8-program", "signature": program_signature(program), "recipe": recipe.to_dict(),
            **(metadata or {})}
    trainer = Trainer(program, data, OutputDistillLoss(recipe.distill_weight), optimizer, scheduler,
                      teacher=teacher, val_sets=val_sets, config=config, metadata=meta,
                      run_settings={"recipe": recipe.to_dict()})
    if resume and trainer.last_checkpoint is not None and trainer.last_checkpoint.is_file():
        saved = torch.load(trainer.last_checkpoint, map_location="cpu", weights_only=False)
        theirs = saved.get("metadata", {})
        if theirs.get("signature") != meta["signature"] or theirs.get("recipe") != meta["recipe"]:
            raise ValueError(f"{trainer.last_checkpoint} was trained as another program or recipe; use a new "
                             "output folder")
        trainer.load_checkpoint(trainer.last_checkpoint)
    return trainer.fit()
