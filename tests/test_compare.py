"""`quantsr upscale --compare`'s picture (compare_image): layout, the crop's frame on both overviews, labels."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from quantsr.runtime.compare import FRAME_COLOR, compare_image

GREY_LR, GREY_SR = (90, 90, 90), (160, 160, 160)  # flat pictures: any pixel that differs was drawn on top


def flat(w: int, h: int, scale: int = 4) -> tuple[Image.Image, Image.Image]:
    return Image.new("RGB", (w, h), GREY_LR), Image.new("RGB", (w * scale, h * scale), GREY_SR)


def test_layout_and_backward_compatible_call():
    original, upscaled = flat(50, 40)
    picture = compare_image(original, upscaled, 10, 800)  # the original positional signature still works
    # top row: two overviews of 400 px width (200x160 scaled by 2 -> 320 high); bottom: two 400x400 crops
    assert picture.size == (800, 320 + 400) and picture.mode == "RGB"
    assert compare_image(original, upscaled, width=801).size == (800, 320 + 400)  # odd width: two equal halves


def test_frame_marks_the_crop_on_both_overviews():
    original, upscaled = flat(50, 40)
    a = np.asarray(compare_image(original, upscaled, crop=10, width=800))
    # crop 10 LR px = 40 SR px around the centre (100, 80): box (80, 60)-(120, 100), x2 on the overview
    x0, y0, x1, y1 = 160, 120, 239, 199
    for panel in (0, 400):
        for x, y in [(x0, 160), (x1, 160), (200, y0), (200, y1)]:  # the middle of each side
            assert tuple(a[y, panel + x]) == FRAME_COLOR, (panel, x, y)
        assert tuple(a[160, panel + 200]) != FRAME_COLOR  # inside the frame: the picture
        assert tuple(a[160, panel + x0 - 3]) != FRAME_COLOR and tuple(a[y1 + 3, panel + 200]) != FRAME_COLOR
    assert tuple(a[160, 200]) == GREY_LR and tuple(a[160, 600]) == GREY_SR  # bicubic | quantsr
    assert not (a[320:] == FRAME_COLOR).all(axis=-1).any()  # the enlarged crops are not framed over


def _label_area(a: np.ndarray, x: int, y: int, w: int = 120, h: int = 30) -> np.ndarray:
    return a[y:y + h, x:x + w]


def test_labels_are_drawn_and_follow_the_label_argument():
    original, upscaled = flat(50, 40)
    default = np.asarray(compare_image(original, upscaled, crop=10, width=800))
    named = np.asarray(compare_image(original, upscaled, crop=10, width=800, label="quantsr W4A4"))
    for x, y, grey in [(0, 0, GREY_LR), (400, 0, GREY_SR), (0, 320, GREY_LR), (400, 320, GREY_SR)]:
        area = _label_area(named, x, y)
        drawn = (area != grey).any(axis=-1)
        assert drawn.mean() > 0.1, (x, y)  # a box with text, not a stray pixel
        assert (area > 200).all(axis=-1).any() and (area < 60).all(axis=-1).any()  # light text on a dark box
    # the quantsr panels' labels change with `label`; the bicubic ones do not
    assert (_label_area(default, 400, 0) != _label_area(named, 400, 0)).any()
    assert (_label_area(default, 400, 320) != _label_area(named, 400, 320)).any()
    assert (_label_area(default, 0, 0) == _label_area(named, 0, 0)).all()
    # away from labels and frame the pictures are untouched
    assert tuple(named[300, 20]) == GREY_LR and tuple(named[700, 780]) == GREY_SR


@pytest.mark.parametrize("size", [(10, 10), (30, 12), (12, 30), (1, 1)])
def test_tiny_and_non_square_images(size):
    w, h = size
    original, upscaled = flat(w, h)
    picture = compare_image(original, upscaled, label="quantsr W2A2")
    W, H = 4 * w, 4 * h
    top = max(1, round(H * 800 / W))
    assert picture.size == (1600, top + 800)
    a = np.asarray(picture)
    # the crop is a centred square of at most the picture's short side; its frame's left side, on both overviews
    c = min(96 * 4, W, H)
    left, mid_y = (W // 2 - c // 2) * 800 // W, top // 2 + 1
    for panel in (0, 800):
        assert tuple(a[mid_y, panel + left]) == FRAME_COLOR, (size, panel)
        assert tuple(a[min(top - 1, mid_y + 5), panel + left]) == FRAME_COLOR, (size, panel)


def test_photo_like_input_keeps_orientation_and_modes():
    rng = np.random.default_rng(0)
    original = Image.fromarray(rng.integers(0, 255, (24, 36, 3), dtype=np.uint8))
    upscaled = original.resize((144, 96), Image.NEAREST).convert("RGBA")  # RGBA output of an alpha input
    picture = compare_image(original.convert("L"), upscaled, crop=8, width=600, label="x")
    assert picture.size == (600, 200 + 300) and picture.mode == "RGB"
