"""Where the default .pte spends its time, and what two export choices cost or buy.

Exports the QAT checkpoint's default .pte (dynamic activations, fp32 head/tail) and the same with the head/tail
dynamically quantized to int8 (``rest="int8"``), scores both on Set5 through the ExecuTorch runtime, times them
interleaved with eager fp32 PyTorch (the FP teacher) and any ``--pte`` files given (e.g. the embedded model of an
earlier commit), and breaks one run of each .pte into per-op totals with ExecuTorch's ETDump profiler.

    .venv/bin/python benchmarks/pte_speed_probe.py checkpoints/imdn_x4_w4a4.pt
    git show b9d38e7:quantsr/assets/imdn_x4_w4a4.pte > /tmp/before_split.pte   # slices, before split convs
    .venv/bin/python benchmarks/pte_speed_probe.py checkpoints/imdn_x4_w4a4.pt --pte /tmp/before_split.pte

Writes benchmarks/results/pte_speed_probe.json (exports are kept in runs/pte_speed_probe; ``--reuse`` skips them).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from quantsr.artifacts.atomic import write_text_atomic
from quantsr.checkpoints.load import load_model, load_model_and_info
from quantsr.export.pipeline import ArtifactModule, set5_psnr
from quantsr.export.pte import export_pte
from quantsr.runtime.pte import PteModule, quiet_runtime_imports, register_quantized_kernels

ROOT = Path(__file__).resolve().parent.parent


def op_profile(path: Path, side: int, runs: int = 3) -> dict[str, float]:
    """Milliseconds per op kind (XNNPACK operator or portable kernel), median over ``runs`` runs."""
    from executorch.devtools import Inspector
    from executorch.extension.pybindings import portable_lib

    with quiet_runtime_imports():
        register_quantized_kernels()  # kernels the program may call outside the delegate
    module = portable_lib._load_for_executorch(str(path), enable_etdump=True, debug_buffer_size=0)
    x = torch.rand(1, 3, side, side)
    for _ in range(runs):
        module.forward([x])
    with tempfile.TemporaryDirectory() as tmp:
        etdump = Path(tmp) / "run.etdp"
        module.write_etdump_result_to_file(str(etdump))
        frame = Inspector(etdump_path=str(etdump)).to_dataframe()
    frame = frame[frame.event_block_name == "Execute"]
    totals: dict[str, float] = defaultdict(float)
    for name, raw in zip(frame.event_name, frame.raw):
        totals[re.sub(r" #\d+$", "", name)] += statistics.median(raw)
    return dict(sorted(((k, round(v, 2)) for k, v in totals.items()), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--pte", nargs="*", default=[], help="more .pte files to time and profile")
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "runs" / "pte_speed_probe"))
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "pte_speed_probe.json"))
    args = parser.parse_args()

    student, info = load_model_and_info(args.checkpoint)
    scale = info.scale
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"checkpoint": args.checkpoint, "side": args.side, "threads": torch.get_num_threads(),
                    "eager_set5_psnr": round(set5_psnr(student, scale), 4), "variants": {}}
    files = {}
    for name, rest in (("default (rest fp32)", "fp32"), ("rest int8", "int8")):
        path = out / f"{rest}.pte"
        if not (args.reuse and path.exists()):
            print(f"export {name}", flush=True)
            export_pte(student, path, rest=rest, input_size=(3, 64, 64), dynamic=True, max_side=max(320, args.side))
        files[name] = path
    files.update({str(p): Path(p) for p in args.pte})
    programs = {name: PteModule(path) for name, path in files.items()}
    for name, program in programs.items():
        psnr = round(set5_psnr(ArtifactModule(program), scale), 4)
        result["variants"][name] = {"file": str(files[name]), "set5_psnr": psnr}
        print(f"{name}: Set5 {result['variants'][name]['set5_psnr']}", flush=True)

    runners = {"eager fp32": load_model(model=info.model, scale=scale, model_kwargs=info.model_kwargs).eval()}
    runners.update(programs)
    x = torch.rand(1, 3, args.side, args.side, generator=torch.Generator().manual_seed(0))
    samples: dict[str, list[float]] = {name: [] for name in runners}
    with torch.no_grad():
        for run in runners.values():
            run(x)
        for _ in range(args.rounds):
            for name, run in runners.items():
                start = time.perf_counter()
                run(x)
                samples[name].append(round(1000 * (time.perf_counter() - start), 1))
    result["median_ms"] = {name: statistics.median(v) for name, v in samples.items()}
    result["samples_ms"] = samples
    for name, path in files.items():
        result["variants"][name]["op_ms"] = op_profile(path, args.side)
    for name, ms in result["median_ms"].items():
        print(f"{name:40s} {ms:8.1f} ms")
    write_text_atomic(json.dumps(result, indent=1) + "\n", Path(args.json))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
