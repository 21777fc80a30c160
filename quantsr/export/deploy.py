"""From a fake-quant QAT model to a plain float "deploy" model whose graph states every learned quantizer
explicitly, ready for PT2E with fixed qparams.

Each :class:`~quantsr.quant.QConv2d` becomes a :class:`FixedQuantConv2d` whose input goes through the learned
activation quantizer written out in ops XNNPACK delegates: ``k = floor(clamp(x / a + tau / a + 1/2, Qn + 1/2,
Qp + 1/2))``, the integer level (the shift tau kept: a per-channel shift is not a per-tensor zero point; the b-bit
range is the clamp), then the conv of ``k`` with weight ``a * step * levels`` (``conv(a k, W) = conv(k, a W)``,
zero padding included). The per-channel affine ``x / a + tau / a + 1/2`` is a depthwise 1x1 conv (``prescale``):
XNNPACK fails at run time ("Propagating input shapes failed") when a binary op with a constant operand feeds a
dynamically quantized conv. :class:`FixedQuantLinear` (SwinIR) uses a plain multiply-add. A conv trained with one
activation step per concatenated branch (``--concat-steps``) becomes a :class:`SegmentedFixedQuantConv2d`: one
FixedQuantConv2d per branch, summed. The deploy model
computes what the fake-quant model computes (``floor(u + 1/2)`` equals ``round(u)`` except at exact .5 ties).

Two forms (``activations``), measured on IMDN x4 W4A4 (Set5, the eager fake-quant model at 31.094 dB):

* ``"static"``: every tensor int8 (conv outputs, adds, concatenations with calibrated observers; the learned
  layers' inputs at their fixed scale ``a``). Faster, but conv outputs span a much wider range than the next
  layer's learned b-bit input (the learned steps clip hard), so one int8 step of an output is close to a 4-bit
  step of the next input and flips its rounding: 30.958 dB (-0.137).
* ``"dynamic"`` (default): the glue stays fp32 exactly as in eager, and the learned convs are dynamically
  quantized int8 (XNNPACK qd8-f32-qc8w): their input is already the integer level ``k``, whose int8 conversion
  is exact whenever its per-run range spans a divisor of 255 levels (all 4 levels at 2 bits, all 16 at 4 bits),
  the weights are int8 containers of the b-bit levels: 31.079 dB (-0.015).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from quantsr.models.registry import descriptor_of
from quantsr.quant.layers import QConv2d, QLinear, is_quantized_attention
from quantsr.quant.quantizers import ActQuantizer

__all__ = ["ChannelSplitConv", "FixedQuantConv2d", "FixedQuantLinear", "LayerQParams", "SegmentedFixedQuantConv2d",
           "split_output_convs", "to_deploy_model"]


@dataclass(frozen=True)
class LayerQParams:
    """The learned quantization of one layer: activation step/range, weight step and integer level range."""

    act_scale: float
    act_qmin: int
    act_qmax: int
    # the scale of the exported integer weights (conv: act_scale * learned weight step); one per output channel
    # for per-channel weight steps
    weight_scale: float | tuple[float, ...]
    weight_qmin: int
    weight_qmax: int
    w_bits: int
    a_bits: int


def _act_grid(aq: ActQuantizer, segment: int = 0) -> tuple[float, int, int]:
    """(step a, Qn, Qp) of one step of a trained activation quantizer (``segment``: which, for per-branch steps)."""
    if not aq.is_initialized:
        raise ValueError("the model has an uninitialised activation quantizer: train or calibrate it first")
    qn, qp = aq.qrange()
    a = float(aq.step.detach().flatten()[segment])
    # LSQ steps are free parameters and can cross zero in training. a * round(clamp(x / a, qn, qp)) with a < 0
    # equals |a| * round(clamp(x / |a|, -qp, -qn)) (ties aside): backends need positive scales, so flip the sign
    # into the integer range.
    if a < 0:
        a, qn, qp = -a, -qp, -qn
    return a, qn, qp


def _weight_grid(q: QConv2d | QLinear) -> tuple[torch.Tensor, float | torch.Tensor]:
    """(int levels, positive weight step) of a trained layer; a per-channel step is a tensor ``(C, 1, ...)``.
    ``step * levels = |step| * (-levels)``: a negative step's sign goes into the levels."""
    levels, step = q.integer_weight()
    if step.numel() > 1:  # per-channel steps: flip each negative channel on its own
        sign = torch.where(step < 0, -1.0, 1.0)
        return (levels * sign).to(levels.dtype), step * sign
    return (-levels, -float(step)) if float(step) < 0 else (levels, float(step))


def _learned(q: QConv2d | QLinear) -> tuple[torch.Tensor, float | torch.Tensor, float, int, int, torch.Tensor]:
    """(int levels, weight step, activation step a, Qn, Qp, tau) of a trained layer with one activation step."""
    aq: ActQuantizer = q.act_quantizer
    if aq.segments is not None:
        raise ValueError("a layer with per-branch activation steps goes through SegmentedFixedQuantConv2d")
    a, qn, qp = _act_grid(aq)
    levels, step = _weight_grid(q)
    channels = q.weight.shape[1] * (q.groups if isinstance(q, nn.Conv2d) else 1)
    return levels, step, a, qn, qp, _input_shift(aq, channels)


def _input_shift(aq: ActQuantizer, channels: int) -> torch.Tensor:
    """The quantizer's per-channel shift tau (zeros when it has none)."""
    return torch.zeros(channels) if aq.tau is None else aq.tau.detach().float().clone()


def _qparams(q: QConv2d | QLinear, levels: torch.Tensor, weight_scale: float | torch.Tensor, a: float, qn: int,
             qp: int) -> LayerQParams:
    lo, hi = q.weight_quantizer.level_range
    per_channel = isinstance(weight_scale, torch.Tensor)
    if int(levels.min()) < lo or int(levels.max()) > hi:  # sign-flipped levels (negative step)
        # per channel, only some channels may be flipped: the range must hold both
        lo, hi = (min(lo, -hi), max(hi, -lo)) if per_channel else (-hi, -lo)
    if per_channel:
        weight_scale = tuple(float(v) for v in weight_scale.flatten())
    return LayerQParams(a, qn, qp, weight_scale, int(lo), int(hi), q.w_bits, q.a_bits)


class FixedQuantConv2d(nn.Conv2d):
    """A trained QConv2d as plain float ops, in one of two forms (``activations``):

    * ``"static"``: ``clamp(x + tau, Qn a, Qp a)`` then the conv with weight ``step * levels``; the PT2E quantizer
      gives ``x + tau`` a fixed int8 output scale ``a`` (that quantize is the rounding) and the clamp shares it.
    * ``"dynamic"``: ``prescale`` (depthwise 1x1: x / a + tau / a + 1/2), clamp, floor (the integer level), then
      the conv with weight ``a * step * levels``; the conv is dynamically quantized int8.
    """

    activations: str = "static"

    @classmethod
    def from_qat(cls, q: QConv2d, activations: str = "static") -> tuple[FixedQuantConv2d, LayerQParams]:
        levels, step, a, qn, qp, tau = _learned(q)
        return cls.from_grid(q, levels, step, a, qn, qp, tau, q.bias, activations)

    @classmethod
    def from_grid(cls, q: QConv2d, levels: torch.Tensor, step: float | torch.Tensor, a: float, qn: int, qp: int,
                  tau: torch.Tensor, bias: torch.Tensor | None,
                  activations: str) -> tuple[FixedQuantConv2d, LayerQParams]:
        """The conv of ``q``'s geometry on ``levels.shape[1]`` input channels (all of them, or one branch)."""
        if activations not in ("static", "dynamic"):
            raise ValueError(f"activations must be 'static' or 'dynamic', got {activations!r}")
        in_channels = levels.shape[1] * q.groups
        new = cls(in_channels, q.out_channels, q.kernel_size, stride=q.stride, padding=q.padding,
                  dilation=q.dilation, groups=q.groups, bias=bias is not None, padding_mode=q.padding_mode)
        new.activations = activations
        weight_scale = step if activations == "static" else step * a
        with torch.no_grad():
            new.weight.copy_(levels.float() * weight_scale)
            if bias is not None:
                new.bias.copy_(bias)
        if activations == "static":
            new.register_buffer("tau", tau.reshape(-1, 1, 1))
            new.act_lo, new.act_hi = qn * a, qp * a
        else:
            new.prescale = nn.Conv2d(in_channels, in_channels, 1, groups=in_channels)
            with torch.no_grad():
                new.prescale.weight.fill_(1.0 / a)
                new.prescale.bias.copy_(tau / a + 0.5)
            new.level_lo, new.level_hi = qn + 0.5, qp + 0.5
        return new, _qparams(q, levels, weight_scale, a, qn, qp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(_learned_input(self, x), self.weight, self.bias)


def _learned_input(m: FixedQuantConv2d | ChannelSplitConv, x: torch.Tensor) -> torch.Tensor:
    """A learned conv's input on its grid (static: in units of x, rounded by the int8 quantize of scale a;
    dynamic: the integer level k)."""
    if m.activations == "static":
        return torch.clamp(x + m.tau, m.act_lo, m.act_hi)
    return torch.floor(torch.clamp(m.prescale(x), m.level_lo, m.level_hi))


class SegmentedFixedQuantConv2d(nn.Module):
    """A trained QConv2d whose input (a channel concat) has one activation step per branch
    (:mod:`quantsr.quant.concat`), as one :class:`FixedQuantConv2d` per branch, summed: ``conv(cat(parts), W)
    = sum_i conv(part_i, W[:, branch i])``, the bias in the first. Each branch is cut out of the input with
    ``narrow``; :func:`~quantsr.export.graph_passes.fold_slices_of_cat` then wires each part conv straight to
    its branch, so the int8 graph has no concat (whose inputs XNNPACK makes share one scale) and each branch
    keeps its learned step. The int8 adds of the partial sums round once more than the fake-quant model does."""

    @classmethod
    def from_qat(cls, q: QConv2d, activations: str = "static") -> tuple[SegmentedFixedQuantConv2d,
                                                                         list[LayerQParams]]:
        aq: ActQuantizer = q.act_quantizer
        if q.groups != 1:
            raise NotImplementedError("per-branch activation steps on a grouped conv are not exportable")
        levels, step = _weight_grid(q)
        tau = _input_shift(aq, q.in_channels)
        new = cls()
        new.parts = nn.ModuleList()
        qparams, start = [], 0
        for i, size in enumerate(aq.segments):
            a, qn, qp = _act_grid(aq, i)
            part, part_qp = FixedQuantConv2d.from_grid(
                q, levels[:, start:start + size], step, a, qn, qp, tau[start:start + size],
                q.bias if i == 0 else None, activations)
            new.parts.append(part)
            qparams.append(part_qp)
            start += size
        return new, qparams

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, start = None, 0
        for part in self.parts:  # each branch's channels are its part's inputs
            y = part(x.narrow(1, start, part.in_channels))
            out = y if out is None else out + y
            start += part.in_channels
        return out


class FixedQuantLinear(nn.Linear):
    """A trained QLinear as plain float ops: ``a * floor(clamp(x / a + tau / a + 1/2, ...))`` then the linear
    with weight ``step * levels``."""

    @classmethod
    def from_qat(cls, q: QLinear) -> tuple[FixedQuantLinear, LayerQParams]:
        levels, step, a, qn, qp, tau = _learned(q)
        new = cls(q.in_features, q.out_features, bias=q.bias is not None)
        new.register_buffer("offset", tau / a + 0.5)
        new.act_scale, new.inv_act_scale = a, 1.0 / a
        new.level_lo, new.level_hi = qn + 0.5, qp + 0.5
        with torch.no_grad():
            new.weight.copy_(levels.float() * step)
            if q.bias is not None:
                new.bias.copy_(q.bias)
        return new, _qparams(q, levels, step, a, qn, qp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.clamp(x * self.inv_act_scale + self.offset, self.level_lo, self.level_hi)
        return F.linear(torch.floor(u) * self.act_scale, self.weight, self.bias)


class ChannelSplitConv(nn.Module):
    """A conv computed as one conv per group of output channels, returning the groups as a tuple: the values of
    ``conv(x)[:, a:b]`` without the slice ops. XNNPACK delegates a slice only when every dimension is static, so
    with dynamic H and W each slice of a conv output (IMDN's distillation split) leaves the delegate: a
    subgraph boundary, two layout transposes and a portable copy (IMDN x4: 1108 -> 891 ms at 256x256 without).
    A :class:`FixedQuantConv2d` keeps one shared input stage (its learned activation quantizer) for all groups."""

    def __init__(self, conv: nn.Conv2d, sizes: Sequence[int]) -> None:
        super().__init__()
        if sum(sizes) != conv.out_channels:
            raise ValueError(f"split sizes {list(sizes)} do not add up to the conv's {conv.out_channels} outputs")
        self.quantized = isinstance(conv, FixedQuantConv2d)
        if self.quantized:
            self.activations = conv.activations
            if conv.activations == "static":
                self.register_buffer("tau", conv.tau)
                self.act_lo, self.act_hi = conv.act_lo, conv.act_hi
            else:
                self.prescale = conv.prescale
                self.level_lo, self.level_hi = conv.level_lo, conv.level_hi
        self.parts = nn.ModuleList()
        start = 0
        for size in sizes:
            part = nn.Conv2d(conv.in_channels, size, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                             dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                             padding_mode=conv.padding_mode)
            with torch.no_grad():
                part.weight.copy_(conv.weight[start:start + size])
                if conv.bias is not None:
                    part.bias.copy_(conv.bias[start:start + size])
            self.parts.append(part)
            start += size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.quantized:
            x = _learned_input(self, x)
        return tuple(part(x) for part in self.parts)


def split_output_convs(model: nn.Module, qparams: dict[str, LayerQParams] | None = None) -> nn.Module:
    """Replace, in place, every conv the model's descriptor lists in its channel splits (conv fqn -> output group
    sizes, :attr:`~quantsr.models.descriptor.ModelDescriptor.channel_splits`) by a :class:`ChannelSplitConv`; the
    module that owns the conv must accept the tuple it then returns. ``qparams`` (from :func:`to_deploy_model`)
    are re-keyed to the parts' names, which is what the PT2E quantizer looks up."""
    descriptor = descriptor_of(model)
    splits = descriptor.splits(model) if descriptor is not None else {}
    for full, sizes in splits.items():
        parent_name, _, child = full.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        conv = parent.get_submodule(child)
        if isinstance(conv, ChannelSplitConv):
            continue
        if not isinstance(conv, nn.Conv2d):
            raise NotImplementedError(f"{full}: a conv with per-branch input steps cannot also split its outputs")
        setattr(parent, child, ChannelSplitConv(conv, sizes))
        if qparams is not None and full in qparams:
            qp = qparams.pop(full)
            start = 0
            for i, size in enumerate(sizes):
                part_scale = qp.weight_scale
                if isinstance(part_scale, tuple):  # per-channel scales: each part keeps its channels'
                    part_scale = part_scale[start:start + size]
                qparams[f"{full}.parts.{i}"] = replace(qp, weight_scale=part_scale)
                start += size
    return model


def to_deploy_model(model: nn.Module, activations: str = "static") -> tuple[nn.Module, dict[str, LayerQParams]]:
    """A float copy of ``model`` with every quantized layer replaced by its fixed-quant form (``activations``:
    ``"static"`` or ``"dynamic"``, see :class:`FixedQuantConv2d`), and the learned qparams keyed by layer name
    (the names survive ``torch.export`` as the weights' attribute paths)."""
    for name, m in model.named_modules():
        if is_quantized_attention(m):
            raise NotImplementedError(
                f"{name}: quantized window attention (SwinIR) is not exportable with fixed qparams yet; "
                "export the conv-net checkpoints, or quantize SwinIR with quantize_attention=False")
    deploy = copy.deepcopy(model).cpu().eval()
    qparams: dict[str, LayerQParams] = {}
    for name, module in list(deploy.named_modules()):
        if isinstance(module, QConv2d) and module.act_quantizer.segments is not None:
            new, part_qparams = SegmentedFixedQuantConv2d.from_qat(module, activations)
            layer_qparams = {f"{name}.parts.{i}": qp for i, qp in enumerate(part_qparams)}
        elif isinstance(module, QConv2d):
            new, qp = FixedQuantConv2d.from_qat(module, activations)
            layer_qparams = {name: qp}
        elif isinstance(module, QLinear):
            new, qp = FixedQuantLinear.from_qat(module)
            layer_qparams = {name: qp}
        else:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = deploy.get_submodule(parent_name) if parent_name else deploy
        setattr(parent, child, new)
        qparams.update(layer_qparams)
    if not qparams:
        raise ValueError("the model has no quantized layers: export it with --quant fp32 or --quant int8")
    return deploy.eval(), qparams
