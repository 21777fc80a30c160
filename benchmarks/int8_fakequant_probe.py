"""Where int8 loses, weights or activations (issue 14): an FP net in eager PyTorch with only its conv weights
(per-output-channel symmetric int8, max scaling) or only its conv inputs (per-tensor asymmetric int8 over the
0.01%-99.99% quantiles seen on T91 calibration crops) fake-quantized, optionally only in the layers whose name
contains ``--only``. No PT2E, no graph: a quick bound on what each side costs.

    .venv/bin/python benchmarks/int8_fakequant_probe.py --model span --mode weights
    .venv/bin/python benchmarks/int8_fakequant_probe.py --model span --mode weights --only conv_cat
    .venv/bin/python benchmarks/int8_fakequant_probe.py --model rlfn --mode activations --equalize 0.5

``--equalize A`` first rescales the FP net's channels with activation equalization (``quantsr.quant.equalize``,
an exact rewrite), to see what it moves between the two sides.
"""
from __future__ import annotations

import argparse

import torch
from torch import nn

from quantsr import evaluate
from quantsr.checkpoints.load import load_model
from quantsr.export.pipeline import calibration_inputs
from quantsr.quant.equalize import equalize_activations_
from quantsr.quant.gptq import gptq_int8_weights_


def fake_quant(x: torch.Tensor, lo, hi, bits: int = 8) -> torch.Tensor:
    """Asymmetric fake-quant over [lo, hi]; lo and hi are floats (per tensor) or (1, C, 1, 1) tensors (per channel)."""
    lo, hi = torch.as_tensor(lo).clamp(max=0.0), torch.as_tensor(hi).clamp(min=0.0)
    step = (hi - lo).clamp_min(1e-12) / (2**bits - 1)
    zero = torch.round(-lo / step)
    return (torch.clamp(torch.round(x / step) + zero, 0, 2**bits - 1) - zero) * step


def input_ranges(model: nn.Module, convs: dict[str, nn.Module], batches, per_channel: bool = False) -> dict:
    """Each conv input's 0.01%-99.99% quantile range over the batches: floats, or (1, C, 1, 1) tensors per channel."""
    ranges: dict = {}

    def observe(name: str):
        def hook(module, inputs):
            x = inputs[0].detach()
            # a subsample: quantile needs < 16M elements
            sample = x.transpose(0, 1).flatten(1)[:, ::7] if per_channel else x.flatten()[None, ::7]
            low = torch.quantile(sample, 1e-4, dim=1).view(1, -1, 1, 1)
            high = torch.quantile(sample, 1 - 1e-4, dim=1).view(1, -1, 1, 1)
            if not per_channel:
                low, high = low.item(), high.item()
            lo, hi = ranges.get(name, (low, high))
            ranges[name] = (torch.minimum(torch.as_tensor(lo), torch.as_tensor(low)),
                            torch.maximum(torch.as_tensor(hi), torch.as_tensor(high)))
        return hook

    handles = [m.register_forward_pre_hook(observe(n)) for n, m in convs.items()]
    with torch.no_grad():
        for batch in batches:
            model(batch)
    for h in handles:
        h.remove()
    return ranges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="span")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--mode", choices=("weights", "activations", "both"), default="weights")
    parser.add_argument("--only", default=None, help="only layers whose name contains this")
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--act-bits", type=int, default=8)
    parser.add_argument("--rounding", choices=("nearest", "gptq"), default="nearest",
                        help="weights: round to nearest, or GPTQ (quantsr.quant.gptq; transposed convs too)")
    parser.add_argument("--act-per-channel", action="store_true",
                        help="one range per input channel (a bound: XNNPACK quantizes activations per tensor)")
    parser.add_argument("--equalize", type=float, default=None, metavar="ALPHA",
                        help="activation equalization of the FP net first (quantsr.quant.equalize)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(None, model=args.model, scale=args.scale).eval()
    if args.equalize is not None:
        equalize_activations_(model, calibration_inputs(args.scale, 64), alpha=args.equalize)
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and (args.only or "") in n}
    ranges = input_ranges(model, convs, calibration_inputs(args.scale, 64, 8), args.act_per_channel)
    if args.rounding == "gptq" and args.mode in ("weights", "both"):
        if args.only:
            parser.error("--rounding gptq rounds every conv (later layers compensate earlier ones): drop --only")
        gptq_int8_weights_(model, calibration_inputs(args.scale, 64, 8))
    for name, conv in convs.items():
        if args.mode in ("weights", "both") and args.rounding == "nearest":
            with torch.no_grad():
                w = conv.weight
                step = w.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12) / 127
                w.copy_(torch.round(w / step).clamp(-127, 127) * step)
        if args.mode in ("activations", "both"):
            lo, hi = ranges[name]
            conv.register_forward_pre_hook(
                lambda m, inputs, lo=lo, hi=hi: (fake_quant(inputs[0], lo, hi, args.act_bits),))
    result = evaluate(model, args.sets, args.scale, progress=False, ssim=False)
    print(args.model, args.mode, args.rounding, args.only or "all layers", f"equalize {args.equalize}",
          {s.name: round(s.psnr, 3) for s in result.sets})


if __name__ == "__main__":
    main()
