"""Which tensors make int8 PTQ of an FP net lossy (issue 14): stock ExecuTorch PT2E static int8 (XNNPACK quantizer,
histogram observers, per-channel weights), calibrated on T91 crops, scored on benchmark sets (the PT2E reference
graph in eager, which is the model the `.pte` runs up to integer rounding). Then, one op at a time, the same
program with that op left fp32: the PSNR it gains is the op's share of the loss.

    .venv/bin/python benchmarks/int8_sensitivity.py --model imdn --scale 4 \\
        --out benchmarks/results/int8_sensitivity_imdn_x4.json            # ~15 min on 2 cores
    .venv/bin/python benchmarks/int8_sensitivity.py --model imdn --float-nodes add_12 conv2d_63   # one program

Op names are the torch.export graph's (``add_12``); each row also names the module that owns the op.

``--bypass`` probes activations instead, in the one program: each activation quantize -> dequantize is skipped in
turn (its tensor left fp32, everything else as built), so the gain is that tensor's own rounding, nothing rebuilt:

    .venv/bin/python benchmarks/int8_sensitivity.py --model fsrcnn --scale 2 --recommended --bypass \
        --out benchmarks/results/int8_bypass_fsrcnn_x2.json                 # ~2 min

``--checkpoint`` probes a QAT checkpoint's static int8 program instead (its learned steps fixed, the rest
calibrated, as ``benchmarks/build_assets.py`` builds it before any fine-tune), against its eager fake-quant model:

    .venv/bin/python benchmarks/int8_sensitivity.py --checkpoint checkpoints/carn_m_x2_w4a8.pt --bypass \
        --out benchmarks/results/int8_bypass_carn_m_x2_w4a8.json          # ~15 min
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace

import torch

from quantsr import evaluate
from quantsr.artifacts.atomic import write_text_atomic
from quantsr.checkpoints.load import load_model, load_model_and_info
from quantsr.export.int8_program import static_int8_graph
from quantsr.export.pipeline import ArtifactModule, calibration_inputs
from quantsr.export.pt2e_quantizer import ACT_OBSERVERS, Int8PTQConfig, recommended_int8_config
from quantsr.runtime.upscale import min_side_of


def set_psnr(run, sets: list[str], scale: int) -> dict[str, float]:
    # a converted PT2E graph refuses .eval(), so it is called through a closure, not held as a submodule
    result = evaluate(ArtifactModule(lambda x: run(x)), sets, scale, progress=False, ssim=False)
    return {s.name: round(s.psnr, 4) for s in result.sets}


def candidate_ops(converted: torch.fx.GraphModule, kinds: list[str]) -> list[tuple[str, str]]:
    """(op name, owning module) of every op of the given kinds (``conv2d``, ``add``, ...) in a converted graph."""
    out = []
    for node in converted.graph.nodes:
        parts = str(node.target).split(".")  # aten.conv2d.default -> conv2d; operator.getitem has no overload
        kind = parts[-2] if node.op == "call_function" and len(parts) > 1 else ""
        if kind in kinds:
            stack = node.meta.get("nn_module_stack") or {}
            out.append((node.name, str(list(stack.values())[-1][0]) if stack else ""))
    return out


def bypassed(converted: torch.fx.GraphModule, quantize: str) -> tuple[torch.fx.GraphModule, str]:
    """A copy of ``converted`` whose activation quantize node ``quantize`` is skipped (its dequantizes' users read
    the fp32 tensor), and the name of the op that produced that tensor."""
    out = copy.deepcopy(converted)
    node = next(n for n in out.graph.nodes if n.name == quantize)
    source = node.args[0]
    for user in list(node.users):
        if user.target == torch.ops.quantized_decomposed.dequantize_per_tensor.default:
            user.replace_all_uses_with(source)
    out.graph.eliminate_dead_code()
    out.recompile()
    return out, source.name


def activation_quantizers(converted: torch.fx.GraphModule) -> list[str]:
    return [n.name for n in converted.graph.nodes
            if n.op == "call_function" and n.target == torch.ops.quantized_decomposed.quantize_per_tensor.default]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="imdn")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--weights", help="an FP checkpoint (default: the model's public weights)")
    parser.add_argument("--sets", nargs="+", default=["Set5"])
    parser.add_argument("--ops", nargs="+", default=["conv2d", "add", "mul", "sigmoid", "sub"],
                        help="op kinds to probe one at a time")
    parser.add_argument("--observer", choices=ACT_OBSERVERS, default="histogram")
    parser.add_argument("--float-nodes", nargs="*", default=[], help="ops left fp32 in every program")
    parser.add_argument("--split-concat", action="store_true", help="one conv per branch of a concat-then-conv")
    parser.add_argument("--calibration-batches", type=int, default=8, help="batches of 4 T91 crops (64 px LR)")
    parser.add_argument("--recommended", action="store_true",
                        help="start from recommended_int8_config (GPTQ, equalization...) instead of stock")
    parser.add_argument("--bypass", action="store_true",
                        help="skip one activation quantize at a time in one program instead of rebuilding")
    parser.add_argument("--checkpoint", help="a QAT checkpoint: probe its static int8 program (with --bypass)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="JSON results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.checkpoint and not args.bypass:
        parser.error("--checkpoint probes the one program of a QAT model: add --bypass")
    if args.checkpoint:  # the QAT model stands where the FP one does: the program is scored against it
        fp, info = load_model_and_info(args.checkpoint)
        fp, args.model, args.scale = fp.eval(), info.model, info.scale
    else:
        fp = load_model(args.weights, model=args.model, scale=args.scale).eval()
    calib = calibration_inputs(args.scale, 64, args.calibration_batches)
    config = Int8PTQConfig(args.observer, float_nodes=tuple(args.float_nodes), split_concat_convs=args.split_concat)
    if args.recommended:
        config = replace(recommended_int8_config(args.model, args.scale), act_observer=args.observer,
                         float_nodes=tuple(args.float_nodes))
    fp_psnr = set_psnr(fp, args.sets, args.scale)
    base = static_int8_graph(fp, calib, min_side=min_side_of(fp), ptq=None if args.checkpoint else config)
    base_psnr = set_psnr(base, args.sets, args.scale)
    print(f"{'eager' if args.checkpoint else 'FP'} {fp_psnr}  int8 {base_psnr}", flush=True)
    rows = []
    if args.bypass:
        probes = [(q, "") for q in activation_quantizers(base)]
    else:
        probes = candidate_ops(base, args.ops) if not args.float_nodes else []
    for i, (name, module) in enumerate(probes):
        start = time.perf_counter()
        if args.bypass:
            converted, module = bypassed(base, name)  # module: the op whose output the quantize held
        else:
            converted = static_int8_graph(fp, calib, min_side=min_side_of(fp),
                                          ptq=replace(config, float_nodes=(name,)))
        psnr = set_psnr(converted, args.sets, args.scale)
        gain = {k: round(psnr[k] - base_psnr[k], 4) for k in psnr}
        rows.append({"op": name, "module": module, "psnr": psnr, "gain": gain})
        print(f"[{i + 1}/{len(probes)}] {name:<16} {module:<28} gain {gain} ({time.perf_counter() - start:.0f} s)",
              flush=True)
    rows.sort(key=lambda r: -sum(r["gain"].values()))
    result = {"model": args.model, "scale": args.scale, "checkpoint": args.checkpoint,
              "observer": None if args.checkpoint else args.observer,  # a QAT program is not an Int8PTQConfig's
              "config": None if args.checkpoint else repr(config),
              "mode": "bypass" if args.bypass else "float_nodes",
              "split_concat": config.split_concat_convs, "float_nodes": args.float_nodes,
              "calibration_crops": 4 * args.calibration_batches, "fp": fp_psnr, "int8": base_psnr, "rows": rows}
    if args.out:
        write_text_atomic(json.dumps(result, indent=1), args.out)
    for r in rows[:15]:
        print(f"{r['op']:<16} {r['module']:<28} {r['gain']}")


if __name__ == "__main__":
    main()
