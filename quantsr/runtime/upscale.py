"""``quantsr.cpu_upscale``: upscale a photo on the CPU with an embedded low-bit model (ExecuTorch ``.pte``).

Any size: the image is processed in overlapping tiles (crop-and-stitch, :mod:`quantsr.runtime.tiling`) and written
into a uint8 output image, so peak memory is the input, the uint8 output and one tile's activations, not a float copy of
the whole output. EXIF orientation is applied; grayscale stays grayscale, alpha is upscaled separately
(bicubic), 16-bit and palette images are converted; images smaller than the model's minimum side are padded.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from quantsr.artifacts.cards import DEFAULT_MIN_SIDE
from quantsr.artifacts.embedded import DEFAULT_BITS, default_model_path
from quantsr.data.image_io import ImageError, open_image, pil_to_rgb_array
from quantsr.models.registry import descriptor_of
from quantsr.runtime.limits import fit_tile
from quantsr.runtime.pte import PteModule
from quantsr.runtime.tiling import plan_tiles

__all__ = ["count_tiles", "cpu_upscale", "fit_tile", "load_runner", "max_side_of", "min_side_of", "runner_scale"]

ImageInput = Image.Image | np.ndarray | torch.Tensor | str | os.PathLike
DEFAULT_SCALE = 4  # the embedded models' scale


Runner = Callable[[torch.Tensor], torch.Tensor]


def load_runner(model: str | os.PathLike | torch.nn.Module | None, scale: int | None = None,
                bits: int = DEFAULT_BITS, *, threads: int | None = None) -> Runner:
    """A callable (1, 3, h, w) -> (1, 3, s h, s w): an embedded or given ``.pte`` through the ExecuTorch runtime
    (eager fallback with a warning if the runtime is missing), a quantsr checkpoint, or a module. A ``.pte``
    whose card or a checkpoint whose metadata names another scale than ``scale`` is an error."""
    if isinstance(model, torch.nn.Module):
        return model.eval()
    if callable(model):  # an already loaded runner (e.g. PteModule), reused across files
        return model
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a .pte path, a checkpoint path or an nn.Module, not {type(model).__name__}")
    path = default_model_path(scale or DEFAULT_SCALE, bits) if model is None else Path(model)
    if path.suffix == ".pte":
        try:
            runner = PteModule(path, threads=threads)
        except ImportError:
            checkpoint = path.with_suffix(".pt")
            if not checkpoint.exists():
                raise
            warnings.warn("the ExecuTorch runtime is not installed: running the eager PyTorch model instead "
                          "(slower); pip install executorch==1.5.1", stacklevel=2)
            path = checkpoint
        else:
            if scale is not None and runner.scale not in (None, scale):
                raise ValueError(f"{path.name} is a x{runner.scale} model; use --scale {runner.scale} or another "
                                 "--model")
            return runner
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file (a .pte or a quantsr checkpoint)")
    from quantsr.checkpoints.load import load_model

    return load_model(path, scale=scale)


def runner_scale(runner: Runner) -> int | None:
    """The scale a runner says it has (a ``.pte`` card, a model's ``scale``), None when it does not say."""
    scale = getattr(runner, "scale", None)
    return scale if isinstance(scale, int) else None


def max_side_of(runner: Runner) -> int | None:
    """The largest input side ``runner`` accepts (a ``.pte``'s card), None for no limit (eager modules)."""
    return runner.max_side if isinstance(runner, PteModule) else None


def _from_tensor(tensor: torch.Tensor) -> np.ndarray:
    t = tensor.detach().cpu()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
        raise ImageError(f"a tensor image must be (C, H, W) or (1, C, H, W) with C = 1, 3 or 4, got shape "
                         f"{tuple(tensor.shape)}")
    if t.is_floating_point():
        t = t.float().clamp(0, 1).mul(255.0).round().to(torch.uint8)
    elif t.dtype != torch.uint8:
        raise ImageError(f"a tensor image must be float in [0, 1] or uint8, got {t.dtype}")
    return t.permute(1, 2, 0).contiguous().numpy()


def _open(image: ImageInput) -> Image.Image:
    if isinstance(image, Image.Image):
        return ImageOps.exif_transpose(image)
    if isinstance(image, torch.Tensor):
        image = _from_tensor(image)
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 4 and array.shape[0] == 1:  # a batch of one, as models and loaders often hand it over
            array = array[0]
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
            raise ImageError(f"numpy images are (H, W, C); this one looks like (C, H, W) {array.shape}: pass "
                             "array.transpose(1, 2, 0)")
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
            raise ImageError(f"numpy images must be (H, W), (H, W, 1|3|4) or (1, H, W, C), got shape {array.shape}")
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.dtype == np.uint16:  # to 8 bits as 16-bit files are read (quantsr.data.image_io)
            array = np.floor(array * (255.0 / 65535.0) + 0.5).astype(np.uint8)
        if array.dtype != np.uint8:
            raise ImageError(f"numpy images must be uint8 or uint16, got {array.dtype}")
        return Image.fromarray(np.ascontiguousarray(array))
    if isinstance(image, (str, os.PathLike)):
        return open_image(image)
    raise ImageError(f"cannot upscale a {type(image).__name__}: pass a PIL image, a path, a uint8 numpy array "
                     "(H, W, 3) or a tensor (3, H, W) in [0, 1]")


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
def tile_bands(runner: Runner, rgb: np.ndarray, scale: int, tile: int, overlap: int,
               progress: Callable[[int], None] | None = None,
               min_side: int = DEFAULT_MIN_SIDE) -> Iterator[tuple[int, np.ndarray]]:
    """The upscaled image of uint8 ``rgb`` as (first output row, uint8 band) pairs, top to bottom, one band per
    row of tiles: the whole output never needs to be in memory at once."""
    h, w, _ = rgb.shape
    band, band_y = None, -1
    for t in plan_tiles(h, w, tile, overlap):
        if t.y0 != band_y:
            if band is not None:
                yield band_y * scale, band
            band, band_y = np.empty(((t.y1 - t.y0) * scale, w * scale, 3), np.uint8), t.y0
        patch = torch.from_numpy(np.ascontiguousarray(rgb[t.py0 : t.py1, t.px0 : t.px1].transpose(2, 0, 1)))
        patch = patch.float().div_(255.0).unsqueeze(0)
        ph, pw = patch.shape[2:]
        if ph < min_side or pw < min_side:  # tiny images/tiles: pad by edge replication, crop afterwards
            patch = torch.nn.functional.pad(patch, (0, max(0, min_side - pw), 0, max(0, min_side - ph)),
                                            mode="replicate")
        sr = runner(patch)[0]
        if sr.shape[-2] != patch.shape[2] * scale or sr.shape[-1] != patch.shape[3] * scale:
            found = sr.shape[-1] / patch.shape[3]
            raise ValueError(f"the model upscales x{found:g}, not x{scale}: use --scale {found:g}")
        oy, ox = (t.y0 - t.py0) * scale, (t.x0 - t.px0) * scale
        core = sr[:, oy : oy + (t.y1 - t.y0) * scale, ox : ox + (t.x1 - t.x0) * scale]
        band[:, t.x0 * scale : t.x1 * scale] = core.clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).numpy()
        if progress:
            progress(1)
    if band is not None:
        yield band_y * scale, band


def _run_tiled(runner: Runner, rgb: np.ndarray, scale: int, tile: int, overlap: int,
               progress: Callable[[int], None] | None, min_side: int = DEFAULT_MIN_SIDE) -> Image.Image:
    h, w, _ = rgb.shape
    # Bands are pasted straight into the PIL image that is returned: a uint8 numpy buffer first would hold the
    # whole output twice (numpy + PIL's 4-byte RGB copy), 1.3 GB at 4000x3000 x4 instead of 0.77 GB.
    out = Image.new("RGB", (w * scale, h * scale))
    for y, band in tile_bands(runner, rgb, scale, tile, overlap, progress, min_side):
        out.paste(Image.fromarray(band), (0, y))
    return out


def count_tiles(size: tuple[int, int], tile: int, overlap: int = 16) -> int:
    """How many tiles :func:`cpu_upscale` runs for an image of ``size`` = (width, height)."""
    return len(plan_tiles(size[1], size[0], tile, overlap))


def cpu_upscale(image: ImageInput, scale: int | None = None,
                model: str | os.PathLike | torch.nn.Module | None = None, bits: int = DEFAULT_BITS, *,
                tile: int | None = None, overlap: int = 16, progress: Callable[[int], None] | None = None,
                threads: int | None = None) -> Image.Image:
    """Upscale ``image`` (PIL image, path, numpy uint8/uint16 array (H, W[, C]) or (1, H, W, C), or a tensor
    (C, H, W) / (1, C, H, W), float in [0, 1] or uint8) on the CPU.

    ``scale``: None for the model's own (the embedded models: 4); another scale than the model's is an error.
    ``model``: None (the embedded ``.pte`` for the scale and ``bits``), a ``.pte`` path, a quantsr checkpoint,
    or an ``nn.Module``. ``tile``/``overlap`` in input pixels (default tile: 256, or less if the ``.pte`` accepts
    less); images up to ``tile`` on each side run whole. Returns a PIL image: "L" for grayscale input,
    "RGBA"/"LA" when the input has alpha, else "RGB"; the input's ICC profile and EXIF (orientation applied and
    reset, pixel dimensions updated) are in its ``info`` for saving.
    """
    im = _open(image)
    if im.width < 1 or im.height < 1:
        raise ImageError("the image is empty (0 pixels)")
    runner = load_runner(model, scale, bits, threads=threads)
    scale = scale or runner_scale(runner) or DEFAULT_SCALE
    tile = fit_tile(tile, overlap, max_side_of(runner))
    metadata = _metadata(im)
    rgb, alpha, gray = _split_alpha(im)
    del im  # its pixels are in rgb/alpha now; a big photo's decoded copy need not live through the run
    out = _run_tiled(runner, rgb, scale, tile, overlap, progress, min_side_of(runner))
    if gray:
        out = out.convert("L")
    if alpha is not None:
        big_alpha = alpha.resize(out.size, Image.BICUBIC)
        out = out.convert("LA" if gray else "RGBA")
        out.putalpha(big_alpha)
    out.info.update(_scaled_metadata(metadata, out.size))
    return out


_EXIF_PIXEL_X, _EXIF_PIXEL_Y, _EXIF_IFD, _ORIENTATION = 0xA002, 0xA003, 0x8769, 0x0112


def _metadata(im: Image.Image) -> dict:
    """The ICC profile and EXIF of the input (after exif_transpose, which already dropped the orientation)."""
    meta = {}
    if im.info.get("icc_profile"):
        meta["icc_profile"] = im.info["icc_profile"]
    exif = im.getexif()
    if len(exif) or exif.get_ifd(_EXIF_IFD):
        meta["exif"] = exif
    return meta


def _scaled_metadata(meta: dict, size: tuple[int, int]) -> dict:
    out = dict(meta)
    exif = out.pop("exif", None)
    if exif is not None:
        exif.pop(_ORIENTATION, None)  # the pixels are upright now
        ifd = exif.get_ifd(_EXIF_IFD)
        if _EXIF_PIXEL_X in ifd or _EXIF_PIXEL_Y in ifd:
            ifd[_EXIF_PIXEL_X], ifd[_EXIF_PIXEL_Y] = size
        out["exif"] = exif.tobytes()
    return out
