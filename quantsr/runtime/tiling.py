"""Tiled inference: split the LR image into tiles with an overlapping margin, keep each tile's core.

Crop-and-stitch (no blending): every output pixel comes from a tile in which its receptive field lies inside
the tile plus margin, so with a margin larger than the network's effective receptive field the result equals
whole-image inference; the margin only costs compute.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from quantsr.models.registry import descriptor_of


@dataclass(frozen=True)
class Tile:
    """Core region [y0, y1) x [x0, x1) and the padded input region [py0, py1) x [px0, px1), in LR pixels."""

    y0: int
    y1: int
    x0: int
    x1: int
    py0: int
    py1: int
    px0: int
    px1: int


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Cover an image with ``tile``-sized cores, each read with ``overlap`` extra pixels on every side."""
    if tile <= 0:
        raise ValueError(f"tile size must be positive, got {tile}")
    if overlap < 0:
        raise ValueError(f"tile overlap must be >= 0, got {overlap}")
    tiles = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            tiles.append(Tile(y0, y1, x0, x1, max(0, y0 - overlap), min(height, y1 + overlap),
                              max(0, x0 - overlap), min(width, x1 + overlap)))
    return tiles


@torch.no_grad()
def tiled_forward(model: Callable[[torch.Tensor], torch.Tensor], lr: torch.Tensor, scale: int,
                  tile: int | None = None, overlap: int = 32,
                  progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Run ``model`` on (N, C, H, W) ``lr`` tile by tile; ``tile=None`` runs the whole image at once."""
    n, _, h, w = lr.shape
    descriptor = descriptor_of(model) if isinstance(model, nn.Module) else None
    if tile is not None and (tile < h or tile < w) and descriptor is not None and not descriptor.tile_exact:
        warnings.warn(f"{descriptor.name} is not tile-exact (it has non-local layers); tiled results differ "
                      "slightly from whole-image inference (a larger --tile reduces it)", stacklevel=2)
    if tile is None or (tile >= h and tile >= w):
        out = model(lr)
        if progress:
            progress(1)
        return out
    out = None
    for t in plan_tiles(h, w, tile, overlap):
        sr = model(lr[:, :, t.py0 : t.py1, t.px0 : t.px1])
        if out is None:
            out = sr.new_empty((n, sr.shape[1], h * scale, w * scale))
        oy, ox = (t.y0 - t.py0) * scale, (t.x0 - t.px0) * scale
        out[:, :, t.y0 * scale : t.y1 * scale, t.x0 * scale : t.x1 * scale] = sr[
            :, :, oy : oy + (t.y1 - t.y0) * scale, ox : ox + (t.x1 - t.x0) * scale
        ]
        if progress:
            progress(1)
    assert out is not None
    return out

