"""GPTQ weights in int8 PTQ (issue 14): each public model's static int8 PT2E program with its conv weights rounded
to nearest (stock) and by GPTQ (``Int8PTQConfig(weight_rounding="gptq")``, ``quantsr/quant/gptq.py``), every
other setting the library's recommended one, scored as the eager converted graph (the reference the ``.pte`` is
checked against code for code) on the sets given. Also times the GPTQ pass itself. ``--equalize A ...`` adds
arms with activation equalization (``Int8PTQConfig(act_equalization=A)``, ``quantsr/quant/equalize.py``) before
GPTQ, named ``gptq_eq{A}`` (``0``: none); the rounding arms keep the recommended equalization.
``--output-grid`` gives every arm a twin ``{arm}_grid`` whose output is quantized on the 8-bit image grid
(``Int8PTQConfig(output_image_grid=True)``) instead of a calibrated range.

    .venv/bin/python benchmarks/int8_gptq.py --sets Set5 Set14 B100
    .venv/bin/python benchmarks/int8_gptq.py --only fsrcnn --scales 2 --sets Set5
    .venv/bin/python benchmarks/int8_gptq.py --roundings --equalize 0 0.5 1.0 --sets Set5 Set14 \
        --out benchmarks/results/int8_equalize.json
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from quantsr.artifacts.atomic import write_text_atomic
from quantsr.checkpoints.load import load_model
from quantsr.eval.evaluate import evaluate
from quantsr.export.int8_program import static_int8_graph
from quantsr.export.pipeline import ArtifactModule, calibration_inputs
from quantsr.export.pt2e_quantizer import WEIGHT_ROUNDINGS, recommended_int8_config
from quantsr.models.weights import public_checkpoints
from quantsr.runtime.upscale import min_side_of

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="public model names (default: all)")
    parser.add_argument("--scales", type=int, nargs="+", default=[4, 2])
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14", "B100"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--roundings", nargs="*", default=["nearest", "gptq"], choices=WEIGHT_ROUNDINGS)
    parser.add_argument("--equalize", type=float, nargs="*", default=[],
                        help="activation-equalization strengths, each an extra arm with GPTQ rounding")
    parser.add_argument("--output-grid", action="store_true",
                        help="also each arm with its output on the 8-bit image grid (arm name + _grid)")
    parser.add_argument("--min-weight-step", type=float, default=2**-12,
                        help="the weight observers' eps, both arms (stock 2^-12)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "int8_gptq.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    rows = json.loads(out.read_text())["rows"] if out.is_file() else []
    for ckpt in public_checkpoints():
        if args.only and ckpt.model not in args.only:
            continue
        for scale in sorted(set(ckpt.scales) & set(args.scales), reverse=True):
            fp = load_model(model=ckpt.model, scale=scale).eval()
            row = {"model": ckpt.model, "scale": scale, "min_weight_step": args.min_weight_step,
                   "fp32": {s.name: round(s.psnr, 3) for s in evaluate(fp, args.sets, scale, progress=False,
                                                                         ssim=False).sets}}
            calib = calibration_inputs(scale, 64)
            recommended = recommended_int8_config(ckpt.model, scale)
            # the rounding arms keep the recommended equalization; --equalize arms set their own (0 = off)
            arms = [(rounding, recommended.act_equalization, rounding) for rounding in args.roundings]
            arms += [("gptq", alpha or None, f"gptq_eq{alpha:g}") for alpha in args.equalize]
            grids = (False, True) if args.output_grid else (False,)
            for (rounding, alpha, base), grid in ((a, g) for a in arms for g in grids):
                arm = f"{base}_grid" if grid else base
                config = replace(recommended, weight_rounding=rounding, min_weight_step=args.min_weight_step,
                                 act_equalization=alpha, output_image_grid=grid)
                start = time.perf_counter()
                converted = static_int8_graph(fp, calib, ptq=config, max_side=400, min_side=min_side_of(fp))
                row[f"{arm}_build_seconds"] = round(time.perf_counter() - start, 1)
                result = evaluate(ArtifactModule(lambda x, c=converted: c(x)), args.sets, scale, progress=False,
                                  ssim=False)
                row[arm] = {s.name: round(s.psnr, 3) for s in result.sets}
            print(json.dumps(row), flush=True)
            rows = [r for r in rows if (r["model"], r["scale"], r.get("min_weight_step")) != (
                ckpt.model, scale, args.min_weight_step)] + [row]
            write_text_atomic(json.dumps({"sets": args.sets, "rows": rows}, indent=1), out)


if __name__ == "__main__":
    main()
