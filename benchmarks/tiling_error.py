"""How far tiled inference is from whole-image inference, per model: the largest per-image |ΔPSNR| and the
per-set mean ΔPSNR on Set5 and Set14 (x4, public weights).

    .venv/bin/python benchmarks/tiling_error.py [--models span imdn rfdn rlfn] [--tile 48] [--overlap 32]

Local networks (SPAN, CARN-M, EDSR...) give identical results once the overlap exceeds their receptive radius;
IMDN (global CCA statistics) and RFDN/RLFN (ESA pooling + interpolation) do not.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from quantsr import evaluate
from quantsr.artifacts.atomic import write_text_atomic
from quantsr.checkpoints.load import load_model
from quantsr.data.datasets import BenchmarkSet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["span", "imdn", "rfdn", "rlfn"])
    parser.add_argument("--tile", type=int, default=48)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tiling_error.json"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the non-local models warn about exactly what this script measures
    rows = []
    for name in args.models:
        model = load_model(model=name, scale=4)
        sets = [BenchmarkSet.from_name("Set5", 4), BenchmarkSet.from_name("Set14", 4)]
        whole = evaluate(model, sets, 4, progress=False, ssim=False)
        tiled = evaluate(model, sets, 4, tile=args.tile, overlap=args.overlap, progress=False, ssim=False)
        for a, b in zip(whole.sets, tiled.sets):
            worst = max(abs(x.psnr - y.psnr) for x, y in zip(a.images, b.images))
            rows.append({"model": name, "set": a.name, "tile": args.tile, "overlap": args.overlap,
                         "max_image_abs_db": worst, "mean_delta_db": b.psnr - a.psnr})
            print(f"{name:<6} {a.name:<6} max |Δ| per image {worst:.4f} dB, set mean Δ {b.psnr - a.psnr:+.4f} dB",
                  flush=True)
    write_text_atomic(json.dumps(rows, indent=1), args.out)


if __name__ == "__main__":
    main()
