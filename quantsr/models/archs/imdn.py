"""IMDN: Information Multi-Distillation Network (Hui et al., ACM MM 2019; github.com/Zheng222/IMDN).

Takes RGB in [0, 1] directly (the public checkpoints were trained that way), so there is no input scaling.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from quantsr.models.blocks.distillation import (
    LRELU_SLOPE,
    conv_layer,
    pixelshuffle_upsampler,
)
from quantsr.models.keymap import convert_reference
from quantsr.models.registry import register_model


class ContrastChannelAttention(nn.Module):
    """CCA layer: squeeze-excite driven by per-channel (std + mean) instead of the mean alone."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.conv_squeeze = nn.Conv2d(channels, channels // reduction, 1)
        self.act = nn.ReLU()
        self.conv_excite = nn.Conv2d(channels // reduction, channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True)
        # The clamp keeps sqrt's gradient finite on flat patches (zero variance); outputs are unchanged otherwise.
        std = var.clamp_min(1e-12).sqrt()
        weight = self.sigmoid(self.conv_excite(self.act(self.conv_squeeze(std + mean))))
        return x * weight


class IMDB(nn.Module):
    """Information multi-distillation block: three 3x3 conv steps each split off a quarter of the channels.

    The distilled quarters and the last conv's output are concatenated, re-weighted by CCA, fused by a
    1x1 conv and added to the block input.
    """

    def __init__(self, num_feat: int = 64, distillation_rate: float = 0.25) -> None:
        super().__init__()
        self.distilled = int(num_feat * distillation_rate)
        self.remaining = num_feat - self.distilled
        self.conv1 = conv_layer(num_feat, num_feat, 3)
        self.act1 = nn.LeakyReLU(LRELU_SLOPE)
        self.conv2 = conv_layer(self.remaining, num_feat, 3)
        self.act2 = nn.LeakyReLU(LRELU_SLOPE)
        self.conv3 = conv_layer(self.remaining, num_feat, 3)
        self.act3 = nn.LeakyReLU(LRELU_SLOPE)
        # No activation after conv4, as in the reference.
        self.conv4 = conv_layer(self.remaining, self.distilled, 3)
        # 4 * distilled == num_feat for the published widths; sizing from `distilled` keeps other widths valid.
        self.cca = ContrastChannelAttention(self.distilled * 4)
        self.conv_fuse = conv_layer(self.distilled * 4, num_feat, 1)

    def _distill(self, conv: nn.Module, act: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = conv(x)
        if isinstance(out, tuple):  # the export form: the conv computes the two groups itself, no slicing
            return act(out[0]), act(out[1])
        # Slicing rather than torch.split: XNNPACK delegates slice_copy (static shapes) but not split_with_sizes.
        t = act(out)
        return t[:, : self.distilled], t[:, self.distilled :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1, r1 = self._distill(self.conv1, self.act1, x)
        d2, r2 = self._distill(self.conv2, self.act2, r1)
        d3, r3 = self._distill(self.conv3, self.act3, r2)
        d4 = self.conv4(r3)
        out = torch.cat([d1, d2, d3, d4], dim=1)
        return self.conv_fuse(self.cca(out)) + x


class IMDN(nn.Module):
    """IMDN with BasicSR-style names: conv_first, body (IMDBs), conv_fuse, conv_after_body, upsample."""

    def __init__(
        self,
        scale: int = 4,
        num_feat: int = 64,
        num_blocks: int = 6,
        in_ch: int = 3,
        out_ch: int = 3,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.conv_first = conv_layer(in_ch, num_feat, 3)
        self.body = nn.ModuleList(IMDB(num_feat) for _ in range(num_blocks))
        # Every block's output is fused, not just the last one's.
        self.conv_fuse = conv_layer(num_feat * num_blocks, num_feat, 1)
        self.act_fuse = nn.LeakyReLU(LRELU_SLOPE)
        self.conv_after_body = conv_layer(num_feat, num_feat, 3)
        self.upsample = pixelshuffle_upsampler(num_feat, out_ch, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        outs = []
        h = feat
        for block in self.body:
            h = block(h)
            outs.append(h)
        h = self.act_fuse(self.conv_fuse(torch.cat(outs, dim=1)))
        h = self.conv_after_body(h) + feat
        return self.upsample(h)

    def example_inputs(self) -> tuple[torch.Tensor]:
        return (torch.rand(1, 3, 32, 32),)

    @classmethod
    def convert_checkpoint(cls, state_dict: dict[str, torch.Tensor], scale: int) -> dict[str, torch.Tensor]:
        """Map Zheng222/IMDN keys (``module.IMDB1.c1.weight`` ...) onto this module's names."""
        return convert_reference(state_dict, "IMDB", [
            (r"^(body\.\d+\.)c([1-4])\.", r"\1conv\2."),
            (r"^(body\.\d+\.)c5\.", r"\1conv_fuse."),
            (r"^(body\.\d+\.cca\.)conv_du\.0\.", r"\1conv_squeeze."),
            (r"^(body\.\d+\.cca\.)conv_du\.2\.", r"\1conv_excite."),
        ], scale, "IMDN")


def imdn_channel_splits(model: nn.Module) -> dict[str, tuple[int, int]]:
    """Each IMDB's conv1-conv3 outputs split into (distilled, remaining) channels."""
    return {f"{fqn}.{conv}": (block.distilled, block.remaining) for fqn, block in model.named_modules()
            if isinstance(block, IMDB) for conv in ("conv1", "conv2", "conv3")}


# Not tile-exact: the CCA layers pool mean/std over the whole input, so a tile sees slightly different
# statistics than the whole image (tiled inference is close to, not equal to, whole-image inference).
@register_model("imdn", scales=(2, 3, 4), module=IMDN, tile_exact=False, channel_splits=imdn_channel_splits,
                public_weights={"IMDN_x2.pth": (2,), "IMDN_x3.pth": (3,), "IMDN_x4.pth": (4,)},
                depth_kwarg="num_blocks", depth=6, convert_checkpoint=IMDN.convert_checkpoint)
def imdn(scale: int = 4, **kw) -> nn.Module:
    """IMDN (64 channels, 6 blocks by default: the published x2/x3/x4 checkpoints)."""
    return IMDN(scale=scale, **kw)
