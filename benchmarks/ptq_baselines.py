"""PTQ baselines for QuantSR+: IMDN x4 (public weights), body quantized at W4A4 / W3A3 / W2A2 with each PTQ
method, 8 calibration batches of 8 T91 patches (LR 48), evaluated on Set5 (PSNR-Y). Every QAT number in the
README has these beside it.

    .venv/bin/python benchmarks/ptq_baselines.py [--model imdn] [--bits 4 3 2]   # ~10 min on 2 cores per granularity

``--granularity per_tensor per_channel per_channel_oriented`` compares weight-step granularities (one table per
granularity; each row also records the summed squared weight error).
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

from quantsr import evaluate
from quantsr.artifacts.atomic import write_text_atomic
from quantsr.checkpoints.load import load_model
from quantsr.data.datasets import PatchDataset, default_data_root
from quantsr.quant import QuantSRConfig
from quantsr.quant.ptq import PTQ_METHODS, calibration_batches, ptq_, weight_quant_error
from quantsr.quant.quantizers import WEIGHT_GRANULARITIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="imdn")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 3, 2])
    parser.add_argument("--granularity", nargs="+", default=["per_tensor"], choices=WEIGHT_GRANULARITIES,
                        help="weight-step granularities to compare (default: the paper's, per tensor)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ptq_baselines.json"))
    args = parser.parse_args()
    fp = load_model(model=args.model, scale=args.scale)
    data = PatchDataset([default_data_root() / "train" / "T91"], scale=args.scale, lr_patch=48, batch_size=8)
    calib = list(calibration_batches(data, 8))
    fp_psnr = evaluate(fp, ["Set5"], args.scale, progress=False, ssim=False)["Set5"].psnr
    rows = [{"bits": 32, "method": "fp", "psnr": fp_psnr}]
    print(f"FP {fp_psnr:.3f}", flush=True)
    for granularity in args.granularity:
        for bits in args.bits:
            for method in PTQ_METHODS:
                start = time.perf_counter()
                config = QuantSRConfig(bits, bits, weight_granularity=granularity)
                model = ptq_(copy.deepcopy(fp), config, calib, method)
                psnr = evaluate(model, ["Set5"], args.scale, progress=False, ssim=False)["Set5"].psnr
                rows.append({"bits": bits, "method": method, "granularity": granularity, "psnr": psnr,
                             "weight_error": weight_quant_error(model)})
                print(f"W{bits}A{bits} {granularity} {method:<10} {psnr:.3f} dB "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    write_text_atomic(json.dumps({"model": args.model, "scale": args.scale, "rows": rows}, indent=1), args.out)
    for granularity in args.granularity:
        print(f"\n{granularity}\n| bits | " + " | ".join(PTQ_METHODS) + " |")
        print("|---|" + "---|" * len(PTQ_METHODS))
        for bits in args.bits:
            cells = [f"{r['psnr']:.2f}" for m in PTQ_METHODS for r in rows
                     if r.get("granularity") == granularity and r["bits"] == bits and r["method"] == m]
            print(f"| W{bits}A{bits} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
