"""FSRCNN (Dong et al., "Accelerating the Super-Resolution Convolutional Neural Network", ECCV 2016).

d=56, s=12, m=4 with PReLU, as in yjn870/FSRCNN-pytorch. The network sees only luma: the model converts
RGB -> YCbCr (BT.601, MATLAB convention), super-resolves Y, upsamples Cb/Cr bicubically and converts back,
so like every quantsr model it maps RGB [0, 1] to RGB [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from quantsr.models.blocks.classic import YCbCrConverter
from quantsr.models.registry import register_model


class FSRCNN(nn.Module):
    """conv_first (5x5) + act_first -> body (shrink, m mapping layers, expand; PReLU each) -> conv_last
    (9x9 transposed conv with stride ``scale``)."""

    def __init__(self, scale: int = 4, d: int = 56, s: int = 12, m: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.color = YCbCrConverter()
        self.conv_first = nn.Conv2d(1, d, 5, 1, 2)
        self.act_first = nn.PReLU(d)
        body: list[nn.Module] = [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            body += [nn.Conv2d(s, s, 3, 1, 1), nn.PReLU(s)]
        body += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*body)
        # padding 4 + output_padding scale-1 makes the output exactly scale*H x scale*W.
        self.conv_last = nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=4, output_padding=scale - 1)
        nn.init.normal_(self.conv_last.weight, std=0.001)
        nn.init.zeros_(self.conv_last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ycbcr = self.color.rgb_to_ycbcr(x)
        y = self.conv_last(self.body(self.act_first(self.conv_first(ycbcr[:, :1]))))
        # an output size, not a scale factor: a float factor leaves torch.export a guard no dynamic H/W satisfies
        size = (x.shape[2] * self.scale, x.shape[3] * self.scale)
        cbcr = F.interpolate(ycbcr[:, 1:], size=size, mode="bicubic", align_corners=False)
        return self.color.ycbcr_to_rgb(torch.cat([y, cbcr], dim=1))

    def example_inputs(self) -> tuple[torch.Tensor]:
        return (torch.rand(1, 3, 32, 32),)

    @classmethod
    def convert_checkpoint(cls, state_dict: dict[str, torch.Tensor], scale: int) -> dict[str, torch.Tensor]:
        """Map yjn870 keys: first_part.0/1 -> conv_first/act_first, mid_part -> body, last_part -> conv_last."""
        out: dict[str, torch.Tensor] = {}
        for key, value in state_dict.items():
            key = key.removeprefix("module.")
            if key.startswith("first_part.0."):
                key = "conv_first." + key[len("first_part.0."):]
            elif key.startswith("first_part.1."):
                key = "act_first." + key[len("first_part.1."):]
            elif key.startswith("mid_part."):
                key = "body." + key[len("mid_part."):]
            elif key.startswith("last_part."):
                key = "conv_last." + key[len("last_part."):]
            out[key] = value
        return out


# Its body is a plain stack of convs (the mapping layers), not residual blocks: nothing for QSA to slim.
@register_model("fsrcnn", scales=(2, 3, 4), module=FSRCNN, body=None,
                public_weights={"fsrcnn_x2.pth": (2,), "fsrcnn_x3.pth": (3,), "fsrcnn_x4.pth": (4,)},
                convert_checkpoint=FSRCNN.convert_checkpoint)
def fsrcnn(scale: int = 4, **kwargs) -> FSRCNN:
    """FSRCNN(56, 12, 4), 12.5 k params; super-resolves luma only."""
    return FSRCNN(scale=scale, **kwargs)
