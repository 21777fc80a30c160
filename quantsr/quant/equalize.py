"""Activation equalization for int8 PTQ: rescale the channels between two convs so that one per-tensor int8 step
fits all of them (cross-layer equalization, Nagel et al. 2019, with SmoothQuant's migration strength).

XNNPACK quantizes every activation with one step per tensor, so a channel whose values span 0.1 next to one that
spans 10 is left with a few codes (the probe of issue 14: per-tensor conv inputs cost FSRCNN x2 0.63 dB on Set5
where per-channel ranges would cost 0.22). Where a conv's output reaches the next convs only through a positively
homogeneous activation (ReLU, PReLU, LeakyReLU: ``f(t x) = t f(x)`` for ``t > 0``), dividing output channel ``i``
of the producer (its weight row and bias) by ``t_i`` and multiplying input column ``i`` of every consumer by
``t_i`` leaves the FP network's function unchanged, and the activation's channel ranges become ``r_i / t_i``.

``t_i = r_i^alpha / w_i^(1 - alpha)`` (SmoothQuant's form, here moving range *into* the weights): ``r_i`` is the
channel's range on the calibration images, ``w_i`` the consumers' largest weight on that input column. ``alpha =
1`` makes every channel's range equal (the per-channel bound) and leaves the whole spread to the consumers'
per-output-channel weight steps; ``alpha = 0.5`` splits it. The producer's per-output-channel weight step scales
with its row, so its rounding is unaffected. The scales are normalised to geometric mean 1, so weights keep their
magnitude and stay above the weight observer's step floor.

Only exact rewrites are made: the producer's output must feed nothing but the activation, the activation nothing
but convs (as their input), and a weight-shared conv (CARN-M) is equalized only if every call of it sits in the
same pattern.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn

__all__ = ["EqualizationPair", "equalizable_pairs", "equalize_activations_"]

_ACTIVATIONS = {"relu": "relu", "relu_": "relu", "prelu": "prelu", "_prelu_kernel": "prelu",
                "leaky_relu": "leaky_relu", "leaky_relu_": "leaky_relu"}
_CONVS = ("conv2d", "conv_transpose2d")
_MIN_RELATIVE = 1e-4  # a channel (or weight column) below this fraction of the largest keeps t = 1: a dead channel


@dataclass(frozen=True)
class EqualizationPair:
    """A conv whose output channels can be rescaled: ``producer`` -> ``activation`` ("relu", "prelu",
    "leaky_relu") -> the convs ``consumers`` (module names), which take that activation as their input."""

    producer: str
    activation: str
    consumers: tuple[str, ...]


def _op(node: fx.Node) -> str:
    if node.op != "call_function":
        return ""
    return str(node.target).split(".")[-2] if str(node.target).count(".") >= 2 else str(node.target)


def _layer(node: fx.Node) -> str | None:
    """The module name of a conv node of an exported graph (its weight's attribute path), else None."""
    if _op(node) not in _CONVS:
        return None
    weight = node.args[1] if len(node.args) > 1 else None
    if isinstance(weight, fx.Node) and weight.op == "get_attr" and str(weight.target).endswith(".weight"):
        return str(weight.target)[: -len(".weight")]
    return None


def _site(conv: fx.Node) -> tuple[str, tuple[str, ...]] | None:
    """(activation, consumer layers) if ``conv``'s output reaches only convs through one homogeneous activation."""
    users = list(conv.users)
    if len(users) != 1 or _op(users[0]) not in _ACTIVATIONS:
        return None
    act = users[0]
    consumers = list(act.users)
    if not consumers or any(_layer(c) is None or c.args[0] is not act or act in c.args[1:] for c in consumers):
        return None
    return _ACTIVATIONS[_op(act)], tuple(sorted({_layer(c) for c in consumers}))


def equalizable_pairs(model: nn.Module, example: torch.Tensor) -> list[EqualizationPair]:
    """Every producer -> activation -> consumers pattern of ``model`` (from an export on ``example``) whose
    rescaling is exact, in forward order."""
    graph = torch.export.export(model, (example,)).module().graph
    modules = dict(model.named_modules())
    calls: dict[str, list[fx.Node]] = {}
    for node in graph.nodes:
        name = _layer(node)
        if name is not None:
            calls.setdefault(name, []).append(node)
    pairs: list[EqualizationPair] = []
    fed_by: dict[str, set[str]] = {}  # consumer -> the producers whose pattern feeds it
    for name, nodes in calls.items():
        sites = {_site(n) for n in nodes}
        if len(sites) != 1 or None in sites or not isinstance(modules.get(name), nn.Conv2d):
            continue
        act, consumers = sites.pop()
        if all(isinstance(modules.get(c), (nn.Conv2d, nn.ConvTranspose2d)) and c != name for c in consumers):
            pairs.append(EqualizationPair(name, act, consumers))
            for c in consumers:
                fed_by.setdefault(c, set()).add(name)
    # a consumer must take its input from this producer at every one of its calls, and from no other producer
    def fed_only_by(consumer: str, producer: str) -> bool:
        return fed_by[consumer] == {producer} and all(
            _op(n.args[0]) in _ACTIVATIONS and _layer(n.args[0].args[0]) == producer for n in calls[consumer])
    return [p for p in pairs if all(fed_only_by(c, p.producer) for c in p.consumers)]


def _channel_ranges(model: nn.Module, pairs: Sequence[EqualizationPair],
                    batches: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each producer's per-channel range on ``batches``: ``max - min(min, 0)`` of the tensor(s) int8 will hold
    (after a fused ReLU; before PReLU / LeakyReLU, whose input is quantized too)."""
    modules = dict(model.named_modules())
    ranges: dict[str, torch.Tensor] = {}

    def hook_for(pair: EqualizationPair):
        def hook(_module, _inputs, out):
            y = out.detach().transpose(0, 1).flatten(1)
            if pair.activation == "relu":
                y = y.clamp_min(0)
            r = y.amax(1) - y.amin(1).clamp_max(0)
            ranges[pair.producer] = torch.maximum(ranges[pair.producer], r) if pair.producer in ranges else r
        return hook

    handles = [modules[p.producer].register_forward_hook(hook_for(p)) for p in pairs]
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return ranges


def _column_max(conv: nn.Module) -> torch.Tensor:
    """The largest |weight| on each input channel of a conv (or transposed conv)."""
    w = conv.weight.detach().abs()
    if isinstance(conv, nn.ConvTranspose2d):
        return w.flatten(1).amax(1)
    groups = conv.groups
    per_group = w.reshape(groups, w.shape[0] // groups, w.shape[1], -1).amax(dim=(1, 3))
    return per_group.reshape(-1)


def _scale_inputs_(conv: nn.Module, t: torch.Tensor) -> None:
    w = conv.weight.data
    if isinstance(conv, nn.ConvTranspose2d):
        w.mul_(t.view(-1, 1, 1, 1))
        return
    groups = conv.groups
    view = w.view(groups, w.shape[0] // groups, w.shape[1], *w.shape[2:])
    view.mul_(t.view(groups, 1, w.shape[1], 1, 1))


def _keep_dead(values: torch.Tensor) -> torch.Tensor:
    """Mask of the entries too small to rescale from (a dead channel, an all-zero column)."""
    return values <= _MIN_RELATIVE * values.max().clamp_min(torch.finfo(values.dtype).tiny)


def equalize_activations_(model: nn.Module, batches: Sequence[torch.Tensor], alpha: float = 0.5,
                          example: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Rescale ``model`` in place (its FP function unchanged up to float rounding) so that each equalizable
    activation's channel ranges are ``r_i / t_i`` (module docstring); returns each producer's ``t``. ``batches``:
    calibration images, as for the PT2E calibration."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    model.eval()
    example = batches[0][:1] if example is None else example
    pairs = equalizable_pairs(model, example)
    ranges = _channel_ranges(model, pairs, batches)
    modules = dict(model.named_modules())
    scales: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for pair in pairs:
            r = ranges[pair.producer].double()
            w = torch.stack([_column_max(modules[c]).double() for c in pair.consumers]).amax(0)
            dead = _keep_dead(r) | _keep_dead(w)
            t = torch.where(dead, 1.0, r.clamp_min(1e-30) ** alpha / w.clamp_min(1e-30) ** (1 - alpha))
            live = ~dead
            if live.any():
                t[live] /= t[live].log().mean().exp()
            t = t.float()
            producer = modules[pair.producer]
            producer.weight.data.div_(t.view(-1, 1, 1, 1))
            if producer.bias is not None:
                producer.bias.data.div_(t)
            for consumer in pair.consumers:
                _scale_inputs_(modules[consumer], t)
            scales[pair.producer] = t
    return scales
