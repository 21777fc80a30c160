"""Benchmark sets (HR folder -> LR by MATLAB bicubic, or a given LR folder) and the random-patch training set."""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from quantsr.artifacts.locations import locate
from quantsr.data.image_io import ImageError, list_images, load_image
from quantsr.data.imresize import imresize

BENCHMARK_NAMES = ("Set5", "Set14", "B100", "Urban100", "Manga109")


def default_data_root() -> Path:
    """The folder holding ``benchmark/`` and ``train/``: ``$QUANTSR_DATA``, else ``../shared/data`` beside the
    source checkout, else ``~/.cache/quantsr/data`` (:func:`quantsr.artifacts.locations.locate`); raises
    :class:`~quantsr.artifacts.locations.LocationNotFoundError` (one line naming QUANTSR_DATA) when none exists."""
    return locate("data")


def modcrop(img: np.ndarray, scale: int, source: str | os.PathLike = "image") -> np.ndarray:
    """Crop the bottom/right so both sides are multiples of ``scale``."""
    h, w = img.shape[:2]
    if h < scale or w < scale:
        raise ImageError(f"{source}: {w}x{h} is smaller than the scale x{scale}; it cannot be downscaled")
    return img[: h - h % scale, : w - w % scale]


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """LR as the benchmarks define it: MATLAB bicubic of the mod-cropped uint8 HR."""
    return imresize(modcrop(hr, scale), 1.0 / scale)


@dataclass
class BenchmarkImage:
    name: str
    lr: np.ndarray  # uint8 (h, w, 3)
    hr: np.ndarray  # uint8 (s*h, s*w, 3), mod-cropped


class BenchmarkSet:
    """A benchmark set: HR images from ``hr_dir``; LR from ``lr_dir`` (files named ``{stem}x{scale}`` or ``{stem}``)
    or made with :func:`make_lr`. Iterating yields :class:`BenchmarkImage`."""

    def __init__(self, hr_dir: str | os.PathLike, scale: int, lr_dir: str | os.PathLike | None = None,
                 name: str | None = None) -> None:
        self.hr_dir = Path(hr_dir)
        self.scale = scale
        self.lr_dir = Path(lr_dir) if lr_dir else None
        self.name = name or self.hr_dir.name
        self.files = list_images(self.hr_dir)

    @classmethod
    def from_name(cls, name: str, scale: int, root: str | os.PathLike | None = None,
                  official_lr: bool = False) -> BenchmarkSet:
        """``Set5``/``Set14``/``B100``... under ``root/benchmark`` (default :func:`default_data_root`), or a folder."""
        if Path(name).is_dir():
            return cls(name, scale)
        base = Path(root) if root else default_data_root() / "benchmark"
        hr_dir = base / name
        if not hr_dir.is_dir():
            known = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
            raise ImageError(f"benchmark {name!r} not found under {base} (found: {', '.join(known) or 'nothing'}); "
                             "pass a folder of HR images or set QUANTSR_DATA")
        lr_dir = None
        if official_lr:
            lr_dir = base / f"{name}_LR_bicubic" / f"X{scale}"
            if not lr_dir.is_dir():
                raise ImageError(f"no official LR folder {lr_dir} for {name} x{scale}")
        return cls(hr_dir, scale, lr_dir, name=name + (" (official LR)" if official_lr else ""))

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> BenchmarkImage:
        path = self.files[index]
        hr = modcrop(load_image(path), self.scale, source=path)
        if self.lr_dir is None:
            lr = imresize(hr, 1.0 / self.scale)
        else:
            lr = load_image(self._lr_path(path))
            expected = (hr.shape[0] // self.scale, hr.shape[1] // self.scale)
            if lr.shape[:2] != expected:
                raise ImageError(f"{self._lr_path(path)}: LR is {lr.shape[1]}x{lr.shape[0]}, expected "
                                 f"{expected[1]}x{expected[0]} for x{self.scale} of {path.name}")
        return BenchmarkImage(path.stem, lr, hr)

    def __iter__(self) -> Iterator[BenchmarkImage]:
        for i in range(len(self)):
            yield self.load(i)

    def _lr_path(self, hr_path: Path) -> Path:
        assert self.lr_dir is not None
        for stem in (f"{hr_path.stem}x{self.scale}", hr_path.stem):
            for suffix in (hr_path.suffix, ".png"):
                candidate = self.lr_dir / f"{stem}{suffix}"
                if candidate.is_file():
                    return candidate
        raise ImageError(f"no LR image for {hr_path.name} in {self.lr_dir}")


def augment(lr: np.ndarray, hr: np.ndarray, code: int) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 dihedral transforms (bit 0: h-flip, bit 1: v-flip, bit 2: transpose), same on LR and HR."""
    if code & 1:
        lr, hr = lr[:, ::-1], hr[:, ::-1]
    if code & 2:
        lr, hr = lr[::-1], hr[::-1]
    if code & 4:
        lr, hr = lr.transpose(1, 0, 2), hr.transpose(1, 0, 2)
    return lr, hr


class PatchDataset:
    """Random paired patches from HR folders, LR made once per image with the benchmark resize.

    ``batch(iteration)`` is a pure function of (seed, iteration): a resumed run sees exactly the batches an
    uninterrupted one would, with no sampler state to checkpoint. Whole images are resized once and cached in
    memory, so a batch is only crops and flips (well under a millisecond per patch).

    ``edge_candidates`` > 1: each patch is, of that many random crops, the one whose LR patch has the most edge
    energy (mean absolute luma gradient, from a summed-area table made once per image). Natural photos are mostly
    flat or textured, while a low-bit student's error concentrates at strong, clean edges; 1 (default): uniform.
    """

    def __init__(self, hr_dirs: Sequence[str | os.PathLike], scale: int, lr_patch: int = 48, batch_size: int = 16,
                 seed: int = 0, augment: bool = True, show_progress: bool = False, edge_candidates: int = 1) -> None:
        if edge_candidates < 1:
            raise ValueError(f"edge_candidates must be >= 1, got {edge_candidates}")
        self.scale, self.lr_patch, self.batch_size, self.seed = scale, lr_patch, batch_size, seed
        self.use_augment = augment
        self.edge_candidates = edge_candidates
        files = [f for d in hr_dirs for f in list_images(d)]
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        skipped = []
        iterator = files
        if show_progress:
            from tqdm import tqdm
            iterator = tqdm(files, desc="preparing LR", unit="img", leave=False, disable=None)  # None: TTY only
        for path in iterator:
            hr = load_image(path)
            if min(hr.shape[:2]) < lr_patch * scale:
                skipped.append(path.name)
                continue
            hr = modcrop(hr, scale, source=path)
            self.pairs.append((imresize(hr, 1.0 / scale), hr))
        if not self.pairs:
            raise ImageError(f"no training image is at least {lr_patch * scale} px on each side "
                             f"(lr_patch {lr_patch} x scale {scale}); use a smaller --lr-patch")
        self.skipped = skipped
        self.edge_tables = [_edge_table(lr) for lr, _ in self.pairs] if edge_candidates > 1 else []

    def __len__(self) -> int:
        return len(self.pairs)

    def _crop(self, rng: np.random.Generator) -> tuple[int, int, int]:
        index = int(rng.integers(len(self.pairs)))
        height, width = self.pairs[index][0].shape[:2]
        p = self.lr_patch
        return index, int(rng.integers(height - p + 1)), int(rng.integers(width - p + 1))

    def _edge_energy(self, crop: tuple[int, int, int]) -> float:
        table, (y, x), p = self.edge_tables[crop[0]], crop[1:], self.lr_patch
        return float(table[y + p, x + p] - table[y, x + p] - table[y + p, x] + table[y, x])

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        crop = self._crop(rng)
        if self.edge_candidates > 1:
            crop = max([crop, *(self._crop(rng) for _ in range(self.edge_candidates - 1))], key=self._edge_energy)
        index, y, x = crop
        lr_img, hr_img = self.pairs[index]
        p, s = self.lr_patch, self.scale
        lr = lr_img[y : y + p, x : x + p]
        hr = hr_img[y * s : (y + p) * s, x * s : (x + p) * s]
        if self.use_augment:
            lr, hr = augment(lr, hr, int(rng.integers(8)))
        return lr, hr

    def batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, HR) float32 tensors in [0, 1], shapes (B, 3, p, p) and (B, 3, s*p, s*p)."""
        rng = np.random.default_rng([self.seed, iteration])
        lrs, hrs = zip(*(self.sample(rng) for _ in range(self.batch_size)))
        return _stack(lrs), _stack(hrs)


def _edge_table(lr: np.ndarray) -> np.ndarray:
    """Summed-area table (one row and column of zeros in front) of the luma's absolute gradient: the edge energy
    of any crop in four lookups."""
    luma = lr.astype(np.float32) @ np.array([65.481, 128.553, 24.966], dtype=np.float32) / 255.0
    grad = np.zeros_like(luma)
    grad[:, 1:] += np.abs(np.diff(luma, axis=1))
    grad[1:, :] += np.abs(np.diff(luma, axis=0))
    table = np.zeros((luma.shape[0] + 1, luma.shape[1] + 1), dtype=np.float64)
    table[1:, 1:] = grad.cumsum(0).cumsum(1)
    return table


def _stack(images: Sequence[np.ndarray]) -> torch.Tensor:
    h, w = images[0].shape[:2]
    out = np.empty((len(images), 3, h, w), dtype=np.uint8)
    for i, im in enumerate(images):
        out[i] = im.transpose(2, 0, 1)
    return torch.from_numpy(out).to(torch.float32).div_(255.0)
