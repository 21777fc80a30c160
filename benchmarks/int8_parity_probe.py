"""How far the static int8 `.pte` of a checkpoint is from PyTorch's models of it, in output uint8 levels: the
integer-faithful model (quantsr.quant.int8_graph, the bar: >= 99% identical, max 2 levels), PT2E's converted
reference graph (quantize/dequantize around fp32 ops, the same qparams) and, for a QAT checkpoint, its fake-quant
model. Also the set PSNR of the `.pte` and of the integer-faithful model (issue 13, docs/integer_faithful.md).

    .venv/bin/python benchmarks/int8_parity_probe.py [checkpoints/imdn_x4_w4a4.pt] [--program FILE_int8.pt]

Writes benchmarks/results/int8_parity_probe.json (or --out).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from quantsr.artifacts.atomic import write_text_atomic
from quantsr.checkpoints.load import load_model_and_info
from quantsr.data.datasets import BenchmarkSet
from quantsr.data.image_io import to_tensor
from quantsr.eval.evaluate import evaluate
from quantsr.export.int8_program import DEFAULT_MAX_SIDE, export_int8_program, load_program, static_int8_graph
from quantsr.export.pipeline import ArtifactModule, calibration_inputs
from quantsr.quant.int8_graph import integer_faithful
from quantsr.runtime.pte import PteModule
from quantsr.runtime.upscale import min_side_of

ROOT = Path(__file__).resolve().parent.parent


def u8(t: torch.Tensor) -> torch.Tensor:
    return t.clamp(0, 1).mul(255).round().to(torch.int16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", default=str(ROOT / "checkpoints" / "imdn_x4_w4a4.pt"))
    parser.add_argument("--program", default=None, help="a fine-tuned program file (benchmarks/int8_finetune.py)")
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "int8_parity_probe.json"))
    args = parser.parse_args()
    model, info = load_model_and_info(args.checkpoint)
    converted = static_int8_graph(model, calibration_inputs(info.scale, 64), min_side=min_side_of(model))
    if args.program:
        converted = load_program(args.program, converted)
    faithful = integer_faithful(converted).eval()
    models = {"integer_faithful": faithful, "pt2e_reference": converted}
    if not args.program:
        models["fake_quant"] = model
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "static.pte"
        export_int8_program(converted, path, min_side=min_side_of(model), min_identical=0.0, max_levels=255)
        pte = PteModule(path)
        for name in args.sets:
            counts = {key: [0, 0] for key in models}
            total, skipped = 0, 0
            for im in BenchmarkSet.from_name(name, info.scale):
                lr = to_tensor(im.lr)
                if max(lr.shape[-2:]) > DEFAULT_MAX_SIDE:
                    skipped += 1
                    continue
                with torch.no_grad():
                    device = u8(pte(lr))
                    for key, m in models.items():
                        got = m(lr)
                        diff = (u8(got) - device).abs()
                        counts[key][0] += int((diff == 0).sum())
                        counts[key][1] = max(counts[key][1], int(diff.max()))
                total += device.numel()
            row = {"set": name, "values": total, "images_skipped_over_max_side": skipped}
            for key, (same, worst) in counts.items():
                row[f"{key}_identical_pct"] = round(100 * same / total, 4)
                row[f"{key}_max_levels"] = worst
            for key, runner in (("pte", ArtifactModule(pte)), ("integer_faithful", faithful)):
                with torch.no_grad():
                    row[f"{key}_psnr"] = round(evaluate(runner, [name], info.scale, progress=False,
                                                        ssim=False)[name].psnr, 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
    write_text_atomic(json.dumps({"checkpoint": Path(args.checkpoint).name, "program": args.program and
                                  Path(args.program).name, "rows": rows}, indent=1), args.out)


if __name__ == "__main__":
    main()
