"""Reading and writing images with clear errors: every odd format becomes 8-bit RGB, every bad file one message."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from quantsr.artifacts.atomic import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageError(ValueError):
    """An input image that cannot be used; the message says which file and what to do."""


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3).

    Grayscale is replicated to three channels, alpha is dropped, palette / CMYK are converted, 16-bit is scaled
    to 8 bits (rounded), and EXIF orientation is applied, so every input behaves like an 8-bit RGB photo.
    """
    return pil_to_rgb_array(open_image(path))


def open_image(path: str | os.PathLike) -> Image.Image:
    """Decode an image file fully, EXIF orientation applied, in its own mode; a clear ImageError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes); re-export or re-download the image")
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: {exc.args[0].split(',')[0]} (PIL's safety limit); downscale it or split it "
                         "into parts first") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a recognised image file (is it really a {path.suffix or 'image'}?)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: corrupt or truncated image ({exc}); re-export or re-download it") from None


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
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown output format {path.suffix!r}; use .png or .jpg")
    with atomic_write(path, "wb") as fh:
        Image.fromarray(img).save(fh, format=fmt)
    return path


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0).unsqueeze(0)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) or (3, H, W) in [0, 1] -> uint8 (H, W, 3), clamped and rounded as SR evaluation does."""
    t = tensor.detach().float().cpu()
    if t.ndim == 4:
        t = t[0]
    return t.clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).numpy()
