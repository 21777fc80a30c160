"""What XNNPACK's static int8 kernels compute, in PyTorch: the building blocks of an integer-faithful fake-quant
forward (issue 13; the per-op arithmetic, read from XNNPACK's source, is in docs/integer_faithful.md).

Codes are float tensors holding integers (exact in float64 for int8 sums), so the functions stay differentiable
where a straight-through estimator wraps them. Each function is checked against a one-op ``.pte`` through the
ExecuTorch runtime (``tests/test_int8_sim.py``)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["add_requantized", "conv2d_requantized", "dequantize", "quantize"]

QMIN, QMAX = -128, 127


def quantize(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """int8 codes of ``x`` as XNNPACK's f32->qs8 convert and PyTorch's quantize_per_tensor compute them:
    ``clamp(round_half_even(x * fl32(1/scale)) + zero_point)``."""
    inverse = float(torch.tensor(1.0 / scale, dtype=torch.float32))
    return torch.clamp(torch.round(x.float() * inverse) + zero_point, QMIN, QMAX)


def dequantize(codes: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    return (codes.float() - zero_point) * torch.tensor(scale, dtype=torch.float32)


def conv2d_requantized(x_codes: torch.Tensor, x_scale: float, x_zero: int, weight_codes: torch.Tensor,
                       weight_scales: torch.Tensor, bias: torch.Tensor | None, y_scale: float, y_zero: int, *,
                       stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1,
                       y_min: int = QMIN, y_max: int = QMAX) -> torch.Tensor:
    """Output codes of a qs8 convolution with per-channel (qc8) weights, the "fp32" requantization of XNNPACK:

    - the fp32 bias becomes int32 on the grid ``s_w[c] * s_x``: ``round_half_even(b * fl32(1 / fl32(s_w s_x)))``;
    - the accumulator is exact: ``b_q + sum(w_q * (x_q - z_x))`` (padding reads the input zero point, i.e. 0);
    - the multiplier is float32: ``fl32(fl32(s_x s_w[c]) / s_y)``, applied to the accumulator rounded to float32;
    - ``round_half_even`` (x86 cvtps2dq), ``+ z_y``, clamped to ``[y_min, y_max]`` (a fused ReLU: ``y_min = z_y``).
    """
    f32 = torch.float32
    sw = weight_scales.to(f32)
    sx, sy = torch.tensor(x_scale, dtype=f32), torch.tensor(y_scale, dtype=f32)
    acc = F.conv2d((x_codes - x_zero).double(), weight_codes.double(), None, stride, padding, dilation, groups)
    if bias is not None:
        bias_codes = torch.round(bias.to(f32) * (1.0 / (sw * sx)).to(f32))
        acc = acc + bias_codes.double().view(1, -1, 1, 1)
    multiplier = ((sx * sw).to(f32) / sy).to(f32)
    return torch.clamp(torch.round(acc.to(f32) * multiplier.view(1, -1, 1, 1)) + y_zero, y_min, y_max)


def add_requantized(a_codes: torch.Tensor, a_scale: float, a_zero: int, b_codes: torch.Tensor, b_scale: float,
                    b_zero: int, y_scale: float, y_zero: int) -> torch.Tensor:
    """Output codes of XNNPACK's qs8 add, which is fixed point, not float:

    - ratios ``r = fl32(s_in / s_y)``, each in [2^-10, 2^8); ``shift = 20 - floor(log2(max |r|))``;
    - 21-bit multipliers ``M = round_half_even(r * 2^shift)``;
    - ``floor((M_a (a - z_a) + M_b (b - z_b) + 2^(shift-1)) / 2^shift) + z_y``: an arithmetic shift, so ties
      round towards +inf (not to even, as everything else does), then clamped to int8.
    """
    f32 = torch.float32
    sy = torch.tensor(y_scale, dtype=f32)
    ra = float(torch.tensor(a_scale, dtype=f32) / sy)
    rb = float(torch.tensor(b_scale, dtype=f32) / sy)
    largest = max(abs(ra), abs(rb))
    if not 2.0**-10 <= largest < 2.0**8:
        raise ValueError(f"XNNPACK's qs8 add takes scale ratios in [2^-10, 2^8), got {largest:g}")
    shift = 20 - (math.frexp(largest)[1] - 1)  # frexp: largest = m 2^e, m in [0.5, 1), so floor(log2) = e - 1
    ma, mb = round(ra * 2**shift), round(rb * 2**shift)  # Python's round: ties to even
    acc = ma * (a_codes.long() - a_zero) + mb * (b_codes.long() - b_zero) + (1 << (shift - 1))
    return torch.clamp((acc >> shift) + y_zero, QMIN, QMAX).float()
