"""RFDN: Residual Feature Distillation Network (Liu et al., ECCV-W 2020, AIM 2020 efficient-SR winner;
github.com/njulj/RFDN).

The public AIM checkpoint was trained on RGB in [0, 255]; the model scales its [0, 1] input up and its output
back down with an ``img_range`` buffer so that callers always work in [0, 1].
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


class RFDB(nn.Module):
    """Residual feature distillation block.

    Three steps, each with a 1x1 "distill" conv (half the channels, kept for the final concat) and a
    3x3 "refine" conv with a shallow residual; then a 3x3 conv on the last refined features, a 1x1 fusion
    of the four distilled parts, and ESA. Note there is no block-level residual: ESA's output is the output.
    """

    def __init__(self, num_feat: int = 50, esa_channels: int | None = None) -> None:
        super().__init__()
        dc = num_feat // 2
        self.conv1_distill = conv_layer(num_feat, dc, 1)
        self.act1_distill = nn.LeakyReLU(LRELU_SLOPE)
        self.conv1_refine = conv_layer(num_feat, num_feat, 3)
        self.act1_refine = nn.LeakyReLU(LRELU_SLOPE)
        self.conv2_distill = conv_layer(num_feat, dc, 1)
        self.act2_distill = nn.LeakyReLU(LRELU_SLOPE)
        self.conv2_refine = conv_layer(num_feat, num_feat, 3)
        self.act2_refine = nn.LeakyReLU(LRELU_SLOPE)
        self.conv3_distill = conv_layer(num_feat, dc, 1)
        self.act3_distill = nn.LeakyReLU(LRELU_SLOPE)
        self.conv3_refine = conv_layer(num_feat, num_feat, 3)
        self.act3_refine = nn.LeakyReLU(LRELU_SLOPE)
        self.conv4 = conv_layer(num_feat, dc, 3)
        self.act4 = nn.LeakyReLU(LRELU_SLOPE)
        self.conv_fuse = conv_layer(dc * 4, num_feat, 1)
        self.esa = ESA(num_feat, esa_channels or num_feat // 4, full=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.act1_distill(self.conv1_distill(x))
        r1 = self.act1_refine(self.conv1_refine(x) + x)
        d2 = self.act2_distill(self.conv2_distill(r1))
        r2 = self.act2_refine(self.conv2_refine(r1) + r1)
        d3 = self.act3_distill(self.conv3_distill(r2))
        r3 = self.act3_refine(self.conv3_refine(r2) + r2)
        d4 = self.act4(self.conv4(r3))
        return self.esa(self.conv_fuse(torch.cat([d1, d2, d3, d4], dim=1)))


class RFDN(nn.Module):
    """RFDN with BasicSR-style names: conv_first, body (RFDBs), conv_fuse, conv_after_body, upsample."""

    def __init__(
        self,
        scale: int = 4,
        num_feat: int = 50,
        num_blocks: int = 4,
        esa_channels: int | None = None,
        in_ch: int = 3,
        out_ch: int = 3,
        img_range: float = 255.0,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.register_buffer("img_range", torch.tensor(float(img_range)))
        self.conv_first = conv_layer(in_ch, num_feat, 3)
        self.body = nn.ModuleList(RFDB(num_feat, esa_channels) for _ in range(num_blocks))
        self.conv_fuse = conv_layer(num_feat * num_blocks, num_feat, 1)
        self.act_fuse = nn.LeakyReLU(LRELU_SLOPE)
        self.conv_after_body = conv_layer(num_feat, num_feat, 3)
        self.upsample = pixelshuffle_upsampler(num_feat, out_ch, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x * self.img_range)
        outs = []
        h = feat
        for block in self.body:
            h = block(h)
            outs.append(h)
        h = self.act_fuse(self.conv_fuse(torch.cat(outs, dim=1)))
        h = self.conv_after_body(h) + feat
        return self.upsample(h) / self.img_range

    def example_inputs(self) -> tuple[torch.Tensor]:
        # ESA needs at least 15x15 pixels.
        return (torch.rand(1, 3, 32, 32),)

    @classmethod
    def convert_checkpoint(cls, state_dict: dict[str, torch.Tensor], scale: int) -> dict[str, torch.Tensor]:
        """Map njulj/RFDN keys (``B1.c1_d.weight``, ``B1.esa.conv_max.weight`` ...) onto this module's names."""
        return convert_reference(state_dict, "B", [
            (r"^(body\.\d+\.)c([1-3])_d\.", r"\1conv\2_distill."),
            (r"^(body\.\d+\.)c([1-3])_r\.", r"\1conv\2_refine."),
            (r"^(body\.\d+\.)c5\.", r"\1conv_fuse."),
            (r"^(body\.\d+\.)c4\.", r"\1conv4."),
            *ESA_KEY_RULES,
        ], scale, "RFDN", img_range=255.0)


# ESA pools on a stride-6 grid and interpolates back to the input size: not tile-exact, and at least 15 px.
@register_model("rfdn", scales=(2, 3, 4), module=RFDN, public_weights={"rfdn_aim_x4.pth": (4,)}, min_side=ESA_MIN_SIDE,
                tile_exact=False, depth_kwarg="num_blocks", depth=4, convert_checkpoint=RFDN.convert_checkpoint)
def rfdn(scale: int = 4, **kw) -> nn.Module:
    """RFDN (50 channels, 4 blocks, ESA with 12 channels by default: the AIM 2020 x4 checkpoint)."""
    return RFDN(scale=scale, **kw)
