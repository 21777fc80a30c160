"""Which activation channels of a network can be rescaled exactly, and which must share one factor.

Dividing output row ``o`` of a conv (weight and bias) by ``t`` divides that channel of its output by ``t``; the
factor travels through every op that commutes with a positive per-channel scale (ReLU / PReLU / LeakyReLU, max and
average pooling, bilinear or nearest resizing, a spatial mean, channel slices and concatenations, a product with a
gate or a constant) and must be the same on both inputs of an add. A conv that reads the channel undoes it by
multiplying its input column by ``t``. So the channels fall into classes, each one (tensor, channel) set joined by
such ops, that take one factor together: the residual stream of RLFN or IMDN is one class per channel, from
``conv_first`` through every block's residual add to the upsampler's conv. A class is rescalable when every member
is produced by a conv row (a writer) or by such an op, and read only by convs or such ops: a class that reaches
the network's input or output, a sigmoid, a pixel shuffle or any other op is left alone, and so is one that an op
joins to something untracked (a buffer in a concat, a mean down to a vector). A conv call is a writer only when
it runs its module's own weight, bias and groups (a weight tied across modules, a functional call with another
bias: its rows are not the call's alone); a weight used by both a conv and a transposed conv pins both sides.

Powers are tracked as exponents (weighted union-find on ``log t``): IMDN's contrast statistic
``sqrt(mean((x - mean(x))^2))`` carries the factor of ``x`` again, so its channel attention keeps its function.
The variance's clamp at 1e-12 (a guard against flat patches) is the one approximation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx

__all__ = ["ScaleClass", "WeightedUnionFind", "conv_layer_name", "op_name", "scale_classes"]

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


class WeightedUnionFind:
    """Weighted union-find over (node, channel): ``log t[e] = exp[e] * log t[parent[e]]``."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.exp: list[float] = []
        self.pinned: list[bool] = []

    def add(self, channels: int) -> int:
        base = len(self.parent)
        for c in range(channels):
            self.parent.append(base + c)
            self.exp.append(1.0)
            self.pinned.append(False)
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
    uf = WeightedUnionFind()
    base: dict[fx.Node, int] = {}
    for node in graph.nodes:
        c = _channels(node)
        if node.op in ("call_function", "placeholder") and c is not None:
            base[node] = uf.add(c)
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

    def tie_or_pin(node, inputs, ties) -> None:
        """Join each (a, b, ratio) pair; if a rule does not apply (``ties`` None) or a pair cannot be joined
        (a width differs, an operand is untracked), pin the node and all its inputs instead."""
        if ties is None or not all(same(a, b, ratio) for a, b, ratio in ties):
            for a in [node, *inputs]:
                pin_all(a)

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
            conv_calls.setdefault(layer, []).append(node)
            module, x = modules.get(layer), args[0]
            is_writer, is_reader = _conv_roles(node, op, layer, module)
            if is_writer and node in base:
                for c in range(width[node]):
                    writers[base[node] + c] = (layer, c)
            else:
                pin_all(node)
            if is_reader and x in base:
                readers.extend((base[x] + c, layer, c) for c in range(width[x]))
            else:
                pin_all(x)
            continue
        if op == "cat" and node in base and _dim(args[1] if len(args) > 1 else 0, node) == 1:
            parts = list(args[0])
            if not all(p in base for p in parts) or sum(width[p] for p in parts) != width[node]:
                tie_or_pin(node, inputs, None)
                continue
            offset = 0
            for part in parts:
                for c in range(width[part]):
                    uf.union(base[node] + offset + c, base[part] + c)
                offset += width[part]
        elif op == "slice" and node in base and args[0] in base and _dim(args[1], node) == 1:
            full = width[args[0]]
            start = args[2] if len(args) > 2 and args[2] is not None else 0
            start = max(start + full, 0) if start < 0 else min(start, full)
            step = args[4] if len(args) > 4 else 1
            if start + (width[node] - 1) * step >= full:
                tie_or_pin(node, inputs, None)
                continue
            for c in range(width[node]):
                uf.union(base[node] + c, base[args[0]] + start + c * step)
        elif op == "mul" and len(inputs) == 2 and any(op_name(g) in _GATES for g in inputs):
            data, gate = (args[0], args[1]) if op_name(args[1]) in _GATES else (args[1], args[0])
            ok = op_name(gate) in _GATES and op_name(data) not in _GATES
            tie_or_pin(node, inputs, [(node, data, 1.0)] if ok else None)
            pin_all(gate)
        else:
            tie_or_pin(node, inputs, _ties(node, op, base))
    # a weight-shared conv: every call divides row o (and scales column c) by the same factor
    for calls in conv_calls.values():
        if len({op_name(c) for c in calls}) != 1:  # one weight in a conv and a transposed conv: rows are columns
            for c in calls:
                pin_all(c)
                pin_all(c.args[0])
            continue
        for a, b in zip(calls, calls[1:]):
            tie_or_pin(a, [b], [(a, b, 1.0)])
            tie_or_pin(a.args[0], [b.args[0]], [(a.args[0], b.args[0], 1.0)])
    return _collect(uf, base, width, writers, readers)


def _conv_roles(node: fx.Node, op: str, layer: str, module) -> tuple[bool, bool]:
    """(may its output rows be divided, may its input columns be multiplied) for a conv call of ``layer``: only
    if the module is the kind the call runs with the call's groups, and (rows) the call adds the module's own
    bias, so that the module's parameters are exactly the call's."""
    kind = torch.nn.Conv2d if op == "conv2d" else torch.nn.ConvTranspose2d
    groups = node.args[6] if len(node.args) > 6 else node.kwargs.get("groups", 1)
    if not isinstance(module, kind) or groups != module.groups:
        return False, False
    bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
    own_bias = (bias is None and module.bias is None) or (
        isinstance(bias, fx.Node) and bias.op == "get_attr" and bias.target == f"{layer}.bias")
    # a transposed conv's output rows are spread over its weight's second axis: it is never a writer
    return op == "conv2d" and own_bias, op == "conv2d" or module.groups == 1


def _ties(node: fx.Node, op: str, base: dict) -> list[tuple] | None:
    """The (a, b, ratio) pairs an op joins (``log t[a] = ratio * log t[b]`` channel by channel), or None if it
    does not carry a per-channel factor."""
    args, kwargs = node.args, node.kwargs
    if op in _EQUIVARIANT:
        return [(args[0], node, 1.0)]
    if op == "clamp_min" and isinstance(args[1], (int, float)) and 0 <= args[1] <= _MAX_CLAMP:
        return [(args[0], node, 1.0)]
    if op in ("add", "sub") and len(args) == 2 and all(a in base for a in args) and kwargs.get("alpha", 1) == 1:
        return [(args[0], args[1], 1.0), (node, args[0], 1.0)]
    if op == "mean" and len(args) > 1 and args[1] and 1 not in [_dim(d, args[0]) for d in args[1]]:
        return [(args[0], node, 1.0)]
    if op == "pow" and isinstance(args[1], (int, float)) and args[1] > 0:
        return [(node, args[0], float(args[1]))]
    if op == "sqrt":
        return [(node, args[0], 0.5)]
    if op == "slice" and _dim(args[1], node) != 1:  # a crop in batch or space
        return [(args[0], node, 1.0)]
    if op in ("mul", "div") and "rounding_mode" not in kwargs and _scaled_by_constant(node, base):
        return [(node, args[0] if args[0] in base else args[1], 1.0)]
    return None


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


def _collect(uf: WeightedUnionFind, base, width, writers, readers) -> list[ScaleClass]:
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
