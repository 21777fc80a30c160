"""Training throughput on this machine: iterations/s at batch 16, LR patch 48, x4, fp32 vs bf16 autocast
and fp32 + channels_last, for EDSR-baseline, IMDN and SwinIR-S; plus the time to assemble one batch of patches.

    .venv/bin/python benchmarks/train_throughput.py [--steps 2] [--models edsr imdn swinir_s]   # ~15 min

Variants are interleaved round by round so that machine noise hits them alike; the median step time is reported.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from quantsr import create_model
from quantsr.artifacts.atomic import write_text_atomic
from quantsr.data.datasets import PatchDataset, default_data_root
from quantsr.train.trainer import TrainConfig, Trainer

VARIANTS = {"fp32": dict(bf16=False, channels_last=False),
            "fp32+channels_last": dict(bf16=False, channels_last=True),
            "bf16+channels_last": dict(bf16=True, channels_last=True)}


def make_trainer(name: str, data: PatchDataset, variant: dict) -> Trainer:
    torch.manual_seed(0)
    model = create_model(name, scale=4)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.99))
    return Trainer(model, data, torch.nn.L1Loss(), opt, config=TrainConfig(progress=False, **variant))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["edsr", "imdn", "swinir_s"])
    parser.add_argument("--steps", type=int, default=2, help="timed rounds per variant (after 1 warm-up step)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_throughput.json"))
    args = parser.parse_args()
    root = default_data_root() / "train"
    data = PatchDataset([root / "T91", root / "BSD200"], scale=4, lr_patch=48, batch_size=16, seed=0)
    batch_times = []
    for i in range(20):
        t = time.perf_counter()
        data.batch(i)
        batch_times.append(time.perf_counter() - t)
    batch_s = statistics.median(batch_times)
    cpu = torch.backends.cpu.get_cpu_capability()
    print(f"batch assembly (16 patches 48->192): {1000 * batch_s:.1f} ms median, threads={torch.get_num_threads()}, "
          f"CPU capability {cpu}")
    rows = []
    for name in args.models:
        trainers = {v: make_trainer(name, data, cfg) for v, cfg in VARIANTS.items()}
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for step in range(args.steps + 1):
            lr, hr = data.batch(step)
            for v, trainer in trainers.items():
                t = time.perf_counter()
                trainer.train_step(lr, hr)
                if step > 0:  # the first step pays for oneDNN kernel selection
                    times[v].append(time.perf_counter() - t)
        fp32 = statistics.median(times["fp32"])
        for v in VARIANTS:
            step_s = statistics.median(times[v])
            rows.append({"model": name, "variant": v, "step_s": step_s, "it_per_s": 1 / step_s,
                         "speedup_vs_fp32": fp32 / step_s, "data_fraction": batch_s / (batch_s + step_s)})
            print(f"{name:<9} {v:<19} {step_s:6.2f} s/it  {1 / step_s:6.2f} it/s  x{fp32 / step_s:4.1f}  "
                  f"data {100 * batch_s / (batch_s + step_s):4.1f}% of a step", flush=True)
    write_text_atomic(json.dumps({"batch_assembly_s": batch_s, "cpu_capability": cpu, "rows": rows}, indent=1),
                      args.out)


if __name__ == "__main__":
    main()
