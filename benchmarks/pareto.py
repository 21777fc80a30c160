"""The size/quality frontier (issue 14): every public model in ../shared/weights at FP32 and as its int8 PTQ
`.pte` (PT2E static int8, XNNPACK: the path a user of stock ExecuTorch takes, with the library's calibration), and
its int8 program fitted to the FP model where ``checkpoints/int8/<model>_x<scale>.pt`` holds one (the same graph,
its weights, and its activation scales if the fit trained them, trained integer-faithfully against the FP net),
every low-bit model as shipped (its static int8 `.pte`), on Set5, Set14, B100 (and any HR folder given with
``--data``): PSNR/SSIM of the artifact itself, ideal stored bytes, real `.pte` and gzip bytes. Writes a JSON of
points, a Markdown table (``*`` marks the frontier of each set) and one PNG plot per scale.

    .venv/bin/python benchmarks/pareto.py                        # x4 and x2, ~60 min on 2 cores
    .venv/bin/python benchmarks/pareto.py --scales 4 --only imdn rlfn --reuse

Points already in ``--out`` with the same key (name, scale, form, int8 config) are kept with ``--reuse``, so an
interrupted run continues where it stopped, and a run restricted by ``--only`` / ``--scales`` keeps the others.
int8 programs are checked code for code against their integer-faithful model when written
(``export_int8_program``); their eager score is the PT2E reference graph.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

from quantsr.artifacts.atomic import write_text_atomic
from quantsr.artifacts.digest import file_digest, gzip_bytes
from quantsr.bench.pareto import ParetoPoint, markdown_table, merge_reused, model_ideal_bytes, plot
from quantsr.checkpoints.load import load_model, load_model_and_info
from quantsr.data.datasets import BenchmarkSet
from quantsr.eval.evaluate import evaluate
from quantsr.export.int8_program import export_int8_program, load_program, static_int8_graph
from quantsr.export.pipeline import ArtifactModule, calibration_inputs
from quantsr.export.pt2e_quantizer import Int8PTQConfig, recommended_int8_config
from quantsr.models.weights import public_checkpoints
from quantsr.runtime.pte import PteModule
from quantsr.runtime.upscale import min_side_of

ROOT = Path(__file__).resolve().parent.parent
SETS = ("Set5", "Set14", "B100")
MAX_SIDE = 400  # the largest LR side of Set5/Set14/B100 at x2 is 360: every image runs whole
# committed checkpoints/<name>.pt, with their fine-tuned *_int8.pt programs where they exist
LOW_BIT = ("imdn_x4_w4a4", "imdn_x4_w2a2", "span_x4_w4a8", "span_x4_w2a8", "imdn_x2_w4a8", "carn_m_x4_w4a8",
           "carn_m_x4_w2a8", "carn_m_x2_w4a8")
COREML_SIZES = ROOT / "benchmarks" / "results" / "coreml_sizes.json"
# int8 programs of public models fitted to their FP model (benchmarks/int8_finetune.py), <model>_x<scale>.pt
FITTED_INT8 = ROOT / "checkpoints" / "int8"


def with_coreml_size(point: ParetoPoint, sizes: dict[str, int]) -> ParetoPoint:
    """The point with the bytes of its weight-only Core ML package (``exported/<name>.mlpackage``: FP32, or the
    learned weights palettized to their levels) from ``sizes``, what ``benchmarks/build_assets.py`` recorded in
    ``benchmarks/results/coreml_sizes.json``; int8 PTQ models have none."""
    form = {"fp32": "fp32", "low-bit": point.name.split()[-1].lower()}.get(point.kind)
    if form is not None and point.mlpackage_bytes is None:
        point.mlpackage_bytes = sizes.get(f"{point.model}_x{point.scale}_{form}")
    return point


def scores(run, sets: list[BenchmarkSet], scale: int, ssim: bool = True) -> tuple[dict, dict]:
    # converted PT2E graphs refuse .eval(), so every runner is called through a closure
    result = evaluate(ArtifactModule(lambda x: run(x)), sets, scale, progress=False, ssim=ssim)
    return ({s.name: round(s.psnr, 4) for s in result.sets},
            {s.name: round(s.ssim, 5) for s in result.sets} if ssim else {})


def _first_line(error: Exception, limit: int) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:limit]


def fp32_point(name: str, fp: torch.nn.Module, scale: int, sets) -> ParetoPoint:
    return ParetoPoint(name, "fp32", name, scale, model_ideal_bytes(fp, 32), *scores(fp, sets, scale))


def int8_point(name: str, fp: torch.nn.Module, scale: int, config: Int8PTQConfig, sets, out_dir: Path,
               calibration_batches: int, program: Path | None = None) -> ParetoPoint:
    """The int8 PTQ ``.pte`` of a public model; with ``program``, the same graph with that program file's fitted
    constants and activation scales (benchmarks/int8_finetune.py on the FP model)."""
    calib = calibration_inputs(scale, 64, calibration_batches)
    converted = static_int8_graph(fp, calib, ptq=config, max_side=MAX_SIDE, min_side=min_side_of(fp))
    label, suffix, note = f"{name} int8", "", "checked code for code against its integer-faithful model"
    if program is not None:
        converted = load_program(program, converted)
        meta = torch.load(program, map_location="cpu", weights_only=False)["metadata"]
        label, suffix = f"{name} int8 fitted", "_fitted"
        scales = "weights and activation scales" if meta["recipe"].get("scale_lr") else "weights"
        note = (f"int8 PTQ program, {scales} fitted to the FP model ({meta.get('kept', 'best')} state: iteration "
                f"{meta['best_iteration']}, {meta['train_seconds_all_stages'] / 60:.1f} training min in all, "
                f"{program.name}); {note}")
    eager, _ = scores(converted, sets, scale, ssim=False)
    path = out_dir / f"{name}_x{scale}_int8{suffix}.pte"
    try:
        try:
            export_int8_program(converted, path, max_side=MAX_SIDE, min_side=min_side_of(fp))
        except NotImplementedError as e:  # an op the integer-faithful model cannot express: score the file alone
            export_int8_program(converted, path, max_side=MAX_SIDE, min_side=min_side_of(fp), verify=False)
            note = f"not checked code for code ({_first_line(e, 120)})"
        psnr, ssim = scores(PteModule(path), sets, scale)
        pte_bytes, gz = path.stat().st_size, gzip_bytes(path)
    except RuntimeError as e:  # XNNPACK refused the program: only the eager PT2E graph has a score
        note, psnr, ssim, pte_bytes, gz = f"no working .pte: {_first_line(e, 200)}", {}, {}, None, None
    return ParetoPoint(label, "int8", name, scale, model_ideal_bytes(fp, 8), psnr, ssim, eager,
                       pte_bytes, gz, note=note)


def low_bit_point(name: str, sets_for, out_dir: Path) -> ParetoPoint:
    ckpt = ROOT / "checkpoints" / f"{name}.pt"
    model, info = load_model_and_info(ckpt)
    sets = sets_for(info.scale)
    eager, _ = scores(model, sets, info.scale, ssim=False)
    program = ROOT / "checkpoints" / f"{name}_int8.pt"
    converted = static_int8_graph(model, calibration_inputs(info.scale, 64), max_side=MAX_SIDE,
                                  min_side=min_side_of(model))
    note = "static int8 program (head/tail int8), fine-tuned integer-faithful"
    if program.exists():
        converted = load_program(program, converted)
    else:  # no fine-tuned program yet: the calibrated static int8 graph of the QAT model as it is
        note = "static int8 program (head/tail int8), not fine-tuned"
    path = out_dir / f"{name}.pte"
    export_int8_program(converted, path, max_side=MAX_SIDE, min_side=min_side_of(model))
    psnr, ssim = scores(PteModule(path), sets, info.scale)
    bits = f"W{info.recipe.w_bits}A{info.recipe.a_bits}" if info.recipe is not None else ""
    return ParetoPoint(f"{info.model} {bits}", "low-bit", info.model, info.scale, model_ideal_bytes(model, 8), psnr,
                       ssim, eager, path.stat().st_size, gzip_bytes(path), note=note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[4, 2])
    parser.add_argument("--only", nargs="*", help="public model names (default: all)")
    parser.add_argument("--low-bit", nargs="*", default=list(LOW_BIT), help="committed checkpoints/<name>.pt")
    parser.add_argument("--data", nargs="*", default=[], help="extra HR folders (LR made by bicubic downscaling)")
    parser.add_argument("--int8", choices=("stock", "recommended"), default="recommended",
                        help="stock ExecuTorch PT2E settings, or the library's per-model recommendation")
    parser.add_argument("--calibration-batches", type=int, default=8, help="batches of 4 T91 crops (64 px LR)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="keep the points already in --out")
    parser.add_argument("--redo", nargs="*", default=[],
                        help="with --reuse, recompute the points of these models (public or low-bit names)")
    parser.add_argument("--work-dir", default=str(ROOT / "runs" / "pareto"), help="where the .pte files go")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pareto.json"))
    args = parser.parse_args()
    if args.redo and not args.reuse:
        parser.error("--redo recomputes some points of a --reuse run; add --reuse (without it all are computed)")
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.export's pytree deprecations, per node
    torch.set_num_threads(args.threads)
    out_dir = Path(args.work_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    cached = {}
    if args.reuse and out.exists():
        cached = {p["key"]: p for p in json.loads(out.read_text())["points"]}
    names = list(SETS) + [Path(d).name for d in args.data]

    def sets_for(scale: int) -> list[BenchmarkSet]:
        return [BenchmarkSet.from_name(s, scale) for s in SETS] + [BenchmarkSet(d, scale) for d in args.data]

    points: dict[str, dict] = {}
    failures: dict[str, str] = {}

    def keep(key: str, make, *make_args) -> None:
        if any(key.startswith(f"{name} ") for name in args.redo):
            cached.pop(key, None)  # a redo that fails must not leave the old point in the table
        if key in cached:
            points[key] = cached[key]
            return
        start = time.perf_counter()
        try:
            point = make(*make_args).to_dict()
        except Exception as e:  # one model's failure is a finding to report, not the end of the run
            failures[key] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}" if str(e) else type(e).__name__
            print(f"{key}: FAILED {failures[key]}", flush=True)
            save(points)
            return
        point["key"] = key
        point["seconds"] = round(time.perf_counter() - start, 1)
        points[key] = point
        print(f"{key}: {point['psnr']} ({point['seconds']:.0f} s)", flush=True)
        save(points)

    def save(points: dict[str, dict]) -> None:
        write_text_atomic(json.dumps({"sets": names, "points": list(merge_reused(cached, points).values()),
                                      "failures": failures}, indent=1), out)

    for ckpt in public_checkpoints():
        if args.only and ckpt.model not in args.only:
            continue
        for scale in sorted(set(ckpt.scales) & set(args.scales), reverse=True):
            fp = load_model(model=ckpt.model, scale=scale).eval()
            sets = sets_for(scale)
            keep(f"{ckpt.model} x{scale} fp32", fp32_point, ckpt.model, fp, scale, sets)
            config = Int8PTQConfig() if args.int8 == "stock" else recommended_int8_config(ckpt.model, scale)
            keep(f"{ckpt.model} x{scale} int8 {config}", int8_point, ckpt.model, fp, scale, config, sets, out_dir,
                 args.calibration_batches)
            program = FITTED_INT8 / f"{ckpt.model}_x{scale}.pt"
            if program.is_file() and args.int8 == "recommended":  # fitted on the recommended graph
                # a refitted file is a new point; the calibrated start's numbers (weight rounding, scales) do
                # not matter, the file sets them all, but its graph (the concat split) does
                digest = file_digest(program)[:12]
                keep(f"{ckpt.model} x{scale} int8 fitted {digest} split_concat={config.split_concat_convs}",
                     int8_point, ckpt.model, fp, scale, config, sets, out_dir, args.calibration_batches, program)
    for name in args.low_bit:
        keep(f"{name} low-bit", low_bit_point, name, sets_for, out_dir)
    save(points)
    points = merge_reused(cached, points)
    coreml_sizes = json.loads(COREML_SIZES.read_text()) if COREML_SIZES.is_file() else {}
    table_points = [with_coreml_size(ParetoPoint.from_dict({k: v for k, v in p.items() if k not in ("key", "seconds")}),
                                     coreml_sizes) for p in points.values()]
    table = markdown_table(table_points, names)
    write_text_atomic(table + "\n", out.with_suffix(".md"))
    for scale in sorted({p.scale for p in table_points}, reverse=True):
        plot(table_points, names, out.with_name(f"{out.stem}_x{scale}.png"), scale)
    print(table)


if __name__ == "__main__":
    main()
