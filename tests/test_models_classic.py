"""EDSR, SRResNet, CARN-M, FSRCNN and SPAN: checkpoint mapping, shapes, BasicSR key layout, sanity quality."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from quantsr.checkpoints.load import load_model
from quantsr.data.datasets import default_data_root
from quantsr.models.archs import carn
from quantsr.models.blocks.classic import YCbCrConverter, rgb_to_y
from quantsr.models.registry import create_model, model_scales
from quantsr.models.weights import (
    default_weights_dir,
    load_weights,
    public_checkpoints,
)

CLASSIC = ("edsr", "srresnet", "carn_m", "fsrcnn", "span")
BENCHMARK = default_data_root() / "benchmark"


def _require_weights(model: str, scale: int) -> None:
    files = [c.file for c in public_checkpoints() if c.model == model and scale in c.scales]
    if not files or not (default_weights_dir() / files[0]).is_file():
        pytest.fail(f"no public checkpoint for {model} x{scale} in {default_weights_dir()} (needs ../shared)")


@pytest.mark.parametrize(
    "name,scale",
    [("carn_m", 2), ("carn_m", 3), ("carn_m", 4), ("fsrcnn", 2), ("fsrcnn", 3), ("fsrcnn", 4), ("span", 4)],
)
def test_pretrained_loads_strictly(name: str, scale: int) -> None:
    _require_weights(name, scale)
    model = load_model(model=name, scale=scale)  # raises on any missing/unexpected key
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 3, 8 * scale, 8 * scale)
    assert torch.isfinite(y).all()
    # A real checkpoint roughly preserves the image: the output's mean colour follows the input's.
    assert (y.mean(dim=(2, 3)) - x.mean(dim=(2, 3))).abs().max() < 0.1


@pytest.mark.parametrize("name", CLASSIC)
def test_output_shapes_every_scale(name: str) -> None:
    for scale in model_scales(name):
        model = create_model(name, scale=scale).eval()
        (example,) = model.example_inputs()
        assert example.shape[:2] == (1, 3)
        # Non-square catches H/W mix-ups. Batch 1: oneDNN is ~15x slower on tiny batch-2 convs on CPU.
        x = torch.rand(1, 3, 6, 9)
        with torch.no_grad():
            y = model(x)
        assert y.shape == (1, 3, 6 * scale, 9 * scale), (name, scale)


def test_edsr_basicsr_key_names() -> None:
    keys = set(create_model("edsr", scale=4).state_dict())
    for key in ("conv_first.weight", "body.0.conv1.weight", "body.15.conv2.bias", "conv_after_body.weight",
                "upsample.0.weight", "upsample.2.weight", "conv_last.weight"):
        assert key in keys
    # Constants are non-persistent buffers: the state dict is exactly BasicSR's (no mean / img_range keys).
    assert not any(k in keys for k in ("mean", "img_range"))
    assert {n for n, _ in create_model("edsr", scale=4).named_buffers()} == {"mean", "img_range"}
    x3 = create_model("edsr", scale=3).state_dict()
    assert x3["upsample.0.weight"].shape == (9 * 64, 64, 3, 3) and "upsample.2.weight" not in x3


def test_edsr_is_configurable() -> None:
    model = create_model("edsr", scale=2, num_feat=32, num_block=4, res_scale=0.1)
    assert len(model.body) == 4
    assert model.conv_first.out_channels == 32
    assert all(block.res_scale == 0.1 for block in model.body)
    baseline = create_model("edsr", scale=4)
    assert len(baseline.body) == 16 and baseline.conv_first.out_channels == 64
    assert sum(p.numel() for p in baseline.parameters()) == 1_517_571  # EDSR-baseline x4


def test_srresnet_basicsr_key_names() -> None:
    keys = set(create_model("srresnet", scale=4).state_dict())
    assert {"conv_first.weight", "body.0.conv1.weight", "upconv1.weight", "upconv2.weight", "conv_hr.weight",
            "conv_last.weight"} <= keys
    assert "upconv2.weight" not in create_model("srresnet", scale=3).state_dict()


def test_state_dict_round_trip_through_load_weights(tmp_path: Path) -> None:
    src = create_model("edsr", scale=2, num_block=2).eval()
    path = tmp_path / "edsr.pth"
    torch.save({"params": src.state_dict()}, path)  # BasicSR's checkpoint wrapper
    dst = load_weights(create_model("edsr", scale=2, num_block=2), path, 2).eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_carn_convert_keeps_only_requested_branch() -> None:
    fake = {k.replace("conv_first.", "entry.").replace("conv_last.", "exit."): v
            for k, v in create_model("carn_m", scale=2).state_dict().items()}
    fake = {("upsample.up2.body." + k[len("upsample."):] if k.startswith("upsample.") else
             k.removeprefix("body.")): v for k, v in fake.items()}
    fake["upsample.up3.body.0.weight"] = torch.zeros(576, 16, 3, 3)
    converted = carn.CARNM.convert_checkpoint(fake, 2)
    assert set(converted) == set(create_model("carn_m", scale=2).state_dict())
    fake["sub_mean.shifter.bias"] = torch.zeros(3)  # a mean this module does not implement
    with pytest.raises(ValueError, match="mean"):
        carn.CARNM.convert_checkpoint(fake, 2)


def test_ycbcr_round_trip() -> None:
    conv = YCbCrConverter()
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(conv.ycbcr_to_rgb(conv.rgb_to_ycbcr(x)), x, atol=1e-5)
    assert torch.allclose(conv.rgb_to_ycbcr(x)[:, :1], rgb_to_y(x), atol=1e-6)
    # White and black map to the studio-swing extremes (235 and 16 on the 8-bit scale).
    assert torch.allclose(rgb_to_y(torch.ones(1, 3, 1, 1)) * 255, torch.tensor(235.0), atol=1e-3)
    assert torch.allclose(rgb_to_y(torch.zeros(1, 3, 1, 1)) * 255, torch.tensor(16.0), atol=1e-3)


def _y_psnr(sr: torch.Tensor, hr: torch.Tensor, border: int) -> float:
    sr = torch.round(sr.clamp(0, 1) * 255) / 255
    diff = (rgb_to_y(sr.double()) - rgb_to_y(hr.double()))[..., border:-border, border:-border] * 255
    return float(10 * torch.log10(255.0**2 / diff.pow(2).mean()))


def _load_png(path: Path) -> torch.Tensor:
    from PIL import Image

    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


@pytest.mark.parametrize("name,scale", [("carn_m", 4), ("span", 4), ("fsrcnn", 2)])
def test_pretrained_beats_bicubic_on_baby_crop(name: str, scale: int) -> None:
    lr_path = BENCHMARK / "Set5_LR_bicubic" / f"X{scale}" / f"babyx{scale}.png"
    hr_path = BENCHMARK / "Set5" / "baby.png"
    if not (lr_path.is_file() and hr_path.is_file()):
        pytest.fail(f"Set5 not found under {BENCHMARK} (needs ../shared)")
    _require_weights(name, scale)
    top, left, size = 40, 40, 48  # LR pixels; a textured region of the face
    lr = _load_png(lr_path)[..., top:top + size, left:left + size]
    hr = _load_png(hr_path)[..., top * scale:(top + size) * scale, left * scale:(left + size) * scale]
    model = load_model(model=name, scale=scale)
    with torch.no_grad():
        sr = model(lr)
    bicubic = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
    assert _y_psnr(sr, hr, scale) > _y_psnr(bicubic, hr, scale) + 1.0  # measured margins: 1.5-2.5 dB
