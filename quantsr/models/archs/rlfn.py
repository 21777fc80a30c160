"""RLFN: Residual Local Feature Network (Kong et al., CVPR-W 2022, NTIRE 2022 efficient-SR winner, ByteDance;
github.com/ofsoundof/NTIRE2022_ESR models/team04_rlfn.py).

The released NTIRE checkpoint is the pruned "RLFN_cut" variant: 46 feature channels, 48 channels inside the
block's conv chain, 16 ESA channels, and a reduced ESA (one conv at low resolution, no ReLUs). It was trained
on RGB in [0, 255]; the ``img_range`` buffer scales the [0, 1] input up and the output back down.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from quantsr.models.blocks.distillation import (
    ESA,
    ESA_KEY_RULES,
    ESA_MIN_SIDE,
    LRELU_SLOPE,
    conv_layer,
    pixelshuffle_upsampler,
)
from quantsr.models.keymap import convert_reference
from quantsr.models.registry import register_model


class RLFB(nn.Module):
    """Residual local feature block: three 3x3 conv + LeakyReLU, a block residual, a 1x1 conv, ESA.

    Unlike RFDB there is no feature distillation/concat, which is what makes it fast.
    """

    def __init__(self, num_feat: int = 46, mid_feat: int = 48, esa_channels: int = 16) -> None:
        super().__init__()
        self.conv1 = conv_layer(num_feat, mid_feat, 3)
        self.act1 = nn.LeakyReLU(LRELU_SLOPE)
        self.conv2 = conv_layer(mid_feat, mid_feat, 3)
        self.act2 = nn.LeakyReLU(LRELU_SLOPE)
        self.conv3 = conv_layer(mid_feat, num_feat, 3)
        self.act3 = nn.LeakyReLU(LRELU_SLOPE)
        self.conv_fuse = conv_layer(num_feat, num_feat, 1)
        self.esa = ESA(num_feat, esa_channels, full=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act3(self.conv3(self.act2(self.conv2(self.act1(self.conv1(x))))))
        # The residual is added after the last activation, and ESA's output is the block output.
        return self.esa(self.conv_fuse(h + x))


class RLFN(nn.Module):
    """RLFN with BasicSR-style names: conv_first, body (RLFBs), conv_after_body, upsample (no fusion conv)."""

    def __init__(
        self,
        scale: int = 4,
        num_feat: int = 46,
        num_blocks: int = 4,
        mid_feat: int = 48,
        esa_channels: int = 16,
        in_ch: int = 3,
        out_ch: int = 3,
        img_range: float = 255.0,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.register_buffer("img_range", torch.tensor(float(img_range)))
        self.conv_first = conv_layer(in_ch, num_feat, 3)
        self.body = nn.Sequential(*(RLFB(num_feat, mid_feat, esa_channels) for _ in range(num_blocks)))
        self.conv_after_body = conv_layer(num_feat, num_feat, 3)
        self.upsample = pixelshuffle_upsampler(num_feat, out_ch, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x * self.img_range)
        h = self.conv_after_body(self.body(feat)) + feat
        return self.upsample(h) / self.img_range

    def example_inputs(self) -> tuple[torch.Tensor]:
        # ESA needs at least 15x15 pixels.
        return (torch.rand(1, 3, 32, 32),)

    @classmethod
    def convert_checkpoint(cls, state_dict: dict[str, torch.Tensor], scale: int) -> dict[str, torch.Tensor]:
        """Map the NTIRE 2022 team04 keys (``B1.c1_r.weight``, ``B1.esa.conv2.weight`` ...) onto ours."""
        return convert_reference(state_dict, "B", [
            (r"^(body\.\d+\.)c([1-3])_r\.", r"\1conv\2."),
            (r"^(body\.\d+\.)c5\.", r"\1conv_fuse."),
            *ESA_KEY_RULES,
        ], scale, "RLFN", img_range=255.0)


# ESA pools on a stride-6 grid and interpolates back to the input size: not tile-exact, and at least 15 px.
@register_model("rlfn", scales=(2, 3, 4), module=RLFN, public_weights={"rlfn_ntire2022_x4.pth": (4,)},
                min_side=ESA_MIN_SIDE, tile_exact=False, depth_kwarg="num_blocks", depth=4,
                convert_checkpoint=RLFN.convert_checkpoint)
def rlfn(scale: int = 4, **kw) -> nn.Module:
    """RLFN_cut (46 channels, 48 mid, 4 blocks, 16 ESA channels by default: the NTIRE 2022 x4 checkpoint)."""
    return RLFN(scale=scale, **kw)
