"""Does ``cpu_upscale``'s tiling change the result? Set5 and Set14 x4 through the embedded ``.pte`` (the product
path: ExecuTorch runtime, uint8 stitching) run whole and in tiles, PSNR-Y against HR (4-pixel border crop).

    .venv/bin/python benchmarks/upscale_tiling.py [--bits 4] [--tiles 128 64 48] [--overlap 16]

IMDN's contrast channel attention pools over whatever it is given, so a tile sees statistics of its own
neighbourhood, not of the whole image: tiled and whole results differ slightly. The default tile (256) runs every
Set5/Set14 LR image whole; smaller tiles show the error a large photo gets.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from quantsr.artifacts.atomic import write_text_atomic
from quantsr.artifacts.embedded import default_model_path
from quantsr.data.datasets import BenchmarkSet
from quantsr.eval.metrics import calculate_psnr
from quantsr.runtime.upscale import count_tiles, cpu_upscale, load_runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--tiles", type=int, nargs="+", default=[128, 64, 48])
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "upscale_tiling.json"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model = default_model_path(4, args.bits)
    runner = load_runner(model)
    rows = []
    for set_name in ("Set5", "Set14"):
        images = list(BenchmarkSet.from_name(set_name, 4))
        whole = [calculate_psnr(cpu_upscale(im.lr, 4, runner, tile=288), im.hr, 4) for im in images]
        for tile in args.tiles:
            tiled = [calculate_psnr(cpu_upscale(im.lr, 4, runner, tile=tile, overlap=args.overlap), im.hr, 4)
                     for im in images]
            deltas = [t - w for t, w in zip(tiled, whole)]
            tiles = [count_tiles((im.lr.shape[1], im.lr.shape[0]), tile, args.overlap) for im in images]
            row = {"model": model.name, "set": set_name, "tile": tile, "overlap": args.overlap,
                   "whole_psnr": sum(whole) / len(whole), "tiled_psnr": sum(tiled) / len(tiled),
                   "mean_delta_db": sum(deltas) / len(deltas), "max_image_abs_db": max(map(abs, deltas)),
                   "tiles_per_image": [min(tiles), max(tiles)]}
            rows.append(row)
            print(f"{set_name:<6} tile {tile:>4}: whole {row['whole_psnr']:.4f}  tiled {row['tiled_psnr']:.4f}  "
                  f"mean Δ {row['mean_delta_db']:+.4f} dB, worst image |Δ| {row['max_image_abs_db']:.4f} dB "
                  f"({min(tiles)}-{max(tiles)} tiles)", flush=True)
    write_text_atomic(json.dumps(rows, indent=1), args.out)


if __name__ == "__main__":
    main()
