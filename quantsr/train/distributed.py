"""Data-parallel training under ``torchrun``: PyTorch's own engine (``torch.distributed`` +
``DistributedDataParallel``), not a home-made one.

A process launched by ``torchrun`` finds ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment;
:func:`init_distributed` joins the process group (NCCL on GPUs, gloo on CPU) and returns the rank's
:class:`DistContext`. Without them everything is single-process and unchanged.

What each rank does (:class:`~quantsr.train.trainer.Trainer`): it draws its share of the *global* batch
(:class:`RankShard`: rows ``[r * B/N, (r + 1) * B/N)`` of the batch the single-process run would draw, so
batch i of rank r is a pure function of seed, i, r and N and resuming stays exact), DDP all-reduces the
gradients, and rank 0 alone validates, runs the callbacks that decide (QSA's pruning, broadcast to the others)
and writes checkpoints and model cards.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistContext", "RankShard", "all_mean", "any_rank", "broadcast_state_", "finish_distributed",
           "init_distributed", "world_size"]


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_distributed(device: str = "cpu") -> tuple[DistContext, str]:
    """Join the ``torchrun`` job this process belongs to (once; later calls reuse the group) and return its
    context and the device it trains on (``cuda`` becomes ``cuda:LOCAL_RANK``). Not launched by torchrun: the
    single-process context and ``device`` unchanged."""
    if not launched_by_torchrun():
        return DistContext(), device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda under torchrun, but this node has no CUDA device; use --device cpu "
                               "(gloo) or run on GPU nodes")
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank), device


def finish_distributed() -> None:
    """Wait for every rank, then leave the process group (a no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def world_size() -> int:
    """The job's number of ranks (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def check_divisible(batch_size: int, ranks: int) -> int:
    """The per-rank batch of a global ``batch_size`` on ``ranks`` ranks; a clear error if it does not divide."""
    if batch_size % ranks:
        raise ValueError(f"--batch-size {batch_size} is the global batch and must divide by the {ranks} ranks "
                         f"(per-rank batch = global / ranks); pass a multiple of {ranks}")
    return batch_size // ranks


class RankShard:
    """This rank's rows of each global batch of ``source`` (anything with ``batch(iteration)``)."""

    def __init__(self, source, context: DistContext, batch_size: int) -> None:
        self.source, self.context = source, context
        self.per_rank = check_divisible(batch_size, context.world_size)

    def batch(self, iteration: int) -> tuple[torch.Tensor, ...]:
        rows = slice(self.context.rank * self.per_rank, (self.context.rank + 1) * self.per_rank)
        return tuple(t[rows] for t in self.source.batch(iteration))


def all_mean(value: float, device: torch.device | str = "cpu") -> float:
    """The mean of ``value`` over the ranks (``value`` itself when not distributed)."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / world_size()


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True on every rank if ``flag`` is True on any (so all ranks stop at the same iteration)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([int(flag)], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t)


def broadcast_state_(model: nn.Module, src: int = 0) -> None:
    """Give every rank rank ``src``'s model state (after rank 0 alone changed it, e.g. QSA pruned a block),
    through ``load_state_dict`` so that modules keeping Python mirrors of their buffers (a pruned block's flag)
    update them too."""
    if world_size() == 1:
        return
    payload = [model.state_dict() if dist.get_rank() == src else None]
    dist.broadcast_object_list(payload, src)
    if dist.get_rank() != src:
        model.load_state_dict(payload[0])
