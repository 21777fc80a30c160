"""Which int8 adds of a static int8 program XNNPACK cannot run: for each ``add`` of the converted PT2E graph
(residuals, and the ``add(x, tau)`` before each learned conv input), its input and output scales and the ratios
XNNPACK's qs8 add requires to lie in [2^-10, 2^8).

    .venv/bin/python benchmarks/int8_add_ratios.py checkpoints/span_x4_w2a8.pt [--all]
"""
from __future__ import annotations

import argparse

import torch

from quantsr.checkpoints.load import load_model_and_info
from quantsr.export.int8_program import static_int8_graph
from quantsr.export.pipeline import calibration_inputs
from quantsr.export.pt2e_quantizer import node_layer_name
from quantsr.quant.int8_sim import ADD_RATIO_RANGE
from quantsr.runtime.upscale import min_side_of


def add_scales(converted: torch.fx.GraphModule) -> list[tuple[str, str, float, list[float]]]:
    """(op name, owning module, output scale, input scales) of every int8 add."""
    qd = torch.ops.quantized_decomposed
    rows = []
    for node in converted.graph.nodes:
        if node.op != "call_function" or node.target != torch.ops.aten.add.Tensor or len(node.users) != 1:
            continue
        (user,) = node.users
        if user.target != qd.quantize_per_tensor.default:
            continue
        inputs = [float(a.args[1]) for a in node.args
                  if isinstance(a, torch.fx.Node) and a.target == qd.dequantize_per_tensor.default]
        stack = node.meta.get("nn_module_stack") or {}
        owner = str(list(stack.values())[-1][0]) if stack else (node_layer_name(node) or "")
        rows.append((node.name, owner, float(user.args[1]), inputs))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--all", action="store_true", help="every add, not only those out of XNNPACK's range")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, info = load_model_and_info(args.checkpoint)
    converted = static_int8_graph(model, calibration_inputs(info.scale, 64), max_side=400,
                                  min_side=min_side_of(model))
    for name, owner, out_scale, in_scales in add_scales(converted):
        ratios = [s / out_scale for s in in_scales]
        bad = bool(ratios) and not ADD_RATIO_RANGE[0] <= max(ratios) < ADD_RATIO_RANGE[1]
        if bad or args.all:
            print(f"{name:<8} {owner:<22} out {out_scale:.3g}  in {', '.join(f'{s:.3g}' for s in in_scales)}  "
                  f"ratios {', '.join(f'{r:.3g}' for r in ratios)}{'  <- outside [2^-10, 2^8)' if bad else ''}")


if __name__ == "__main__":
    main()
