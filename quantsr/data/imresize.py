"""MATLAB-compatible ``imresize(img, scale, 'bicubic')`` with antialiasing, in numpy (float64) and torch.

The benchmark LR images of every SR paper come from MATLAB; its bicubic kernel (a = -0.5), its widened kernel
when downscaling (antialiasing) and its symmetric border handling all change the pixels, so they are reproduced
here exactly: one separable pass per axis, the axis with the smaller scale first, accumulation in float64.
"""
from __future__ import annotations

import math

import numpy as np
import torch

_KERNEL_WIDTH = 4.0  # bicubic support in input pixels at scale 1


def _cubic(x: np.ndarray) -> np.ndarray:
    absx = np.abs(x)
    absx2 = absx**2
    absx3 = absx**3
    return (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1) + (
        -0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2
    ) * ((absx > 1) & (absx <= 2))


def _contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights (out_len, taps) and 0-based source indices (out_len, taps) along one axis, as MATLAB computes them."""
    antialias = scale < 1
    kernel_width = _KERNEL_WIDTH / scale if antialias else _KERNEL_WIDTH
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate of each output pixel centre
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]  # 1-based
    distance = u[:, None] - indices
    weights = scale * _cubic(distance * scale) if antialias else _cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # MATLAB drops columns whose weights are all zero (usually the first and last tap).
    keep = np.any(weights != 0, axis=0)
    weights, indices = weights[:, keep], indices[:, keep]
    # Symmetric padding: mirror out-of-range indices back into [1, in_len].
    aux = np.concatenate([np.arange(1, in_len + 1), np.arange(in_len, 0, -1)]).astype(np.int64)
    indices = aux[np.mod(indices.astype(np.int64) - 1, 2 * in_len)] - 1
    return weights, indices


def _resize_axis(img: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    weights, indices = _contributions(img.shape[axis], out_len, scale)
    moved = np.moveaxis(img, axis, 0)  # (L, ...)
    gathered = moved[indices]  # (out_len, taps, ...)
    w = weights.reshape(weights.shape + (1,) * (moved.ndim - 1))
    out = (gathered * w).sum(axis=1)
    return np.moveaxis(out, 0, axis)


def output_size(in_hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """MATLAB's output size for a scale factor: ceil(scale * size)."""
    return tuple(int(math.ceil(scale * n - 1e-9)) for n in in_hw)  # type: ignore[return-value]


def imresize(img: np.ndarray | torch.Tensor, scale: float) -> np.ndarray | torch.Tensor:
    """Resize like MATLAB ``imresize(img, scale, 'bicubic')`` (antialiased when shrinking).

    ``img``: numpy (H, W) or (H, W, C), or torch (C, H, W) / (N, C, H, W). uint8 numpy input returns uint8
    rounded after each pass as MATLAB does; float input returns float64 (numpy) or the input's dtype (torch),
    unclamped and unrounded.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if isinstance(img, torch.Tensor):
        dtype = img.dtype
        arr = img.detach().cpu().double().numpy()
        h_axis = arr.ndim - 2
        out = _resize_hw(arr, h_axis, scale)
        return torch.from_numpy(out).to(dtype)
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return _resize_hw(arr.astype(np.float64), 0, scale, round_each_pass=True).astype(np.uint8)
    return _resize_hw(arr.astype(np.float64), 0, scale)


def _round_uint8(x: np.ndarray) -> np.ndarray:
    # MATLAB rounds half away from zero (numpy's round is half-to-even, which flips ~1% of x2 pixels).
    return np.clip(np.floor(x + 0.5), 0, 255)


def _resize_hw(arr: np.ndarray, h_axis: int, scale: float, round_each_pass: bool = False) -> np.ndarray:
    in_h, in_w = arr.shape[h_axis], arr.shape[h_axis + 1]
    out_h, out_w = output_size((in_h, in_w), scale)
    if min(out_h, out_w) < 1:
        raise ValueError(f"image of {in_w}x{in_h} is too small to resize by {scale}")
    # MATLAB resizes along the dimension with the smaller scale first; scales are equal here, so rows first.
    out = _resize_axis(arr, h_axis, out_h, scale)
    if round_each_pass:
        # MATLAB's imresizemex returns the input's class after every pass, so uint8 input is rounded in between;
        # without this only ~86% of the official LR pixels are reproduced.
        out = _round_uint8(out)
    out = _resize_axis(out, h_axis + 1, out_w, scale)
    return _round_uint8(out) if round_each_pass else out
