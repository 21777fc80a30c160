"""SPAN (Wan et al., "Swift Parameter-free Attention Network for Efficient Super-Resolution", NTIRE 2024
efficient-SR winner), the ch28 "slim" submission (team38, Amazingren/NTIRE2024_ESR).

Upstream trains each 3x3 as a re-parameterisable Conv3XC (1x1 -> 3x3 -> 1x1 plus a 1x1 skip) and ships only
the collapsed ``eval_conv``; here each is a plain 3x3 ``nn.Conv2d``, which is what inference (and
quantisation) sees anyway.
"""
from __future__ import annotations

import torch
from torch import nn

from quantsr.models.blocks.classic import (
    DIV2K_RGB_MEAN,
    pixelshuffle_block,
    register_mean_buffers,
)
from quantsr.models.registry import register_model


class SPAB(nn.Module):
    """Swift parameter-free attention block: three 3x3 convs (SiLU between) and a parameter-free attention
    ``(out3 + x) * (sigmoid(out3) - 0.5)``. Returns the block output and the activated first conv output,
    which the network taps from the last block."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Upstream applies an in-place SiLU to conv1's output before returning it, so the tap the network
        # was trained with is the *activated* conv1 output (returning the raw one costs ~15 dB).
        out1 = self.act(self.conv1(x))
        out3 = self.conv3(self.act(self.conv2(out1)))
        att = torch.sigmoid(out3) - 0.5
        return (out3 + x) * att, out1


class SPAN(nn.Module):
    """conv_first -> body (SPABs) -> conv_after_body; conv_cat fuses [first features, after-body, block-1
    output, last block's first conv] -> upsample (conv + PixelShuffle, the last layer).

    Input normalisation as upstream: ``(x - mean) * 255``; the output is *not* de-normalised, because the
    network was trained to emit [0, 1] directly.
    """

    def __init__(self, scale: int = 4, num_feat: int = 28, num_block: int = 6, img_range: float = 255.0) -> None:
        super().__init__()
        if num_block < 2:
            raise ValueError("SPAN needs at least 2 blocks (it taps block 1 and the last block)")
        self.scale = scale
        register_mean_buffers(self, img_range, DIV2K_RGB_MEAN)
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.ModuleList(SPAB(num_feat) for _ in range(num_block))
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_cat = nn.Conv2d(num_feat * 4, num_feat, 1, 1, 0)
        self.upsample = pixelshuffle_block(num_feat, 3, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first((x - self.mean) * self.img_range)
        out, tap = self.body[0](feat)
        out_b1 = out
        for block in self.body[1:]:
            out, tap = block(out)
        # `tap` is now the last block's SiLU(conv1) output.
        fused = self.conv_cat(torch.cat([feat, self.conv_after_body(out), out_b1, tap], dim=1))
        return self.upsample(fused)

    def example_inputs(self) -> tuple[torch.Tensor]:
        return (torch.rand(1, 3, 32, 32),)

    @classmethod
    def convert_checkpoint(cls, state_dict: dict[str, torch.Tensor], scale: int) -> dict[str, torch.Tensor]:
        """Map NTIRE2024 SPAN keys (conv_1, block_i.c{j}_r.eval_conv, conv_2, conv_cat, upsampler.0)."""
        out: dict[str, torch.Tensor] = {}
        for key, value in state_dict.items():
            parts = key.removeprefix("module.").replace(".eval_conv.", ".").split(".")
            if parts[0] == "conv_1":
                parts[0] = "conv_first"
            elif parts[0] == "conv_2":
                parts[0] = "conv_after_body"
            elif parts[0] == "upsampler":
                parts[0] = "upsample"
            elif parts[0].startswith("block_") and parts[1].endswith("_r"):
                index = int(parts[0][len("block_"):]) - 1
                parts = ["body", str(index), "conv" + parts[1][1:-2], *parts[2:]]
            out[".".join(parts)] = value
        return out


@register_model("span", scales=(2, 3, 4), module=SPAN, public_weights={"span_ch28_x4.pth": (4,)},
                convert_checkpoint=SPAN.convert_checkpoint)
def span(scale: int = 4, **kwargs) -> SPAN:
    """SPAN with 28 channels and 6 blocks (the NTIRE 2024 ch28 model, 151 k params at x4)."""
    return SPAN(scale=scale, **kwargs)
