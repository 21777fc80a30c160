"""IMDN / RFDN / RLFN: public checkpoints load onto our modules, shapes per scale, and the weights behave."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from quantsr.checkpoints.load import load_model
from quantsr.models.registry import create_model
from quantsr.models.weights import default_weights_dir, read_state_dict

LIGHTWEIGHT = ("imdn", "rfdn", "rlfn")
# (file, model, scale): the public checkpoints of the three architectures.
CHECKPOINTS = (
    ("IMDN_x2.pth", "imdn", 2),
    ("IMDN_x3.pth", "imdn", 3),
    ("IMDN_x4.pth", "imdn", 4),
    ("rfdn_aim_x4.pth", "rfdn", 4),
    ("rlfn_ntire2022_x4.pth", "rlfn", 4),
)
PARAM_COUNTS = {"IMDN_x2.pth": 694_404, "IMDN_x3.pth": 703_059, "IMDN_x4.pth": 715_176,
                "rfdn_aim_x4.pth": 433_448, "rlfn_ntire2022_x4.pth": 317_218}


def _weights(file: str) -> Path:
    path = default_weights_dir() / file
    if not path.is_file():
        pytest.fail(f"{path} not available (needs ../shared)")
    return path


def _benchmark_dir() -> Path:
    candidates = (
        default_weights_dir().parent / "data" / "benchmark",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmark",
    )
    for root in candidates:
        if (root / "Set5" / "baby.png").is_file():
            return root
    pytest.fail("Set5 benchmark images not available (needs ../shared)")


def _psnr_y(a: torch.Tensor, b: torch.Tensor, border: int) -> float:
    """PSNR on the BT.601 Y channel of (1, 3, H, W) images in [0, 1], ignoring ``border`` pixels."""
    coef = torch.tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    ya = (a * coef).sum(1)[..., border:-border, border:-border]
    yb = (b * coef).sum(1)[..., border:-border, border:-border]
    return float(10 * torch.log10(255.0**2 / (ya - yb).pow(2).mean()))


def _load_png(path: Path) -> torch.Tensor:
    from PIL import Image

    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.mark.parametrize(("file", "model", "scale"), CHECKPOINTS, ids=[c[0] for c in CHECKPOINTS])
def test_public_checkpoint_loads_strictly(file: str, model: str, scale: int) -> None:
    path = _weights(file)
    net = load_model(path, model=model, scale=scale)
    assert sum(p.numel() for p in net.parameters()) == PARAM_COUNTS[file]
    # convert_checkpoint alone must produce a complete state dict (buffers included).
    fresh = create_model(model, scale=scale)
    fresh.load_state_dict(type(fresh).convert_checkpoint(read_state_dict(path), scale), strict=True)
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(fresh(x), net(x))


def test_checkpoint_for_wrong_scale_is_rejected(tmp_path) -> None:
    path = _weights("IMDN_x4.pth")
    with pytest.raises(ValueError, match="IMDN_x4.pth is a x4 checkpoint"):  # known by its file name
        load_model(path, model="imdn", scale=2)
    renamed = tmp_path / "mine.pth"  # an unknown name: the upsampler's shape tells
    renamed.write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="upsampler has 48 output channels \\(x4\\)"):
        load_model(renamed, model="imdn", scale=2)


@pytest.mark.parametrize("scale", (2, 3, 4))
@pytest.mark.parametrize("name", LIGHTWEIGHT)
def test_output_shape(name: str, scale: int) -> None:
    torch.manual_seed(0)
    net = create_model(name, scale=scale).eval()
    (example,) = net.example_inputs()
    assert example.shape[:2] == (1, 3)
    # Non-square, and the smallest size ESA accepts on one side, to catch H/W mix-ups in its interpolate.
    x = torch.rand(1, 3, 24, 15)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, 3, 24 * scale, 15 * scale)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(
    ("file", "model"),
    (("IMDN_x4.pth", "imdn"), ("rfdn_aim_x4.pth", "rfdn"), ("rlfn_ntire2022_x4.pth", "rlfn")),
)
def test_x4_beats_bicubic_on_set5_baby(file: str, model: str) -> None:
    # Behavioural check of the key mapping and the input range: a mis-mapped or mis-scaled net falls
    # well below bicubic (RFDN fed [0, 1] instead of [0, 255] loses ~6 dB).
    path = _weights(file)
    root = _benchmark_dir()
    lr_full = _load_png(root / "Set5_LR_bicubic" / "X4" / "babyx4.png")
    hr_full = _load_png(root / "Set5" / "baby.png")
    top, left, size = 40, 40, 48
    lr = lr_full[..., top : top + size, left : left + size]
    hr = hr_full[..., 4 * top : 4 * (top + size), 4 * left : 4 * (left + size)]
    net = load_model(path, model=model, scale=4)
    with torch.no_grad():
        sr = net(lr).clamp(0, 1).mul(255).round().div(255)
    bicubic = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    bicubic = bicubic.mul(255).round().div(255)
    psnr_sr, psnr_bicubic = _psnr_y(sr, hr, 4), _psnr_y(bicubic, hr, 4)
    assert psnr_sr > psnr_bicubic + 1.0, (psnr_sr, psnr_bicubic)

