"""EDSR (Lim et al., CVPRW 2017), in BasicSR's layout so BasicSR EDSR checkpoints load unchanged.

Defaults are EDSR-baseline (64 features, 16 blocks, res_scale 1); the paper's large model is
``create_model("edsr", num_feat=256, num_block=32, res_scale=0.1)``.
"""
from __future__ import annotations

import torch
from torch import nn

from quantsr.models.blocks.classic import (
    DIV2K_RGB_MEAN,
    ResidualBlockNoBN,
    Upsample,
    make_layer,
    register_mean_buffers,
)
from quantsr.models.registry import register_model


class EDSR(nn.Module):
    """conv_first -> body (residual blocks) -> conv_after_body (+ long skip) -> upsample -> conv_last.

    Works internally on ``(x - mean) * img_range`` (the [0, 255] range EDSR was trained on) and maps back to
    [0, 1] at the end; ``mean``/``img_range`` are non-persistent buffers so the state dict is BasicSR's.
    """

    def __init__(
        self,
        scale: int = 4,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        res_scale: float = 1.0,
        img_range: float = 255.0,
        rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        self.scale = scale
        register_mean_buffers(self, img_range, rgb_mean)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat, res_scale=res_scale)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(scale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        res = self.conv_after_body(self.body(x)) + x
        x = self.conv_last(self.upsample(res))
        return x / self.img_range + self.mean

    def example_inputs(self) -> tuple[torch.Tensor]:
        return (torch.rand(1, 3, 32, 32),)

    @classmethod
    def convert_checkpoint(cls, state_dict: dict[str, torch.Tensor], scale: int) -> dict[str, torch.Tensor]:
        """BasicSR names are ours; only strip a DataParallel ``module.`` prefix if present."""
        return {k.removeprefix("module."): v for k, v in state_dict.items()}


@register_model("edsr", scales=(2, 3, 4), module=EDSR, depth_kwarg="num_block", depth=16,
                convert_checkpoint=EDSR.convert_checkpoint)
def edsr(scale: int = 4, **kwargs) -> EDSR:
    """EDSR-baseline (1.37 M params at x4); pass num_feat/num_block/res_scale for other sizes."""
    return EDSR(scale=scale, **kwargs)
