import math

import numpy as np
import pytest

from quantsr.data.image_io import load_image
from quantsr.eval.metrics import calculate_psnr, calculate_ssim, rgb_to_y
from tests.conftest import BENCHMARK, require


def test_y_channel_matches_matlab_rgb2ycbcr():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], dtype=np.uint8)
    y = rgb_to_y(img)
    np.testing.assert_allclose(y[0], [16.0, 235.0, 16.0 + 65.481], atol=1e-9)


def test_psnr_known_value_for_uniform_error():
    hr = np.full((20, 20, 3), 100, dtype=np.uint8)
    sr = hr + 2  # every Y value off by 2 * (65.481+128.553+24.966)/255 = 2 * 219/255
    expected = 10 * math.log10(255**2 / (2 * 219 / 255) ** 2)
    assert calculate_psnr(sr, hr, crop_border=4) == pytest.approx(expected, abs=1e-9)
    assert calculate_psnr(hr, hr) == math.inf


def test_crop_border_ignores_the_border():
    hr = np.full((20, 20, 3), 100, dtype=np.uint8)
    sr = hr.copy()
    sr[:3] = 0
    assert calculate_psnr(sr, hr, crop_border=3) == math.inf
    assert calculate_psnr(sr, hr, crop_border=2) < 30


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Direct (loop) SSIM over 11x11 Gaussian windows: the definition, written independently."""
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_the_definition():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (30, 26, 3)).astype(np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-20, 21, hr.shape), 0, 255).astype(np.uint8)
    ours = calculate_ssim(sr, hr, crop_border=2)
    ref = _ssim_reference(rgb_to_y(sr)[2:-2, 2:-2], rgb_to_y(hr)[2:-2, 2:-2])
    assert ours == pytest.approx(ref, abs=1e-10)
    assert calculate_ssim(hr, hr) == pytest.approx(1.0)
    assert ours < 0.99


def test_grayscale_hr_bridge_is_handled():
    bridge = load_image(require(BENCHMARK / "Set14" / "bridge.png"))
    assert bridge.shape[2] == 3 and (bridge[..., 0] == bridge[..., 1]).all()
    noisy = np.clip(bridge.astype(int) + 3, 0, 255).astype(np.uint8)
    assert 30 < calculate_psnr(noisy, bridge, crop_border=4) < 50
    assert 0.9 < calculate_ssim(noisy, bridge, crop_border=4) <= 1


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="shapes differ"):
        calculate_psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
