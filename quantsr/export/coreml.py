"""Core ML ``.mlpackage`` export: mlprogram, fp32 tensor I/O, iOS 17+, the learned b-bit weights palettized to
exactly their 2^b levels and the layers the model keeps in FP stored as int8.

The converted graph is the "dynamic" deploy form (:mod:`quantsr.export.deploy`): the learned activation rounding
is written out as ops (depthwise 1x1 prescale, clamp, floor), so a Core ML prediction computes what the eager
fake-quant model computes. Prediction needs macOS; on Linux :func:`export_coreml` reloads the saved package,
decompresses its weights and checks that every learned weight equals the trained one bit for bit.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["CoreMLExport", "export_coreml", "package_bytes"]

INPUT_NAME, OUTPUT_NAME = "lr", "sr"


@dataclass
class CoreMLExport:
    path: Path
    bytes: int
    palettized: dict[str, int] = field(default_factory=dict)  # const name -> number of LUT entries
    int8_layers: list[str] = field(default_factory=list)
    weights_exact: bool = False  # decompressed learned weights == trained weights, bit for bit


def package_bytes(path: str | Path) -> int:
    """Total size of an ``.mlpackage`` directory (or of a single file)."""
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


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


def _convert(model: nn.Module, example: torch.Tensor):
    import coremltools as ct

    ep = torch.export.export(model, (example,)).run_decompositions({})
    return ct.convert(
        ep, inputs=[ct.TensorType(name=INPUT_NAME, shape=tuple(example.shape), dtype=np.float32)],
        outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)], convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17, compute_precision=ct.precision.FLOAT32)


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
    mlmodel = _convert(graph_model, example)
    learned = {_const_name(name): name for name in qparams}
    trained = {_const_name(n): m.weight.detach().numpy() for n, m in graph_model.named_modules()
               if _const_name(n) in learned}
    others = [_const_name(n) for n, m in graph_model.named_modules()
              if isinstance(m, (nn.Conv2d, nn.Linear)) and _const_name(n) not in learned
              and not n.endswith(".prescale") and m.weight.numel() >= 2048]
    stage("palettize learned weights / int8 the rest")
    op_configs: dict = {
        const: cto.coreml.OpPalettizerConfig(
            mode="custom", weight_threshold=1,
            lut_function=_grid_lut(qparams[layer].weight_scale, qparams[layer].weight_qmin, qparams[layer].w_bits))
        for const, layer in learned.items()}
    if op_configs:
        mlmodel = cto.coreml.palettize_weights(mlmodel, cto.coreml.OptimizationConfig(op_name_configs=op_configs))
    int8_layers = others if quantize_rest else []
    if int8_layers:
        config = cto.coreml.OptimizationConfig(op_name_configs={
            n: cto.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", weight_threshold=1)
            for n in int8_layers})
        mlmodel = cto.coreml.linear_quantize_weights(mlmodel, config)
    stage("save")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        mlmodel.save(str(tmp / path.name))
        stage("reload and compare decompressed weights")
        consts = _decompressed_consts(tmp / path.name)
        # palettization renames a const NAME to NAME_palettized
        bad = [n for n, w in trained.items()
               if not np.array_equal(consts.get(n + "_palettized", consts.get(n)), w)]
        if bad:
            raise RuntimeError(f"decompressed Core ML weights differ from the trained ones: {bad[:4]}")
        exact = not bad
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        (tmp / path.name).rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    palettized = {n: len(np.unique(w)) for n, w in trained.items()}
    return CoreMLExport(path, package_bytes(path), palettized, int8_layers, bool(trained) and exact)
