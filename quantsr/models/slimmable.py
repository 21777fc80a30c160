"""Slimmable blocks: the wrapper QSA (``quantsr.qat.qsa``) trains and prunes, and the pass-through a pruned block
becomes for export. Part of a checkpoint's architecture (``quantsr.quant.recipe``), so it lives with the models.

Every wrapped block computes ``out = beta_blk * x + (block(x) - x)``, i.e. ``beta_blk * x + res_scale * F(x)``
for a block whose forward is ``x + res_scale * F(x)``; evaluated as ``block(x) + (beta_blk - 1) * x`` so that
``beta_blk == 1`` reproduces the block bit for bit. For blocks without an internal skip (RFDB, RLFB: the output is
``esa(conv(...))``, not ``x + something``) ``block(x) - x`` is still a well defined C -> C branch, so the same
formula applies. A skipped block returns its input and never runs its branch.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from quantsr.models.registry import descriptor_of, get_descriptor, list_models

__all__ = ["SkippedBlock", "SlimmableBlock", "block_container", "is_pruned", "make_slimmable_", "slimmable_blocks",
           "strip_skipped"]

_OWN_KEYS = ("beta_blk", "skipped", "pruned_at")


class SlimmableBlock(nn.Module):
    """``beta_blk * x + (block(x) - x)`` with a learnable shortcut weight ``beta_blk`` (init 1), a 0/1 buffer
    ``skipped`` and a buffer ``pruned_at`` (iteration of the prune, -1 if kept; lets QSA resume from a checkpoint).

    Extra forward arguments (SwinIR's attention mask) are passed to the block. The skip flag is mirrored in a Python
    bool, so ``torch.export`` / ``torch.compile`` see a constant branch; change it with :meth:`skip_` / :meth:`unskip_`
    (``load_state_dict`` refreshes the mirror). A state dict of the unwrapped block (``body.3.conv1.weight``) also
    loads: its keys are moved under ``block.`` and ``beta_blk``/``skipped``/``pruned_at`` get their defaults.

    ``block`` must map (N, C, ...) to the same shape. With an internal skip (``x + res_scale * F(x)``: EDSR,
    SRResNet, IMDB, SwinIR's RSTB) the result is ``beta_blk * x + res_scale * F(x)``; without one (RFDB, RLFB,
    whose output is not ``x + something``) ``block(x) - x`` is still a valid branch and ``beta_blk = 1`` still
    reproduces the block exactly.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block
        ref = next(block.parameters(), None)  # live on the block's device, in its dtype
        device, dtype = (ref.device, ref.dtype) if ref is not None and ref.is_floating_point() else (None, None)
        self.beta_blk = nn.Parameter(torch.ones((), device=device, dtype=dtype))
        self.register_buffer("skipped", torch.zeros((), dtype=torch.uint8, device=device))
        self.register_buffer("pruned_at", torch.full((), -1, dtype=torch.int64, device=device))
        self._skip = False

    @property
    def is_skipped(self) -> bool:
        return self._skip

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self._skip:
            return x
        return self.block(x, *args, **kwargs) + (self.beta_blk - 1) * x

    @torch.no_grad()
    def skip_(self, iteration: int = -1) -> SlimmableBlock:
        """Prune: skipped = 1, beta_blk = 1 and frozen (requires_grad False, grad dropped)."""
        self.skipped.fill_(1)
        self.pruned_at.fill_(iteration)
        self._skip = True
        self.freeze_beta_()
        return self

    @torch.no_grad()
    def unskip_(self) -> SlimmableBlock:
        self.skipped.fill_(0)
        self.pruned_at.fill_(-1)
        self._skip = False
        self.beta_blk.requires_grad_(True)
        return self

    @torch.no_grad()
    def freeze_beta_(self) -> None:
        # Optimizers skip parameters whose grad is None; re-setting the value also undoes any momentum step an
        # optimizer made with a zero-filled grad (zero_grad(set_to_none=False)).
        self.beta_blk.fill_(1.0)
        self.beta_blk.grad = None
        self.beta_blk.requires_grad_(False)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        legacy = [k for k in state_dict if k.startswith(prefix) and not k.startswith(prefix + "block.")
                  and k[len(prefix):] not in _OWN_KEYS]
        if legacy:  # an unwrapped block's checkpoint: move its keys under ``block.``, default our own entries
            for k in legacy:
                state_dict[prefix + "block." + k[len(prefix):]] = state_dict.pop(k)
            for name, value in (("beta_blk", torch.ones(())), ("skipped", torch.zeros((), dtype=torch.uint8)),
                                ("pruned_at", torch.full((), -1, dtype=torch.int64))):
                state_dict.setdefault(prefix + name, value)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        was_skipped, self._skip = self._skip, bool(self.skipped.item())
        if self._skip:
            self.freeze_beta_()
        elif was_skipped:
            self.beta_blk.requires_grad_(True)

    def extra_repr(self) -> str:
        return f"skipped={self._skip}"


class SkippedBlock(nn.Module):
    """What :func:`strip_skipped` leaves in place of a pruned block: no parameters, returns its first input."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return x


def is_pruned(block: nn.Module) -> bool:
    """True for a pruned body block: skipped in place, or already stripped to a :class:`SkippedBlock`."""
    return isinstance(block, SkippedBlock) or (isinstance(block, SlimmableBlock) and block.is_skipped)


def block_container(model: nn.Module) -> nn.Sequential | nn.ModuleList:
    """The residual body of a model, as its descriptor names it (``body``; SwinIR: ``layers``, the residual
    groups)."""
    descriptor = descriptor_of(model)
    if descriptor is None or descriptor.body is None:
        name = descriptor.name if descriptor is not None else type(model).__name__
        raise ValueError(f"{name} has no body of C -> C residual blocks to slim; QSA and SFD work on "
                         f"{', '.join(n for n in list_models() if get_descriptor(n).body)}")
    container = model.get_submodule(descriptor.body)
    if not isinstance(container, (nn.Sequential, nn.ModuleList)) or any(
            not list(b.children()) and not isinstance(b, SkippedBlock) for b in container):
        raise ValueError(f"{descriptor.name}.{descriptor.body} is not a list of residual blocks")
    return container


def make_slimmable_(model: nn.Module) -> nn.Module:
    """Wrap each block of the model's body (:func:`block_container`) in a :class:`SlimmableBlock`, in place.

    State-dict names gain one level: ``body.3.conv1.weight`` -> ``body.3.block.conv1.weight`` plus
    ``body.3.beta_blk``, ``body.3.skipped``, ``body.3.pruned_at``. Already wrapped blocks are left alone.
    """
    container = block_container(model)
    for i, block in enumerate(container):
        if not isinstance(block, SlimmableBlock):
            wrapped = SlimmableBlock(block)
            wrapped.train(block.training)
            container[i] = wrapped
    return model


def slimmable_blocks(model: nn.Module) -> list[SlimmableBlock]:
    """The model's SlimmableBlocks in forward order (their index is the block index QSA and SFD use)."""
    return [m for m in model.modules() if isinstance(m, SlimmableBlock)]


def strip_skipped(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every skipped :class:`SlimmableBlock` by a parameter-free :class:`SkippedBlock`, so profiling,
    state dicts and ``torch.export`` see neither compute nor weights for pruned blocks. Kept blocks keep their
    indices (``body.5`` stays ``body.5``: IMDN/RFDN's fusion conv needs every position). Returns the model (a deep
    copy unless ``inplace``)."""
    model = model if inplace else copy.deepcopy(model)
    for fqn, m in list(model.named_modules()):
        if isinstance(m, SlimmableBlock) and m.is_skipped:
            parent_name, _, child = fqn.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            if isinstance(parent, (nn.Sequential, nn.ModuleList)):
                parent[int(child)] = SkippedBlock()
            else:
                setattr(parent, child, SkippedBlock())
    return model
