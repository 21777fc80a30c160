"""Activation equalization for int8 PTQ: rescale activation channels so that one per-tensor int8 step fits all of
them (cross-layer equalization, Nagel et al. 2019, with SmoothQuant's migration strength), on every chain of ops
that carries a per-channel factor exactly: conv -> activation -> conv, and the residual streams, attention
branches and concatenations of the distillation nets (:mod:`quantsr.quant.scale_classes` finds them).

XNNPACK quantizes every activation with one step per tensor, so a channel whose values span 0.1 next to one that
spans 10 is left with a few codes (the probe of issue 14: per-tensor conv inputs cost FSRCNN x2 0.63 dB on Set5
where per-channel ranges would cost 0.22). Dividing a class of channels by ``t`` (its writer convs' rows and
biases) and multiplying the input columns of the convs that read it by ``t`` leaves the FP network's function
unchanged, and the channel ranges of every int8 tensor in the class become ``r / t``.

``t = r^alpha / w^(1 - alpha)`` (SmoothQuant's form, here moving range *into* the weights): ``r`` is the class's
largest channel range over its int8 tensors on the calibration images, ``w`` the readers' largest weight on its
input columns. ``alpha = 1`` makes the ranges equal (the per-channel bound, for a class of one tensor) and leaves
the whole spread to the readers' per-output-channel weight steps; ``alpha = 0.5`` splits it. A writer's
per-output-channel weight step scales with its row, so its rounding is unaffected. The factors are normalised to
geometric mean 1 over the classes that share a tensor, so weights keep their magnitude and stay above the weight
observer's step floor; a dead channel (range or weights under 1e-4 of its tensor's largest) keeps ``t = 1``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import fx, nn

from quantsr.quant.scale_classes import ScaleClass, WeightedUnionFind, scale_classes

__all__ = ["equalize_activations_", "node_channel_ranges"]

_MIN_RELATIVE = 1e-4


def node_channel_ranges(model: nn.Module, names: set[str],
                        batches: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-channel ``max(max, 0) - min(min, 0)`` over ``batches`` of the named nodes' outputs in the export of
    ``model`` (what an int8 range must cover). An export is specialised to its input's shape, so each shape of
    batch gets its own; their node names are the same."""
    ranges: dict[str, torch.Tensor] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in names and isinstance(out, torch.Tensor):
                y = out.detach().transpose(0, 1).flatten(1)
                r = y.amax(1).clamp_min(0) - y.amin(1).clamp_max(0)
                ranges[n.name] = torch.maximum(ranges[n.name], r) if n.name in ranges else r
            return out

    exported: dict[tuple[int, ...], fx.GraphModule] = {}
    with torch.no_grad():
        for batch in batches:
            shape = tuple(batch.shape)
            if shape not in exported:
                exported[shape] = torch.export.export(model, (batch,)).module()
            Recorder(exported[shape]).run(batch)
    missing = names - ranges.keys()
    if missing:
        raise RuntimeError(f"the export of the calibration batches has no node {sorted(missing)[0]!r}: "
                           "the model's graph depends on its input's shape")
    return ranges


def _column_max(conv: nn.Module) -> torch.Tensor:
    """The largest |weight| on each input channel of a conv (or transposed conv)."""
    w = conv.weight.detach().abs()
    if isinstance(conv, nn.ConvTranspose2d):
        return w.flatten(1).amax(1)
    groups = conv.groups
    return w.reshape(groups, w.shape[0] // groups, w.shape[1], -1).amax(dim=(1, 3)).reshape(-1)


def _scale_column_(conv: nn.Module, column: int, factor: float) -> None:
    w = conv.weight.data
    if isinstance(conv, nn.ConvTranspose2d):
        w[column].mul_(factor)
        return
    per_group_in, per_group_out = w.shape[1], w.shape[0] // conv.groups
    group = column // per_group_in
    w[group * per_group_out:(group + 1) * per_group_out, column % per_group_in].mul_(factor)


def _components(classes: Sequence[ScaleClass]) -> list[list[int]]:
    """Indices of classes grouped by the tensors they share (each group normalised on its own)."""
    owner: dict[str, int] = {}
    uf = WeightedUnionFind()
    uf.add(len(classes))
    for i, cls in enumerate(classes):
        for name in cls.nodes:
            if name in owner:
                uf.union(i, owner[name])
            else:
                owner[name] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(classes)):
        groups.setdefault(uf.find(i)[0], []).append(i)
    return list(groups.values())


def _factors(classes: Sequence[ScaleClass], ranges: dict[str, torch.Tensor], modules: dict[str, nn.Module],
             alpha: float) -> list[float]:
    columns = {layer: _column_max(modules[layer]) for cls in classes for layer, _, _ in cls.readers}
    r = torch.tensor([max((float(ranges[n][c]) for n, c in cls.members), default=0.0) for cls in classes],
                     dtype=torch.float64)
    w = torch.tensor([max((float(columns[layer][c]) for layer, c, k in cls.readers if k == 1), default=0.0)
                      for cls in classes], dtype=torch.float64)
    t = torch.ones(len(classes), dtype=torch.float64)
    for group in _components(classes):
        idx = torch.tensor(group)
        rg, wg = r[idx], w[idx]
        live = (rg > _MIN_RELATIVE * rg.max()) & (wg > _MIN_RELATIVE * wg.max())
        if not live.any():
            continue
        tg = rg[live] ** alpha / wg[live] ** (1 - alpha)
        t[idx[live]] = tg / tg.log().mean().exp()
    return t.tolist()


def equalize_activations_(model: nn.Module, batches: Sequence[torch.Tensor], alpha: float = 0.5,
                          example: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Rescale ``model`` in place (its FP function unchanged up to float rounding) so that each rescalable
    class's channel ranges become ``r / t`` (module docstring); returns each writer conv's per-row ``t`` (1 on
    rows left alone). ``batches``: calibration images, as for the PT2E calibration; ``example``: the input the
    graph is traced with (default: the first image)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    model.eval()
    example = batches[0][:1] if example is None else example
    graph_module = torch.export.export(model, (example,)).module()
    modules = dict(model.named_modules())
    classes = scale_classes(graph_module.graph, modules)
    ranges = node_channel_ranges(model, {n for cls in classes for n, _ in cls.members}, batches)
    factors = _factors(classes, ranges, modules, alpha)
    rows: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for cls, t in zip(classes, factors):
            if t == 1.0:
                continue
            for layer, row in cls.writers:
                conv = modules[layer]
                conv.weight.data[row].div_(t)
                if conv.bias is not None:
                    conv.bias.data[row].div_(t)
                rows.setdefault(layer, torch.ones(conv.weight.shape[0]))[row] = t
            for layer, column, k in cls.readers:
                _scale_column_(modules[layer], column, t ** k)
    return rows
