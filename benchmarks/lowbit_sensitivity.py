"""Where a low-bit (fake-quant) model loses against its FP teacher: per image, and per activation quantizer.

Per image: the teacher's and the student's PSNR-Y on each image of ``--sets``, and the drop.

``--bypass``: each activation quantizer's rounding and clipping skipped in turn, keeping its learned shift
``tau`` (the next conv's bias was trained against ``x + tau``, so dropping the shift as well would measure the
bias mismatch, not the rounding); then all activation quantizers so, and all weight quantizers off. A trained
student has adapted to every rounding, so small or negative deltas there mean co-adaptation, not free bits.

    .venv/bin/python benchmarks/lowbit_sensitivity.py checkpoints/resume/carn_m_x4_w4a4_stage2/last.pt \\
        --sets Set5 Set14 --bypass --calls --out benchmarks/results/lowbit_sensitivity_carn_m_x4_w4a4.json  # ~45 s

``--calls``: for each activation quantizer, per call within one forward (a layer of a weight-shared block runs
several times), the mean |x + tau| of its input and the share clipped above its range (``--bypass-sets``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable, Iterator

import torch
from torch import nn

from quantsr import evaluate
from quantsr.artifacts.atomic import write_text_atomic
from quantsr.checkpoints.load import load_model, load_model_and_info
from quantsr.data.datasets import BenchmarkSet
from quantsr.data.image_io import to_tensor
from quantsr.quant.quantizers import QUANTIZERS, ActQuantizer, disabled, shift_only


@contextlib.contextmanager
def weights_full_precision(model: nn.Module) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for q in model.modules():
            if isinstance(q, QUANTIZERS) and not isinstance(q, ActQuantizer):
                stack.enter_context(disabled(q))
        yield


def per_image(model: nn.Module, sets: list[str], scale: int) -> dict[str, dict[str, float]]:
    result = evaluate(model, sets, scale, progress=False, ssim=False)
    return {s.name: {image.name: image.psnr for image in s.images} for s in result.sets}


def mean_psnr(model: nn.Module, sets: list[str], scale: int) -> float:
    result = evaluate(model, sets, scale, progress=False, ssim=False)
    return sum(s.psnr for s in result.sets) / len(result.sets)


def call_statistics(model: nn.Module, sets: list[str], scale: int) -> dict[str, list[dict[str, float]]]:
    """For each single-step activation quantizer, per call within one forward (a shared layer is called more than
    once): the mean |x + tau| of its input and the share of values above its clip ``step * Qp``, averaged over
    the images of ``sets``."""
    quantizers = {n: q for n, q in model.named_modules() if isinstance(q, ActQuantizer) and q.segments is None}
    clips = {n: float(q.step.detach()) * q.qrange()[1] for n, q in quantizers.items()}
    sums: dict[str, list[list[float]]] = {}
    counts: dict[str, int] = {}

    def hook(name: str, q: ActQuantizer) -> Callable[[nn.Module, tuple], None]:
        def record(_module: nn.Module, args: tuple) -> None:
            x = q._shift(args[0])
            clip = clips[name]
            calls = sums.setdefault(name, [])
            index = counts[name] = counts.get(name, 0) + 1
            if index > len(calls):
                calls.append([0.0, 0.0, 0.0])
            calls[index - 1][0] += float(x.abs().mean())
            calls[index - 1][1] += float((x > clip).float().mean())
            calls[index - 1][2] += 1
        return record

    handles = [q.register_forward_pre_hook(hook(n, q)) for n, q in quantizers.items()]
    model.eval()
    try:
        with torch.no_grad():
            for name in sets:
                for image in BenchmarkSet.from_name(name, scale):
                    counts.clear()
                    model(to_tensor(image.lr))
    finally:
        for handle in handles:
            handle.remove()
    return {name: [{"mean_abs": round(m / k, 4), "clipped": round(c / k, 5), "clip": round(clips[name], 4)}
                   for m, c, k in calls] for name, calls in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a low-bit checkpoint (quantize run's model.pt or last.pt)")
    parser.add_argument("--teacher", help="FP checkpoint (default: the public one of the same architecture)")
    parser.add_argument("--sets", nargs="+", default=["Set5"])
    parser.add_argument("--bypass", action="store_true", help="also skip each activation quantizer in turn")
    parser.add_argument("--bypass-sets", nargs="+", default=["Set5"], help="sets the bypass deltas average")
    parser.add_argument("--calls", action="store_true",
                        help="per call of each activation quantizer: mean |x + tau| and the share clipped above")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    student, info = load_model_and_info(args.checkpoint)
    if info.recipe is None:
        raise SystemExit(f"{args.checkpoint} is not a low-bit checkpoint (no quantization recipe)")
    teacher = load_model(args.teacher, model=info.model, scale=info.scale, model_kwargs=info.model_kwargs)
    scale = int(info.scale)
    report: dict = {"checkpoint": args.checkpoint, "model": info.model, "scale": scale, "threads": args.threads,
                    "images": {}}
    teacher_psnr, student_psnr = per_image(teacher, args.sets, scale), per_image(student, args.sets, scale)
    for name in args.sets:
        rows = {img: {"teacher": round(t, 3), "student": round(student_psnr[name][img], 3),
                      "drop": round(t - student_psnr[name][img], 3)} for img, t in teacher_psnr[name].items()}
        report["images"][name] = rows
        for img, row in rows.items():
            print(f"{name:8s} {img:14s} teacher {row['teacher']:7.3f}  student {row['student']:7.3f}  "
                  f"drop {row['drop']:6.3f}", flush=True)

    if args.bypass:
        acts = [(n, m) for n, m in student.named_modules() if isinstance(m, ActQuantizer)]
        base = mean_psnr(student, args.bypass_sets, scale)
        with weights_full_precision(student):
            fp_weights = mean_psnr(student, args.bypass_sets, scale)
        with shift_only([m for _, m in acts]):
            fp_acts = mean_psnr(student, args.bypass_sets, scale)
        report["bypass"] = {"sets": args.bypass_sets, "psnr": round(base, 4),
                            "weights_fp_delta": round(fp_weights - base, 4),
                            "activations_shift_only_delta": round(fp_acts - base, 4), "quantizers": {}}
        print(f"{'+'.join(args.bypass_sets)} {base:.3f}; weights FP {fp_weights - base:+.3f}; every activation "
              f"shift-only {fp_acts - base:+.3f}", flush=True)
        for name, q in acts:
            with shift_only([q]):
                delta = mean_psnr(student, args.bypass_sets, scale) - base
            report["bypass"]["quantizers"][name] = round(delta, 4)
            print(f"  {name:44s} {delta:+.3f}", flush=True)
    if args.calls:
        report["calls"] = call_statistics(student, args.bypass_sets, scale)
        for name, calls in report["calls"].items():
            print(f"  {name:44s} " + " | ".join(f"mean {c['mean_abs']:.3f} clipped {100 * c['clipped']:.2f}%"
                                                 for c in calls) + f"  (clip {calls[0]['clip']:.3f})", flush=True)
    if args.out:
        write_text_atomic(json.dumps(report, indent=1) + "\n", args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
