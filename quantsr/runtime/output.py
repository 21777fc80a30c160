"""Writing an upscaled image: straight to a PNG band by band when the output allows it (memory bounded by a row
of tiles), else through the in-memory image; either way atomically, with the input's ICC profile and EXIF."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from quantsr.artifacts.atomic import atomic_write
from quantsr.data.image_io import output_format
from quantsr.runtime.limits import fit_tile
from quantsr.runtime.png_stream import PngStreamWriter
from quantsr.runtime.upscale import (
    DEFAULT_SCALE,
    ImageInput,
    Runner,
    _metadata,
    _open,
    _scaled_metadata,
    _split_alpha,
    cpu_upscale,
    load_runner,
    max_side_of,
    min_side_of,
    runner_scale,
    tile_bands,
)

__all__ = ["save_image", "streams", "upscale_to_file"]

# Modes each format cannot store, and what they are written as instead.
_CONVERT = {"JPEG": {"RGBA": "RGB", "LA": "L"}, "BMP": {"LA": "RGBA"}, "WEBP": {"LA": "RGBA", "L": "RGB"}}


def save_image(image: Image.Image, path: str | os.PathLike, quality: int = 95) -> None:
    """Write atomically, in a mode the format stores, with the ICC profile and EXIF in ``image.info`` where the
    format keeps them (PNG, JPEG, WebP; TIFF the profile)."""
    path = Path(path)
    fmt = output_format(path)
    info = image.info
    mode = _CONVERT.get(fmt, {}).get(image.mode)
    if mode:
        image = image.convert(mode)
    options: dict = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if fmt in ("PNG", "JPEG", "WEBP", "TIFF") and info.get("icc_profile"):
        options["icc_profile"] = info["icc_profile"]
    if fmt in ("PNG", "JPEG", "WEBP") and info.get("exif"):
        options["exif"] = info["exif"]
    with atomic_write(path, "wb") as fh:
        image.save(fh, format=fmt, **options)


def streams(image: Image.Image, path: str | os.PathLike, keep: bool = False) -> bool:
    """Whether :func:`upscale_to_file` writes ``image``'s upscale band by band (a PNG of an image without alpha,
    not kept) instead of holding the whole output in memory."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return not keep and output_format(path) == "PNG" and not has_alpha


def upscale_to_file(image: ImageInput, path: str | os.PathLike, scale: int | None = None,
                    model: str | os.PathLike | Runner | None = None, *, tile: int | None = None, overlap: int = 16,
                    progress: Callable[[int], None] | None = None, quality: int = 95,
                    keep: bool = False) -> tuple[tuple[int, int], Image.Image | None]:
    """Upscale ``image`` into the file ``path``; returns (output size, the output image if ``keep`` else None).

    A PNG of an image without alpha is streamed: each row of tiles is encoded as soon as it is done, so peak
    memory is the input, one band of output rows and the model, whatever the output size (the pixels equal
    :func:`cpu_upscale`'s). Other formats, alpha, and ``keep`` go through the in-memory image."""
    path = Path(path)
    im = _open(image)
    runner = load_runner(model, scale)
    if not streams(im, path, keep):
        result = cpu_upscale(im, scale, runner, tile=tile, overlap=overlap, progress=progress)
        save_image(result, path, quality)
        return result.size, result if keep else None
    scale = scale or runner_scale(runner) or DEFAULT_SCALE
    tile = fit_tile(tile, overlap, max_side_of(runner))
    size = (im.width * scale, im.height * scale)
    meta = _scaled_metadata(_metadata(im), size)
    rgb, _, gray = _split_alpha(im)
    del im
    with atomic_write(path, "wb") as fh:
        writer = PngStreamWriter(fh, size[0], size[1], 1 if gray else 3, icc_profile=meta.get("icc_profile"),
                                 exif=meta.get("exif"))
        for _, band in tile_bands(runner, rgb, scale, tile, overlap, progress, min_side_of(runner)):
            # Grayscale as PIL converts it, so the streamed file equals the in-memory path's.
            writer.write_rows(Image.fromarray(band).convert("L") if gray else band)
        writer.close()
    return size, None
