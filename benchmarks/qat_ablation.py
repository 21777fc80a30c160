"""QuantSR+ ablations at an equal, short training budget (same iterations, batch, patch, seed for every arm), IMDN x4
from the public FP weights, evaluated on Set5 (PSNR-Y) beside the FP teacher:

    full    RBD weights + SFD distillation (the method; no QSA)     lsq     plain LSQ weights (same levels) + SFD
    nosfd   RBD, L1 only                                          soft    full, QuantSR's tanh rounding gradient
    qsa5    full + QSA slimming 6 -> 5 blocks                     skip5   full with block 5 skipped from the start
    w3a3    full at 3 bits                                          x2      full at x2 (teacher IMDN x2)

Each arm writes runs/ablation/<arm>/ (resumable: rerun the same command after an interruption) and its model card
to benchmarks/results/ablation/<arm>.json; the table is printed and written to benchmarks/results/ablation.md.

    .venv/bin/python benchmarks/qat_ablation.py [--arms full lsq ...] [--iterations 120]   # ~7 min per arm
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from quantsr.artifacts.atomic import write_text_atomic
from quantsr.checkpoints.load import load_model
from quantsr.models.weights import find_checkpoint
from quantsr.qat.config import TrainRecipe
from quantsr.qat.pipeline import quantize_checkpoint
from quantsr.quant.recipe import QuantRecipe

ARMS: dict[str, dict] = {
    "full": {},
    "lsq": {"weight_quantizer": "lsq"},
    "nosfd": {"distill": False},
    "soft": {"rounding": "soft"},
    "qsa5": {"qsa_keep": 5},
    "skip5": {"skip_blocks": [5]},
    "w3a3": {"w_bits": 3, "a_bits": 3},
    "x2": {"scale": 2},
}
RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=120)
    parser.add_argument("--runs", default="runs/ablation")
    args = parser.parse_args()
    rows = []
    for arm in args.arms:
        settings = dict(ARMS[arm])
        scale = settings.pop("scale", 4)
        settings.setdefault("w_bits", args.bits)
        settings.setdefault("a_bits", args.bits)
        distill = settings.pop("distill", True)
        recipe = QuantRecipe(**settings)
        train = TrainRecipe(iterations=args.iterations, val_every=args.iterations, checkpoint_every=20,
                            distill=distill)
        card_path = RESULTS / "ablation" / f"{arm}.json"
        if card_path.exists():
            card = json.loads(card_path.read_text())
        else:
            out = Path(args.runs) / arm
            teacher = load_model(model="imdn", scale=scale)
            card = quantize_checkpoint(teacher, "imdn", scale, recipe, train, out,
                                       teacher_source=str(find_checkpoint("imdn", scale)),
                                       resume=(out / "last.pt").exists(), progress=True, eval_sets=("Set5",))
            write_text_atomic(json.dumps(card, indent=1), card_path)
        r = card["results"][0]
        rows.append((arm, scale, card["bits"]["weights"], card["iterations"], card["train_seconds_total"],
                     r["psnr"], r["drop_db"]))
        print(f"{arm:<6} x{scale} W{rows[-1][2]} {r['psnr']:.3f} dB (drop {r['drop_db']:.3f})", flush=True)
    lines = ["| arm | scale | bits | iterations | train s | Set5 PSNR | drop vs FP |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {a} | x{s} | W{b}A{b} | {it} | {sec:.0f} | {p:.3f} | {d:.3f} |" for a, s, b, it, sec, p, d in rows]
    table = "\n".join(lines)
    print(table)
    write_text_atomic(table + "\n", RESULTS / "ablation.md")


if __name__ == "__main__":
    main()
