"""What XNNPACK's static int8 kernels compute, in PyTorch: the building blocks of the integer-faithful forward
(issue 13; the per-op arithmetic, read from XNNPACK's source, is in docs/integer_faithful.md).

Codes are float tensors holding integers, so the functions stay differentiable: every rounding passes its gradient
straight through (``round_ste``), clamps mask it. Each kernel is checked against a static int8 ``.pte`` through the
ExecuTorch runtime (``tests/test_int8_sim.py``, ``tests/test_int8_graph.py``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ADD_RATIO_RANGE", "Scale", "activation_bound_code", "add_codes", "conv_codes", "conv_transpose_codes",
           "dequantize_codes", "dequantize_weight", "int8_zero_point", "mean_codes", "mul_codes", "quantize_codes",
           "round_ste", "sigmoid_xnnpack", "weight_codes"]

QMIN, QMAX = -128, 127
ADD_RATIO_RANGE = (2.0**-10, 2.0**8)  # XNNPACK's qs8 add: the larger input/output scale ratio, [lo, hi)
_F32 = torch.float32


def int8_zero_point(lo: int, hi: int) -> int:
    """The int8 zero point that holds the integer levels ``[lo, hi]`` (``code = level + zero point``): 0 when
    they fit in [-128, 127] (every signed grid, unsigned ones up to 7 bits), else the smallest shift that moves
    them inside (an unsigned 8-bit grid [0, 255] gets -128, RBD's sign-flipped [-127, 128] gets -1, and so does
    one channel's levels [1, 128])."""
    if hi - lo > QMAX - QMIN:
        raise ValueError(f"{hi - lo + 1} levels [{lo}, {hi}] do not fit in the 256 codes of int8")
    return QMAX - hi if hi > QMAX else QMIN - lo if lo < QMIN else 0


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half to even (as x86 cvtps2dq and torch.round do), gradient passed straight through."""
    return x + (torch.round(x) - x).detach()


Scale = float | torch.Tensor  # an activation scale: fixed (a float) or a trainable 0-d tensor


def _f32(value: Scale) -> torch.Tensor:
    return value.to(_F32) if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=_F32)


def _float(value: Scale) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def activation_bound_code(value: float, scale: Scale, zero: int) -> torch.Tensor:
    """The code of a fused activation's bound (a ReLU's 0, a clamp's 1) at an output scale, as XNNPACK computes
    it: ``clamp(rne(v / s + z))``; a tensor so that a trainable scale moves it."""
    return torch.clamp(torch.round(_f32(value) / _f32(scale).detach() + zero), QMIN, QMAX)


def quantize_codes(x: torch.Tensor, scale: Scale, zero: int, qmin: int = QMIN, qmax: int = QMAX) -> torch.Tensor:
    """XNNPACK's f32 -> qs8 convert (= quantize_per_tensor): ``clamp(rne(x * fl(1/s)) + z)``."""
    inverse = (1.0 / _f32(scale)).to(_F32)
    return torch.clamp(round_ste(x.to(_F32) * inverse) + zero, qmin, qmax)


def dequantize_codes(codes: torch.Tensor, scale: Scale, zero: int) -> torch.Tensor:
    return (codes.to(_F32) - zero) * _f32(scale)


def _channel_shape(dim: int, axis: int) -> tuple[int, ...]:
    return tuple(-1 if i == axis else 1 for i in range(dim))


def weight_codes(weight: torch.Tensor, scales: torch.Tensor, qmin: int, qmax: int, axis: int = 0) -> torch.Tensor:
    """Per-channel weight codes of a trainable float weight at fixed scales (the output channels: axis 0 of a
    conv's weight, axis 1 of a transposed conv's)."""
    return torch.clamp(round_ste(weight / scales.to(_F32).view(_channel_shape(weight.dim(), axis))), qmin, qmax)


def dequantize_weight(codes: torch.Tensor, scales: torch.Tensor, axis: int = 0) -> torch.Tensor:
    return codes * scales.to(_F32).view(_channel_shape(codes.dim(), axis))


def conv_codes(x: torch.Tensor, x_scale: Scale, x_zero: int, w: torch.Tensor, w_scales: torch.Tensor,
               bias: torch.Tensor | None, y_scale: Scale, y_zero: int, stride=1, padding=0, dilation=1,
               groups: int = 1) -> torch.Tensor:
    """XNNPACK's qs8 x qc8w convolution: int32 bias on the ``s_w s_x`` grid, exact accumulation (float32 sums of
    integers are exact below 2^24), float32 per-channel multiplier, round half to even."""
    acc = F.conv2d(x.to(_F32) - x_zero, w.to(_F32), None, stride, padding, dilation, groups)
    return _requantize(acc, bias, x_scale, w_scales, y_scale, y_zero)


def _requantize(acc: torch.Tensor, bias: torch.Tensor | None, x_scale: Scale, w_scales: torch.Tensor,
                y_scale: Scale, y_zero: int) -> torch.Tensor:
    """A conv's int32 sums with its int32 bias, to output codes (per output channel, along dim 1)."""
    sw, sx, sy = w_scales.to(_F32), _f32(x_scale), _f32(y_scale)
    if bias is not None:
        acc = acc + round_ste(bias.to(_F32) * (1.0 / (sw * sx)).to(_F32)).view(1, -1, 1, 1)
    multiplier = ((sx * sw).to(_F32) / sy).to(_F32).view(1, -1, 1, 1)
    return torch.clamp(round_ste(acc * multiplier) + y_zero, QMIN, QMAX)


def conv_transpose_codes(x: torch.Tensor, x_scale: Scale, x_zero: int, w: torch.Tensor, w_scales: torch.Tensor,
                         bias: torch.Tensor | None, y_scale: Scale, y_zero: int, stride=1, padding=0,
                         output_padding=0, groups: int = 1, dilation=1) -> torch.Tensor:
    """XNNPACK's qs8 x qc8w deconvolution: the convolution's arithmetic (:func:`conv_codes`) on the transposed
    conv's sums; the weight's channels are its axis 1."""
    acc = F.conv_transpose2d(x.to(_F32) - x_zero, w.to(_F32), None, stride, padding, output_padding, groups,
                             dilation)
    return _requantize(acc, bias, x_scale, w_scales, y_scale, y_zero)


def _add_multipliers(a_scale: Scale, b_scale: Scale, y_scale: Scale) -> tuple[float, float, int, int, int]:
    sy = _f32(_float(y_scale))
    ra, rb = float(_f32(_float(a_scale)) / sy), float(_f32(_float(b_scale)) / sy)
    largest = max(abs(ra), abs(rb))
    if not ADD_RATIO_RANGE[0] <= largest < ADD_RATIO_RANGE[1]:
        raise ValueError(f"XNNPACK's qs8 add takes scale ratios in [2^-10, 2^8), got {largest:g}")
    shift = 20 - (torch.frexp(torch.tensor(largest, dtype=torch.float64))[1].item() - 1)
    return ra, rb, round(ra * 2**shift), round(rb * 2**shift), shift


def add_codes(a: torch.Tensor, a_scale: Scale, a_zero: int, b: torch.Tensor, b_scale: Scale, b_zero: int,
              y_scale: Scale, y_zero: int) -> torch.Tensor:
    """XNNPACK's qs8 add, fixed point: 21-bit multipliers, an arithmetic shift (ties round up), then clamped."""
    _, _, ma, mb, shift = _add_multipliers(a_scale, b_scale, y_scale)
    a, b = a.to(_F32) - a_zero, b.to(_F32) - b_zero
    exact = (ma * a.detach().long() + mb * b.detach().long() + (1 << (shift - 1))) >> shift
    smooth = _f32(a_scale) / _f32(y_scale) * a + _f32(b_scale) / _f32(y_scale) * b  # carries the scales' gradients
    return torch.clamp(smooth + (exact.to(_F32) - smooth).detach() + y_zero, QMIN, QMAX)


def mul_codes(a: torch.Tensor, a_scale: Scale, a_zero: int, b: torch.Tensor, b_scale: Scale, b_zero: int,
              y_scale: Scale, y_zero: int) -> torch.Tensor:
    """XNNPACK's qs8 multiply on x86: float32 multiplier ``fl(fl(s_a s_b) / s_y)``, round half to even."""
    multiplier = ((_f32(a_scale) * _f32(b_scale)).to(_F32) / _f32(y_scale)).to(_F32)
    product = (a.to(_F32) - a_zero) * (b.to(_F32) - b_zero)
    return torch.clamp(round_ste(product * multiplier) + y_zero, QMIN, QMAX)


def mean_codes(x: torch.Tensor, x_scale: Scale, x_zero: int, y_scale: Scale, y_zero: int) -> torch.Tensor:
    """XNNPACK's qs8 global average pooling: the exact sum of raw codes, ``m = fl(fl(s_x/s_y) fl(1/N))``,
    ``z' = fl(z_y - fl(N z_x) m)``, ``rne(fl(fl(S) m) + z')``."""
    n = x.shape[-1] * x.shape[-2]
    exact = x.detach().to(torch.float64).sum(dim=(2, 3), keepdim=True).to(_F32)
    smooth = x.to(_F32).sum(dim=(2, 3), keepdim=True)
    total = smooth + (exact - smooth).detach()
    m = ((_f32(x_scale) / _f32(y_scale)).to(_F32) * (1.0 / torch.tensor(float(n), dtype=_F32)).to(_F32)).to(_F32)
    shift = (y_zero - (torch.tensor(float(n), dtype=_F32) * x_zero).to(_F32) * m).to(_F32)
    return torch.clamp(round_ste((total * m).to(_F32) + shift), QMIN, QMAX)


def _hex32(text: str) -> torch.Tensor:
    return torch.tensor(float.fromhex(text), dtype=_F32)


def _fma32(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """float32 fused multiply-add: the float32 product is exact in float64; the sum is rounded twice, which
    differs from one rounding only for sums within 2^-29 relative of a float32 midpoint."""
    return (a.double() * b.double() + c.double()).to(_F32)


_SIGMOID = {name: _hex32(v) for name, v in {
    "magic": "0x1.8000FEp23", "log2e": "0x1.715476p0", "minus_ln2": "-0x1.62E430p-1", "c5": "0x1.0F9F9Cp-7",
    "c4": "0x1.573A1Ap-5", "c3": "0x1.555A80p-3", "c2": "0x1.FFFDC6p-2", "c1": "0x1.FFFFF6p-1",
    "cutoff": "-0x1.5D589Ep+6"}.items()}


def sigmoid_xnnpack(x: torch.Tensor) -> torch.Tensor:
    """XNNPACK's fp32 sigmoid on x86 AVX2 (``f32-vsigmoid avx2_rr1_p5_div``), which its int8 sigmoid table is
    built from: ``e = exp(-|x|)`` by a degree-5 polynomial with one-step range reduction, ``e / (e + 1)``,
    mirrored for x >= 0. It differs from ``torch.sigmoid`` by an ulp often enough to move a table entry by one
    code. Gradient: torch.sigmoid's."""
    k = _SIGMOID
    xf = x.detach().to(_F32)
    z = -xf.abs()
    n = _fma32(z, k["log2e"], k["magic"])
    s = (n.view(torch.int32) << 23).view(_F32)
    n = n - k["magic"]
    t = _fma32(n, k["minus_ln2"], z)
    p = _fma32(k["c5"].expand_as(t), t, k["c4"])
    for c in ("c3", "c2", "c1"):
        p = _fma32(p, t, k[c])
    t = t * s
    e = _fma32(t, p, s)
    f = e / (e + 1.0)
    f = torch.where(z < k["cutoff"], torch.zeros_like(f), f)
    exact = torch.where(torch.signbit(xf), f, 1.0 - f)
    smooth = torch.sigmoid(x.to(_F32))
    return smooth + (exact - smooth).detach()
