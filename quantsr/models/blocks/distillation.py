"""Building blocks shared by the lightweight distillation-family models (IMDN, RFDN, RLFN).

Activations are separate module instances at every call site (never one ``self.act`` reused), so that
observer- or fake-quant-insertion tools that hook modules see one activation per tensor.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# The distillation-family papers all use LeakyReLU with this slope inside their blocks.
LRELU_SLOPE = 0.05
# ESA's unpadded stride-2 conv followed by a 7x7 max-pool runs from a 15-px side, but from 15 to 20 px its pooled
# map is 1x1, where torch.export specializes the graph: a dynamic-shape export (and so tiling) starts at 21.
ESA_MIN_SIDE = 21


def conv_layer(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """``nn.Conv2d`` with 'same' padding for odd kernels, as in the reference implementations."""
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias=bias)


def pixelshuffle_upsampler(in_ch: int, out_ch: int, scale: int, kernel_size: int = 3) -> nn.Sequential:
    """One conv to ``out_ch * scale**2`` channels followed by ``PixelShuffle`` (state-dict keys ``0.*``)."""
    return nn.Sequential(conv_layer(in_ch, out_ch * scale * scale, kernel_size), nn.PixelShuffle(scale))


class ESA(nn.Module):
    """Enhanced Spatial Attention (Liu et al., RFANet, CVPR 2020) as used by RFDN and RLFN.

    A cheap, large-receptive-field mask: squeeze channels, stride-2 conv, 7x7/3 max-pool, a few convs at that
    tiny resolution, bilinear back to the input size, add a 1x1 skip from the squeezed features, expand, sigmoid.
    ``full=True`` is RFDN's version (conv_max + ReLU, conv3 + ReLU, a second conv3); ``full=False`` is RLFN's
    pruned version (a single conv3, no ReLUs). Needs inputs of at least 15x15 pixels (stride-2 conv then a
    7x7 pool with no padding).
    """

    def __init__(self, num_feat: int, esa_channels: int, full: bool = True) -> None:
        super().__init__()
        f = esa_channels
        self.full = full
        self.conv_reduce = nn.Conv2d(num_feat, f, 1)
        self.conv_skip = nn.Conv2d(f, f, 1)
        # Unpadded stride-2 conv: matches the reference, and changes the pooled size, so keep padding=0.
        self.conv_down = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.pool = nn.MaxPool2d(kernel_size=7, stride=3)
        if full:
            self.conv_max = conv_layer(f, f, 3)
            self.act_max = nn.ReLU()
            self.conv_mid = conv_layer(f, f, 3)
            self.act_mid = nn.ReLU()
            self.conv_mid2 = conv_layer(f, f, 3)
        else:
            self.conv_mid = conv_layer(f, f, 3)
        self.conv_expand = nn.Conv2d(f, num_feat, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv_reduce(x)
        low = self.pool(self.conv_down(reduced))
        if self.full:  # fixed at construction, so torch.export sees a single path
            low = self.conv_mid2(self.act_mid(self.conv_mid(self.act_max(self.conv_max(low)))))
        else:
            low = self.conv_mid(low)
        low = F.interpolate(low, size=(x.shape[2], x.shape[3]), mode="bilinear", align_corners=False)
        mask = self.sigmoid(self.conv_expand(low + self.conv_skip(reduced)))
        return x * mask


# Reference ESA attribute names (RFDN's block.py, RLFN's team04 file) -> ours; conv_max keeps its name.
ESA_KEY_RULES: list[tuple[str, str]] = [
    (r"^(body\.\d+\.esa\.)conv1\.", r"\1conv_reduce."),
    (r"^(body\.\d+\.esa\.)conv_f\.", r"\1conv_skip."),
    (r"^(body\.\d+\.esa\.)conv2\.", r"\1conv_down."),
    (r"^(body\.\d+\.esa\.)conv3_\.", r"\1conv_mid2."),
    (r"^(body\.\d+\.esa\.)conv3\.", r"\1conv_mid."),
    (r"^(body\.\d+\.esa\.)conv4\.", r"\1conv_expand."),
]
