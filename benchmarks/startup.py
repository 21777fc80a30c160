"""How long a user waits: whole-process ``quantsr upscale examples/chelsea.png`` and, in a fresh interpreter,
``import quantsr`` + the first ``cpu_upscale`` of a 256x256 image (split into import, model load + first call, and
a second call = compute), next to the import quantsr no longer needs (``executorch.runtime``, which pulls in the
exporter). Rounds interleave the variants; medians are reported.

    .venv/bin/python benchmarks/startup.py [--rounds 5]

Writes benchmarks/results/startup.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quantsr.artifacts.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parent.parent

API_PROBE = """
import json, time
t0 = time.perf_counter()
import numpy as np
import quantsr
img = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
t1 = time.perf_counter()
quantsr.cpu_upscale(img)
t2 = time.perf_counter()
quantsr.cpu_upscale(img)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_call_s": t2 - t1, "second_call_s": t3 - t2}))
"""


def _timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return seconds, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "startup.json"))
    args = parser.parse_args()
    cli, api, phases, old_import, torch_import = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            seconds, _ = _timed([sys.executable, "-m", "quantsr", "upscale", "examples/chelsea.png",
                                 str(Path(tmp) / "c.png")])
            cli.append(seconds)
            seconds, out = _timed([sys.executable, "-c", API_PROBE])
            api.append(seconds)
            phases.append(json.loads(out.strip().splitlines()[-1]))
            old_import.append(_timed([sys.executable, "-c", "import executorch.runtime"])[0])
            torch_import.append(_timed([sys.executable, "-c", "import torch"])[0])
    median = statistics.median
    row = {
        "rounds": args.rounds,
        "cli_upscale_chelsea_s": median(cli),
        "api_process_256_s": median(api),
        "api_import_s": median(p["import_s"] for p in phases),
        "api_first_call_s": median(p["first_call_s"] for p in phases),
        "api_second_call_s": median(p["second_call_s"] for p in phases),
        "process_import_executorch_runtime_s": median(old_import),
        "process_import_torch_s": median(torch_import),
        "all": {"cli": cli, "api": api, "phases": phases, "executorch_runtime": old_import, "torch": torch_import},
    }
    print(f"quantsr upscale examples/chelsea.png: {row['cli_upscale_chelsea_s']:.2f} s (median of {args.rounds})")
    print(f"import quantsr + first cpu_upscale 256x256: {row['api_import_s']:.2f} + {row['api_first_call_s']:.2f} s "
          f"(second call {row['api_second_call_s']:.2f} s); whole process {row['api_process_256_s']:.2f} s")
    print(f"for reference: a process importing torch {row['process_import_torch_s']:.2f} s, "
          f"executorch.runtime {row['process_import_executorch_runtime_s']:.2f} s")
    write_text_atomic(json.dumps(row, indent=1), args.out)


if __name__ == "__main__":
    main()
