"""``quantsr.cpu_upscale``: upscale a photo on the CPU with an embedded low-bit model (ExecuTorch ``.pte``).

Any size: the image is processed in overlapping tiles (crop-and-stitch, :mod:`quantsr.runtime.tiling`) and written
into a uint8 output image, so peak memory is the input, the uint8 output and one tile's activations, not a float copy of
the whole output. EXIF orientation is applied; grayscale stays grayscale, alpha is upscaled separately
(bicubic), 16-bit and palette images are converted; images smaller than the model's minimum side are padded.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from quantsr.artifacts.cards import DEFAULT_MIN_SIDE
from quantsr.artifacts.embedded import DEFAULT_BITS, default_model_path
from quantsr.data.image_io import ImageError, open_image, pil_to_rgb_array
from quantsr.models.registry import descriptor_of
from quantsr.runtime.pte import PteModule
from quantsr.runtime.tiling import plan_tiles

__all__ = ["count_tiles", "cpu_upscale", "load_runner", "min_side_of"]

ImageInput = Image.Image | np.ndarray | str | os.PathLike


def load_runner(model: str | os.PathLike | torch.nn.Module | None, scale: int = 4,
                bits: int = DEFAULT_BITS) -> Callable[[torch.Tensor], torch.Tensor]:
    """A callable (1, 3, h, w) -> (1, 3, s h, s w): an embedded or given ``.pte`` through the ExecuTorch runtime
    (eager fallback with a warning if the runtime is missing), a quantsr checkpoint, or a module."""
    if isinstance(model, torch.nn.Module):
        return model.eval()
    if callable(model):  # an already loaded runner (e.g. PteModule), reused across files
        return model
    path = default_model_path(scale, bits) if model is None else Path(model)
    if path.suffix == ".pte":
        try:
            return PteModule(path)
        except ImportError:
            checkpoint = path.with_suffix(".pt")
            if not checkpoint.exists():
                raise
            warnings.warn("the ExecuTorch runtime is not installed: running the eager PyTorch model instead "
                          "(slower); pip install executorch==1.5.1", stacklevel=2)
            path = checkpoint
    from quantsr.checkpoints.load import load_model

    return load_model(path, scale=scale)


def _open(image: ImageInput) -> Image.Image:
    if isinstance(image, Image.Image):
        return ImageOps.exif_transpose(image)
    if isinstance(image, np.ndarray):
        array = image
        if array.dtype == np.uint16:
            return Image.fromarray(array) if array.ndim == 2 else Image.fromarray((array >> 8).astype(np.uint8))
        if array.dtype != np.uint8:
            raise ImageError(f"numpy images must be uint8 or uint16, got {array.dtype}")
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        return Image.fromarray(array)
    return open_image(image)


def _split_alpha(im: Image.Image) -> tuple[np.ndarray, Image.Image | None, bool]:
    """(uint8 RGB array, alpha channel or None, was grayscale)."""
    gray = im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
    alpha = None
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        alpha = im.getchannel("A")
        im = im.convert("LA" if im.mode == "LA" else "RGB")
        if im.mode == "LA":
            im = im.getchannel("L")
    return pil_to_rgb_array(im), alpha, gray


def min_side_of(runner: Callable[[torch.Tensor], torch.Tensor]) -> int:
    """The smallest input side ``runner`` accepts: a ``.pte``'s card, a module's descriptor, else the default."""
    if isinstance(runner, torch.nn.Module):
        descriptor = descriptor_of(runner)
        return descriptor.min_side if descriptor is not None else DEFAULT_MIN_SIDE
    return runner.min_side if isinstance(runner, PteModule) else DEFAULT_MIN_SIDE


@torch.no_grad()
def _run_tiled(runner: Callable[[torch.Tensor], torch.Tensor], rgb: np.ndarray, scale: int, tile: int,
               overlap: int, progress: Callable[[int], None] | None,
               min_side: int = DEFAULT_MIN_SIDE) -> Image.Image:
    h, w, _ = rgb.shape
    # Tiles are pasted straight into the PIL image that is returned: a uint8 numpy buffer first would hold the
    # whole output twice (numpy + PIL's 4-byte RGB copy), 1.3 GB at 4000x3000 x4 instead of 0.77 GB.
    out = Image.new("RGB", (w * scale, h * scale))
    for t in plan_tiles(h, w, tile, overlap):
        patch = torch.from_numpy(np.ascontiguousarray(rgb[t.py0 : t.py1, t.px0 : t.px1].transpose(2, 0, 1)))
        patch = patch.float().div_(255.0).unsqueeze(0)
        ph, pw = patch.shape[2:]
        if ph < min_side or pw < min_side:  # tiny images/tiles: pad by edge replication, crop afterwards
            patch = torch.nn.functional.pad(patch, (0, max(0, min_side - pw), 0, max(0, min_side - ph)),
                                            mode="replicate")
        sr = runner(patch)[0]
        oy, ox = (t.y0 - t.py0) * scale, (t.x0 - t.px0) * scale
        core = sr[:, oy : oy + (t.y1 - t.y0) * scale, ox : ox + (t.x1 - t.x0) * scale]
        pixels = core.clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).contiguous().numpy()
        out.paste(Image.fromarray(pixels), (t.x0 * scale, t.y0 * scale))
        if progress:
            progress(1)
    return out


def count_tiles(size: tuple[int, int], tile: int, overlap: int = 16) -> int:
    """How many tiles :func:`cpu_upscale` runs for an image of ``size`` = (width, height)."""
    return len(plan_tiles(size[1], size[0], tile, overlap))


def cpu_upscale(image: ImageInput, scale: int = 4, model: str | os.PathLike | torch.nn.Module | None = None,
                bits: int = DEFAULT_BITS, *, tile: int = 256, overlap: int = 16,
                progress: Callable[[int], None] | None = None) -> Image.Image:
    """Upscale ``image`` (PIL image, numpy uint8/uint16 array, or a path) by ``scale`` on the CPU.

    ``model``: None (the embedded ``.pte`` for ``scale`` and ``bits``), a ``.pte`` path, a quantsr checkpoint,
    or an ``nn.Module``. ``tile``/``overlap`` in input pixels; images up to ``tile`` on each side run whole.
    Returns a PIL image: "L" for grayscale input, "RGBA"/"LA" when the input has alpha, else "RGB".
    """
    if tile < DEFAULT_MIN_SIDE or overlap < 0:
        raise ValueError(f"tile must be >= {DEFAULT_MIN_SIDE} and overlap >= 0 (got {tile}, {overlap})")
    im = _open(image)
    if im.width < 1 or im.height < 1:
        raise ImageError("the image is empty (0 pixels)")
    runner = load_runner(model, scale, bits)
    rgb, alpha, gray = _split_alpha(im)
    del im  # its pixels are in rgb/alpha now; a big photo's decoded copy need not live through the run
    out = _run_tiled(runner, rgb, scale, tile, overlap, progress, min_side_of(runner))
    if gray:
        out = out.convert("L")
    if alpha is not None:
        big_alpha = alpha.resize(out.size, Image.BICUBIC)
        out = out.convert("LA" if gray else "RGBA")
        out.putalpha(big_alpha)
    return out
