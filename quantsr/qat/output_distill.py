"""Distillation on the output: ``L1(sr, hr) + weight * L1(sr, teacher(lr))``.

The FP teacher's output is a denser target than the HR patch alone, and it is what a quantized student's drop is
measured against. Works for any architecture (SFD needs a body of residual blocks); used by the int8 fine-tune
and by ``quantsr quantize --distill-target output``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from quantsr.train.trainer import TeacherLoss

__all__ = ["OutputDistillLoss"]


class OutputDistillLoss(TeacherLoss):
    """``L1(sr, hr) + weight * L1(sr, teacher(lr))``; without a teacher (or ``lr``), plain L1 to ``hr``."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor | None = None,
                model: nn.Module | None = None, teacher: nn.Module | None = None) -> torch.Tensor:
        loss = F.l1_loss(sr, hr)
        if teacher is not None and self.weight and lr is not None:
            with torch.no_grad():
                target = teacher(lr)
            loss = loss + self.weight * F.l1_loss(sr, target)
        return loss
