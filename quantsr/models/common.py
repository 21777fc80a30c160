"""Building blocks shared by the lightweight distillation-family models (IMDN, RFDN, RLFN).

Activations are separate module instances at every call site (never one ``self.act`` reused), so that
observer- or fake-quant-insertion tools that hook modules see one activation per tensor.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

# The distillation-family papers all use LeakyReLU with this slope inside their blocks.
LRELU_SLOPE = 0.05

Replacement = str | Callable[[re.Match[str]], str]


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


def remap_keys(state_dict: dict[str, torch.Tensor], rules: Sequence[tuple[str, Replacement]]) -> dict:
    """Strip a DataParallel ``module.`` prefix, then apply every regex rule in order to each key."""
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new_key = key.removeprefix("module.")
        for pattern, repl in compiled:
            new_key = pattern.sub(repl, new_key)
        out[new_key] = value
    return out


def block_index_rule(old_prefix: str, new_prefix: str = "body") -> tuple[str, Replacement]:
    """Rule turning the references' 1-based ``IMDB3.`` / ``B3.`` attributes into ``body.2.``."""
    return (rf"^{old_prefix}(\d+)\.", lambda m: f"{new_prefix}.{int(m.group(1)) - 1}.")


def check_upsample_scale(
    state_dict: dict[str, torch.Tensor], key: str, scale: int, out_ch: int = 3, name: str = "model"
) -> None:
    """Fail with a readable message when a checkpoint's pixel-shuffle conv was trained for another scale."""
    weight = state_dict.get(key)
    if weight is None:
        return  # let load_state_dict report the missing key
    expected = out_ch * scale * scale
    if weight.shape[0] != expected:
        found = (weight.shape[0] / out_ch) ** 0.5
        raise ValueError(
            f"{name} checkpoint upsampler has {weight.shape[0]} output channels (x{found:g}), "
            f"but the model is x{scale} ({expected} channels); check --scale"
        )
