"""Distillation on the output: ``hr_weight * L1(sr, hr) + weight * L1(sr, teacher(lr))``.

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
    """``hr_weight * L1(sr, hr) + weight * L1(sr, teacher(lr))``; without a teacher (or ``lr``), plain L1 to ``hr``.

    ``hr_weight = 0`` learns the teacher's output alone: a target the student can reach, where the HR patch asks
    for detail the teacher does not produce either."""

    def __init__(self, weight: float = 1.0, hr_weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight
        self.hr_weight = hr_weight

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor | None = None,
                model: nn.Module | None = None, teacher: nn.Module | None = None) -> torch.Tensor:
        if teacher is None or not self.weight or lr is None:
            return F.l1_loss(sr, hr)
        with torch.no_grad():
            target = teacher(lr)
        loss = self.weight * F.l1_loss(sr, target)
        return loss + self.hr_weight * F.l1_loss(sr, hr) if self.hr_weight else loss
