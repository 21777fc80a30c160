"""The ``--compare`` picture of ``quantsr upscale``: bicubic beside quantsr, with an enlarged crop."""
from __future__ import annotations

from PIL import Image, ImageOps

__all__ = ["compare_image"]


def compare_image(original: Image.Image, upscaled: Image.Image, crop: int = 96, width: int = 1600) -> Image.Image:
    """Side by side: bicubic | quantsr (top, scaled to ``width``), and the same ``crop``-pixel (LR) centre
    region of each enlarged without smoothing (bottom), so the difference in detail is visible."""
    original = ImageOps.exif_transpose(original).convert("RGB")
    upscaled = upscaled.convert("RGB")
    bicubic = original.resize(upscaled.size, Image.BICUBIC)
    half = width // 2
    ratio = half / upscaled.width
    top_h = max(1, round(upscaled.height * ratio))
    s = upscaled.width // original.width
    cx, cy, c = upscaled.width // 2, upscaled.height // 2, min(crop * s, upscaled.width, upscaled.height)
    box = (cx - c // 2, cy - c // 2, cx - c // 2 + c, cy - c // 2 + c)
    canvas = Image.new("RGB", (half * 2, top_h + half), "white")
    for i, im in enumerate((bicubic, upscaled)):
        canvas.paste(im.resize((half, top_h), Image.LANCZOS), (i * half, 0))
        canvas.paste(im.crop(box).resize((half, half), Image.NEAREST), (i * half, top_h))
    return canvas
