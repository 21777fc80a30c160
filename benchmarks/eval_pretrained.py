"""Evaluate every public checkpoint in ../shared/weights on Set5 / Set14 / B100 and compare with the published
figures. Writes benchmarks/results/pretrained.json and prints a Markdown table (pasted into the README).

    .venv/bin/python benchmarks/eval_pretrained.py            # all models (about 15 min on 2 cores)
    .venv/bin/python benchmarks/eval_pretrained.py --only imdn
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from quantsr.artifacts.atomic import write_text_atomic
from quantsr.checkpoints.load import load_model
from quantsr.data.datasets import BenchmarkSet
from quantsr.eval.evaluate import evaluate
from quantsr.models.weights import public_checkpoints

# (model, scale) -> {set: (PSNR, SSIM)} as published (IMDN paper) or measured by the weights' MANIFEST.
PUBLISHED = {
    ("imdn", 2): {"Set5": (38.00, 0.9605), "Set14": (33.63, 0.9177), "B100": (32.19, 0.8996)},
    ("imdn", 3): {"Set5": (34.36, 0.9270), "Set14": (30.32, 0.8417), "B100": (29.09, 0.8046)},
    ("imdn", 4): {"Set5": (32.21, 0.8948), "Set14": (28.58, 0.7811), "B100": (27.56, 0.7353)},
    ("rfdn", 4): {"Set5": (32.16, None)},
    ("rlfn", 4): {"Set5": (32.10, None)},
    ("carn_m", 2): {"Set5": (37.68, None)},
    ("carn_m", 3): {"Set5": (34.06, None)},
    ("carn_m", 4): {"Set5": (31.88, None)},
    ("fsrcnn", 2): {"Set5": (37.10, None)},
    ("fsrcnn", 3): {"Set5": (32.59, None)},
    ("fsrcnn", 4): {"Set5": (30.51, None)},
}
SETS = ("Set5", "Set14", "B100")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="model names to evaluate (default: all)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "pretrained.json"))
    args = parser.parse_args()
    rows = []
    for ckpt in public_checkpoints():
        if args.only and ckpt.model not in args.only:
            continue
        for scale in ckpt.scales:
            model = load_model(model=ckpt.model, scale=scale)
            sets = [BenchmarkSet.from_name(name, scale) for name in SETS]
            sets.append(BenchmarkSet.from_name("Set5", scale, official_lr=True))
            start = time.perf_counter()
            result = evaluate(model, sets, scale, model_name=ckpt.model)
            for s in result.sets:
                ref = PUBLISHED.get((ckpt.model, scale), {}).get(s.name.split(" ")[0], (None, None))
                rows.append({"model": ckpt.model, "scale": scale, "set": s.name, "psnr": s.psnr, "ssim": s.ssim,
                             "published_psnr": ref[0], "published_ssim": ref[1]})
            print(f"{ckpt.model} x{scale}: {time.perf_counter() - start:.0f} s", flush=True)
    write_text_atomic(json.dumps(rows, indent=1), args.out)
    print(markdown_table(rows))


def markdown_table(rows: list[dict]) -> str:
    lines = ["| model | scale | set | PSNR | SSIM | published PSNR / SSIM | ΔPSNR | ΔSSIM |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pub_p, pub_s = r["published_psnr"], r["published_ssim"]
        pub = "—" if pub_p is None else f"{pub_p:.2f}" + (f" / {pub_s:.4f}" if pub_s else "")
        dp = "" if pub_p is None else f"{r['psnr'] - pub_p:+.3f}"
        ds = "" if not pub_s else f"{r['ssim'] - pub_s:+.4f}"
        lines.append(f"| {r['model']} | x{r['scale']} | {r['set']} | {r['psnr']:.3f} | {r['ssim']:.4f} | {pub} | "
                     f"{dp} | {ds} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
