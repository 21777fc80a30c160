"""Peak memory of ``quantsr upscale`` on a large photo: a 4000x3000 JPEG (made from a committed sample by bicubic
resize, then saved at quality 90) upscaled x4 to 16000x12000 by the command-line tool in a child process, whose
resident set (with its children) is sampled with psutil every 50 ms.

    .venv/bin/python benchmarks/upscale_memory.py [--size 4000 3000] [--bits 4] [--format png] [--model X.pte]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from PIL import Image

from quantsr.artifacts.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parent.parent


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=[4000, 3000], metavar=("W", "H"))
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--format", default="png", choices=["png", "jpg"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "upscale_memory.json"))
    parser.add_argument("--model", default=None, help="a .pte instead of the embedded model (e.g. another max_side)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "large.jpg"
        Image.open(ROOT / "examples" / "chelsea.png").convert("RGB").resize(tuple(args.size), Image.BICUBIC).save(
            src, quality=90)
        dst = Path(tmp) / f"large_x4.{args.format}"
        cmd = [sys.executable, "-m", "quantsr", "upscale", str(src), str(dst), "--bits", str(args.bits)]
        cmd += ["--model", args.model] if args.model else []
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        proc, peak = psutil.Process(child.pid), 0
        while child.poll() is None:
            peak = max(peak, tree_rss(proc))
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        output = child.stdout.read()
        if child.returncode != 0:
            sys.exit(f"quantsr upscale failed ({child.returncode}):\n{output}")
        Image.MAX_IMAGE_PIXELS = None  # the output is 192 MP: PIL's decompression-bomb guard would refuse to read it
        with Image.open(dst) as im:
            out_size = im.size
        row = {"input": list(args.size), "output": list(out_size), "bits": args.bits, "format": args.format,
               "model": args.model or "embedded",
               "peak_rss_mb": peak / 2**20, "seconds": seconds, "output_bytes": dst.stat().st_size,
               "command": " ".join(["quantsr", *cmd[3:]])}
    print(f"{args.size[0]}x{args.size[1]} -> {out_size[0]}x{out_size[1]}: peak RSS {row['peak_rss_mb']:.0f} MiB, "
          f"{seconds:.0f} s")
    write_text_atomic(json.dumps(row, indent=1), args.out)


if __name__ == "__main__":
    main()
