"""SRResNet without BatchNorm (BasicSR's ``MSRResNet``, as used by ESRGAN/SRGAN baselines).

The module names are BasicSR's (``conv_first``, ``body``, ``upconv1``/``upconv2``, ``pixel_shuffle``,
``conv_hr``, ``conv_last``), so BasicSR ``MSRResNet`` checkpoints load unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from quantsr.models.blocks.classic import ResidualBlockNoBN, make_layer
from quantsr.models.registry import register_model


def _scaled_kaiming_(modules: list[nn.Module], scale: float) -> None:
    # BasicSR's default_init_weights: small initial residuals keep the deep, BN-free stack stable early on.
    for m in modules:
        nn.init.kaiming_normal_(m.weight)
        m.weight.data.mul_(scale)
        if m.bias is not None:
            m.bias.data.zero_()


class MSRResNet(nn.Module):
    """conv_first+LReLU -> 16 residual blocks -> pixel-shuffle x2/x3 (or two x2) -> conv_hr -> conv_last,
    plus a bilinear upsampling of the input as global skip. Operates directly on [0, 1] (no mean shift)."""

    def __init__(
        self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"MSRResNet supports x2, x3, x4, not x{scale}")
        self.scale = scale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat)
        # x4 is two x2 steps sharing one PixelShuffle(2) module, as in BasicSR (hence one `pixel_shuffle`).
        step = 2 if scale == 4 else scale
        self.upconv1 = nn.Conv2d(num_feat, num_feat * step * step, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1) if scale == 4 else None
        self.pixel_shuffle = nn.PixelShuffle(step)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1)

        _scaled_kaiming_([self.conv_first, self.upconv1, self.conv_hr, self.conv_last], 0.1)
        if self.upconv2 is not None:
            _scaled_kaiming_([self.upconv2], 0.1)
        for block in self.body:
            _scaled_kaiming_([block.conv1, block.conv2], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.lrelu(self.conv_first(x))
        out = self.body(feat)
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.upconv2 is not None:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        # an output size, not a scale factor: a float factor leaves torch.export a guard no dynamic H/W satisfies
        base = F.interpolate(x, size=(x.shape[2] * self.scale, x.shape[3] * self.scale), mode="bilinear",
                             align_corners=False)
        return out + base

    def example_inputs(self) -> tuple[torch.Tensor]:
        return (torch.rand(1, 3, 32, 32),)

    @classmethod
    def convert_checkpoint(cls, state_dict: dict[str, torch.Tensor], scale: int) -> dict[str, torch.Tensor]:
        """BasicSR names are ours; only strip a DataParallel ``module.`` prefix if present."""
        return {k.removeprefix("module."): v for k, v in state_dict.items()}


SRResNet = MSRResNet


@register_model("srresnet", scales=(2, 3, 4), module=MSRResNet, depth_kwarg="num_block", depth=16,
                convert_checkpoint=MSRResNet.convert_checkpoint)
def srresnet(scale: int = 4, **kwargs) -> MSRResNet:
    """BN-free SRResNet, 64 features, 16 blocks (1.52 M params at x4)."""
    return MSRResNet(scale=scale, **kwargs)
