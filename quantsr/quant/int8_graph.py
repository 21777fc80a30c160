"""An integer-faithful, trainable model of a static int8 PT2E graph: what XNNPACK's int8 kernels compute, in
PyTorch, with straight-through gradients (issue 13; the arithmetic is in docs/integer_faithful.md).

:func:`integer_faithful` takes the graph ``convert_pt2e`` returns (quantize/dequantize nodes around fp32 ops) and
rewrites it: wherever XNNPACK runs ``dequantize -> op -> quantize`` as one int8 kernel (conv, transposed conv, add, mul,
mean, concatenate), the new graph computes that kernel's integer arithmetic on int8 codes instead of PyTorch's fp32
reference op; everything else (LeakyReLU and sigmoid, which XNNPACK turns into 256-entry tables of its fp32
kernels, the fp32 islands such as IMDN's contrast statistic, the pixel shuffle outside the delegate) stays the
graph's own fp32 op between a dequantize and a quantize, as in the reference graph.

Codes are float tensors holding integers, so the rewritten graph is differentiable: every rounding passes its
gradient straight through, clamps mask it. Weights and biases become parameters; the weights are fake-quantized
per channel at their fixed scales, within the level range their dequantize's ``LEVEL_RANGE_KEY`` meta states
(4-bit RBD: [-7, 8]; else the graph's own). Activation scales and zero points stay fixed, so fine-tuning the
rewritten graph trains exactly the int8 program the ``.pte`` runs, and :func:`write_back` puts the trained values
into the converted graph for lowering. With ``learn_scales`` the activation scales train too (zero points stay;
a QAT model's learned steps, marked ``LEARNED_SCALE_KEY``, stay as trained): the program trained is then the one
``write_back`` returns, whose fixed-scale rewrite the ``.pte`` runs."""
from __future__ import annotations

import copy
import hashlib
import json
import operator

import torch
from torch import fx, nn

from quantsr.quant.int8_sim import (
    activation_bound_code,
    add_codes,
    conv_codes,
    conv_transpose_codes,
    dequantize_codes,
    dequantize_weight,
    mean_codes,
    mul_codes,
    quantize_codes,
    sigmoid_xnnpack,
    weight_codes,
)

__all__ = ["LEARNED_SCALE_KEY", "LEVEL_RANGE_KEY", "MIN_SCALE_FACTOR", "SCALE_PREFIX", "get_constant",
           "integer_faithful", "program_signature", "set_constant", "trained_scale", "write_back"]

_F32 = torch.float32
QMIN, QMAX = -128, 127
SCALE_PREFIX = "act_scale_factor"  # the trainable activation scales of ``integer_faithful(..., learn_scales=True)``
LEVEL_RANGE_KEY = "quantsr_level_range"  # node meta of a weight's dequantize: its trained (min, max) code
LEARNED_SCALE_KEY = "quantsr_learned_scale"  # node meta of a quantize/dequantize at a QAT-learned step: kept fixed
# the weight axis of a layer's output channels, where its per-channel scales must lie
_CHANNEL_AXIS = {torch.ops.aten.conv2d.default: 0, torch.ops.aten.conv_transpose2d.input: 1}
_FUSED_ACTIVATIONS = (torch.ops.aten.relu.default, torch.ops.aten.relu_.default, torch.ops.aten.hardtanh.default,
                      torch.ops.aten.clamp.default)


def _qd():
    return torch.ops.quantized_decomposed


def _is(node, target) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and node.target == target


def get_constant(module: nn.Module, target: str) -> torch.Tensor:
    """The tensor at a dotted attribute path (a get_attr target) of ``module``."""
    return operator.attrgetter(target)(module)


def set_constant(module: nn.Module, target: str, value: torch.Tensor) -> None:
    """Replace the tensor at ``target``, keeping it a (frozen) parameter if it was one."""
    parent_name, _, leaf = target.rpartition(".")
    parent = operator.attrgetter(parent_name)(module) if parent_name else module
    if isinstance(getattr(parent, leaf), nn.Parameter):
        value = nn.Parameter(value, requires_grad=False)
    setattr(parent, leaf, value)


def _qparams(node: fx.Node) -> tuple[float, int]:
    return float(node.args[1]), int(node.args[2])


def _scale_groups(converted: fx.GraphModule) -> dict[tuple[float, int], list[str]]:
    """The activation qparams of ``converted``, each with the quantize/dequantize nodes that carry it. Nodes with
    equal (scale, zero point) share one: PT2E gives tensors that must agree (a concat's inputs and output) one
    shared observer. Two independent observers rarely land on the same float; where they do (two saturating
    clamps), their scales stay tied, which is still a valid program."""
    groups: dict[tuple[float, int], list[fx.Node]] = {}
    for node in converted.graph.nodes:
        if _is(node, _qd().quantize_per_tensor.default) or _is(node, _qd().dequantize_per_tensor.default):
            groups.setdefault(_qparams(node), []).append(node)
    # a QAT model's learned steps are its trained b-bit grids, whose range an fp32 clamp at fixed bounds holds:
    # they stay as trained; only the calibrated qparams (conv outputs, adds, the int8 rest) learn
    return {key: [n.name for n in nodes] for key, nodes in groups.items()
            if not any(n.meta.get(LEARNED_SCALE_KEY) for n in nodes)}


MIN_SCALE_FACTOR = 0.01  # a trained scale stays positive, at least this fraction of its calibrated value


def trained_scale(calibrated: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """A trained activation scale: its calibrated value times the trained factor (float32, as the graph runs it)."""
    return calibrated * factor.clamp_min(MIN_SCALE_FACTOR)


class _Rewriter:
    def __init__(self, converted: fx.GraphModule, learn_scales: bool = False) -> None:
        self.old = converted
        self.learned = _scale_groups(converted) if learn_scales else {}
        self.scale_nodes: dict[tuple[float, int], fx.Node] = {}
        self.scale_params: dict[str, list[str]] = {}  # parameter name -> the converted graph's nodes it sets
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.env: dict[fx.Node, fx.Node] = {}
        self.codes: dict[fx.Node, tuple[fx.Node, float, int]] = {}  # old dequantize -> (new codes, s, z)
        # old per-channel dequantize -> (codes, scales, channel axis)
        self.weights: dict[fx.Node, tuple[fx.Node, fx.Node, int]] = {}
        self.trainable: dict[str, list[str]] = {}  # new parameter name -> the old attribute targets it sets
        self.seen: dict[tuple, str] = {}  # (prefix, key, value bytes) -> the parameter made of it
        self.counter = 0

    def attr(self, value: torch.Tensor, prefix: str, old_target: str | None = None, train: bool = False,
             key: bytes = b"") -> fx.Node:
        """A constant of the new graph; ``train``: a parameter, one per distinct tensor. The export gives each use
        of a weight-shared layer (CARN-M's block) its own copy; those copies, equal bit for bit, train as one
        parameter, so the program keeps the model's sharing (and its size)."""
        if train:
            seen = (prefix, key, str(value.dtype), tuple(value.shape), value.detach().cpu().numpy().tobytes())
            if seen in self.seen:
                self.trainable[self.seen[seen]].append(old_target)
                return self.graph.get_attr(self.seen[seen])
        name = f"{prefix}{self.counter}"
        self.counter += 1
        if train:
            self.root.register_parameter(name, nn.Parameter(value.detach().clone().to(_F32)))
            self.trainable[name] = [old_target]
            self.seen[seen] = name
        else:
            self.root.register_buffer(name, value.detach().clone())
        return self.graph.get_attr(name)

    def old_value(self, node: fx.Node) -> torch.Tensor:
        return get_constant(self.old, str(node.target))

    def call(self, fn, *args) -> fx.Node:
        return self.graph.call_function(fn, tuple(args))

    def scale(self, node: fx.Node) -> tuple[float | fx.Node, int]:
        """A quantize/dequantize node's (scale, zero point): the scale a float, or, when it is trained, the
        graph node computing it (one per shared qparam)."""
        key = _qparams(node)
        if key not in self.learned:
            return key
        if key not in self.scale_nodes:
            name = f"{SCALE_PREFIX}{len(self.scale_params)}"
            # scale = calibrated scale x a trained factor (from 1: the calibrated program exactly; Adam's steps
            # on it are relative, whatever the tensor's range)
            self.root.register_parameter(name, nn.Parameter(torch.ones((), dtype=_F32)))
            self.scale_params[name] = self.learned[key]
            base = self.attr(torch.tensor(key[0], dtype=_F32), "calibrated_scale")  # a buffer
            self.scale_nodes[key] = self.call(trained_scale, base, self.graph.get_attr(name))
        return self.scale_nodes[key], key[1]

    def rewrite_weight(self, node: fx.Node) -> None:
        w_attr, s_attr, _z, axis, qmin, qmax = node.args[:6]
        if axis not in (0, 1):  # 0: a conv's output channels, 1: a transposed conv's
            raise NotImplementedError(f"{node.name}: per-channel weights on axis {axis}")
        codes = self.old_value(w_attr)
        scales = self.old_value(s_attr).to(_F32)
        lo, hi = node.meta.get(LEVEL_RANGE_KEY, (int(qmin), int(qmax)))
        weight = self.attr(dequantize_weight(codes.to(_F32), scales, axis), "weight", str(w_attr.target), train=True,
                           key=scales.numpy().tobytes() + bytes([axis, lo & 255, hi & 255]))
        scale_node = self.attr(scales, "weight_scales")
        on_axis_1 = [axis] if axis else []  # axis 0 stays implicit: saved programs' signatures predate axis 1
        code_node = self.call(weight_codes, weight, scale_node, lo, hi, *on_axis_1)
        self.weights[node] = (code_node, scale_node, axis)
        self.env[node] = self.call(dequantize_weight, code_node, scale_node, *on_axis_1)

    def trainable_bias(self, args: tuple) -> fx.Node | None:
        if len(args) > 2 and args[2] is not None:
            weight = self.weights[args[1]][0].args[0].target  # a bias ties only along with its weight
            return self.attr(self.old_value(args[2]), "bias", str(args[2].target), train=True, key=weight.encode())
        return None

    def fused_activation(self, producer: fx.Node, scale: float, zero: int) -> fx.Node | None:
        """A ReLU/hardtanh/clamp straight after a conv or add (no quantize between): XNNPACK fuses it into the
        kernel as the output's min/max codes, ``lrintf(clamp(v / s + z))`` (ReLU: the zero point)."""
        inner = producer.args[0]
        if not (isinstance(inner, fx.Node) and inner.op == "call_function" and len(inner.users) == 1):
            return None
        if producer.target in (torch.ops.aten.relu.default, torch.ops.aten.relu_.default):
            bounds = (0.0, None)
        elif producer.target == torch.ops.aten.hardtanh.default:  # defaults: min -1, max 1
            bounds = (tuple(producer.args[1:3]) + (-1.0, 1.0)[len(producer.args) - 1:])[:2]
        else:
            bounds = tuple(producer.args[1:3]) + (None,) * (3 - len(producer.args))
        codes = self.kernel(inner, scale, zero)
        if codes is None:
            return None
        if isinstance(scale, fx.Node):  # a trained scale moves the bounds' codes
            lo, hi = (QMIN if v is None else self.call(activation_bound_code, float(v), scale, zero)
                      for v in bounds[:2])
        else:
            lo, hi = (QMIN if v is None else int(activation_bound_code(float(v), scale, zero)) for v in bounds[:2])
        return self.call(torch.clamp, codes, lo, QMAX if bounds[1] is None else hi)

    def kernel(self, producer: fx.Node, scale: float, zero: int) -> fx.Node | None:
        """The integer kernel XNNPACK runs for ``quantize(producer)``, or None for the fp32 path."""
        args = producer.args
        if producer.op == "call_function" and producer.target in _FUSED_ACTIVATIONS:
            return self.fused_activation(producer, scale, zero)
        if (_is(producer, torch.ops.aten.conv2d.default) or _is(producer, torch.ops.aten.conv_transpose2d.input)) \
                and args[1] in self.weights and self.weights[args[1]][2] != _CHANNEL_AXIS[producer.target]:
            raise NotImplementedError(f"{producer.name}: per-channel weights on axis {self.weights[args[1]][2]}")
        if _is(producer, torch.ops.aten.conv2d.default) and args[0] in self.codes and args[1] in self.weights:
            x, sx, zx = self.codes[args[0]]
            w, ws, _ = self.weights[args[1]]
            rest = list(args[3:]) + [1, 0, 1, 1][len(args) - 3:]  # stride, padding, dilation, groups defaults
            return self.call(conv_codes, x, sx, zx, w, ws, self.trainable_bias(args), scale, zero, *rest)
        if _is(producer, torch.ops.aten.conv_transpose2d.input) and args[0] in self.codes and args[1] in self.weights:
            # stride, padding, output_padding, groups, dilation (defaults after the given ones)
            rest = list(args[3:]) + [1, 0, 0, 1, 1][len(args) - 3:]
            if rest[3] != 1:
                raise NotImplementedError(f"{producer.name}: a grouped transposed conv has no integer-faithful form")
            x, sx, zx = self.codes[args[0]]
            w, ws, _ = self.weights[args[1]]
            return self.call(conv_transpose_codes, x, sx, zx, w, ws, self.trainable_bias(args), scale, zero, *rest)
        if (_is(producer, torch.ops.aten.add.Tensor) or _is(producer, torch.ops.aten.mul.Tensor)) \
                and len(args) == 2 and all(a in self.codes for a in args) and not producer.kwargs:
            fn = add_codes if producer.target == torch.ops.aten.add.Tensor else mul_codes
            (a, sa, za), (b, sb, zb) = self.codes[args[0]], self.codes[args[1]]
            return self.call(fn, a, sa, za, b, sb, zb, scale, zero)
        if _is(producer, torch.ops.aten.mean.dim) and args[0] in self.codes and list(args[1]) in ([2, 3], [-2, -1]) \
                and len(args) > 2 and args[2]:
            x, sx, zx = self.codes[args[0]]
            return self.call(mean_codes, x, sx, zx, scale, zero)
        if _is(producer, torch.ops.aten.cat.default) and all(a in self.codes for a in args[0]) \
                and all(self.codes[a][1:] == (scale, zero) for a in args[0]):
            return self.call(torch.cat, [self.codes[a][0] for a in args[0]], *args[1:])
        return None

    def run(self) -> fx.GraphModule:
        qd = _qd()
        for node in self.old.graph.nodes:
            if node.op == "placeholder":
                self.env[node] = self.graph.placeholder(node.name)
            elif node.op == "get_attr":
                self.env[node] = self.attr(self.old_value(node), "constant")
            elif _is(node, qd.dequantize_per_channel.default):
                self.rewrite_weight(node)
            elif _is(node, qd.dequantize_per_tensor.default):
                scale, zero = self.scale(node)
                codes = self.env[node.args[0]]
                self.codes[node] = (codes, scale, zero)
                self.env[node] = self.call(dequantize_codes, codes, scale, zero)
            elif _is(node, qd.quantize_per_tensor.default):
                scale, zero = self.scale(node)
                producer = node.args[0]
                new = self.kernel(producer, scale, zero) if isinstance(producer, fx.Node) else None
                if new is None:
                    new = self.call(quantize_codes, self.env[producer], scale, zero, int(node.args[3]),
                                    int(node.args[4]))
                self.env[node] = new
            elif node.op == "call_function":
                if "quantized_decomposed" in str(node.target):
                    raise NotImplementedError(f"{node.name}: {node.target} has no integer-faithful form yet")
                if node.target == torch.ops.aten.sigmoid.default:  # XNNPACK's own fp32 kernel, as its table
                    self.env[node] = self.call(sigmoid_xnnpack, self.env[node.args[0]])
                    continue
                self.env[node] = self.graph.node_copy(node, lambda n: self.env[n])
            elif node.op == "call_module" and not node.users:
                continue  # torch.export's shape guards (``_guards_fn``): checks, no value
            elif node.op == "output":
                result = node.args[0]
                if isinstance(result, (tuple, list)) and len(result) == 1:  # torch.export's flat outputs
                    result = result[0]
                self.graph.output(fx.map_arg(result, lambda n: self.env[n]))
            else:
                raise NotImplementedError(f"{node.name}: {node.op} nodes are not supported")
        self.graph.eliminate_dead_code()
        module = fx.GraphModule(self.root, self.graph)
        # parameter name -> the attributes of the converted graph it sets (several where the export copied a
        # shared weight)
        module.trainable_targets = {k: list(v) for k, v in self.trainable.items()}
        module.trainable_scales = dict(self.scale_params)  # parameter name -> quantize/dequantize node names
        return module


def integer_faithful(converted: fx.GraphModule, learn_scales: bool = False) -> fx.GraphModule:
    """The integer-faithful, trainable form of a ``convert_pt2e`` graph (static int8, per-channel weights).
    ``learn_scales``: the activation scales train too (each shared qparam one factor ``act_scale_factor*`` on its
    calibrated scale; zero points fixed), with straight-through gradients as LSQ trains a step. A QAT model's
    learned steps (``LEARNED_SCALE_KEY``) stay: fp32 clamps whose bounds a new scale would not follow hold them
    to their b-bit levels."""
    return _Rewriter(converted, learn_scales).run()


def write_back(model: fx.GraphModule, converted: fx.GraphModule) -> fx.GraphModule:
    """A copy of ``converted`` holding ``model``'s trained weights (re-quantized at their fixed scales, in the
    bit range they were trained in), biases and activation scales (if it trained them), ready to export and
    lower."""
    out = copy.deepcopy(converted)
    scale_of = {}
    for node in model.graph.nodes:  # each trained scale: calibrated scale (a buffer) x factor (the parameter)
        if node.op == "call_function" and node.target is trained_scale:
            factor = getattr(model, node.args[1].target).detach()
            value = float(trained_scale(getattr(model, node.args[0].target), factor))
            scale_of.update(dict.fromkeys(model.trainable_scales[node.args[1].target], value))
    for node in out.graph.nodes:
        if node.name in scale_of:
            node.args = (node.args[0], scale_of[node.name], *node.args[2:])
    out.recompile()
    codes_of = {n.args[0].target: n.args for n in model.graph.nodes
                if n.op == "call_function" and n.target is weight_codes}
    for name, targets in model.trainable_targets.items():
        value = getattr(model, name).detach()
        if name in codes_of:
            _, scale_node, lo, hi, *axis = codes_of[name]
            value = weight_codes(value, getattr(model, scale_node.target), lo, hi, *axis)
        for target in targets:
            set_constant(out, target, value.to(get_constant(out, target).dtype))
    return out


def program_signature(program: fx.GraphModule) -> str:
    """A digest of the arithmetic of an integer-faithful program (its ops, scales, zero points, clamps): a saved
    state loads only into the program it was trained as. The weights' training ranges are not part of it (the
    loader checks the codes against them)."""
    rows = []
    for node in program.graph.nodes:
        if node.op == "call_function" and node.target is not weight_codes:
            rows.append([getattr(node.target, "__name__", str(node.target))]
                        + [a if isinstance(a, (int, float, bool)) else None for a in node.args])
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]
