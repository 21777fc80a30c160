"""Fine-tune the static all-int8 program of a QAT checkpoint with its integer-faithful forward (issue 13), and
write the program file the embedded ``.pte`` is built from; or fit the int8 PTQ program of a public FP model to the
model itself, its activation scales too (``--scale-lr``; issue 14). On a QAT model ``--scale-lr`` trains only the
calibrated scales (conv outputs, adds, the int8 rest); its learned steps, the trained b-bit grids, stay.

    .venv/bin/python benchmarks/int8_finetune.py checkpoints/imdn_x4_w4a4.pt [--iterations 1500]
        [--max-train-minutes 40] [--out checkpoints/imdn_x4_w4a4_int8.pt] [--run-dir runs/int8_imdn_x4_w4a4]
        [--init-program checkpoints/imdn_x4_w4a4_int8.pt]
    .venv/bin/python benchmarks/int8_finetune.py ../shared/weights/rlfn_ntire2022_x4.pth --model rlfn --scale 4
        --iterations 250 --lr 2e-4 --scale-lr 5e-3 --keep last --out checkpoints/int8/rlfn_x4.pt

``--keep last`` saves the last state (the schedule's end); the default keeps the state of best Set5 PSNR.

``--init-program`` continues from the constants of an earlier program file of the same graph (a further stage of
training with its own run dir); the new file's metadata then adds the earlier stages' budget to its own.

Resumable: run it again with the same settings and it continues from ``RUN_DIR/last.pt``. The program file
records the base checkpoint's sha256, the recipe, iterations, CPU seconds and the Set5/Set14 PSNR of the
integer-faithful model (= the ``.pte``, bit for bit) before and after.
"""
from __future__ import annotations

import argparse
import hashlib
import platform
import time
from pathlib import Path

import torch

from quantsr.checkpoints.load import load_model, load_model_and_info
from quantsr.data.datasets import BenchmarkSet, PatchDataset, default_data_root
from quantsr.eval.evaluate import evaluate
from quantsr.export.int8_program import PROGRAM_FORMAT, load_program, save_program, static_int8_graph
from quantsr.export.pipeline import calibration_inputs
from quantsr.export.pt2e_quantizer import recommended_int8_config
from quantsr.qat.int8_finetune import Int8FinetuneRecipe, finetune_int8
from quantsr.quant.int8_graph import integer_faithful, write_back
from quantsr.runtime.upscale import min_side_of

ROOT = Path(__file__).resolve().parent.parent


def psnr(program: torch.nn.Module, scale: int, sets: list[str]) -> dict[str, float]:
    with torch.no_grad():
        result = evaluate(program.eval(), sets, scale, progress=False, ssim=False)
    return {s.name: round(s.psnr, 3) for s in result.sets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a QAT checkpoint, or an FP one (public weights need --model/--scale)")
    parser.add_argument("--model", default=None, help="architecture of a public FP checkpoint")
    parser.add_argument("--scale", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=Int8FinetuneRecipe.iterations)
    parser.add_argument("--lr", type=float, default=Int8FinetuneRecipe.lr)
    parser.add_argument("--scale-lr", type=float, default=Int8FinetuneRecipe.scale_lr,
                        help="train the activation scales too, at this Adam lr of their factors (0: fixed; a QAT "
                             "model's learned steps stay fixed)")
    parser.add_argument("--max-train-minutes", type=float, default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--val-every", type=int, default=250)
    parser.add_argument("--keep", choices=("best", "last"), default="best",
                        help="save the state of best Set5 PSNR, or the last one (no choice made on a benchmark set)")
    parser.add_argument("--init-program", default=None, help="start from this program file's constants")
    args = parser.parse_args()
    torch.manual_seed(0)
    checkpoint = Path(args.checkpoint)
    out = Path(args.out or checkpoint.with_name(checkpoint.stem + "_int8.pt"))
    run_dir = Path(args.run_dir or ROOT / "runs" / f"int8_{checkpoint.stem}")
    if args.init_program and Path(args.init_program).resolve() == out.resolve():
        parser.error(f"--out {out} would overwrite --init-program: write to another file")
    if args.iterations == 0 and not args.init_program:
        parser.error("--iterations 0 re-saves an --init-program: give one")
    model, info = load_model_and_info(checkpoint, model=args.model, scale=args.scale)
    # an FP model: its int8 PTQ program, fitted to the FP model itself (calibration by distillation)
    ptq = recommended_int8_config(info.model, info.scale) if info.recipe is None else None
    converted = static_int8_graph(model, calibration_inputs(info.scale, 64), min_side=min_side_of(model), ptq=ptq)
    stages: list[dict] = []  # the earlier trainings of the program this run starts from, oldest first
    if args.init_program:
        payload = torch.load(args.init_program, map_location="cpu", weights_only=False)
        init, old_format = payload["metadata"], payload["format"] == 1
        stages = init.get("earlier_stages", []) + [{k: init[k] for k in (
            "recipe", "best_iteration", "iterations_run", "train_seconds_total", "psnr_after", "resaved")
            if k in init}]
        if old_format:  # its calibration numbers were not saved: take this machine's, and say so
            print(f"{args.init_program} is format 1: its constants now run on this machine's calibration", flush=True)
        converted = load_program(args.init_program, converted, rebase=old_format)
    program = integer_faithful(converted, learn_scales=args.scale_lr > 0)
    sets = ["Set5", "Set14"]
    before = psnr(program, info.scale, sets)
    print(f"static int8 program before fine-tuning: {before}", flush=True)
    teacher = model if info.recipe is None else load_model(model=info.model, scale=info.scale)
    recipe = Int8FinetuneRecipe(iterations=args.iterations, lr=args.lr, scale_lr=args.scale_lr)
    root = default_data_root() / "train"
    data = PatchDataset([root / "T91", root / "BSD200"], info.scale, lr_patch=recipe.lr_patch,
                        batch_size=recipe.batch_size, seed=recipe.seed)
    start_cpu, start = time.process_time(), time.perf_counter()
    if args.iterations == 0:  # re-save an earlier program file in the current format
        save_program(program, converted, out, {**init, "resaved": {
            "from_format": payload["format"], "as_format": PROGRAM_FORMAT, "on_this_machines_calibration": old_format,
            "psnr_here": before}})
        print(f"wrote {out}", flush=True)
        return
    history = finetune_int8(program, teacher, data, recipe, val_sets=[BenchmarkSet.from_name("Set5", info.scale)],
                            out_dir=run_dir, val_every=args.val_every,
                            max_train_seconds=args.max_train_minutes * 60 if args.max_train_minutes else None)
    best = torch.load(run_dir / f"{args.keep}.pt", map_location="cpu", weights_only=False)
    program.load_state_dict(best["model"])
    after = psnr(integer_faithful(write_back(program, converted)), info.scale, sets)  # the program as saved
    print(f"after fine-tuning ({args.keep} state, iteration {best['iteration']}): {after}", flush=True)
    metadata = {
        "base_checkpoint": checkpoint.name, "base_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "model": info.model, "scale": info.scale, "recipe": recipe.to_dict(), "kept": args.keep,
        "ptq": None if ptq is None else repr(ptq),  # the calibrated start (weight rounding, splits)
        "best_iteration": best["iteration"],
        "iterations_run": len(history.losses), "train_seconds_total": round(history.data_seconds
                                                                             + history.step_seconds, 1),
        "cpu_seconds_this_run": round(time.process_time() - start_cpu, 1),
        "wall_seconds_this_run": round(time.perf_counter() - start, 1), "machine": platform.machine(),
        "threads": torch.get_num_threads(), "device": "cpu", "psnr_before": before, "psnr_after": after,
        "earlier_stages": stages,
        "train_seconds_all_stages": round(history.data_seconds + history.step_seconds
                                          + sum(st.get("train_seconds_total", 0) for st in stages), 1),
    }
    save_program(program, converted, out, metadata)
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
