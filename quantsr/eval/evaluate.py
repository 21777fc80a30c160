"""Benchmark evaluation: ``evaluate(model, datasets, scale)`` -> per-image and per-set PSNR/SSIM on Y."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn

from quantsr.data.datasets import BenchmarkSet
from quantsr.data.image_io import to_tensor, to_uint8
from quantsr.eval.metrics import calculate_psnr, calculate_ssim
from quantsr.runtime.tiling import tiled_forward


@dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float


@dataclass
class SetScore:
    name: str
    scale: int
    psnr: float
    ssim: float
    images: list[ImageScore] = field(default_factory=list)


@dataclass
class EvalResult:
    model: str
    scale: int
    sets: list[SetScore]

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __getitem__(self, name: str) -> SetScore:
        for s in self.sets:
            if s.name == name:
                return s
        raise KeyError(name)

    def table(self) -> str:
        """Plain-text table, one row per set."""
        lines = [f"{'set':<22} {'images':>6} {'PSNR (dB)':>10} {'SSIM':>8}"]
        for s in self.sets:
            lines.append(f"{s.name:<22} {len(s.images):>6} {s.psnr:>10.2f} {s.ssim:>8.4f}")
        return "\n".join(lines)


@torch.no_grad()
def super_resolve(model: nn.Module, lr_uint8, scale: int, tile: int | None = None, overlap: int = 32,
                  device: str | torch.device = "cpu", progress=None):
    """uint8 RGB (h, w, 3) -> uint8 RGB (s*h, s*w, 3), clamped and rounded as the benchmark protocol says."""
    x = to_tensor(lr_uint8).to(device)
    return to_uint8(tiled_forward(model, x, scale, tile, overlap, progress))


def evaluate(model: nn.Module, datasets: Sequence[BenchmarkSet | str], scale: int, *, tile: int | None = None,
             overlap: int = 32, device: str | torch.device = "cpu", progress: bool = True,
             model_name: str | None = None, ssim: bool = True) -> EvalResult:
    """PSNR/SSIM (Y channel, ``scale`` px border cropped) of ``model`` on each benchmark set.

    ``datasets`` are :class:`BenchmarkSet` objects or names resolved by :meth:`BenchmarkSet.from_name`.
    """
    sets = [d if isinstance(d, BenchmarkSet) else BenchmarkSet.from_name(d, scale) for d in datasets]
    for s in sets:
        if s.scale != scale:
            raise ValueError(f"dataset {s.name} was built for x{s.scale}, evaluation is x{scale}")
    model = model.eval().to(device)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=sum(len(s) for s in sets), unit="img", desc="evaluating", leave=False, disable=None)
    results = []
    try:
        for dataset in sets:
            scores = []
            for item in dataset:
                if bar is not None:
                    bar.set_postfix_str(f"{dataset.name}/{item.name}")
                sr = super_resolve(model, item.lr, scale, tile, overlap, device)
                psnr = calculate_psnr(sr, item.hr, crop_border=scale)
                ssim_value = calculate_ssim(sr, item.hr, crop_border=scale) if ssim else math.nan
                scores.append(ImageScore(item.name, psnr, ssim_value))
                if bar is not None:
                    bar.update(1)
            results.append(SetScore(dataset.name, scale, _mean([s.psnr for s in scores]),
                                    _mean([s.ssim for s in scores]), scores))
    finally:
        if bar is not None:
            bar.close()
    return EvalResult(model_name or type(model).__name__, scale, results)


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan
