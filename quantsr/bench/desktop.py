"""``quantsr bench``: one architecture, its deployment variants timed interleaved in one run.

Variants: eager fp32 PyTorch (the FP teacher), ``.pte`` fp32, the QAT model's ``.pte`` with fp32 glue (learned
qparams, convs dynamically quantized), static all-int8 ``.pte`` files (checked code for code against their
integer-faithful models): the teacher's int8 PTQ, the QAT model's and, with ``--program``, its fine-tuned
program; and, when onnxruntime is installed (``pip install onnxruntime onnxscript``),
ONNX Runtime fp32 and int8 QDQ. For each: median latency and output megapixels/s at each input size, peak RSS
of the process while it ran, file bytes, gzip bytes, ideal packed bytes (weights at their bit-width), Set5 PSNR.
Rounds go variant by variant inside each round, so machine noise hits all variants alike.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from quantsr.bench.rows import BenchRow

__all__ = ["BenchRow", "Variant", "bench", "ideal_packed_bytes"]


@dataclass
class Variant:
    name: str
    run: Callable[[torch.Tensor], torch.Tensor]
    file: Path | None = None
    ideal_bytes: int | None = None
    set5_psnr: float | None = None


def ideal_packed_bytes(model: nn.Module) -> int:
    """Weights at their bit-width (b-bit levels of quantized layers, 32 bits otherwise) plus 32-bit biases and
    quantizer scales: what a perfectly packed file would hold."""
    from quantsr.bench.pareto import model_ideal_bytes

    return model_ideal_bytes(model, rest_weight_bits=32)


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def bench(variants: Sequence[Variant], sizes: Sequence[int], scale: int, rounds: int = 5,
          progress: Callable[[str], None] = lambda s: None) -> list[BenchRow]:
    """Time every variant at every input size (``rounds`` interleaved rounds after one warm-up each)."""
    from quantsr.artifacts.digest import gzip_bytes

    samples: dict[tuple[str, int], list[float]] = {(v.name, s): [] for v in variants for s in sizes}
    rss: dict[str, float] = {}
    inputs = {s: torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(s)) for s in sizes}
    with torch.no_grad():
        for v in variants:
            for s in sizes:
                v.run(inputs[s])  # warm-up (also loads lazily-initialised kernels)
            rss[v.name] = _rss_mb()
        for r in range(rounds):
            progress(f"round {r + 1}/{rounds}")
            for s in sizes:
                for v in variants:
                    start = time.perf_counter()
                    v.run(inputs[s])
                    samples[(v.name, s)].append(1000.0 * (time.perf_counter() - start))
    rows = []
    for v in variants:
        for s in sizes:
            ms = statistics.median(samples[(v.name, s)])
            mp = (s * scale) ** 2 / 1e6 / (ms / 1000.0)
            files = [] if v.file is None else _artifact_files(v.file)
            size = sum(f.stat().st_size for f in files) if files else None
            gz = sum(gzip_bytes(f) for f in files) if files else None
            rows.append(BenchRow(v.name, f"{s}x{s}", round(ms, 2), round(mp, 3), size, gz, v.ideal_bytes,
                                 v.set5_psnr, round(rss[v.name], 1), [round(x, 2) for x in samples[(v.name, s)]]))
    return rows


def _artifact_files(path: Path) -> list[Path]:
    """The file and its sidecar: torch.onnx writes large weights to ``<name>.onnx.data`` beside the graph."""
    sidecar = path.with_name(path.name + ".data")
    return [p for p in (path, sidecar) if p.is_file()]


def table(rows: Sequence[BenchRow]) -> str:
    """Markdown table of :func:`bench` rows; "speedup" is the first variant's median (eager fp32 in
    :func:`deploy_variants`) over this one's, at the same input size."""
    head = ("| variant | input | median ms | speedup | out MP/s | file bytes | gzip bytes | ideal bytes | Set5 PSNR | "
            "RSS MB |\n|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda x, f="{:,}": "—" if x is None else f.format(x)  # noqa: E731
    reference: dict[str, float] = {}
    for r in rows:
        reference.setdefault(r.input, r.median_ms)
    lines = [f"| {r.variant} | {r.input} | {r.median_ms:.1f} | {reference[r.input] / r.median_ms:.2f}x | "
             f"{r.megapixels_per_s:.2f} | {fmt(r.bytes)} | {fmt(r.gzip_bytes)} | {fmt(r.ideal_bytes)} | "
             f"{fmt(r.set5_psnr, '{:.3f}')} | {r.rss_mb:.0f} |"
             for r in rows]
    return "\n".join([head, *lines])


def rows_to_json(rows: Sequence[BenchRow]) -> list[dict]:
    return [asdict(r) for r in rows]


def deploy_variants(checkpoint: str | Path, out_dir: str | Path, *, teacher: nn.Module | None = None,
                    with_set5: bool = True, calibration_side: int = 64, reuse: bool = False,
                    program: str | Path | None = None,
                    progress: Callable[[str], None] = lambda s: None) -> tuple[list[Variant], int]:
    """Build (export, load, score) the variants of one QAT checkpoint and its FP teacher (default: the public
    weights of the same architecture), or of an FP checkpoint alone (public weights too: eager, fp32 and int8 PTQ
    .pte, ONNX Runtime). Returns them and the scale. ``reuse``: keep the files and Set5 scores an earlier run left
    in ``out_dir`` (exports take minutes; time them again on a quiet machine without redoing them); scores are
    reused only for files whose sha256 is unchanged. ``program``: a fine-tuned int8 program of the QAT
    checkpoint (``benchmarks/int8_finetune.py``), timed as one more static int8 variant."""
    from quantsr.bench.pareto import model_ideal_bytes
    from quantsr.checkpoints.load import load_model, load_model_and_info
    from quantsr.export.int8_program import export_int8_program, load_program, static_int8_graph
    from quantsr.export.pipeline import calibration_inputs
    from quantsr.export.pt2e_quantizer import recommended_int8_config
    from quantsr.export.pte import export_pte
    from quantsr.runtime.pte import PteModule
    from quantsr.runtime.upscale import min_side_of

    student, info = load_model_and_info(checkpoint)
    scale = info.scale
    if info.recipe is None:  # an FP model: it is its own teacher, and there is no QAT variant
        teacher = student
    elif teacher is None:
        teacher = load_model(model=info.model, scale=scale, model_kwargs=info.model_kwargs)
    out_dir = Path(out_dir)
    calib = calibration_inputs(scale, calibration_side)
    variants = [Variant("eager fp32", teacher.eval(), None, ideal_packed_bytes(teacher))]
    specs = [("pte fp32", teacher, {"quant": "fp32"}),
             ("pte QAT (dynamic)", student, {"quant": "learned", "activations": "dynamic"})]
    if info.recipe is None:
        specs = specs[:1]
    for name, model, kwargs in specs:
        path = out_dir / (name.replace(" ", "_").replace("(", "").replace(")", "") + ".pte")
        if reuse and path.exists():
            progress(f"reuse {path}")
        else:
            progress(f"export {name}")
            export_pte(model, path, input_size=(3, calibration_side, calibration_side), dynamic=True, **kwargs)
        variants.append(Variant(name, PteModule(path), path, ideal_packed_bytes(model)))
    # static all-int8 programs, checked code for code against their integer-faithful models: the int8 PTQ of the
    # FP net (the baseline every low-bit model must beat), the QAT model's, and its fine-tuned program
    # (the teacher's PTQ with the library's recommended settings for its architecture, as benchmarks/pareto.py
    # scores it: SPAN gets one conv per concat branch)
    statics = [("pte int8 PTQ", teacher, None, recommended_int8_config(info.model, scale))]
    if info.recipe is not None:  # a QAT model keeps its learned qparams: no PTQ settings
        statics.append(("pte QAT static int8", student, None, None))
        if program is not None:
            statics.append(("pte QAT static int8 fine-tuned", student, program, None))
    for name, model, program_file, ptq in statics:
        path = out_dir / (name.replace(" ", "_") + ".pte")
        if reuse and path.exists():
            progress(f"reuse {path}")
        else:
            progress(f"export {name}")
            converted = static_int8_graph(model, calib, min_side=min_side_of(model), ptq=ptq)
            if program_file is not None:
                converted = load_program(program_file, converted)
            export_int8_program(converted, path, min_side=min_side_of(model))
        # a PTQ program stores every weight at 8 bits; a QAT one its learned bits (and fp32 where it kept fp32)
        ideal = model_ideal_bytes(model, 8) if ptq is not None else ideal_packed_bytes(model)
        variants.append(Variant(name, PteModule(path), path, ideal))
    variants.extend(_onnx_variants(teacher, out_dir, calib, progress, reuse))
    if with_set5:
        _score_set5(variants, scale, out_dir / "set5_psnr.json", reuse, progress)
    return variants, scale


def _score_set5(variants: list[Variant], scale: int, cache_path: Path, reuse: bool,
                progress: Callable[[str], None]) -> None:
    import json

    from quantsr.artifacts.atomic import write_text_atomic
    from quantsr.artifacts.digest import file_digest
    from quantsr.export.pipeline import ArtifactModule, set5_psnr

    cache = json.loads(cache_path.read_text()) if reuse and cache_path.exists() else {}
    for v in variants:
        key = f"{v.name} {file_digest(v.file) if v.file else 'eager'}"
        if key not in cache:
            progress(f"Set5 PSNR of {v.name}")
            cache[key] = round(set5_psnr(v.run if isinstance(v.run, nn.Module) else ArtifactModule(v.run), scale), 3)
        v.set5_psnr = cache[key]
    write_text_atomic(json.dumps(cache, indent=1), cache_path)


def _onnx_variants(model: nn.Module, out_dir: Path, calib: list[torch.Tensor],
                   progress: Callable[[str], None], reuse: bool = False) -> list[Variant]:
    try:
        import onnxruntime as ort
    except ImportError:
        progress("onnxruntime not installed: skipping the ONNX Runtime variants (pip install onnxruntime onnxscript)")
        return []
    import numpy as np

    fp_path, pre_path, q_path = out_dir / "model_fp32.onnx", out_dir / "model_pre.onnx", out_dir / "model_int8.onnx"
    if reuse and fp_path.exists() and q_path.exists():
        progress(f"reuse {fp_path} and {q_path}")
    else:
        progress("export ONNX")
        _export_onnx(model, fp_path, pre_path, q_path, calib)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    # ORT's worker threads spin-wait after each run by default; interleaved with the other variants that steals
    # their cores (measured, IMDN x4 at 256 px: eager PyTorch 2242 ms with spinning ORT sessions alive, 1057 ms
    # without).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    out = []
    for name, path in (("onnxruntime fp32", fp_path), ("onnxruntime int8 QDQ", q_path)):
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(x: torch.Tensor, session=session) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {"lr": np.ascontiguousarray(x.numpy())})[0])

        out.append(Variant(name, run, path, None))
    return out


def _export_onnx(model: nn.Module, fp_path: Path, pre_path: Path, q_path: Path, calib: list[torch.Tensor]) -> None:
    """fp32 ONNX with dynamic H/W, and its int8 QDQ form (per-channel weights, activations calibrated on calib)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    h, w = torch.export.Dim("h", min=8, max=1024), torch.export.Dim("w", min=8, max=1024)
    torch.onnx.export(model, (torch.rand(1, 3, 64, 64),), str(fp_path), dynamo=True, input_names=["lr"],
                      output_names=["sr"], dynamic_shapes=({2: h, 3: w},))
    quant_pre_process(str(fp_path), str(pre_path))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"lr": x.numpy()} for batch in calib for x in batch.split(1)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(pre_path), str(q_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
