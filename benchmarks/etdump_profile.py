"""Per-operator ETDump profile of each shipped `.pte` (issue 13): where the time of one 256x256 (and 64x64) call
goes inside the XNNPACK delegate, by XNNPACK operator kind, median of the recorded runs.

    .venv/bin/python benchmarks/etdump_profile.py [quantsr/assets/*.pte] [--sizes 256 64] [--runs 3]

Writes benchmarks/results/etdump_profile.json. Runs through the ExecuTorch pybindings with ETDump enabled (the
devtools Inspector parses it); one warm-up call, then ``--runs`` profiled calls.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

from quantsr.artifacts.atomic import write_text_atomic
from quantsr.runtime.pte import runtime_bindings

ROOT = Path(__file__).resolve().parent.parent


def profile(path: Path, side: int, runs: int) -> dict:
    from executorch.devtools import Inspector

    bindings = runtime_bindings()
    module = bindings._load_for_executorch(str(path), enable_etdump=True, debug_buffer_size=0)
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    module.forward((x,))  # warm-up (XNNPACK packs weights and plans memory on the first call)
    module = bindings._load_for_executorch(str(path), enable_etdump=True, debug_buffer_size=0)
    module.forward((x,))
    for _ in range(runs):
        module.forward((x,))
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "run.etdp"
        module.write_etdump_result_to_file(str(dump))
        frame = Inspector(etdump_path=str(dump)).to_dataframe()
    per_op: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    total = 0.0
    for _, row in frame.iterrows():
        raw = list(row.raw)[-runs:]  # the first recorded call is the second load's first run: left out
        ms = statistics.median(raw)
        if row.event_name == "Method::execute":
            total = ms
        if row.event_block_name != "Execute" or row.event_name in ("Method::execute", "DELEGATE_CALL",
                                                                    "OPERATOR_CALL"):
            continue
        kind = re.sub(r" #\d+$", "", str(row.event_name))
        per_op[kind] += ms
        counts[kind] += 1
    ops = sorted(({"op": k, "ms": round(v, 3), "count": counts[k], "share_pct": round(100 * v / total, 2)}
                  for k, v in per_op.items()), key=lambda r: -r["ms"])
    return {"file": path.name, "side": side, "total_ms": round(total, 2), "ops": ops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", default=sorted(str(p) for p in (ROOT / "quantsr" / "assets").glob("*.pte")))
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "etdump_profile.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    for file in args.files:
        for side in args.sizes:
            row = profile(Path(file), side, args.runs)
            rows.append(row)
            top = ", ".join(f"{r['op']} {r['share_pct']:.0f}%" for r in row["ops"][:4])
            print(f"{row['file']} @{side}: {row['total_ms']:.1f} ms; {top}", flush=True)
    write_text_atomic(json.dumps({"runs": args.runs, "rows": rows}, indent=1), args.out)


if __name__ == "__main__":
    main()
