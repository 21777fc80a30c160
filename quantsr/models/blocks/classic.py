"""Small building blocks shared by the classic SR models (EDSR, SRResNet, CARN, FSRCNN, SPAN).

Names follow BasicSR (``ResidualBlockNoBN.conv1/conv2``, ``Upsample`` as a flat ``nn.Sequential``) so that
BasicSR state dicts load without renaming.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# DIV2K RGB mean in [0, 1]; EDSR, CARN and SPAN all normalise with it.
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)

# ITU-R BT.601 "studio swing" as MATLAB's rgb2ycbcr, for RGB in [0, 1]: ycbcr = M @ rgb + offset (in [0, 1] units).
_RGB2YCBCR = torch.tensor(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=torch.float64
) / 255.0
_YCBCR_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64) / 255.0


def register_mean_buffers(
    module: nn.Module, img_range: float = 255.0, rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN
) -> None:
    """Attach ``mean`` (1, 3, 1, 1) and ``img_range`` () as non-persistent buffers.

    Non-persistent: they are constants of the architecture, so state dicts keep exactly the upstream key set
    (BasicSR/CARN/SPAN checkpoints load strictly) while ``.to(device/dtype)`` and ``torch.export`` still see them.
    """
    module.register_buffer("mean", torch.tensor(rgb_mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
    module.register_buffer("img_range", torch.tensor(float(img_range)), persistent=False)


class ResidualBlockNoBN(nn.Module):
    """``x + res_scale * conv2(relu(conv1(x)))``, BasicSR's block (EDSR, MSRResNet)."""

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        # Not in-place: fake-quant wrappers and hooks may keep a reference to the pre-activation tensor.
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu(self.conv1(x)))
        return x + out * self.res_scale


def make_layer(block: type[nn.Module], num_blocks: int, **kwargs) -> nn.Sequential:
    """``nn.Sequential`` of ``num_blocks`` fresh ``block(**kwargs)`` (indices 0..n-1, as BasicSR)."""
    return nn.Sequential(*[block(**kwargs) for _ in range(num_blocks)])


class Upsample(nn.Sequential):
    """BasicSR's upsampler: (conv 3x3 -> 4C, PixelShuffle(2)) per factor 2, or (conv -> 9C, PixelShuffle(3)).

    Flat layout, so the keys are ``upsample.0.weight``, ``upsample.2.weight``, ... exactly as in BasicSR.
    """

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale {scale} is not supported; use a power of 2 or 3")
        super().__init__(*layers)


def pixelshuffle_block(in_ch: int, out_ch: int, scale: int, kernel_size: int = 3) -> nn.Sequential:
    """One conv to ``out_ch * scale**2`` channels then PixelShuffle (the light-weight SR tail; keys ``.0.*``)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch * scale * scale, kernel_size, 1, kernel_size // 2), nn.PixelShuffle(scale)
    )


class YCbCrConverter(nn.Module):
    """RGB <-> YCbCr (BT.601, MATLAB ``rgb2ycbcr`` convention) on [0, 1] data, as fixed 1x1 convolutions.

    The matrices are non-persistent buffers applied with ``F.conv2d`` (not ``nn.Conv2d`` modules), so
    module-swapping quantisers leave the colour transform in floating point.
    """

    def __init__(self) -> None:
        super().__init__()
        inv = torch.linalg.inv(_RGB2YCBCR)
        self.register_buffer("fwd_weight", _RGB2YCBCR.float().view(3, 3, 1, 1), persistent=False)
        self.register_buffer("fwd_bias", _YCBCR_OFFSET.float(), persistent=False)
        self.register_buffer("inv_weight", inv.float().view(3, 3, 1, 1), persistent=False)
        # rgb = inv @ (ycbcr - offset) = inv @ ycbcr - inv @ offset
        self.register_buffer("inv_bias", (-(inv @ _YCBCR_OFFSET)).float(), persistent=False)

    def rgb_to_ycbcr(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.fwd_weight, self.fwd_bias)

    def ycbcr_to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.inv_weight, self.inv_bias)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Y channel (BT.601, MATLAB convention) of RGB in [0, 1], in [0, 1] units; shape (N, 1, H, W)."""
    w = _RGB2YCBCR[0].to(x.dtype).to(x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True) + 16.0 / 255.0
