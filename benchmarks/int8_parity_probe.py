"""How far the static int8 `.pte` of a QAT checkpoint is from PyTorch's own models of it, in output uint8 levels:
the PT2E-converted reference graph (quantize/dequantize around fp32 ops, the same qparams) and the QAT fake-quant
model. The baseline an integer-faithful QAT mode has to close (issue 13's parity bar: >= 99% identical values,
max 2 levels; design in docs/integer_faithful.md).

    .venv/bin/python benchmarks/int8_parity_probe.py [checkpoints/imdn_x4_w4a4.pt]

Writes benchmarks/results/int8_parity_probe.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from quantsr.artifacts.atomic import write_text_atomic
from quantsr.checkpoints.load import load_model_and_info
from quantsr.data.datasets import BenchmarkSet
from quantsr.data.image_io import to_tensor
from quantsr.export.deploy import split_output_convs, to_deploy_model
from quantsr.export.pipeline import calibration_inputs
from quantsr.export.pt2e_quantizer import LearnedQParamsQuantizer
from quantsr.export.pte import _dynamic_shapes, export_pte
from quantsr.runtime.pte import PteModule

ROOT = Path(__file__).resolve().parent.parent
MAX_SIDE = 320


def reference_graph(model: torch.nn.Module, calibration: list[torch.Tensor]) -> torch.nn.Module:
    """The PT2E-converted graph export_pte lowers (static activations), run in PyTorch."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph_model, qparams = to_deploy_model(model, "static")
    split_output_convs(graph_model, qparams)
    quantizer = LearnedQParamsQuantizer(qparams, rest="fp32", activations="static")
    example = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # as export_pte draws it
    ep = torch.export.export(graph_model, (example,), dynamic_shapes=_dynamic_shapes(True, MAX_SIDE, 8))
    prepared = prepare_pt2e(ep.module(), quantizer)
    with torch.no_grad():
        prepared(example)
        for batch in calibration:
            for x in batch.split(1):
                prepared(x)
    return convert_pt2e(prepared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", default=str(ROOT / "checkpoints" / "imdn_x4_w4a4.pt"))
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "int8_parity_probe.json"))
    args = parser.parse_args()
    model, info = load_model_and_info(args.checkpoint)
    calibration = calibration_inputs(info.scale, 64)
    reference = reference_graph(model, calibration)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "static.pte"
        export_pte(model, path, quant="learned", activations="static", input_size=(3, 64, 64), dynamic=True,
                   max_side=MAX_SIDE, calibration=calibration, min_psnr=20.0)
        pte = PteModule(path)

        def u8(t: torch.Tensor) -> torch.Tensor:
            return t.clamp(0, 1).mul(255).round().to(torch.int16)

        for name in args.sets:
            counts = {"reference": [0, 0], "fake_quant": [0, 0]}
            total, skipped = 0, 0
            for im in BenchmarkSet.from_name(name, info.scale):
                lr = to_tensor(im.lr)
                if max(lr.shape[-2:]) > MAX_SIDE:
                    skipped += 1
                    continue
                with torch.no_grad():
                    device = u8(pte(lr))
                    for key, out in (("reference", reference(lr)), ("fake_quant", model(lr))):
                        diff = (u8(out) - device).abs()
                        counts[key][0] += int((diff == 0).sum())
                        counts[key][1] = max(counts[key][1], int(diff.max()))
                total += device.numel()
            row = {"set": name, "values": total, "images_skipped_over_max_side": skipped}
            for key, (same, worst) in counts.items():
                row[f"{key}_identical_pct"] = 100 * same / total
                row[f"{key}_max_levels"] = worst
            rows.append(row)
            print(f"{name}: PT2E reference vs .pte {row['reference_identical_pct']:.2f}% identical (max "
                  f"{row['reference_max_levels']} levels); QAT fake-quant vs .pte "
                  f"{row['fake_quant_identical_pct']:.2f}% (max {row['fake_quant_max_levels']})", flush=True)
    write_text_atomic(json.dumps({"checkpoint": str(args.checkpoint), "rows": rows}, indent=1), args.out)


if __name__ == "__main__":
    main()
