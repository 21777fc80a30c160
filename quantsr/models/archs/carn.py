"""CARN-M (Ahn et al., "Fast, Accurate, and Lightweight Super-Resolution with Cascading Residual Network",
ECCV 2018), the mobile variant: efficient residual blocks with group convs (group=4) and one recursive
residual block reused three times inside each cascading block.

The public checkpoint (nmhkahn/CARN-pytorch) is one multi-scale net with x2/x3/x4 upsampling branches and
``forward(x, scale)``. Here a model is built for one scale and keeps only that branch, so the graph has no
scale argument; ``convert_checkpoint`` drops the other branches and renames to BasicSR-style top-level names.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from quantsr.models.blocks.classic import DIV2K_RGB_MEAN, register_mean_buffers
from quantsr.models.registry import register_model


class BasicBlock(nn.Module):
    """conv + ReLU (the cascade's 1x1 fusion convs); keys ``body.0.*`` as upstream."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size, 1, kernel_size // 2), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class EResidualBlock(nn.Module):
    """Efficient residual block: group 3x3, ReLU, group 3x3, ReLU, pointwise 1x1, then ReLU(out + x)."""

    def __init__(self, num_feat: int = 64, group: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(num_feat, num_feat, 3, 1, 1, groups=group),
            nn.ReLU(),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1, groups=group),
            nn.ReLU(),
            nn.Conv2d(num_feat, num_feat, 1, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


def _cascade(x: torch.Tensor, blocks: list[nn.Module], fusers: list[nn.Module]) -> torch.Tensor:
    # CARN's cascading connection: every stage sees the concatenation of all earlier outputs, fused by 1x1.
    cat = out = x
    for block, fuse in zip(blocks, fusers, strict=True):
        cat = torch.cat([cat, block(out)], dim=1)
        out = fuse(cat)
    return out


class CascadingBlock(nn.Module):
    """Local cascade; CARN-M shares one EResidualBlock (``b1``) across its three stages (recursive).

    ``b1_calls`` (empty: every stage runs ``b1``) holds the second and third stages' own modules once a low-bit
    recipe unties the calls (:func:`quantsr.quant.call_sites.untie_call_sites_`): copies of ``b1`` that share its
    weights and keep their own activation quantizers, since each stage's input has its own range.
    """

    def __init__(self, num_feat: int = 64, group: int = 4) -> None:
        super().__init__()
        self.b1 = EResidualBlock(num_feat, group)
        self.c1 = BasicBlock(num_feat * 2, num_feat)
        self.c2 = BasicBlock(num_feat * 3, num_feat)
        self.c3 = BasicBlock(num_feat * 4, num_feat)
        self.b1_calls = nn.ModuleList()

    @property
    def calls_untied(self) -> bool:
        return len(self.b1_calls) > 0

    def untie_calls_(self, tied_copy: Callable[[nn.Module], nn.Module]) -> bool:
        """Give the second and third stages ``tied_copy(b1)`` each; False (nothing done) if already untied."""
        if self.calls_untied:
            return False
        self.b1_calls = nn.ModuleList([tied_copy(self.b1) for _ in range(2)])
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stages = [self.b1, *self.b1_calls] if self.calls_untied else [self.b1, self.b1, self.b1]
        return _cascade(x, stages, [self.c1, self.c2, self.c3])


class CARNBody(nn.Module):
    """Global cascade over three cascading blocks (``b1..b3``) with 1x1 fusers (``c1..c3``)."""

    def __init__(self, num_feat: int = 64, group: int = 4) -> None:
        super().__init__()
        self.b1 = CascadingBlock(num_feat, group)
        self.b2 = CascadingBlock(num_feat, group)
        self.b3 = CascadingBlock(num_feat, group)
        self.c1 = BasicBlock(num_feat * 2, num_feat)
        self.c2 = BasicBlock(num_feat * 3, num_feat)
        self.c3 = BasicBlock(num_feat * 4, num_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _cascade(x, [self.b1, self.b2, self.b3], [self.c1, self.c2, self.c3])


def carn_upsample(scale: int, num_feat: int = 64, group: int = 4) -> nn.Sequential:
    """CARN's upsampler: (group conv -> r^2 C, ReLU, PixelShuffle(r)) per step; note the ReLU before shuffle."""
    if scale in (2, 4, 8):
        steps, r = int(math.log2(scale)), 2
    elif scale == 3:
        steps, r = 1, 3
    else:
        raise ValueError(f"CARN supports x2, x3, x4, x8, not x{scale}")
    layers: list[nn.Module] = []
    for _ in range(steps):
        layers += [nn.Conv2d(num_feat, r * r * num_feat, 3, 1, 1, groups=group), nn.ReLU(), nn.PixelShuffle(r)]
    return nn.Sequential(*layers)


class CARNM(nn.Module):
    """conv_first -> body (global cascade) -> upsample -> conv_last, on ``x - mean`` in the [0, 1] range."""

    def __init__(self, scale: int = 4, num_feat: int = 64, group: int = 4) -> None:
        super().__init__()
        self.scale = scale
        # CARN trains on [0, 1] data (ToTensor), so the range factor is 1; only the DIV2K mean is removed.
        register_mean_buffers(self, img_range=1.0, rgb_mean=DIV2K_RGB_MEAN)
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = CARNBody(num_feat, group)
        self.upsample = carn_upsample(scale, num_feat, group)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_first((x - self.mean) * self.img_range)
        x = self.conv_last(self.upsample(self.body(x)))
        return x / self.img_range + self.mean

    def example_inputs(self) -> tuple[torch.Tensor]:
        return (torch.rand(1, 3, 32, 32),)

    @classmethod
    def convert_checkpoint(cls, state_dict: dict[str, torch.Tensor], scale: int) -> dict[str, torch.Tensor]:
        """Map nmhkahn/CARN-pytorch keys (entry, b1..b3, c1..c3, upsample.upS.body, exit) onto this module.

        Branches for other scales are dropped. The MeanShift 1x1 convs are checked against the DIV2K mean
        this module hard-codes (a checkpoint with another mean would otherwise load silently wrong).
        """
        out: dict[str, torch.Tensor] = {}
        branch = f"upsample.up{scale}.body."
        for key, value in state_dict.items():
            key = key.removeprefix("module.")
            if key.startswith(("sub_mean.", "add_mean.")):
                _check_mean_shift(key, value)
            elif key.startswith("entry."):
                out["conv_first." + key[len("entry."):]] = value
            elif key.startswith("exit."):
                out["conv_last." + key[len("exit."):]] = value
            elif key.startswith(branch):
                out["upsample." + key[len(branch):]] = value
            elif key.startswith("upsample.up"):
                continue  # another scale's branch
            elif key.split(".")[0] in ("b1", "b2", "b3", "c1", "c2", "c3"):
                out["body." + key] = value
            else:
                out[key] = value  # unknown: let the strict load report it
        return out


def _check_mean_shift(key: str, value: torch.Tensor) -> None:
    sign = -1.0 if key.startswith("sub_mean") else 1.0
    if key.endswith("weight"):
        expected = torch.eye(3).view(3, 3, 1, 1)
    else:
        expected = sign * torch.tensor(DIV2K_RGB_MEAN)
    if value.shape != expected.shape or not torch.allclose(value.float(), expected, atol=1e-4):
        raise ValueError(f"CARN checkpoint {key} is not the DIV2K mean shift this module assumes")


# The cascading body is one module with internal concatenations, not a list of C -> C blocks.
@register_model("carn_m", scales=(2, 3, 4), module=CARNM, public_weights={"carn_m.pth": (2, 3, 4)},
                body=None, convert_checkpoint=CARNM.convert_checkpoint)
def carn_m(scale: int = 4, **kwargs) -> CARNM:
    """CARN-M (group=4), 64 features; one upsampling branch for ``scale``."""
    return CARNM(scale=scale, **kwargs)
