"""Fusion convs over a concat: find them, and give their input one activation step per concatenated branch.

SR nets fuse branches of very different scales with ``conv(cat([a, b, c, d]))`` (SPAN's ``conv_cat``, IMDN's
fusion convs). One step for the whole concat rounds the small branches onto the grid of the widest: in SPAN x4 at
W8A8 that costs 0.9 dB on Set5 by itself. The deployed int8 graph splits such a conv into one conv per branch
(``quantsr.export.graph_passes.split_concat_convs``), each with its own input scale; the fake-quant model matches
that with a segmented :class:`~quantsr.quant.quantizers.ActQuantizer` (one step per branch).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from quantsr.quant.layers import QUANT_LAYERS
from quantsr.quant.quantizers import ActQuantizer

__all__ = ["concat_inputs", "segment_concat_steps_"]


class _CatRecorder(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.parts: dict[int, tuple[int, ...]] = {}  # id of a channel concat's output -> its parts' channels
        self.keep: list[torch.Tensor] = []  # the outputs stay alive, so their ids are not reused

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in (torch.cat, torch.concat, torch.concatenate):
            tensors = args[0] if args else kwargs["tensors"]
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            if isinstance(out, torch.Tensor) and out.dim() == 4 and dim in (1, -3) and len(tensors) > 1:
                self.parts[id(out)] = tuple(int(t.shape[1]) for t in tensors)
                self.keep.append(out)
        return out


@torch.no_grad()
def concat_inputs(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """``{conv fqn: channels of each concatenated part}`` for every conv whose input, in one forward of
    ``model`` on ``example``, is a channel concat of several tensors."""
    found: dict[str, tuple[int, ...]] = {}
    recorder = _CatRecorder()

    def pre_hook(fqn: str):
        def hook(_module, args) -> None:
            parts = recorder.parts.get(id(args[0])) if args else None
            if parts is not None:
                found[fqn] = parts
        return hook

    handles = [m.register_forward_pre_hook(pre_hook(fqn)) for fqn, m in model.named_modules()
               if isinstance(m, nn.Conv2d)]  # QConv2d included
    mode = model.training
    try:
        model.eval()
        with recorder:
            model(example)
    finally:
        model.train(mode)
        for handle in handles:
            handle.remove()
    return found


def segment_concat_steps_(model: nn.Module, parts: dict[str, tuple[int, ...]]) -> list[str]:
    """Give each quantized conv named in ``parts`` an activation quantizer with one step per part (fresh,
    uninitialised: calibrate or train it). Returns the convs changed."""
    changed = []
    for fqn, segments in parts.items():
        layer = model.get_submodule(fqn)
        if not isinstance(layer, QUANT_LAYERS):
            continue
        old: ActQuantizer = layer.act_quantizer
        new = ActQuantizer(old.bits, old.num_channels, channel_dim=old.channel_dim, rounding=old.rounding,
                           redistribute=old.tau is not None, soft_k=old.soft_k, segments=segments)
        layer.act_quantizer = new.to(device=old.step.device, dtype=old.step.dtype)
        changed.append(fqn)
    return changed
