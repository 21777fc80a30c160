"""PSNR and SSIM as SR papers compute them (BasicSR / MATLAB conventions).

Inputs are uint8-valued images (H, W, 3) RGB (or (H, W) already-Y); the Y channel is ITU-R BT.601 as MATLAB's
``rgb2ycbcr`` (16..235), ``crop_border`` pixels are removed from every side, arithmetic is float64.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Y (float64, 16..235 range) of an RGB image with values in [0, 255]."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 2:
        return img
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) RGB or (H, W) gray, got shape {img.shape}")
    return img @ _Y_WEIGHTS + 16.0


def _prepare(sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    sr = np.asarray(sr)
    hr = np.asarray(hr)
    if sr.shape != hr.shape:
        raise ValueError(f"SR and HR shapes differ: {sr.shape} vs {hr.shape}")
    if y_channel:
        sr, hr = rgb_to_y(sr), rgb_to_y(hr)
    else:
        sr, hr = sr.astype(np.float64), hr.astype(np.float64)
    if crop_border > 0:
        sr = sr[crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[crop_border:-crop_border, crop_border:-crop_border]
    if sr.size == 0:
        raise ValueError(f"nothing left after cropping {crop_border} px from each border of a {hr.shape} image")
    return sr, hr


def calculate_psnr(sr: np.ndarray, hr: np.ndarray, crop_border: int = 0, y_channel: bool = True) -> float:
    """PSNR in dB for images in [0, 255]; ``inf`` when identical."""
    sr, hr = _prepare(sr, hr, crop_border, y_channel)
    mse = np.mean((sr - hr) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    # Separable 'valid' Gaussian filtering, as BasicSR's cv2.filter2D(...)[5:-5, 5:-5].
    rows = sliding_window_view(img, len(g), axis=0) @ g
    return sliding_window_view(rows, len(g), axis=1) @ g


def _ssim_single(a: np.ndarray, b: np.ndarray) -> float:
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    g = _gaussian_window()
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    sigma_a = _filter_valid(a * a, g) - mu_a**2
    sigma_b = _filter_valid(b * b, g) - mu_b**2
    sigma_ab = _filter_valid(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * sigma_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (sigma_a + sigma_b + c2))
    return float(ssim_map.mean())


def calculate_ssim(sr: np.ndarray, hr: np.ndarray, crop_border: int = 0, y_channel: bool = True) -> float:
    """SSIM with an 11x11 Gaussian window (sigma 1.5), mean over channels when not on Y."""
    sr, hr = _prepare(sr, hr, crop_border, y_channel)
    if min(sr.shape[:2]) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {sr.shape[1]}x{sr.shape[0]}")
    if sr.ndim == 2:
        return _ssim_single(sr, hr)
    return float(np.mean([_ssim_single(sr[..., c], hr[..., c]) for c in range(sr.shape[2])]))
