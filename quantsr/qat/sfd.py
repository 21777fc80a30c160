"""SFD: Slimming-guided Function-localized Distillation (docs/method.md, "SFD").

``L = L1(SR, HR) + weight * mean_{k in K} ||F_s^k - F_t^k||_F`` with ``weight = 1e-4``, the Frobenius norm taken
over the whole batch tensor (not squared, not normalised), and:

* ``F^k`` the feature of block k: the output of the block's first conv, before its activation (conv nets; for a
  :class:`~quantsr.models.slimmable.SlimmableBlock` the first conv of the wrapped block); for SwinIR the output of
  residual group k's 3x3 conv (its residual branch), plus the shallow feature (``conv_first``'s output) under key
  :data:`SHALLOW` (= -1), which is always distilled;
* K = the blocks k such that neither k nor k - 1 is pruned in the student (read from its SlimmableBlocks), so the
  alignment stays local to blocks whose input and function QSA has not changed;
* the teacher a frozen full-precision model of the same over-parameterised architecture, run under ``no_grad`` on
  the LR batch (it stops right after the last feature it needs: the tail's compute is skipped).

Used with :class:`quantsr.train.trainer.Trainer`, which calls ``loss_fn(sr, hr, lr=, model=, teacher=)``.
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from quantsr.models.registry import descriptor_of
from quantsr.models.slimmable import SkippedBlock, SlimmableBlock, block_container, is_pruned
from quantsr.train.distributed import world_size
from quantsr.train.trainer import TeacherLoss

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self  # typing.Self is Python 3.11+

__all__ = ["SHALLOW", "FeatureHooks", "SFDLoss", "distill_keys", "feature_modules"]

SHALLOW = -1  # key of SwinIR's shallow feature (conv_first output)


def _distills_shallow(model: nn.Module) -> bool:
    descriptor = descriptor_of(model)
    return descriptor is not None and descriptor.distill_shallow


def _first_conv(block: nn.Module) -> nn.Module | None:
    if isinstance(block, SkippedBlock):
        return None
    inner = block.block if isinstance(block, SlimmableBlock) else block
    conv = getattr(inner, "conv", None)  # SwinIR's RSTB: the group's 3x3 conv
    if isinstance(conv, nn.Conv2d):
        return conv
    return next((m for m in inner.modules() if isinstance(m, nn.Conv2d)), None)


def feature_modules(model: nn.Module, shallow: bool | None = None) -> dict[int, nn.Module]:
    """``{block index: module whose output is F^k}`` (plus ``SHALLOW: conv_first`` for SwinIR, or if
    ``shallow=True``). Pruned-and-stripped blocks have no entry. Resolved afresh on each call, so layers swapped
    by ``quantize_`` after the hooks were made are found."""
    out: dict[int, nn.Module] = {}
    if shallow if shallow is not None else _distills_shallow(model):
        out[SHALLOW] = model.conv_first
    for k, block in enumerate(block_container(model)):
        conv = _first_conv(block)
        if conv is not None:
            out[k] = conv
    return out


def _batch_norm_term(diff: torch.Tensor) -> torch.Tensor:
    """``||diff||_F`` over the whole batch. Under DDP each rank holds a shard of it: the value is the global norm
    (the squared norms all-reduced), and the gradient is scaled so that DDP's average over the ranks is exactly the
    global norm's gradient, ``sum_r d(s_r) / (2 ||.||)``, so N ranks train as one process on the global batch."""
    ranks = world_size()
    if ranks == 1:
        return torch.linalg.vector_norm(diff)
    squared = diff.square().sum()
    total = squared.detach().clone()
    torch.distributed.all_reduce(total)
    norm = total.sqrt()
    return norm + ranks * (squared - squared.detach()) / (2 * norm.clamp_min(1e-12))


def distill_keys(student: nn.Module, shallow: bool | None = None) -> list[int]:
    """K: block indices k with neither k nor k - 1 pruned in ``student`` (and SHALLOW for SwinIR)."""
    skipped = [is_pruned(b) for b in block_container(student)]
    keys = [SHALLOW] if (shallow if shallow is not None else _distills_shallow(student)) else []
    return keys + [k for k in range(len(skipped)) if not skipped[k] and not (k > 0 and skipped[k - 1])]


class _StopForward(Exception):
    pass


class FeatureHooks:
    """Capture per-block features ``{k: F^k}`` of every forward of ``model`` into ``self.features``.

    ``keys`` restricts the captured blocks (default: all). The hooks are re-resolved at the start of each forward
    (a pre-hook on ``model``), so wrapping blocks (make_slimmable_) or quantizing layers (quantize_) after
    creating the hooks is fine; ``features`` is cleared at each forward, so a skipped block has no entry.
    ``when`` says which forwards are captured: ``"always"``, ``"grad"`` (only with grad enabled: training
    forwards, not validation ones, whose full-image features would only cost memory) or ``"capture"`` (only inside
    :meth:`capture`). ``early_exit=True`` makes :meth:`capture` stop the forward once the last wanted feature is
    captured (for a teacher whose output is not needed). Use as a context manager or call :meth:`remove`.
    """

    def __init__(self, model: nn.Module, keys: Iterable[int] | None = None, shallow: bool | None = None,
                 early_exit: bool = False, when: str = "always") -> None:
        if when not in ("always", "grad", "capture"):
            raise ValueError(f"when must be 'always', 'grad' or 'capture', got {when!r}")
        self.model, self.shallow, self.early_exit, self.when = model, shallow, early_exit, when
        self._capturing = False
        self.keys = None if keys is None else set(keys)
        self.features: dict[int, torch.Tensor] = {}
        self.forward_count = 0
        self._hooks: dict[int, tuple[nn.Module, Any]] = {}
        self._last_key: int | None = None
        self._root = model.register_forward_pre_hook(self._on_forward)
        self._attach()

    def _attach(self) -> None:
        targets = {k: m for k, m in feature_modules(self.model, self.shallow).items()
                   if self.keys is None or k in self.keys}
        for k in list(self._hooks):
            if k not in targets or targets[k] is not self._hooks[k][0]:
                self._hooks.pop(k)[1].remove()
        for k, m in targets.items():
            if k not in self._hooks:  # a partial of a bound method (not a closure): deepcopy-safe
                self._hooks[k] = (m, m.register_forward_hook(functools.partial(self._on_feature, k)))
        blocks = list(block_container(self.model))
        runnable = [k for k in targets if k == SHALLOW or not is_pruned(blocks[k])]
        self._last_key = max(runnable) if runnable else None

    def _active(self) -> bool:
        return self._capturing or self.when == "always" or (self.when == "grad" and torch.is_grad_enabled())

    def _on_feature(self, key: int, module: nn.Module, args: Any, out: torch.Tensor) -> None:
        if not self._active() or key not in self._hooks or self._hooks[key][0] is not module:
            return
        self.features[key] = out
        if self.early_exit and self._capturing and key == self._last_key:
            raise _StopForward

    def _on_forward(self, module: nn.Module, args: Any) -> None:
        self.features = {}
        if self._active():
            self.forward_count += 1
            self._attach()

    def __deepcopy__(self, memo: dict) -> FeatureHooks:
        # A deep copy of the hooked model brings its own hooks along; captured features (non-leaf tensors, which
        # cannot be deep-copied) are not copied.
        new = object.__new__(type(self))
        memo[id(self)] = new
        for name, value in self.__dict__.items():
            setattr(new, name, {} if name == "features" else copy.deepcopy(value, memo))
        return new

    def capture(self, *inputs: torch.Tensor) -> dict[int, torch.Tensor]:
        """Run the model on ``inputs`` and return the features (stopping early if ``early_exit``)."""
        self._capturing = True
        try:
            self.model(*inputs)
        except _StopForward:
            pass
        finally:
            self._capturing = False
        return self.features

    def remove(self) -> None:
        self._root.remove()
        for _, handle in self._hooks.values():
            handle.remove()
        self._hooks.clear()
        self.features = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class SFDLoss(TeacherLoss):
    """``L1(SR, HR) + weight * mean_{k in K} ||F_s^k - F_t^k||_F`` (see the module docstring).

    Pass the student at construction so its features are captured during the trainer's own forward; a student
    first seen in :meth:`forward` gets hooks then and is run once more on ``lr`` for that one step. Without a
    teacher (or ``weight == 0``) this is plain L1. ``last`` holds the latest terms (detached) for logging.
    """

    def __init__(self, student: nn.Module | None = None, weight: float = 1e-4, keys: Iterable[int] | None = None,
                 shallow: bool | None = None) -> None:
        super().__init__()
        self.weight, self.shallow = float(weight), shallow
        self.keys = None if keys is None else set(keys)
        self._student: FeatureHooks | None = None
        self._teacher: FeatureHooks | None = None
        self.last: dict[str, Any] = {}
        if student is not None:
            self._student = FeatureHooks(student, self.keys, shallow, when="grad")

    def _hooks_for(self, slot: str, model: nn.Module, teacher: bool) -> FeatureHooks:
        hooks = getattr(self, slot)
        if hooks is None or hooks.model is not model:
            if hooks is not None:
                hooks.remove()
            hooks = FeatureHooks(model, self.keys, self.shallow, early_exit=teacher,
                                 when="capture" if teacher else "grad")
            setattr(self, slot, hooks)
        return hooks

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor | None = None,
                model: nn.Module | None = None, teacher: nn.Module | None = None) -> torch.Tensor:
        l1 = F.l1_loss(sr, hr)
        if teacher is None or self.weight == 0:
            self.last = {"l1": l1.detach(), "feature": None, "keys": []}
            return l1
        if lr is None or model is None:
            raise ValueError("SFDLoss with a teacher needs lr= and model= (the Trainer passes them)")
        student = self._hooks_for("_student", model, teacher=False)
        if student.forward_count == 0:  # hooks made just now: the trainer's forward was not observed
            student.capture(lr)
        s_feat, student.features = student.features, {}
        with torch.no_grad():
            t_feat = self._hooks_for("_teacher", teacher, teacher=True).capture(lr)
        self._teacher.features = {}

        keys = [k for k in distill_keys(model, self.shallow) if self.keys is None or k in self.keys]
        terms = []
        for k in keys:
            if k not in s_feat or k not in t_feat:
                raise ValueError(f"SFD: feature {k} missing from the {'student' if k not in s_feat else 'teacher'};"
                                 " the teacher must have the student's over-parameterised architecture")
            fs, ft = s_feat[k], t_feat[k]
            if fs.shape != ft.shape:
                raise ValueError(f"SFD: feature {k} has shape {tuple(fs.shape)} in the student, "
                                 f"{tuple(ft.shape)} in the teacher; use the same architecture")
            terms.append(_batch_norm_term(fs.float() - ft.float()))
        if not terms:
            self.last = {"l1": l1.detach(), "feature": None, "keys": keys}
            return l1
        feature = torch.stack(terms).mean()
        self.last = {"l1": l1.detach(), "feature": feature.detach(), "keys": keys}
        return l1 + self.weight * feature.to(l1.dtype)
