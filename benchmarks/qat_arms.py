"""QAT recipe arms on one plot: Set5 validation PSNR against minutes spent (start + training), from the runs'
``last.pt`` (and ``model_card.json`` for the final Set5/Set14/B100 scores).

    .venv/bin/python benchmarks/qat_arms.py --arm span_x4_w4a8_pc_block=checkpoints/resume/span_x4_w4a8_pc_block

Arms already in ``--out`` are kept unless given again (the committed JSON holds arms whose run folders were not
kept). A run's minutes at iteration i are its training seconds so far, read as ``total * i / iterations`` (the
step time is steady; validation excluded), plus the seconds its starting point took (``--init mse/block``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MACHINE = "2 cores AMD EPYC (AVX2), fp32, 2 threads"


def read_arm(run: Path) -> dict:
    ckpt = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    history, settings = ckpt["history"], ckpt.get("run_settings") or {}
    init = settings.get("init") or {"method": "lsq"}
    iterations = int(ckpt["iteration"])
    train_seconds = history["data_seconds"] + history["step_seconds"]
    init_seconds = float(init.get("seconds", 0.0)) if init["method"] != "lsq" else 0.0
    curve = [{"iteration": 0, "minutes": round(init_seconds / 60, 2), "psnr": init["psnr"]["Set5"]}] \
        if "Set5" in (init.get("psnr") or {}) else []
    curve += [{"iteration": v["iteration"],
               "minutes": round((init_seconds + train_seconds * v["iteration"] / iterations) / 60, 2),
               "psnr": round(v["psnr"], 3)} for v in history["validation"]]
    arm = {"quant": ckpt["metadata"].get("quant"), "init": init.get("method", "lsq"),
           "init_minutes": round(init_seconds / 60, 2), "iterations_run": iterations,
           "train_minutes": round(train_seconds / 60, 1), "set5_validation": curve, "machine": MACHINE,
           "train_recipe": settings.get("train_recipe")}
    card = run / "model_card.json"
    if card.is_file():
        arm["final"] = {r["set"]: {"psnr": r["psnr"], "drop_db": r["drop_db"]}
                        for r in json.loads(card.read_text())["results"]}
    return arm


def plot(arms: dict, path: Path, fp_set5: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, arm in arms.items():
        points = arm["set5_validation"]
        if "minutes" not in points[0]:  # arms recorded before minutes were: spread over their training time
            last = max(p["iteration"] for p in points)
            points = [{**p, "minutes": arm["train_minutes"] * p["iteration"] / max(last, 1)} for p in points]
        ax.plot([p["minutes"] for p in points], [p["psnr"] for p in points], marker="o", label=name)
    if fp_set5 is not None:
        ax.axhline(fp_set5, color="grey", linestyle="--", label="FP teacher")
    ax.set_xlabel("minutes on 2 CPU cores (start + training)")
    ax.set_ylabel("Set5 PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", action="append", default=[], metavar="NAME=RUN_DIR")
    parser.add_argument("--fp-set5", type=float, default=31.739, help="the teacher's Set5 PSNR (a line)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "qat_span_x4_w4a8_arms.json"))
    parser.add_argument("--plot", default=str(ROOT / "benchmarks" / "results" / "qat_span_x4_w4a8_arms.png"))
    args = parser.parse_args()
    out = Path(args.out)
    arms = json.loads(out.read_text()) if out.is_file() else {}
    for spec in args.arm:
        name, sep, run = spec.partition("=")
        if not sep or not (Path(run) / "last.pt").is_file():
            raise SystemExit(f"--arm {spec}: give NAME=RUN_DIR with a RUN_DIR/last.pt")
        arms[name] = read_arm(Path(run))
    out.write_text(json.dumps(arms, indent=1) + "\n")
    plot(arms, Path(args.plot), args.fp_set5)
    for name, arm in arms.items():
        final = arm["set5_validation"][-1]
        print(f"{name:<28} {arm.get('init', 'lsq'):<6} {arm['iterations_run']:>5} it {arm['train_minutes']:>5} min"
              f"  Set5 {final['psnr']:.3f}  {arm.get('final', '')}")
    print(f"wrote {out} and {args.plot}")


if __name__ == "__main__":
    main()
