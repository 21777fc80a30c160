"""What this CPU gives: XNNPACK fp32 vs static int8 convolution throughput at the layer shapes of the shipped IMDN,
so a model's speed can be read as a fraction of what the hardware does, next to eager PyTorch fp32 (oneDNN) on the
same chain, the denominator of the speed bars; then each embedded ``.pte`` at the same input side, as GOP/s and as
a fraction of the best int8 conv case.

Each case is a chain of ``--depth`` identical convolutions (+ReLU) at a fixed input shape, exported twice with
ExecuTorch's XNNPACK delegate: fp32, and PT2E static int8 (per-channel symmetric weights, calibrated activations;
the quantize/dequantize at the chain's two ends are amortised over the depth). Rounds interleave the variants
and the median is reported as GOP/s (2 x MACs per second) through the ExecuTorch runtime.

    .venv/bin/python benchmarks/xnnpack_conv.py [--side 256] [--rounds 7] [--threads 2]

Writes benchmarks/results/xnnpack_conv.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from quantsr.artifacts.atomic import atomic_write, write_text_atomic
from quantsr.artifacts.embedded import embedded_models
from quantsr.eval.opcount import profile
from quantsr.export.pt2e_quantizer import int8_quantizer
from quantsr.export.pte import lower_to_pte
from quantsr.models.registry import create_model
from quantsr.runtime.pte import PteModule, set_runtime_threads

ROOT = Path(__file__).resolve().parent.parent
# (name, channels, kernel): IMDN's 3x3 64->64 (c1, conv_after_body), its 1x1 fusions, a narrower 3x3 like its
# distilled 48-channel branch, and EDSR-baseline's 3x3 64 for comparison with the README's EDSR figure.
CASES = [("3x3 c64", 64, 3), ("1x1 c64", 64, 1), ("3x3 c48", 48, 3), ("3x3 c16", 16, 3)]


def chain(channels: int, kernel: int, depth: int) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Conv2d(channels, channels, kernel, padding=kernel // 2), nn.ReLU()]
    return nn.Sequential(*layers).eval()


def export(model: nn.Module, example: torch.Tensor, quant: str, path: Path) -> PteModule:
    calibration = [torch.rand_like(example) for _ in range(4)]
    program, _ = lower_to_pte(model, example, quant=quant, quantizer=int8_quantizer() if quant == "int8" else None,
                              calibration=calibration)
    with atomic_write(path, "wb") as fh:
        fh.write(program.buffer)
    return PteModule(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "xnnpack_conv.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, channels, kernel in CASES:
            model = chain(channels, kernel, args.depth)
            x = torch.rand(1, channels, args.side, args.side)
            programs = {q: export(model, x, q, Path(tmp) / f"{q}.pte") for q in ("fp32", "int8")}
            programs["eager"] = torch.no_grad()(model.eval())  # oneDNN fp32: what the speed bar divides by
            set_runtime_threads(args.threads)
            times: dict[str, list[float]] = {q: [] for q in programs}
            for program in programs.values():
                program(x)  # warm-up: the first run plans memory and packs weights
            for _ in range(args.rounds):
                for q, program in programs.items():
                    start = time.perf_counter()
                    program(x)
                    times[q].append(time.perf_counter() - start)
            macs = args.depth * args.side * args.side * channels * channels * kernel * kernel
            row = {"case": name, "channels": channels, "kernel": kernel, "side": args.side, "depth": args.depth,
                   "gmacs": macs / 1e9}
            for q, values in times.items():
                row[f"{q}_ms"] = 1e3 * statistics.median(values)
                row[f"{q}_gops"] = 2 * macs / statistics.median(values) / 1e9
            row["int8_over_fp32"] = row["fp32_ms"] / row["int8_ms"]
            row["int8_over_eager"] = row["eager_ms"] / row["int8_ms"]
            rows.append(row)
            print(f"{name:<8} fp32 {row['fp32_gops']:6.1f} GOP/s  int8 {row['int8_gops']:6.1f} GOP/s  "
                  f"eager {row['eager_gops']:6.1f} GOP/s  int8/fp32 {row['int8_over_fp32']:.2f}x  "
                  f"int8/eager {row['int8_over_eager']:.2f}x", flush=True)
    shipped = []
    best_int8 = max(r["int8_gops"] for r in rows)
    for (scale, _w, _a), path in sorted(embedded_models().items()):
        program = PteModule(path)
        net = create_model(program.card["architecture"], scale=scale, **program.card.get("model_kwargs", {}))
        macs = profile(net, (3, args.side, args.side)).macs
        x = torch.rand(1, 3, args.side, args.side)
        program(x)
        seconds = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            program(x)
            seconds.append(time.perf_counter() - start)
        gops = 2 * macs / statistics.median(seconds) / 1e9
        shipped.append({"file": path.name, "side": args.side, "gmacs": macs / 1e9,
                        "ms": 1e3 * statistics.median(seconds), "gops": gops,
                        "fraction_of_best_int8_conv": gops / best_int8})
        print(f"{path.name}: {gops:.1f} GOP/s at {args.side}x{args.side} = {100 * gops / best_int8:.0f}% of the "
              "best int8 conv", flush=True)
    write_text_atomic(json.dumps({"threads": args.threads, "rounds": args.rounds, "rows": rows,
                                  "shipped": shipped}, indent=1), args.out)


if __name__ == "__main__":
    main()
