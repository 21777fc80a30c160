"""The training recipe of ``quantsr quantize``: how a low-bit student is trained (not what it is: that is the
:class:`~quantsr.quant.recipe.QuantRecipe`). Saved in the run's ``last.pt`` only, never in the
shipped ``model.pt``, so renaming a training flag cannot break a checkpoint."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from quantsr.train.trainer import default_milestones

__all__ = ["DISTILL_TARGETS", "INITS", "PRESETS", "TrainRecipe"]

INITS = ("lsq", "mse", "block", "checkpoint")
DISTILL_TARGETS = ("features", "output")


@dataclass
class TrainRecipe:
    distill: bool = True  # a teacher term on top of L1 to HR
    # "features": SFD (the paper's; needs a body of residual blocks), weight distill_weight; "output": L1 to the
    # teacher's output, weight 1 (any architecture; quantsr.qat.output_distill)
    distill_target: str = "features"
    distill_weight: float = 1e-4
    # weight of L1 to the HR patch next to the teacher's output (distill_target "output" only); 0: the student
    # learns the teacher's output alone
    hr_weight: float = 1.0
    iterations: int = 10000
    batch_size: int = 16
    lr_patch: int = 48
    # each patch the most edge-rich of this many random crops (quantsr.data.PatchDataset); 1: uniform crops
    edge_candidates: int = 1
    lr: float = 2e-4
    quantizer_lr_scale: float = 1.0  # lr multiplier for quantizer parameters (steps, tau, s_i, beta_i)
    # The student's starting point: "lsq" (the quantizers' own initial values at the first batch), "mse" (PTQ
    # steps by least squared error on init_samples patches) or "block" (mse, then block-wise reconstruction:
    # init_iterations Adam steps per unit; quantsr.qat.reconstruct) or "checkpoint" (the weights and steps of
    # init_from, a low-bit checkpoint of the same recipe: a finished run trained again on a fresh schedule).
    init: str = "lsq"
    init_samples: int = 64
    init_iterations: int = 400
    init_from: str | None = None
    milestones: list[int] | None = None  # default: 50/80/90/95% of iterations
    val_every: int = 1000
    checkpoint_every: int = 250
    max_train_minutes: float | None = None  # stop (checkpoint, evaluate, write the card) after this much training
    bf16: bool = False
    channels_last: bool = False
    device: str = "cpu"
    seed: int = 0
    train_dirs: list[str] = field(default_factory=list)
    val_sets: list[str] = field(default_factory=lambda: ["Set5"])

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"training recipe: init must be one of {INITS}, got {self.init!r}")
        if self.distill_target not in DISTILL_TARGETS:
            raise ValueError(f"training recipe: distill_target must be one of {DISTILL_TARGETS}, "
                             f"got {self.distill_target!r}")
        if (self.init == "checkpoint") != (self.init_from is not None):
            raise ValueError("training recipe: init 'checkpoint' needs init_from (a low-bit checkpoint), and "
                             f"init_from needs init 'checkpoint'; got init={self.init!r}, init_from={self.init_from!r}")
        if not (math.isfinite(self.hr_weight) and self.hr_weight >= 0):
            raise ValueError(f"training recipe: hr_weight must be a finite number >= 0, got {self.hr_weight}")
        if self.hr_weight != 1.0 and not (self.distill and self.distill_target == "output"):
            raise ValueError(f"training recipe: hr_weight {self.hr_weight} weights the HR term next to the "
                             "teacher's output: it needs --distill-target output and distillation on (no "
                             "--no-distill)")
        if self.edge_candidates < 1:
            raise ValueError(f"training recipe: edge_candidates must be >= 1, got {self.edge_candidates}")
        if self.init_samples < 1 or self.init_iterations < 0:
            raise ValueError("training recipe: init_samples must be >= 1 and init_iterations >= 0, got "
                             f"{self.init_samples} and {self.init_iterations}")

    def schedule(self) -> list[int]:
        """The learning-rate decay iterations (x0.5 each)."""
        return self.milestones or default_milestones(self.iterations)


# The paper's recipe (docs/method.md, "Training recipes") for a machine with GPUs: 500k iterations, batch 128.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(iterations=500_000, batch_size=128, lr_patch=64, lr=2e-4,
                  milestones=[250_000, 400_000, 450_000, 475_000], val_every=5000, checkpoint_every=5000),
    # About 2 h for IMDN x4 W4A4 on 2 AVX2 cores in fp32 (measured 3.6 s/it with the SFD teacher and quantizers;
    # bf16 is 10x slower without AVX512-BF16/AMX, channels_last no faster: benchmarks/train_throughput.py).
    "cpu-2h": dict(iterations=2000, batch_size=16, lr_patch=48, lr=2e-4, val_every=250, checkpoint_every=100),
}
