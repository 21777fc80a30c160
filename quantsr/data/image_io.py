"""Reading and writing images with clear errors: every odd format becomes 8-bit RGB, every bad file one message."""
from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from quantsr.artifacts.atomic import atomic_write

if TYPE_CHECKING:  # torch only for the tensor helpers: listing and checking images stays light
    import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
# What quantsr writes (PIL can also write e.g. .xbm, .ico, .pdf, but not an RGB photo into each of them).
WRITABLE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                    ".tiff": "TIFF"}


class ImageError(ValueError):
    """An input image that cannot be used; the message says which file and what to do."""


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3).

    Grayscale is replicated to three channels, alpha is dropped, palette / CMYK are converted, 16-bit is scaled
    to 8 bits (rounded), and EXIF orientation is applied, so every input behaves like an 8-bit RGB photo.
    """
    return pil_to_rgb_array(open_image(path))


def max_image_pixels() -> int:
    """The largest image (width x height) quantsr decodes: PIL's decompression-bomb limit (about 89 Mpixels)."""
    return int(Image.MAX_IMAGE_PIXELS or 0) or 2**62


@contextlib.contextmanager
def _opened(path: Path, max_pixels: int | None) -> Iterator[Image.Image]:
    """Image.open with one size guard: ``max_pixels`` (default :func:`max_image_pixels`) as an ImageError, in
    place of PIL's warning at its limit and its error at twice it; every decoding problem an ImageError."""
    limit = max_image_pixels() if max_pixels is None else max_pixels
    if not path.is_file():
        raise ImageError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes); re-export or re-download the image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the header is read; the check is ours
            try:
                im = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a recognised image file (is it really a {path.suffix or 'image'}?)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: corrupt or truncated image ({exc}); re-export or re-download it") from None
    with im:
        w, h = im.size
        if w * h > limit:
            raise ImageError(f"{path}: {w}x{h} is {_pixels(w * h)}, above the limit of {_pixels(limit)} (a guard "
                             "against decompression bombs); downscale or split it, or raise the limit (quantsr "
                             "upscale --max-megapixels)")
        try:
            yield im
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"{path}: corrupt or truncated image ({exc}); re-export or re-download it") from None


def _pixels(n: int) -> str:
    return f"{n / 1e6:.1f} Mpixels" if n >= 1e6 else f"{n:,} pixels"


def probe_image(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[tuple[int, int], int]:
    """((width, height), number of frames) of an image file, read from its header, with the checks of
    :func:`open_image` (size guard, clear errors) but without decoding the pixels."""
    with _opened(Path(path), max_pixels) as im:
        return im.size, int(getattr(im, "n_frames", 1))


def open_image(path: str | os.PathLike, max_pixels: int | None = None) -> Image.Image:
    """Decode an image file fully (the first frame of an animation), EXIF orientation applied, in its own mode;
    a clear ImageError otherwise, also for images above ``max_pixels`` (default :func:`max_image_pixels`)."""
    with _opened(Path(path), max_pixels) as im:
        im.load()
        return ImageOps.exif_transpose(im)


def pil_to_rgb_array(im: Image.Image) -> np.ndarray:
    """Convert any PIL mode to uint8 RGB (H, W, 3)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 or im.mode.startswith("I;16") else 255.0
        gray = np.clip(np.floor(arr * (255.0 / peak) + 0.5), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        gray = np.clip(np.floor(arr * (255.0 if arr.max() <= 1.0 else 1.0) + 0.5), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files in a folder, sorted by name; an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise ImageError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return files


def save_image_atomic(img: np.ndarray, path: str | os.PathLike) -> Path:
    """Write uint8 RGB/gray ``img`` to ``path`` via a temporary file and rename, so a crash never leaves half a file."""
    path = Path(path)
    fmt = output_format(path)
    with atomic_write(path, "wb") as fh:
        Image.fromarray(img).save(fh, format=fmt)
    return path


def output_format(path: str | os.PathLike) -> str:
    """The PIL format quantsr writes for ``path``'s suffix; an ImageError naming the supported ones otherwise."""
    fmt = WRITABLE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: cannot write {Path(path).suffix or 'a file without suffix'!r} images; use one of "
                         f"{', '.join(WRITABLE_FORMATS)}")
    return fmt


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (1, 3, H, W) in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0).unsqueeze(0)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) or (3, H, W) in [0, 1] -> uint8 (H, W, 3), clamped and rounded as SR evaluation does."""
    t = tensor.detach().float().cpu()
    if t.ndim == 4:
        t = t[0]
    return t.clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).numpy()
