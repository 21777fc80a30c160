"""A small SR trainer in the minGPT style: it receives model, data, loss, optimizer (and an optional teacher).

Resumable by construction: the training batch for iteration i is a pure function of (seed, i), and the
checkpoint holds model, optimizer, scheduler, RNG states, iteration and loss history, written atomically; a run
killed at any point and resumed from its last checkpoint reproduces the uninterrupted run's losses exactly.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn as nn

from quantsr.data.datasets import BenchmarkSet
from quantsr.eval.evaluate import evaluate
from quantsr.models.slimmable import SlimmableBlock
from quantsr.train.checkpoint import load_checkpoint, restore_rng_states, rng_states, save_atomic
from quantsr.train.distributed import DistContext, all_mean, any_rank, broadcast_state_


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class BatchSource(Protocol):
    def batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]: ...


class TeacherLoss(nn.Module):
    """Base for losses that need more than (sr, hr): the trainer calls ``forward(sr, hr, lr=, model=, teacher=)``."""


def default_milestones(iterations: int) -> list[int]:
    """The learning-rate decay iterations (x0.5 each) when none are given: 50/80/90/95% of the run."""
    return [int(iterations * f) for f in (0.5, 0.8, 0.9, 0.95)]


@dataclass
class TrainConfig:
    iterations: int = 1000
    val_every: int = 500  # 0 disables validation
    checkpoint_every: int = 500  # 0: only at the end
    out_dir: str | None = None  # where last.pt / best.pt go; None keeps nothing on disk
    bf16: bool = False  # bf16 autocast for forward/backward (AMX on this CPU); params and optimizer stay fp32
    channels_last: bool = False
    grad_clip: float | None = None
    log_every: int = 10
    progress: bool = True
    device: str = "cpu"
    max_train_seconds: float | None = None  # wall-clock budget (data + steps, summed across resumes)


@dataclass
class TrainHistory:
    losses: list[float] = field(default_factory=list)  # one per iteration, index = iteration - 1
    validation: list[dict[str, float]] = field(default_factory=list)  # {"iteration", "psnr", "ssim"}
    best_psnr: float = -math.inf
    data_seconds: float = 0.0
    step_seconds: float = 0.0


class Trainer:
    def __init__(self, model: nn.Module, train_data: BatchSource, loss_fn: Callable[..., torch.Tensor],
                 optimizer: torch.optim.Optimizer, scheduler: Any = None, *, teacher: nn.Module | None = None,
                 val_sets: Sequence[BenchmarkSet] = (), config: TrainConfig | None = None,
                 metadata: dict[str, Any] | None = None, run_settings: dict[str, Any] | None = None,
                 callbacks: Sequence[Callable[[Trainer], None]] = (),
                 clock: Callable[[], float] = time.perf_counter, dist: DistContext | None = None) -> None:
        self.config = config or TrainConfig()
        # Under torchrun (quantsr.train.distributed): train_data is this rank's RankShard of the global batch;
        # rank 0 alone validates, runs the callbacks (broadcasting what they change) and writes checkpoints.
        self.dist = dist or DistContext()
        self.device = torch.device(self.config.device)
        if self.config.bf16 and self.device.type == "cpu" and not cpu_has_fast_bf16():
            warnings.warn("bf16 autocast on a CPU without AVX512-BF16/AMX is emulated and about 10x slower than "
                          "fp32 here; prefer fp32 with channels_last", stacklevel=2)
        self.model = model.to(self.device)
        if self.config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.teacher = teacher.to(self.device).eval().requires_grad_(False) if teacher is not None else None
        self.train_data, self.loss_fn = train_data, loss_fn
        self.optimizer, self.scheduler = optimizer, scheduler
        self.val_sets = list(val_sets)
        self.metadata = dict(metadata or {})  # saved in every checkpoint (what the model is)
        self.run_settings = dict(run_settings or {})  # saved in last.pt only (how it is trained: for resuming)
        # called after every iteration (and its checkpoint) with the trainer; one that changes the model returns
        # something other than None (QSA: its PruneEvent)
        self.callbacks = list(callbacks)
        self.clock = clock  # seconds, for the timings and the time budget; tests pass a fake one
        self.iteration = 0
        self.history = TrainHistory()
        self.forward_model: nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            # A slimmable body's pruned blocks stop receiving gradients midway: DDP must look for unused ones.
            slimmable = any(isinstance(m, SlimmableBlock) for m in self.model.modules())
            self.forward_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=slimmable)

    # -- checkpoints ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "iteration": self.iteration,
            "history": asdict(self.history),
            "rng": rng_states(),
            "config": asdict(self.config),
            "metadata": self.metadata,
            "run_settings": self.run_settings,
            "world_size": self.dist.world_size,
        }

    def save_checkpoint(self, path: str | Path) -> Path:
        return save_atomic(self.state_dict(), path)

    def load_checkpoint(self, path: str | Path, ckpt: dict | None = None) -> None:
        """Restore the run saved in ``path`` (``ckpt``: its contents, if the caller has read them already)."""
        ckpt = load_checkpoint(path) if ckpt is None else ckpt
        saved_world = int(ckpt.get("world_size", 1))
        if saved_world != self.dist.world_size:
            raise ValueError(f"{path} was trained on {saved_world} rank(s) and this run has "
                             f"{self.dist.world_size}; resume it with the same world size (torchrun "
                             f"--nproc_per_node x nodes = {saved_world}), or start a new --out")
        for key in ("model", "scale"):
            theirs, ours = ckpt.get("metadata", {}).get(key), self.metadata.get(key)
            if theirs is not None and ours is not None and theirs != ours:
                raise ValueError(f"{path} was trained with {key}={theirs!r}, this run has {key}={ours!r}; "
                                 "use the same settings or a new --out folder")
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise ValueError(f"{path}: checkpoint does not match the model ({str(exc).splitlines()[0]})") from None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.iteration = int(ckpt["iteration"])
        self.history = TrainHistory(**ckpt["history"])
        restore_rng_states(ckpt["rng"])

    @property
    def last_checkpoint(self) -> Path | None:
        return Path(self.config.out_dir) / "last.pt" if self.config.out_dir else None

    def resume(self, ckpt: dict | None = None) -> bool:
        """Load ``out_dir/last.pt`` if it exists (``ckpt``: its contents, already read); True if something was
        resumed."""
        path = self.last_checkpoint
        if path is None or not path.is_file():
            return False
        self.load_checkpoint(path, ckpt)
        return True

    # -- training ------------------------------------------------------------------------------------------
    def compute_loss(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        sr = self.forward_model(lr)
        if isinstance(self.loss_fn, TeacherLoss):
            return self.loss_fn(sr, hr, lr=lr, model=self.model, teacher=self.teacher)
        return self.loss_fn(sr, hr)

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> float:
        self.model.train()
        lr, hr = lr.to(self.device), hr.to(self.device)
        if self.config.channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
        autocast = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
                    if self.config.bf16 else contextlib.nullcontext())
        with autocast:
            loss = self.compute_loss(lr, hr)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return all_mean(float(loss.detach()), self.device)  # each rank's loss is its shard's: report the batch's

    def validate(self) -> dict[str, float]:
        result = evaluate(self.model, self.val_sets, self.val_sets[0].scale, progress=False,
                          device=self.device, ssim=False)
        self.model.train()
        psnr = sum(s.psnr for s in result.sets) / len(result.sets)
        return {"iteration": self.iteration, "psnr": psnr}

    def fit(self) -> TrainHistory:
        cfg = self.config
        bar = None
        if cfg.progress and self.dist.is_main:
            from tqdm import tqdm
            bar = tqdm(total=cfg.iterations, initial=self.iteration, unit="it", desc="training", dynamic_ncols=True,
                       disable=None)  # None: shown on a terminal only, no carriage returns in a log file
        # Prefetch the next batch on a thread while the current step runs: patch cropping overlaps compute.
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(self.train_data.batch, self.iteration) if self.iteration < cfg.iterations else None
            spent = self.budget_spent()  # once per iteration: under torchrun it is a collective
            while self.iteration < cfg.iterations and not spent:
                t0 = self.clock()
                lr, hr = future.result()
                t1 = self.clock()
                if self.iteration + 1 < cfg.iterations:
                    future = pool.submit(self.train_data.batch, self.iteration + 1)
                loss = self.train_step(lr, hr)
                t2 = self.clock()
                if not math.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss} at iteration {self.iteration + 1}; "
                                             "lower the learning rate or disable --bf16")
                self.iteration += 1
                self.history.losses.append(loss)
                self.history.data_seconds += t1 - t0
                self.history.step_seconds += t2 - t1
                spent = self.budget_spent()
                self._maybe_validate_and_save(bar, spent)
                if bar is not None:
                    bar.update(1)
                    if self.iteration % cfg.log_every == 0 or self.iteration == cfg.iterations:
                        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.1e}")
                # Under torchrun rank 0 alone decides (it alone validates); a callback that changed the model
                # says so by returning something, and the others then receive rank 0's model.
                changed = False
                if self.dist.is_main:
                    changed = any([callback(self) is not None for callback in self.callbacks])
                if self.dist.enabled and self.callbacks and any_rank(changed, self.device):
                    broadcast_state_(self.model)
                if spent:
                    if bar is not None:
                        bar.write(f"time budget of {cfg.max_train_seconds:.0f} s spent at iteration {self.iteration}")
                    break
        if bar is not None:
            bar.close()
        return self.history

    def budget_spent(self) -> bool:
        """True once the training time (data + steps, over all resumed runs) reaches ``max_train_seconds``
        (on any rank: all ranks stop at the same iteration)."""
        budget = self.config.max_train_seconds
        if budget is None:
            return False
        return any_rank(self.history.data_seconds + self.history.step_seconds >= budget, self.device)

    def _maybe_validate_and_save(self, bar, budget_spent: bool) -> None:
        cfg = self.config
        done = self.iteration == cfg.iterations or budget_spent
        if not self.dist.is_main:
            return
        improved = False
        if self.val_sets and cfg.val_every and (self.iteration % cfg.val_every == 0 or done):
            record = self.validate()
            self.history.validation.append(record)
            improved = record["psnr"] > self.history.best_psnr
            self.history.best_psnr = max(self.history.best_psnr, record["psnr"])
            names = "+".join(v.name for v in self.val_sets)
            message = f"iter {self.iteration}: {names} PSNR {record['psnr']:.3f} dB (best {self.history.best_psnr:.3f})"
            if bar is not None:
                bar.write(message)
        if cfg.out_dir and (done or (cfg.checkpoint_every and self.iteration % cfg.checkpoint_every == 0)):
            self.save_checkpoint(Path(cfg.out_dir) / "last.pt")
        if cfg.out_dir and improved:
            best = {"model": self.model.state_dict(), "metadata": self.metadata,
                    "iteration": self.iteration, "psnr": self.history.best_psnr}
            save_atomic(best, Path(cfg.out_dir) / "best.pt")
