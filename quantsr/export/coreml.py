"""Core ML ``.mlpackage`` export: mlprogram, fp32 tensor I/O, iOS 17+, the learned b-bit weights palettized to
exactly their 2^b levels and the layers the model keeps in FP stored as int8. Per-channel weight steps get one
lookup table per output channel, which needs iOS 18.

The converted graph is the "dynamic" deploy form (:mod:`quantsr.export.deploy`): the learned activation rounding
is written out as ops (prescale ``x * (1/a) + (tau/a + 1/2)``, clamp, floor), so a Core ML prediction computes what
the eager fake-quant model computes. Prediction needs macOS; on Linux :func:`export_coreml` reloads the saved
package, decompresses its weights and checks that every learned weight equals the trained one bit for bit.

The program is then compacted (:func:`_compact`), for every package alike (FP32 included): constants stored once
per distinct value, short op/var names, IMDN's channel slices as ``split`` ops, tensors of at most
``INLINE_MAX_BYTES`` written into the program rather than as 64-byte-aligned blobs in weight.bin. IMDN x4, 64 px
tile: FP32 2,898,255 B, W4A4 489,878 B (16.9%), W2A2 331,648 B (11.4%); before: 3,070,125 / 629,826 / 468,324 B.
"""
from __future__ import annotations

import itertools
import shutil
import string
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from quantsr.artifacts.digest import package_bytes

__all__ = ["CoreMLExport", "export_coreml"]

INPUT_NAME, OUTPUT_NAME = "lr", "sr"
INLINE_MAX_BYTES = 1024  # consts up to this size are written into the program, not into weight.bin


@dataclass
class CoreMLExport:
    path: Path
    bytes: int
    palettized: dict[str, int] = field(default_factory=dict)  # const name -> number of LUT entries
    int8_layers: list[str] = field(default_factory=list)
    weights_exact: bool = False  # decompressed learned weights == trained weights, bit for bit
    mil_names: dict[str, str] = field(default_factory=dict)  # learned layer -> its weight's name in the program


def _const_name(layer: str) -> str:
    return "p_" + layer.replace(".", "_") + "_weight"  # how torch.export names a parameter in the MIL program


def _grid_lut(scale: float, lo: int, bits: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A coremltools ``lut_function`` for a weight on the grid ``scale * [lo, lo + 2^bits)``: the table is that
    grid (its present entries copied from the weight itself, so decompression is bit-exact), the indices are
    ``level - lo``. iOS 17 tables have 2, 4, 16, 64 or 256 entries: 3 bits use a 16-entry table."""
    table_bits = next(n for n in (1, 2, 4, 6, 8) if n >= bits)

    def lut_function(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = weight.reshape(-1)
        index = np.round(flat / np.float32(scale)).astype(np.int64) - lo
        if index.min() < 0 or index.max() >= 2**bits:
            raise ValueError(f"weight is not on its {bits}-bit grid (scale {scale}, lowest level {lo})")
        lut = (np.arange(2**table_bits, dtype=np.float32) + lo) * np.float32(scale)
        lut = lut.astype(weight.dtype)
        lut[index] = flat  # the exact stored values
        return lut, index.astype(np.uint8)

    return lut_function


class _LutFunctions:
    """The ``lut_function`` of one learned weight: its grid table (per tensor), or one grid table per output
    channel (coremltools' ``per_grouped_channel`` palettization, group size 1, iOS 18), which coremltools asks for
    channel by channel, first to last. Each channel's table starts at the lowest level that holds its levels: a
    channel flipped by a negative step lies in [-8, 7] where the others lie in [-7, 8]. Counts its calls, so an
    export can tell that every table was used (coremltools skips, with only a warning, a weight it cannot
    palettize; the bit-exact check would pass on such an fp32 weight)."""

    def __init__(self, scale: float | tuple[float, ...], lo: int, bits: int) -> None:
        self.scales = scale if isinstance(scale, tuple) else (scale,)
        self.per_channel = isinstance(scale, tuple)
        self.lo, self.bits, self.calls = lo, bits, 0

    def __call__(self, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.calls >= len(self.scales):
            raise ValueError(f"more weight channels than the {len(self.scales)} trained steps")
        scale = self.scales[self.calls]
        self.calls += 1
        lo = self.lo
        if self.per_channel:  # this channel's own range of 2^bits levels
            lo = max(lo, int(np.round(weight / np.float32(scale)).max()) - 2**self.bits + 1)
        return _grid_lut(scale, lo, self.bits)(weight)

    @property
    def complete(self) -> bool:
        return self.calls == len(self.scales)


# per-channel lookup tables cost 2^bits fp32 entries per output channel: from this width on (the int8 head and
# tail) the weights are stored as int8 codes with the trained per-channel scales instead, just as exact
EXACT_INT8_FROM_BITS = 6


def _exact_int8(weight: np.ndarray, scales: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(int8 codes, per-channel int8 zero points, fp32 scales) with ``(codes - zero points) * scales == weight``
    bit for bit: the trained levels, shifted per channel into int8 where they leave it (RBD's [-127, 128])."""
    from quantsr.quant.int8_sim import int8_zero_point

    scale = np.asarray(scales, dtype=np.float32)
    shape = (-1,) + (1,) * (weight.ndim - 1)
    levels = np.round(weight / scale.reshape(shape)).astype(np.int64)
    flat = levels.reshape(len(scale), -1)
    try:
        zero = np.array([int8_zero_point(int(lo), int(hi)) for lo, hi in zip(flat.min(1), flat.max(1))])
    except ValueError as exc:
        raise ValueError(f"a channel's weight levels: {exc}") from None
    if not np.array_equal(levels.astype(np.float32) * scale.reshape(shape), weight):
        raise ValueError("weight is not on its per-channel grid")
    return (levels + zero.reshape(shape)).astype(np.int8), zero.astype(np.int8), scale


def _palettizer(lut: _LutFunctions) -> object:
    """The coremltools config that stores a learned weight as exactly its trained levels."""
    import coremltools.optimize as cto

    if lut.per_channel:
        return cto.coreml.OpPalettizerConfig(mode="custom", granularity="per_grouped_channel", group_size=1,
                                             channel_axis=0, weight_threshold=1, lut_function=lut)
    return cto.coreml.OpPalettizerConfig(mode="custom", weight_threshold=1, lut_function=lut)


class _MulAdd(nn.Module):
    """A ``prescale`` (depthwise 1x1 conv, weight ``1/a`` in every channel, bias ``tau/a + 1/2``) written as
    ``x * (1/a) + bias``: the same two fp32 operations on the same constants, without a per-channel weight tensor
    and a conv's five parameter constants. (The depthwise form is an XNNPACK workaround, see
    :mod:`quantsr.export.deploy`.)"""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        w = conv.weight.detach().reshape(-1)
        if conv.kernel_size != (1, 1) or conv.groups != conv.in_channels or not bool((w == w[0]).all()):
            raise ValueError("a prescale is a depthwise 1x1 conv with one weight in every channel")
        self.register_buffer("scale", w[0].clone())  # 0-d fp32: 1/a exactly as the deploy conv holds it
        self.register_buffer("shift", conv.bias.detach().reshape(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def _mul_add_prescales(graph_model: nn.Module) -> nn.Module:
    """``graph_model`` (a deploy model, changed in place) with every ``prescale`` conv a :class:`_MulAdd`."""
    from quantsr.export.deploy import FixedQuantConv2d

    for m in graph_model.modules():
        if isinstance(m, FixedQuantConv2d) and isinstance(getattr(m, "prescale", None), nn.Conv2d):
            m.prescale = _MulAdd(m.prescale)
    return graph_model


def _convert(model: nn.Module, example: torch.Tensor, target: str = "iOS17"):
    import coremltools as ct

    ep = torch.export.export(model, (example,)).run_decompositions({})
    return ct.convert(
        ep, inputs=[ct.TensorType(name=INPUT_NAME, shape=tuple(example.shape), dtype=np.float32)],
        outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)], convert_to="mlprogram",
        minimum_deployment_target=getattr(ct.target, target), compute_precision=ct.precision.FLOAT32)


def _short_names():
    """a, b, ..., z, aa, ..., z9, aaa, ...: valid MIL identifiers, never a reserved word nor the I/O names."""
    reserved = {"any", "bool", "dict", "func", "list", "true", "fp16", "fp32", "fp64", "bf16", "int8", "tuple",
                "false", "int16", "int32", "int64", "state", "uint8", "string", "tensor", "uint16", "uint32",
                "uint64", "program", INPUT_NAME, OUTPUT_NAME}
    rest = string.ascii_lowercase + string.digits
    for n in itertools.count(0):
        for first in string.ascii_lowercase:
            for tail in itertools.product(rest, repeat=n):
                name = first + "".join(tail)
                if name not in reserved:
                    yield name


def _const_key(var) -> tuple:
    """Equal keys: the same value bit for bit (type, dtype, shape and bytes)."""
    arr = np.asarray(var.val)
    return type(var.val).__name__, arr.dtype.str, arr.shape, arr.tobytes()


def _slice_range(op) -> tuple[int, int, int] | None:
    """(axis, start, stop) if the ``slice_by_index`` ``op`` takes a contiguous range of one axis, all of every
    other axis, stride 1, nothing squeezed; else None."""
    shape = op.x.shape
    if shape is None or any(not isinstance(d, (int, np.integer)) for d in shape):
        return None
    rank = len(shape)

    def val(name, default):
        var = op.inputs.get(name)
        if var is None:
            return np.asarray(default)
        return None if var.val is None else np.asarray(var.val)

    begin, end = val("begin", [0] * rank), val("end", list(shape))
    stride, squeeze = val("stride", [1] * rank), val("squeeze_mask", [False] * rank)
    begin_mask, end_mask = val("begin_mask", [False] * rank), val("end_mask", [False] * rank)
    if any(v is None for v in (begin, end, stride, squeeze, begin_mask, end_mask)):
        return None
    if squeeze.any() or (stride != 1).any():
        return None
    ranges = []
    for i, dim in enumerate(shape):
        b = 0 if begin_mask[i] else int(begin[i]) + (dim if begin[i] < 0 else 0)
        e = dim if end_mask[i] else int(end[i]) + (dim if end[i] < 0 else 0)
        ranges.append((max(0, min(b, dim)), max(0, min(e, dim))))
    cut = [i for i, (b, e) in enumerate(ranges) if (b, e) != (0, shape[i])]
    if len(cut) != 1 or ranges[cut[0]][0] >= ranges[cut[0]][1]:
        return None
    return cut[0], *ranges[cut[0]]


def _slices_to_splits(block) -> None:
    """Slices of one tensor that tile one of its axes (``t[:, :d], t[:, d:]``: IMDN's channel split, sliced for
    XNNPACK) become one ``split`` op: the same values, one op and no begin/end/mask constants."""
    from coremltools.converters.mil.mil import Builder as mb

    groups: dict[tuple, list] = {}
    for op in block.operations:
        if op.op_type == "slice_by_index":
            r = _slice_range(op)
            if r is not None:
                groups.setdefault((op.x, r[0]), []).append((r[1], r[2], op))
    for (x, axis), parts in groups.items():
        parts.sort(key=lambda p: p[:2])
        if len(parts) < 2 or parts[0][0] != 0 or parts[-1][1] != x.shape[axis] \
                or any(a[1] != b[0] for a, b in itertools.pairwise(parts)):
            continue
        if any(o in block.outputs for _, _, op in parts for o in op.outputs):
            continue
        members = {op for _, _, op in parts}
        anchor = next(op for op in block.operations if op in members)
        outs = mb.split(x=x, split_sizes=np.array([e - b for b, e, _ in parts], dtype=np.int32), axis=axis,
                        before_op=anchor)
        for (_, _, op), new in zip(parts, outs):
            block.replace_uses_of_var_after_op(anchor_op=anchor, old_var=op.outputs[0], new_var=new)
        block.remove_ops([op for _, _, op in parts])


def _compact(mlmodel, track: list[str], int8_weights: dict[str, tuple[np.ndarray, ...]] | None = None):
    """Rebuild ``mlmodel`` with a smaller program description (model.mlmodel), computing the same thing:

    * the ``const`` weights named in ``int8_weights`` (name -> int8 codes, per-channel int8 zero points, fp32
      scales) as ``constexpr_affine_dequantize`` ops, named ``NAME_int8``;

    * every ``const`` stored once per distinct value (bit-identical dtype, shape and bytes): the per-conv strides,
      pads, dilations, groups, clip bounds ... are shared;
    * the all-zero per-channel zero points of symmetric int8 weights as one scalar (the iOS 16+
      ``constexpr_affine_dequantize`` broadcasts it);
    * slices tiling an axis as one ``split`` (:func:`_slices_to_splits`);
    * every op and var renamed to a short identifier (the most referenced get the shortest), the model's input
      and output names kept;
    * tensors of at most ``INLINE_MAX_BYTES`` (biases, prescale shifts, 16-entry lookup tables, int8 scales, the
      packed indices of tiny palettized weights) written as immediate values into the program instead of blobs in
      weight.bin (each blob costs a 64-byte header, padding to 64 bytes and a file reference); larger tensors stay
      in weight.bin.

    The program is reloaded from the spec, so the ExecuTorch debug-handle map that coremltools saves beside a
    converted torch.export program (executorch_debug_handle_mapping.json, ~100 KB, unused by Core ML) is not
    written.

    Returns the model and the new names of the op/var names in ``track``."""
    import collections

    from coremltools.converters.mil.converter import mil_convert
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipeline
    from coremltools.models.utils import _apply_graph_pass

    spec = mlmodel.get_spec()
    prog = _apply_graph_pass(mlmodel, [], spec_version=spec.specificationVersion, skip_model_load=True,
                             return_pymil_prog=True)
    if set(prog.functions) != {"main"}:
        raise RuntimeError(f"expected one function 'main', got {list(prog.functions)}")
    block = prog.functions["main"]
    with block:
        for op in list(block.operations):
            if op.op_type == "const" and op.name in (int8_weights or {}):
                codes, zero_point, scale = int8_weights[op.name]
                var = mb.constexpr_affine_dequantize(quantized_data=codes, zero_point=zero_point, scale=scale,
                                                     axis=0, before_op=op, name=op.name + "_int8")
                block.replace_uses_of_var_after_op(anchor_op=op, old_var=op.outputs[0], new_var=var)
                block.remove_ops([op])
        for op in list(block.operations):  # int8 weights: all-zero zero point vectors -> one scalar
            if op.op_type == "constexpr_affine_dequantize":
                zp = op.zero_point
                if zp.rank == 1 and not np.any(zp.val):
                    op.set_inputs(no_check_var_types=True, type_inference=True,
                                  zero_point=mb.const(val=np.zeros((), dtype=zp.val.dtype), before_op=op))
        _slices_to_splits(block)
        first: dict[tuple, object] = {}
        for op in list(block.operations):  # one const per distinct value
            if op.op_type != "const" or op.outputs[0] in block.outputs:
                continue
            var = op.outputs[0]
            key = _const_key(var)
            if key not in first:
                first[key] = var
                continue
            block.replace_uses_of_var_after_op(anchor_op=op, old_var=var, new_var=first[key])
            block.remove_ops([op])
        block.remove_ops([op for op in block.operations if op.op_type == "const" and not op.outputs[0].child_ops
                          and op.outputs[0] not in block.outputs])
    # short names, the most referenced first (a constexpr's inputs are written inside it, not as ops)
    keep = {v.name for v in block.inputs.values()} | {v.name for v in block.outputs}
    uses: collections.Counter = collections.Counter()
    for op in block.operations:
        for v in op.outputs:
            uses[v] += 2  # its output entry and its op's name attribute
        if not op.op_type.startswith("constexpr_"):
            for arg in op.inputs.values():
                for v in arg if isinstance(arg, (list, tuple)) else [arg]:
                    uses[v] += 1
    inlined = {op.outputs[0] for op in block.operations if op.op_type == "const"
               and all(c.op_type.startswith("constexpr_") for c in op.outputs[0].child_ops)}
    names = _short_names()
    renamed: dict[str, str] = {}
    for var in sorted(uses, key=lambda v: (v in inlined, -uses[v])):
        if var.name not in keep:
            renamed[var.name] = next(names)
            var.name = renamed[var.name]
    for op in block.operations:
        op.name = op.outputs[0].name if len(op.outputs) == 1 else next(names)
    # small tensors (biases, shifts, lookup tables, int8 scales, the indices of tiny palettized weights) as
    # immediate values in the program, not blobs in weight.bin: a blob costs a 64-byte header, padding to 64 bytes
    # and a file reference
    from coremltools.converters.mil.backend.mil import load as milproto_writer

    use_weight_file = milproto_writer.should_use_weight_file

    def blob_unless_small(val, *args, **kwargs) -> bool:
        return use_weight_file(val, *args, **kwargs) and val.nbytes > INLINE_MAX_BYTES

    milproto_writer.should_use_weight_file = blob_unless_small
    try:
        out = mil_convert(prog, convert_from="milinternal", convert_to="mlprogram",
                          compute_units=mlmodel.compute_unit, specification_version=spec.specificationVersion,
                          model_description=spec.description,
                          skip_model_load=mlmodel.__proxy__ is None,  # on macOS Core ML compiles and loads it
                          pass_pipeline=PassPipeline.EMPTY)
    finally:
        milproto_writer.should_use_weight_file = use_weight_file
    return out, {n: renamed.get(n, n) for n in track}


def save_verified_package(mlmodel, path: str | Path, verify: Callable[[Path], None]) -> Path:
    """Save ``mlmodel`` at ``path`` atomically: into a temp folder beside it, ``verify(saved_path)`` (raises to
    reject it), then a rename over any earlier package."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        mlmodel.save(str(tmp / path.name))
        verify(tmp / path.name)
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        (tmp / path.name).rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _decompressed_consts(path: Path) -> dict[str, np.ndarray]:
    """Every const tensor of a saved mlpackage after decompression (palettized/quantized weights expanded)."""
    import coremltools as ct
    import coremltools.optimize as cto
    from coremltools.converters.mil.frontend.milproto.load import load as load_milproto

    mlmodel = cto.coreml.decompress_weights(ct.models.MLModel(str(path), skip_model_load=True))
    prog = load_milproto(mlmodel.get_spec(), specification_version=mlmodel.get_spec().specificationVersion,
                         file_weights_dir=mlmodel.weights_dir)
    out = {}
    for op in prog.functions["main"].operations:
        if op.op_type == "const" and op.outputs[0].val is not None:
            out[op.name] = np.asarray(op.outputs[0].val)
    return out


def export_coreml(model: nn.Module, path: str | Path, *, input_size: tuple[int, int, int] = (3, 64, 64),
                  quantize_rest: bool = True, stage: Callable[[str], None] = lambda s: None) -> CoreMLExport:
    """Convert ``model`` (a QAT model, or an FP model: then nothing is palettized) to an ``.mlpackage`` at
    ``path`` with a fixed input of ``input_size`` (tile-sized; apps tile larger images), palettize the learned
    weights with one lookup table of exactly their levels, store the other weights as int8 if
    ``quantize_rest``, save atomically (temp dir, then rename), reload and verify the learned weights."""
    import coremltools.optimize as cto

    from quantsr.export.deploy import to_deploy_model

    model = model.cpu().eval()
    example = torch.rand(1, *input_size, generator=torch.Generator().manual_seed(0))
    stage("fold learned quantizers")
    try:
        graph_model, qparams = to_deploy_model(model, "dynamic")
    except ValueError as exc:
        if "no quantized layers" not in str(exc):
            raise
        graph_model, qparams = model, {}
    stage("convert (coremltools)")
    # one lookup table per output channel (per-channel weight steps) needs iOS 18's constexpr_lut_to_dense
    per_channel = any(isinstance(qp.weight_scale, tuple) for qp in qparams.values())
    mlmodel = _convert(_mul_add_prescales(graph_model) if qparams else graph_model, example,
                       "iOS18" if per_channel else "iOS17")
    learned = {_const_name(name): name for name in qparams}
    trained = {_const_name(n): m.weight.detach().numpy() for n, m in graph_model.named_modules()
               if _const_name(n) in learned}
    others = [_const_name(n) for n, m in graph_model.named_modules()
              if isinstance(m, (nn.Conv2d, nn.Linear)) and _const_name(n) not in learned]
    stage("palettize learned weights / int8 the rest")
    wide = {const for const, layer in learned.items() if isinstance(qparams[layer].weight_scale, tuple)
            and qparams[layer].w_bits >= EXACT_INT8_FROM_BITS}
    int8_weights = {const: _exact_int8(trained[const], qparams[learned[const]].weight_scale) for const in wide}
    luts = {const: _LutFunctions(qparams[layer].weight_scale, qparams[layer].weight_qmin, qparams[layer].w_bits)
            for const, layer in learned.items() if const not in wide}
    op_configs: dict = {const: _palettizer(lut) for const, lut in luts.items()}
    if op_configs:
        mlmodel = cto.coreml.palettize_weights(mlmodel, cto.coreml.OptimizationConfig(op_name_configs=op_configs))
    unused = sorted(learned[const] for const, lut in luts.items() if not lut.complete)
    if unused:
        raise RuntimeError(f"coremltools did not palettize the learned weights of {unused[:4]}: the package would "
                           "hold them in fp32")
    int8_layers = others if quantize_rest else []
    if int8_layers:
        config = cto.coreml.OptimizationConfig(op_name_configs={
            n: cto.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", weight_threshold=1)
            for n in int8_layers})
        mlmodel = cto.coreml.linear_quantize_weights(mlmodel, config)
    stage("share constants, shorten names")
    # palettization renames a const NAME to NAME_palettized; _compact's int8 codes are NAME_int8
    stored = {n: n + ("_int8" if n in wide else "_palettized") for n in trained}
    mlmodel, mil_names = _compact(mlmodel, list(stored.values()), int8_weights)
    stage("save")

    def verify(saved: Path) -> None:
        stage("reload and compare decompressed weights")
        consts = _decompressed_consts(saved)
        bad = [n for n, w in trained.items() if not np.array_equal(consts.get(mil_names[stored[n]]), w)]
        if bad:
            raise RuntimeError(f"decompressed Core ML weights differ from the trained ones: {bad[:4]}")

    path = save_verified_package(mlmodel, path, verify)
    palettized = {n: len(np.unique(w)) for n, w in trained.items() if n not in wide}
    return CoreMLExport(path, package_bytes(path), palettized, int8_layers + sorted(wide), bool(trained),
                        {learned[n]: mil_names[stored[n]] for n in trained})
