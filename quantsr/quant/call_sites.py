"""One activation quantizer per call of a shared block: the block's weights stay one copy, its input grids do not.

CARN-M runs one residual block three times in each cascading block (recursive weights). Quantized as it is, each
of that block's convs has one activation quantizer for three different inputs: in the trained W4A4 model the first
call's input is 2.5x the others' (mean |x| 0.10 against 0.04), so one clip range clips 6% of the first call and
leaves the later calls ~2 levels on average. :func:`untie_call_sites_` gives each extra call a *tied copy* of the
block: the same weight and bias tensors and the same weight quantizer (one set of codes, counted once in the
stored bytes), its own activation quantizers (a step and 64 shifts each: bytes the paper's accounting counts at
32 bits). An architecture opts in on the module that makes the calls
(:class:`quantsr.models.archs.carn.CascadingBlock`) with two members: ``untie_calls_(tied_copy) -> bool`` (give the
extra calls their copies; False if already done) and ``calls_untied`` (whether they have them, so that a model is
untied before an untied checkpoint loads into it). The graph it then traces names a distinct module per call, so
``torch.export`` sees distinct activation quantizers over shared parameters. The static int8 program rounds each
call's input on that call's learned grid; its ``.pte`` stores the shared int8 weights once (its named data is
content-hashed) and each call's int32 bias and quantization parameters apart (a CARN-M with 16 features at W4A8:
125,708 B against 112,908 B with shared quantizers).
"""
from __future__ import annotations

import copy

from torch import nn

from quantsr.quant.quantizers import ActQuantizer

__all__ = ["check_call_site_steps", "has_call_site_steps", "tied_copy", "untie_call_sites_"]


def tied_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` that shares everything with it except its activation quantizers, which are copied
    (same values, trained apart from then on): parameters, buffers and every submodule holding no
    :class:`ActQuantizer` (weight quantizers, activations) are the original objects."""
    if not any(isinstance(m, ActQuantizer) for m in module.modules()):
        raise ValueError(f"{type(module).__name__} has no activation quantizer to give each call: quantize it first")
    memo: dict[int, object] = {}
    for sub in module.modules():
        if isinstance(sub, ActQuantizer):
            continue
        if not any(isinstance(m, ActQuantizer) for m in sub.modules()):
            memo[id(sub)] = sub
        for tensor in (*sub.parameters(recurse=False), *sub.buffers(recurse=False)):
            memo[id(tensor)] = tensor
    return copy.deepcopy(module, memo)


def _owners(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(fqn, m) for fqn, m in model.named_modules()
            if callable(getattr(m, "untie_calls_", None)) and hasattr(m, "calls_untied")]


def check_call_site_steps(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules of ``model`` that call a shared block several times and can untie those calls; a ValueError if
    there is none (the recipe's ``call_site_steps`` then means nothing)."""
    owners = _owners(model)
    if not owners:
        raise ValueError(f"{type(model).__name__} calls no shared block more than once; drop --call-site-steps")
    return owners


def untie_call_sites_(model: nn.Module) -> list[str]:
    """Give every repeated call of a shared block its own activation quantizers (a tied copy per extra call), in
    place; blocks already untied are left alone. Returns the modules changed; a ValueError if ``model`` has no
    shared block."""
    return [fqn for fqn, owner in check_call_site_steps(model) if owner.untie_calls_(tied_copy)]


def has_call_site_steps(model: nn.Module) -> bool:
    """True when some shared block of ``model`` already has its calls untied."""
    return any(m.calls_untied for _, m in _owners(model))
