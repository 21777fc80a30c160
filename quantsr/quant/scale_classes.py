"""Which activation channels of a network can be rescaled exactly, and which must share one factor.

Dividing output row ``o`` of a conv (weight and bias) by ``t`` divides that channel of its output by ``t``; the
factor travels through every op that commutes with a positive per-channel scale (ReLU / PReLU / LeakyReLU, max and
average pooling, bilinear or nearest resizing, a spatial mean, channel slices and concatenations, a product with a
gate or a constant) and must be the same on both inputs of an add. A conv that reads the channel undoes it by
multiplying its input column by ``t``. So the channels fall into classes, each one (tensor, channel) set joined by
such ops, that take one factor together: the residual stream of RLFN or IMDN is one class per channel, from
``conv_first`` through every block's residual add to the upsampler's conv. A class is rescalable when every member
is produced by a conv row (a writer) or by such an op, and read only by convs or such ops: a class that reaches
the network's input or output, a sigmoid, a pixel shuffle or any other op is left alone.

Powers are tracked as exponents (weighted union-find on ``log t``): IMDN's contrast statistic
``sqrt(mean((x - mean(x))^2))`` carries the factor of ``x`` again, so its channel attention keeps its function.
The variance's clamp at 1e-12 (a guard against flat patches) is the one approximation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx

__all__ = ["ScaleClass", "conv_layer_name", "op_name", "scale_classes"]

# out = f(in) channel by channel, f(x / t) = f(x) / t for t > 0
_EQUIVARIANT = {"relu", "relu_", "leaky_relu", "leaky_relu_", "prelu", "_prelu_kernel", "max_pool2d",
                "avg_pool2d", "adaptive_avg_pool2d", "upsample_bilinear2d", "upsample_nearest2d", "clone",
                "dropout", "contiguous", "alias"}
_GATES = {"sigmoid", "hardsigmoid", "tanh", "softmax", "_softmax"}
_FUSED_INTO_PRODUCER = {"relu", "relu_"}  # XNNPACK runs conv/add + ReLU as one op: the producer's output is not int8
_MAX_CLAMP = 1e-6  # clamp_min(x, eps) is taken as exact for eps <= this (a guard, not a bound)


def op_name(node: fx.Node) -> str:
    """``aten.conv2d.default`` -> ``conv2d``; "" for anything but a call_function."""
    if node.op != "call_function":
        return ""
    parts = str(node.target).split(".")
    return parts[-2] if len(parts) >= 3 else parts[-1]


def conv_layer_name(node: fx.Node) -> str | None:
    """The module name of a conv node of an exported graph (its weight's attribute path), else None."""
    if op_name(node) not in ("conv2d", "conv_transpose2d"):
        return None
    weight = node.args[1] if len(node.args) > 1 else None
    if isinstance(weight, fx.Node) and weight.op == "get_attr" and str(weight.target).endswith(".weight"):
        return str(weight.target)[: -len(".weight")]
    return None


@dataclass(frozen=True)
class ScaleClass:
    """Channels that take one factor ``t``: conv rows divided by ``t`` (``writers``: (layer, row)), conv input
    columns multiplied by ``t ** k`` (``readers``: (layer, column, k)), and the int8 tensors whose channel ranges
    pick ``t`` (``members``: (node name, channel), each divided by ``t``)."""

    writers: tuple[tuple[str, int], ...]
    readers: tuple[tuple[str, int, float], ...]
    members: tuple[tuple[str, int], ...]
    nodes: frozenset[str]  # every graph node holding one of its channels (classes sharing a node are compared)


class _Classes:
    """Weighted union-find over (node, channel): ``log t[e] = exp[e] * log t[parent[e]]``."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.exp: list[float] = []
        self.pinned: list[bool] = []
        self.key: list[tuple[str, int]] = []

    def add(self, node: str, channels: int) -> int:
        base = len(self.parent)
        for c in range(channels):
            self.parent.append(base + c)
            self.exp.append(1.0)
            self.pinned.append(False)
            self.key.append((node, c))
        return base

    def find(self, e: int) -> tuple[int, float]:
        k = 1.0
        path = []
        while self.parent[e] != e:
            path.append(e)
            k *= self.exp[e]
            e = self.parent[e]
        root, acc = e, 1.0
        for p in reversed(path):  # compress: each point straight to the root
            acc *= self.exp[p]
            self.parent[p], self.exp[p] = root, acc
        return root, k

    def union(self, a: int, b: int, ratio: float = 1.0) -> None:
        """Require ``log t[a] = ratio * log t[b]``; a contradiction pins the class."""
        ra, ka = self.find(a)
        rb, kb = self.find(b)
        if ra == rb:
            if abs(ka - ratio * kb) > 1e-9:
                self.pinned[ra] = True
            return
        self.parent[ra], self.exp[ra] = rb, ratio * kb / ka
        self.pinned[rb] = self.pinned[rb] or self.pinned[ra]

    def pin(self, e: int) -> None:
        self.pinned[self.find(e)[0]] = True


def _channels(node) -> int | None:
    val = node.meta.get("val") if isinstance(node, fx.Node) else None
    return int(val.shape[1]) if isinstance(val, torch.Tensor) and val.dim() >= 2 else None


def scale_classes(graph: fx.Graph, modules: dict[str, torch.nn.Module]) -> list[ScaleClass]:
    """The rescalable classes of an exported graph (``torch.export.export(model, ...).module().graph``);
    ``modules``: the model's ``named_modules()``, to tell convs that may be writers (plain ``nn.Conv2d``)."""
    uf = _Classes()
    base: dict[fx.Node, int] = {}
    for node in graph.nodes:
        c = _channels(node)
        if node.op in ("call_function", "placeholder") and c is not None:
            base[node] = uf.add(node.name, c)
    width = {n: _channels(n) for n in base}

    def pin_all(node) -> None:
        if node in base:
            for c in range(width[node]):
                uf.pin(base[node] + c)

    def same(a, b, ratio: float = 1.0) -> bool:
        if a in base and b in base and width[a] == width[b]:
            for c in range(width[a]):
                uf.union(base[a] + c, base[b] + c, ratio)
            return True
        return False

    writers: dict[int, tuple[str, int]] = {}
    readers: list[tuple[int, str, int]] = []
    conv_calls: dict[str, list[fx.Node]] = {}
    for node in graph.nodes:
        op = op_name(node)
        args = node.args
        inputs = [a for a in node.all_input_nodes if a in base]
        if node.op == "placeholder" or node.op == "output":
            for a in ([node] if node.op == "placeholder" else inputs):
                pin_all(a)
            continue
        if node.op != "call_function":
            continue
        layer = conv_layer_name(node)
        if layer is not None:
            x = args[0]
            conv_calls.setdefault(layer, []).append(node)
            if op == "conv2d" and isinstance(modules.get(layer), torch.nn.Conv2d) and node in base:
                for c in range(width[node]):
                    writers[base[node] + c] = (layer, c)
            else:
                pin_all(node)
            grouped_transposed = op == "conv_transpose2d" and getattr(modules.get(layer), "groups", 1) != 1
            if x in base and not grouped_transposed:
                readers.extend((base[x] + c, layer, c) for c in range(width[x]))
            else:
                pin_all(x)
            continue
        if op in _EQUIVARIANT or (op == "clamp_min" and 0 <= float(args[1]) <= _MAX_CLAMP):
            if not same(args[0], node):
                for a in [node, *inputs]:
                    pin_all(a)
        elif (op in ("add", "sub") and len(inputs) == 2 and len(args) == 2 and node.kwargs.get("alpha", 1) == 1
              and same(args[0], args[1])):
            same(node, args[0])
        elif op == "mean" and len(args) > 1 and args[1] and 1 not in [_dim(d, args[0]) for d in args[1]]:
            same(args[0], node)
        elif op == "pow" and isinstance(args[1], (int, float)) and args[1] > 0:
            same(node, args[0], float(args[1]))
        elif op == "sqrt":
            same(node, args[0], 0.5)
        elif op in ("mul", "div") and _scaled_by_constant(node, base):
            same(node, args[0] if args[0] in base else args[1])
        elif op == "mul" and len(inputs) == 2 and any(op_name(g) in _GATES for g in inputs):
            data, gate = (args[0], args[1]) if op_name(args[1]) in _GATES else (args[1], args[0])
            if op_name(gate) in _GATES and op_name(data) not in _GATES and same(node, data):
                pin_all(gate)
            else:
                for a in [node, *inputs]:
                    pin_all(a)
        elif op == "cat" and _dim(args[1] if len(args) > 1 else 0, node) == 1 and node in base:
            offset = 0
            for part in args[0]:
                if part not in base:
                    pin_all(node)
                    break
                for c in range(width[part]):
                    uf.union(base[node] + offset + c, base[part] + c)
                offset += width[part]
        elif op == "slice" and node in base and args[0] in base and _dim(args[1], node) == 1:
            start = args[2] if len(args) > 2 and args[2] is not None else 0
            step = args[4] if len(args) > 4 else 1
            start = start + width[args[0]] if start < 0 else start
            for c in range(width[node]):
                uf.union(base[node] + c, base[args[0]] + start + c * step)
        elif op == "slice" and node in base and not same(node, args[0]):
            pin_all(node)
        else:
            for a in [node, *inputs]:
                pin_all(a)
    # a weight-shared conv: every call divides row o (and scales column c) by the same factor
    for calls in conv_calls.values():
        for a, b in zip(calls, calls[1:]):
            same(a, b)
            same(a.args[0], b.args[0])
    return _collect(graph, uf, base, width, writers, readers)


def _scaled_by_constant(node: fx.Node, base: dict) -> bool:
    """``x * c`` or ``x / c`` with a number or a buffer / parameter (per channel or scalar) for ``c``."""
    a, b = node.args[0], node.args[1]
    if op_name(node) == "div":
        return a in base and (isinstance(b, (int, float)) or (isinstance(b, fx.Node) and b.op == "get_attr"))
    for x, c in ((a, b), (b, a)):
        if x in base and (isinstance(c, (int, float)) or (isinstance(c, fx.Node) and c.op == "get_attr")):
            return True
    return False


def _dim(dim, node: fx.Node) -> int:
    val = node.meta.get("val")
    return dim % val.dim() if isinstance(val, torch.Tensor) else dim


def _collect(graph, uf: _Classes, base, width, writers, readers) -> list[ScaleClass]:
    fused = {n for n in base if len(n.users) == 1 and op_name(next(iter(n.users))) in _FUSED_INTO_PRODUCER}
    groups: dict[int, dict] = {}

    def group(e: int) -> tuple[dict, float] | None:
        root, k = uf.find(e)
        if uf.pinned[root]:
            return None
        return groups.setdefault(root, {"w": [], "r": [], "m": [], "n": set()}), k

    for node in base:
        for c in range(width[node]):
            found = group(base[node] + c)
            if found is not None:
                g, k = found
                g["n"].add(node.name)
                if node.op == "call_function" and node not in fused:
                    g["m"].append((node.name, c, k))
    for e, (layer, row) in writers.items():
        found = group(e)
        if found is not None:
            found[0]["w"].append((layer, row, found[1]))
    for e, layer, column in readers:
        found = group(e)
        if found is not None:
            found[0]["r"].append((layer, column, found[1]))
    classes = []
    for g in groups.values():
        exps = {k for _, _, k in g["w"]}
        if len(exps) != 1:  # no writer (nothing can realize the factor), or writers at different powers
            continue
        ref = exps.pop()
        classes.append(ScaleClass(
            writers=tuple(sorted({(layer, row) for layer, row, _ in g["w"]})),
            readers=tuple(sorted({(layer, col, k / ref) for layer, col, k in g["r"]})),
            members=tuple(sorted({(name, c) for name, c, k in g["m"] if abs(k - ref) < 1e-9})),
            nodes=frozenset(g["n"])))
    return sorted(classes, key=lambda cls: cls.writers)
