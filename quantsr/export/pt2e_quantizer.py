"""PT2E quantizers for the XNNPACK delegate.

* :func:`int8_quantizer`: plain observer-calibrated static int8 (per-channel weights): the PTQ comparison.
* :class:`LearnedQParamsQuantizer`: the layers of a QAT model keep their *trained* quantization. Their weights
  get a fixed per-channel int8 spec whose scales are all the learned weight step (the values are already on the
  b-bit grid, so the stored integers are the levels); their inputs, already rounded onto the learned b-bit grid
  by the ops :mod:`quantsr.export.deploy` writes into the graph, are quantized to int8 per run (XNNPACK
  qd8-f32-qc8w, fp32 output; see deploy.py for why not static int8). Every other layer is left fp32
  (``rest="fp32"``: numerically the eager model) or dynamically quantized int8 as well (``rest="int8"``).

Conv weights are declared over the full int8 range even at 4 bits: a spec of exactly ``[-8, 7]`` makes XNNPACK
try its 4-bit packing, which exists for linear layers only (docs/deploy.md, "Learned quantization in the graph").
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch.fx import GraphModule, Node

from quantsr.export.deploy import LayerQParams
from quantsr.export.graph_passes import CONV_OR_LINEAR, SOURCE_PARAM
from quantsr.quant.gptq import STOCK_MIN_STEP
from quantsr.quant.int8_sim import int8_zero_point

__all__ = ["IMAGE_GRID_KEY", "IMAGE_GRID_SCALE", "Int8PTQConfig", "LearnedQParamsQuantizer", "int8_quantizer",
           "node_layer_name", "pin_output_to_image_grid", "recommended_int8_config"]



ACT_OBSERVERS = ("histogram", "minmax")
WEIGHT_ROUNDINGS = ("nearest", "gptq", "gptq_program")


@dataclass(frozen=True)
class Int8PTQConfig:
    """How an FP model becomes a static int8 program (PT2E, XNNPACK): see :func:`int8_quantizer`. The defaults
    are stock ExecuTorch's."""

    act_observer: str = "histogram"
    float_modules: tuple[str, ...] = ()
    float_nodes: tuple[str, ...] = ()  # op names of the torch.export graph, e.g. "add_12"
    split_concat_convs: bool = False  # one conv (and scale) per branch of a concat-then-conv
    # "nearest" (stock); "gptq": conv weights rounded by quantsr.quant.gptq before prepare (FP inputs);
    # "gptq_program": re-rounded after convert against the program's quantized inputs (export.program_gptq)
    weight_rounding: str = "nearest"
    # the weight observers' eps: no per-channel step below it, so a channel whose largest weight is under
    # 127 * 2^-12 = 0.031 uses fewer than 255 codes (stock; SPAN's conv_first: 11 of 28 channels, ~23 codes)
    min_weight_step: float = STOCK_MIN_STEP
    # None: off; else the migration strength alpha of quantsr.quant.equalize (the channel ranges of every
    # exactly rescalable class of activations moved toward one per-tensor step before rounding and calibration)
    act_equalization: float | None = None
    # the output's quantize on the 8-bit image grid (pin_output_to_image_grid, through a final pixel shuffle or
    # img_range division) instead of a calibrated range
    output_image_grid: bool = False
    version: int = 6  # 6: output_image_grid; 5: act_equalization rescales every class of scale_classes

    def __post_init__(self) -> None:
        if self.act_observer not in ACT_OBSERVERS:
            raise ValueError(f"act_observer must be one of {ACT_OBSERVERS}, got {self.act_observer!r}")
        if self.weight_rounding not in WEIGHT_ROUNDINGS:
            raise ValueError(f"weight_rounding must be one of {WEIGHT_ROUNDINGS}, got {self.weight_rounding!r}")
        if self.act_equalization is not None and not 0.0 <= self.act_equalization <= 1.0:
            raise ValueError(f"act_equalization must be None or in [0, 1], got {self.act_equalization}")
        object.__setattr__(self, "float_modules", tuple(self.float_modules))
        object.__setattr__(self, "float_nodes", tuple(self.float_nodes))


# Departures from the stock settings, found with benchmarks/int8_sensitivity.py and benchmarks/int8_gptq.py
# (results in benchmarks/results/). Every architecture: GPTQ weight rounding (Set5 of the PT2E program +0.02 to
# +0.41 dB over round-to-nearest; CARN-M x4 -0.006). SPAN x4: the cat before conv_cat shares one scale across
# branches 100x apart: 25.51 dB on Set5 stock, 31.06 split (FP 31.74). IMDN x4: split changes nothing
# (31.978 vs 31.976), so it keeps the stock graph. Activation equalization (benchmarks/results/
# int8_equalize*.json, Set5 / Set14 of the PT2E program against GPTQ alone) where it gained >= 0.02 dB on both:
# FSRCNN at alpha = 1 (x2 +1.07 / +0.56, x4 +0.07 / +0.03), IMDN x2 at 0.5 (+0.04 / +0.03); IMDN x4, RFDN,
# CARN-M moved by at most +0.05 on one set and keep it off. Program GPTQ (benchmarks/results/int8_gptq_program
# .json) where it gained >= 0.02 on both: RLFN (+0.27 / +0.13; with equalization at 0.5 as well only +0.22 /
# +0.13, so RLFN keeps equalization off) and SPAN (+0.06 / +0.04).
_RECOMMENDED_INT8: dict[tuple[str, int | None], Int8PTQConfig] = {
    ("span", None): Int8PTQConfig(split_concat_convs=True, weight_rounding="gptq_program"),
    ("fsrcnn", None): Int8PTQConfig(weight_rounding="gptq", act_equalization=1.0),
    ("rlfn", None): Int8PTQConfig(weight_rounding="gptq_program"),
    ("imdn", 2): Int8PTQConfig(weight_rounding="gptq", act_equalization=0.5),
}
_RECOMMENDED_DEFAULT = Int8PTQConfig(weight_rounding="gptq")


def recommended_int8_config(model: str, scale: int) -> Int8PTQConfig:
    """The int8 PTQ settings the library recommends for a registered architecture at ``scale`` (stock
    ExecuTorch's, real calibration images only, GPTQ-rounded weights, and what a sensitivity probe or an
    equalization sweep found better)."""
    return _RECOMMENDED_INT8.get((model, scale), _RECOMMENDED_INT8.get((model, None), _RECOMMENDED_DEFAULT))


def int8_quantizer(config: Int8PTQConfig | None = None):
    """XNNPACK static int8 with per-channel symmetric weights, as ``config`` says (default: stock ExecuTorch's).
    ``act_observer``: ``"histogram"`` (the range that minimises the L2 error of the observed histogram) or
    ``"minmax"`` (the whole observed range). ``float_modules`` (module names) and ``float_nodes`` (op names of
    the exported graph) are left fp32; the stock annotators of cat and mean ignore such filters, so those ops
    stay int8. ``split_concat_convs`` is a graph rewrite, applied by the caller before prepare."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    config = config or Int8PTQConfig()
    float_modules, float_nodes = config.float_modules, config.float_nodes
    spec_config = get_symmetric_quantization_config(is_per_channel=True)
    if config.act_observer == "minmax":
        from torchao.quantization.pt2e.observer import MinMaxObserver

        spec = replace(spec_config.input_activation,
                       observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
        spec_config = replace(spec_config, input_activation=spec, output_activation=spec)
    if config.min_weight_step != STOCK_MIN_STEP:
        from torchao.quantization.pt2e.observer import PerChannelMinMaxObserver

        spec = replace(spec_config.weight,
                       observer_or_fake_quant_ctr=PerChannelMinMaxObserver.with_args(eps=config.min_weight_step))
        spec_config = replace(spec_config, weight=spec)
    if config.output_image_grid:
        class ImageGridOutputQuantizer(XNNPACKQuantizer):
            def annotate(self, model: GraphModule) -> GraphModule:
                model = super().annotate(model)
                if pin_output_to_image_grid(model, through_fp32_tail=True) is None:
                    raise ValueError("output_image_grid: no quantized op feeds this graph's output alone (through "
                                     "at most a pixel shuffle and a constant scaling); leave the option off")
                return model

        quantizer = ImageGridOutputQuantizer().set_global(spec_config)
    else:
        quantizer = XNNPACKQuantizer().set_global(spec_config)
    if float_modules or float_nodes:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_module_name_filter

        in_float = [get_module_name_filter(name) for name in float_modules]
        names = set(float_nodes)
        quantizer.set_filter_function(lambda node: node.op != "call_function" or (
            node.name not in names and not any(f(node) for f in in_float)))
    return quantizer


def _fixed_weight_spec(scale: float | Sequence[float], channels: int):
    from torchao.quantization.pt2e.observer import ObserverBase
    from torchao.quantization.pt2e.quantizer import QuantizationSpec

    if isinstance(scale, (int, float)):
        scales = torch.full((channels,), float(scale), dtype=torch.float32)
    else:
        scales = torch.tensor(list(scale), dtype=torch.float32)
        if scales.numel() != channels:
            raise ValueError(f"{scales.numel()} per-channel weight scales for a layer of {channels} channels")

    class FixedPerChannelObserver(ObserverBase):
        """Returns the trained step(s) as the channels' scales (zero point 0) instead of observing anything."""

        def __init__(self, **kwargs) -> None:
            super().__init__(dtype=torch.int8)
            self.qscheme, self.ch_axis = torch.per_channel_symmetric, 0
            self.quant_min, self.quant_max = -128, 127

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

        def calculate_qparams(self):
            return (scales.clone(), torch.zeros(channels, dtype=torch.int64))

    return QuantizationSpec(dtype=torch.int8, quant_min=-128, quant_max=127, qscheme=torch.per_channel_symmetric,
                            ch_axis=0, is_dynamic=False, observer_or_fake_quant_ctr=FixedPerChannelObserver)


def node_layer_name(node: Node) -> str | None:
    """The name of the module that owns a conv/linear node: from its weight's attribute path
    (``body.0.conv1.weight``), else from ``nn_module_stack``."""
    weight = node.args[1] if len(node.args) > 1 else None
    if isinstance(weight, Node) and weight.op == "get_attr":
        target = str(weight.meta.get(SOURCE_PARAM, weight.target))  # an untied copy: the layer it copies
        if target.endswith("weight"):
            return target.rsplit(".", 1)[0]
    stack = node.meta.get("nn_module_stack")
    if stack:
        return str(list(stack.values())[-1][0])
    return None


def _fixed_act_spec(scale: float, qmin: int, qmax: int):
    from torchao.quantization.pt2e.observer import FixedQParamsObserver
    from torchao.quantization.pt2e.quantizer import QuantizationSpec

    return QuantizationSpec(
        dtype=torch.int8, quant_min=-128, quant_max=127, qscheme=torch.per_tensor_affine, is_dynamic=False,
        observer_or_fake_quant_ctr=FixedQParamsObserver.with_args(
            scale=scale, zero_point=int8_zero_point(qmin, qmax), dtype=torch.int8,
            qscheme=torch.per_tensor_affine, quant_min=-128, quant_max=127))


IMAGE_GRID_SCALE = 1.0 / 255.0  # the output's int8 step: one code per level of the 8-bit image it becomes
IMAGE_GRID_KEY = "quantsr_image_grid"  # node meta: the step of the image grid this op's output is pinned to


def _positive_constant(model: GraphModule, arg) -> float | None:
    """The value of a scalar op argument (a number or a one-element buffer) if it is a positive constant."""
    if isinstance(arg, Node) and arg.op == "get_attr":
        from quantsr.quant.int8_graph import get_constant

        value = get_constant(model, arg.target)
        arg = float(value) if isinstance(value, torch.Tensor) and value.numel() == 1 else None
    return float(arg) if isinstance(arg, (int, float)) and not isinstance(arg, bool) and arg > 0 else None


def _fp32_tail_step(model: GraphModule, node: Node) -> tuple[Node, float] | None:
    """For an unannotated op between the last quantized op and the output that only moves or rescales values (a
    pixel shuffle; RLFN's and RFDN's division by their ``img_range``): its input, and the factor by which the
    image grid's step is multiplied there."""
    source = node.args[0] if node.args else None
    if not isinstance(source, Node):
        return None
    if node.target == torch.ops.aten.pixel_shuffle.default:
        return source, 1.0
    divisor = _positive_constant(model, node.args[1]) if node.target == torch.ops.aten.div.Tensor else None
    if divisor is not None:
        return source, divisor
    factor = _positive_constant(model, node.args[1]) if node.target == torch.ops.aten.mul.Tensor else None
    return (source, 1.0 / factor) if factor is not None else None


def pin_output_to_image_grid(model: GraphModule, *, through_fp32_tail: bool = False) -> Node | None:
    """Give the graph output's quantize the 8-bit image grid (scale 1/255, zero point -128: codes = pixel levels
    0..255), instead of a calibrated range. The output is clamped to [0, 1] and rounded to 8 bits anyway, so on
    that grid its int8 rounding is the image's own and costs nothing (a calibrated range wider than [0, 1]
    cost CARN-M x2 W4A8 0.056 dB on Set5). ``through_fp32_tail``: unannotated ops after the last quantized op
    that only move values (a final pixel shuffle) or divide them by a positive constant (RLFN's ``/ 255``) are
    walked back through, and the op before them pinned on the grid mapped back through them (the int8 PTQ path;
    the QAT programs of IMDN and SPAN keep their calibrated output until they are rebuilt and measured with it).
    Only a chain of single-consumer ops is walked, so no tensor that another op reads is clamped. Returns the
    pinned node (``meta[IMAGE_GRID_KEY]`` = its scale), or None when no such quantized op was found."""
    from torchao.quantization.pt2e.quantizer import QuantizationSpec
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    consumer = next(n for n in model.graph.nodes if n.op == "output")
    node = consumer.args[0]
    node = node[0] if isinstance(node, (tuple, list)) else node
    grid = IMAGE_GRID_SCALE
    seen: set[Node] = set()
    while isinstance(node, Node) and node not in seen and list(node.users) == [consumer]:
        seen.add(node)
        annotation = node.meta.get(Q_ANNOTATION_KEY)
        tail = _fp32_tail_step(model, node) if annotation is None and through_fp32_tail else None
        spec = getattr(annotation, "output_qspec", None)
        if tail is not None:
            (consumer, node), grid = (node, tail[0]), grid * tail[1]
        elif isinstance(spec, QuantizationSpec):
            annotation.output_qspec = _fixed_act_spec(grid, 0, 255)
            node.meta[IMAGE_GRID_KEY] = grid
            return node
        else:  # shares another node's qparams: pin that one
            shared = getattr(spec, "edge_or_node", None)
            consumer, node = node, shared if isinstance(shared, Node) else None
    return None


def _static_input_chain(conv: Node) -> tuple[Node, Node]:
    """The ``add(x, tau)`` and ``clamp`` nodes a static FixedQuantConv2d puts before its conv."""
    clamp = conv.args[0]
    add = clamp.args[0] if isinstance(clamp, Node) else None
    if not (isinstance(clamp, Node) and clamp.target == torch.ops.aten.clamp.default and isinstance(add, Node)
            and add.target == torch.ops.aten.add.Tensor):
        raise RuntimeError(f"{conv.name}: expected add(x, tau) -> clamp -> conv before a learned conv; was the "
                           "model made by quantsr.export.deploy.to_deploy_model(..., 'static')?")
    return add, clamp


class LearnedQParamsQuantizer:
    """A PT2E quantizer that keeps the trained quantization of the layers in ``qparams`` (by layer name).

    ``activations="static"``: ``x + tau`` gets a fixed int8 output spec with scale ``a`` (that quantize is the
    activation rounding), the clamp and the conv input share it, the weights get the fixed learned scale, and
    every other op XNNPACK can quantize (conv outputs, adds, cat, mul, other convs if ``rest="int8"``) is static
    int8 with calibrated observers. ``activations="dynamic"``: only the convs are quantized, inputs per run.
    ``rest``: ``"fp32"`` leaves the layers the model keeps in FP as fp32; ``"int8"`` quantizes them too.
    Built on the XNNPACK quantizer, imported lazily so that importing quantsr stays light."""

    def __new__(cls, qparams: dict[str, LayerQParams], rest: str = "fp32", activations: str = "static"):
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer_utils import (
            propagate_annotation,
        )
        from torchao.quantization.pt2e.quantizer import (
            QuantizationAnnotation,
            SharedQuantizationSpec,
        )
        from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

        if rest not in ("fp32", "int8"):
            raise ValueError(f"rest must be 'fp32' or 'int8', got {rest!r}")
        if activations not in ("static", "dynamic"):
            raise ValueError(f"activations must be 'static' or 'dynamic', got {activations!r}")
        dynamic = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
        static = get_symmetric_quantization_config(is_per_channel=True)

        def annotate_static(node: Node, qp: LayerQParams, w_spec) -> None:
            add, clamp = _static_input_chain(node)
            add_inputs = {a: static.input_activation for a in add.args if isinstance(a, Node)}
            add.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
                input_qspec_map=add_inputs, output_qspec=_fixed_act_spec(qp.act_scale, qp.act_qmin, qp.act_qmax),
                _annotated=True)
            shared = SharedQuantizationSpec(add)
            clamp.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
                input_qspec_map={add: shared}, output_qspec=shared, _annotated=True)
            node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
                input_qspec_map={clamp: shared, node.args[1]: w_spec}, output_qspec=static.output_activation,
                _annotated=True)

        class _Quantizer(XNNPACKQuantizer):
            def __init__(self) -> None:
                super().__init__()
                self.qparams = qparams
                self.matched: set[str] = set()
                self.fp_layers: set[Node] = set()
                if activations == "static":
                    self.set_global(static)
                    self.set_filter_function(lambda n: n not in self.fp_layers)

            def annotate(self, model: GraphModule) -> GraphModule:
                for node in model.graph.nodes:
                    if node.op != "call_function" or node.target not in CONV_OR_LINEAR:
                        continue
                    name = node_layer_name(node)
                    weight = node.args[1]
                    if name in self.qparams:
                        qp = self.qparams[name]
                        w_spec = _fixed_weight_spec(qp.weight_scale, int(weight.meta["val"].shape[0]))
                        self.matched.add(name)
                        if activations == "static":
                            annotate_static(node, qp, w_spec)
                            continue
                    elif name is not None and name.endswith(".prescale") or rest == "fp32":
                        self.fp_layers.add(node)
                        continue
                    elif activations == "static":
                        continue  # int8 by the global static config below
                    else:
                        w_spec = dynamic.weight
                    node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
                        input_qspec_map={node.args[0]: dynamic.input_activation, weight: w_spec}, _annotated=True)
                missing = set(self.qparams) - self.matched
                if missing:
                    raise RuntimeError(f"learned qparams for {sorted(missing)[:4]} found no conv/linear node in "
                                       "the exported graph")
                if activations == "static":
                    self._annotate_for_quantization_config(model)
                    propagate_annotation(model)
                    if rest == "int8":
                        pin_output_to_image_grid(model)
                return model

        return _Quantizer()
