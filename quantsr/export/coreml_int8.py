"""Core ML ``.mlpackage`` with int8 activations: the static int8 program of :mod:`quantsr.export.int8_program`
(the graph the ``.pte`` is lowered from, fine-tuned program included) converted with its quantize/dequantize
pairs, so Core ML runs int8 activations (W8A8: the int8-int8 path of the Neural Engine on A17 Pro / M4 and later).

* ``target="iOS17"``: weights as ``constexpr_affine_dequantize`` int8 codes with per-channel scales.
* ``target="iOS18"``: low-bit weight codes stored at 4 bits (``constexpr_blockwise_shift_scale`` int4 + offset):
  RBD 4-bit codes [-7, 8] are written as ``code - 1`` with offset -1, 2-bit codes [-1, 2] as they are; the
  dequantized weight is unchanged, bit for bit. int8 head/tail weights stay int8.

Compute precision is float16 (what the Neural Engine runs); the tensor I/O stays float32 and the program is
compacted (shared constants, short names, small tensors inline) like the weight-only packages. Prediction needs
macOS, so on Linux the export reloads the saved package and checks what it can: every weight's codes and every
activation's (scale, zero point) equal the program's (scales to float16; the pass that would rescale quantized
adds is left out for that)."""
from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import fx

from quantsr.artifacts.digest import package_bytes
from quantsr.quant.int8_graph import get_constant, set_constant

__all__ = ["CoreMLInt8Export", "TARGETS", "export_coreml_int8"]

TARGETS = ("iOS17", "iOS18")
_DQ_CHANNEL = "quantized_decomposed.dequantize_per_channel.default"  # compared as names: the ops register lazily
_Q_TENSOR = "quantized_decomposed.quantize_per_tensor.default"
_DQ_TENSOR = "quantized_decomposed.dequantize_per_tensor.default"
# rewrites the scales around quantized add/sub (one input's scale to 1) for speed: left out, so the package keeps
# the program's scales verbatim and the check below can compare them; Core ML's compiler fuses scales on device
_RESCALING_PASS = "common::distributive_quantized_binary_op_scale_normalization"


@dataclass
class CoreMLInt8Export:
    path: Path
    bytes: int
    target: str
    activation_quantizers: int  # quantize ops in the package
    weight_bits: dict[str, int] = field(default_factory=dict)  # bits -> number of weight tensors stored at them
    codes_exact: bool = False  # every weight's codes in the package == the program's
    qparams_exact: bool = False  # every activation quantizer's (scale, zero point) == the program's (fp16)


def _weight_codes(converted: fx.GraphModule) -> list[tuple[str, str, str]]:
    """(weight, scale, zero point) attribute targets of every per-channel dequantized weight."""
    out = []
    for node in converted.graph.nodes:
        if node.op == "call_function" and str(node.target) == _DQ_CHANNEL:
            w, s, z = node.args[:3]
            if all(isinstance(a, fx.Node) and a.op == "get_attr" for a in (w, s, z)):
                out.append((w.target, s.target, z.target))
    return out


def _centered_codes(converted: fx.GraphModule) -> list[torch.Tensor]:
    """``code - zero_point`` (int16) of every integer constant the program dequantizes: per-channel weights and
    per-tensor constants (the folded offsets of the learned activation quantizers). Centered codes are what a
    package must hold however it re-encodes them (int8 as uint8 with the zero point +128, int4 with an offset)."""
    out = []
    for n in converted.graph.nodes:
        if n.op != "call_function" or not isinstance(n.args[0], fx.Node) or n.args[0].op != "get_attr":
            continue
        codes = get_constant(converted, n.args[0].target).to(torch.int16)
        if str(n.target) == _DQ_CHANNEL:
            zero = get_constant(converted, n.args[2].target).to(torch.int16)
            shape = [1] * codes.dim()
            shape[int(n.args[3])] = -1  # the channel axis: 1 for a transposed conv's weight
            out.append(codes - zero.reshape(shape))
        elif str(n.target) == _DQ_TENSOR:
            out.append(codes - int(n.args[2]))
    return out


def _narrow_to_int4(converted: fx.GraphModule) -> fx.GraphModule:
    """A copy whose weights with at most 16 distinct code values in [-9, 8] are shifted into int4's [-8, 7] with
    the zero point absorbing the shift (RBD's [-7, 8] -> [-8, 7], zero point -1): dequantized values unchanged,
    and coremltools then stores them as 4-bit data."""
    out = copy.deepcopy(converted)
    for w, _, z in _weight_codes(out):
        codes, zero = get_constant(out, w), get_constant(out, z)
        lo, hi = int(codes.min()), int(codes.max())
        if hi - lo <= 15 and not zero.any() and hi > 7 and lo >= -7:
            shift = hi - 7
            set_constant(out, w, (codes.to(torch.int16) - shift).to(codes.dtype))
            set_constant(out, z, torch.full_like(zero, -shift))
    return out


def _activation_qparams(converted: fx.GraphModule) -> Counter:
    return Counter((float(np.float16(n.args[1])), int(n.args[2])) for n in converted.graph.nodes
                   if n.op == "call_function" and str(n.target) == _Q_TENSOR)


def _package_contents(path: Path) -> tuple[list[np.ndarray], Counter, Counter, int]:
    """(weight codes minus offsets, activation (scale, zero point) counts, bits per weight counts, quantize ops)
    of a saved package, read back from disk."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as load_milproto
    from coremltools.converters.mil.mil import types

    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    spec = mlmodel.get_spec()
    prog = load_milproto(spec, specification_version=spec.specificationVersion, file_weights_dir=mlmodel.weights_dir)
    codes, qparams, bits, quantizers = [], Counter(), Counter(), 0
    for op in prog.functions["main"].operations:
        if op.op_type in ("constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"):
            data = op.quantized_data.val if op.op_type == "constexpr_affine_dequantize" else op.data.val
            offset = op.zero_point if op.op_type == "constexpr_affine_dequantize" else op.offset
            offset = np.zeros(1, np.int16) if offset is None else np.asarray(offset.val, np.int16)
            offset = offset.reshape(-1, *([1] * (data.ndim - 1))) if offset.size > 1 else offset
            codes.append(np.asarray(data, np.int16) - offset)
            stored = types.builtin_to_string(op.outputs[0].op.inputs["data" if "data" in op.inputs
                                                                     else "quantized_data"].dtype)
            bits[int(stored.lstrip("uint"))] += 1
        elif op.op_type == "quantize":
            quantizers += 1
            zp = 0 if op.zero_point is None else int(np.asarray(op.zero_point.val))
            # coremltools may write an int8 quantizer as uint8 (zero point +128): the same grid
            qparams[(float(np.float16(op.scale.val)), zp - 128 if op.output_dtype.val == "uint8" else zp)] += 1
    return codes, qparams, bits, quantizers


def export_coreml_int8(converted: fx.GraphModule, path: str | Path, *, input_size: tuple[int, int, int] = (3, 64, 64),
                       target: str = "iOS18", stage: Callable[[str], None] = lambda s: None) -> CoreMLInt8Export:
    """Convert a static int8 program (``static_int8_graph``, optionally ``load_program``-ed) to an ``.mlpackage``
    at ``path`` with a fixed ``input_size`` tile, save atomically, reload and verify it."""
    import coremltools as ct

    from quantsr.export.coreml import INPUT_NAME, OUTPUT_NAME, _compact, save_verified_package

    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    graph = _narrow_to_int4(converted) if target == "iOS18" else converted
    example = torch.rand(1, *input_size, generator=torch.Generator().manual_seed(0))
    stage("export the int8 program at a fixed tile")
    ep = torch.export.export(graph, (example,)).run_decompositions({})
    stage(f"convert (coremltools, {target}, int8 activations)")
    pipeline = ct.PassPipeline.DEFAULT
    pipeline.remove_passes([_RESCALING_PASS])
    mlmodel = ct.convert(
        ep, inputs=[ct.TensorType(name=INPUT_NAME, shape=tuple(example.shape), dtype=np.float32)],
        outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)], convert_to="mlprogram",
        minimum_deployment_target=getattr(ct.target, target), compute_precision=ct.precision.FLOAT16,
        pass_pipeline=pipeline)
    stage("share constants, shorten names")
    mlmodel, _ = _compact(mlmodel, [])
    checks: dict[str, object] = {}

    def verify(saved: Path) -> None:
        stage("reload and compare weight codes and activation qparams")
        codes, qparams, bits, quantizers = _package_contents(saved)
        # coremltools may repeat a weight once per use: compare the sets of distinct code tensors. A 0-d
        # constant (SPAN's quantized scalars) is folded to a plain value, not kept as a constexpr: not comparable
        expected = {(tuple(c.shape), c.numpy().tobytes()) for c in _centered_codes(converted) if c.dim() > 0}
        if {(c.shape, c.astype(np.int16).tobytes()) for c in codes} != expected:
            raise RuntimeError("the saved Core ML package does not hold the program's weight codes")
        if qparams != _activation_qparams(converted):
            raise RuntimeError("the saved Core ML package does not hold the program's activation scales")
        checks.update(bits=bits, quantizers=quantizers)

    path = save_verified_package(mlmodel, path, verify)
    return CoreMLInt8Export(path, package_bytes(path), target, checks["quantizers"],
                            {str(b): n for b, n in checks["bits"].items()}, codes_exact=True, qparams_exact=True)
