"""The ``--compare`` picture of ``quantsr upscale``: bicubic beside quantsr, with an enlarged crop.

Pure PIL on purpose: this module is on the inference path (``quantsr upscale``), so it must not pull in
matplotlib or any training/export code.
"""
from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFont, ImageOps

__all__ = ["FRAME_COLOR", "compare_image"]

FRAME_COLOR = (255, 200, 0)  # amber: stands out on skin, sky and foliage alike, and on the dark label boxes
_LABEL_BOX = (24, 24, 24)
_LABEL_TEXT = (255, 255, 255)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, AttributeError, ImportError, OSError):
        return ImageFont.load_default()  # older Pillow or no FreeType: the fixed bitmap font, still legible


def _label(draw: ImageDraw.ImageDraw, x: int, y: int, text: str, font: ImageFont.ImageFont, pad: int) -> None:
    """``text`` on a dark box whose top-left corner is (x, y): readable over any picture."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    # textbbox includes the font's internal leading above the glyphs; shift so the box hugs the ink
    ox, oy = x + pad - left, y + pad - top
    draw.rectangle((x, y, x + (right - left) + 2 * pad - 1, y + (bottom - top) + 2 * pad - 1), fill=_LABEL_BOX)
    draw.text((ox, oy), text, font=font, fill=_LABEL_TEXT)


def compare_image(original: Image.Image, upscaled: Image.Image, crop: int = 96, width: int = 1600,
                  label: str = "quantsr") -> Image.Image:
    """Side by side: bicubic | quantsr (top, scaled to ``width``), and the same ``crop``-pixel (LR) centre
    region of each enlarged without smoothing (bottom), so the difference in detail is visible.

    Each panel is labelled ("bicubic" and ``label``, e.g. ``"quantsr W4A4"``), and the crop's region is framed
    on both overviews so the enlarged part can be found in the whole picture.
    """
    original = ImageOps.exif_transpose(original).convert("RGB")
    upscaled = upscaled.convert("RGB")
    bicubic = original.resize(upscaled.size, Image.BICUBIC)
    half = width // 2
    ratio = half / upscaled.width
    top_h = max(1, round(upscaled.height * ratio))
    s = max(1, upscaled.width // original.width)
    cx, cy, c = upscaled.width // 2, upscaled.height // 2, min(crop * s, upscaled.width, upscaled.height)
    box = (cx - c // 2, cy - c // 2, cx - c // 2 + c, cy - c // 2 + c)
    canvas = Image.new("RGB", (half * 2, top_h + half), "white")
    for i, im in enumerate((bicubic, upscaled)):
        canvas.paste(im.resize((half, top_h), Image.LANCZOS), (i * half, 0))
        canvas.paste(im.crop(box).resize((half, half), Image.NEAREST), (i * half, top_h))

    draw = ImageDraw.Draw(canvas)
    # the overview's own scale per axis (top_h is rounded, so y differs slightly from x); floor/ceil so the
    # frame encloses every overview pixel the crop touches
    sx, sy = half / upscaled.width, top_h / upscaled.height
    fx0, fy0 = math.floor(box[0] * sx), math.floor(box[1] * sy)
    fx1, fy1 = min(half, math.ceil(box[2] * sx)) - 1, min(top_h, math.ceil(box[3] * sy)) - 1
    line = max(1, round(width / 500))
    # font size follows the picture width, but a very flat overview (a panorama) must still hold its label
    size = max(9, min(width // 55, top_h // 3))
    font, pad = _font(size), max(2, size // 4)
    for i, name in enumerate(("bicubic", label)):
        x = i * half
        draw.rectangle((x + fx0, fy0, x + fx1, fy1), outline=FRAME_COLOR, width=line)  # drawn inward
        _label(draw, x + pad, pad, name, font, pad)
        _label(draw, x + pad, top_h + pad, f"{name}, crop", font, pad)
    return canvas
