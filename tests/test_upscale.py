"""cpu_upscale / quantsr upscale on a tiny local model: image modes, tiling, odd sizes, bad files."""
import numpy as np
import pytest
import torch
from PIL import Image

from quantsr.data.image_io import ImageError
from quantsr.models.registry import create_model
from quantsr.runtime.upscale import cpu_upscale


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("edsr", scale=2, num_feat=8, num_block=1).eval()


def photo(h=20, w=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_tiled_equals_whole_for_a_local_model(tiny):
    img = photo(37, 45)
    whole = np.asarray(cpu_upscale(img, scale=2, model=tiny, tile=64))
    tiled = np.asarray(cpu_upscale(img, scale=2, model=tiny, tile=8, overlap=8))  # receptive field 5 px < 8
    assert whole.shape == (74, 90, 3) and np.array_equal(whole, tiled)


@pytest.mark.parametrize("size", [(1, 1), (3, 7), (8, 9)])
def test_tiny_images(tiny, size):
    out = cpu_upscale(photo(*size), scale=2, model=tiny)
    assert out.size == (size[1] * 2, size[0] * 2) and out.mode == "RGB"


def test_modes(tiny, tmp_path):
    rgb = photo()
    gray = Image.fromarray(rgb[:, :, 0])
    assert cpu_upscale(gray, scale=2, model=tiny).mode == "L"
    rgba = Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]), "RGBA")
    out = cpu_upscale(rgba, scale=2, model=tiny)
    assert out.mode == "RGBA" and out.size == (60, 40) and abs(int(np.asarray(out)[..., 3].mean()) - 128) <= 1
    sixteen = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)
    assert sixteen.mode.startswith("I;16")
    assert np.array_equal(np.asarray(cpu_upscale(sixteen, scale=2, model=tiny)),
                          np.asarray(cpu_upscale(gray, scale=2, model=tiny)))
    palette = Image.fromarray(rgb).convert("P")
    assert cpu_upscale(palette, scale=2, model=tiny).mode == "RGB"
    cmyk = tmp_path / "c.jpg"
    Image.fromarray(rgb).convert("CMYK").save(cmyk)
    assert cpu_upscale(cmyk, scale=2, model=tiny).size == (60, 40)


def test_exif_orientation_is_applied(tiny, tmp_path):
    im = Image.fromarray(photo(20, 30))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 on display
    im.save(tmp_path / "r.jpg", exif=exif)
    assert cpu_upscale(tmp_path / "r.jpg", scale=2, model=tiny).size == (40, 60)


def test_bad_files_are_clear_errors(tiny, tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.fromarray(photo()).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    for name, message in (("text.png", "not a recognised image"), ("empty.png", "empty file"),
                          ("cut.png", "corrupt or truncated"), ("nope.png", "no such file")):
        with pytest.raises(ImageError, match=message):
            cpu_upscale(tmp_path / name, scale=2, model=tiny)


def test_an_image_over_pils_pixel_limit_is_a_clear_error(tiny, tmp_path, monkeypatch):
    Image.fromarray(photo(20, 30)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # 600 px is then over twice the limit: PIL refuses it
    with pytest.raises(ImageError, match="decompression bombs"):
        cpu_upscale(tmp_path / "big.png", scale=2, model=tiny)


def test_upscale_cli_file_folder_and_compare(tiny, tmp_path):
    from quantsr.cli import main
    from quantsr.train.checkpoint import save_atomic

    save_atomic({"model": tiny.state_dict(),
                 "metadata": {"model": "edsr", "scale": 2, "model_kwargs": {"num_feat": 8, "num_block": 1}}},
                tmp_path / "tiny.pt")
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(photo(12, 16, seed=i)).save(folder / f"p{i}.png")
    (folder / "broken.png").write_text("nope")
    model = ["--model", str(tmp_path / "tiny.pt"), "--scale", "2", "--no-progress"]
    assert main(["upscale", str(folder / "p0.png"), str(tmp_path / "one.png"), "--compare", *model]) == 0
    assert Image.open(tmp_path / "one.png").size == (32, 24)
    assert (tmp_path / "one_compare.png").exists()
    assert main(["upscale", str(folder), str(tmp_path / "out"), *model]) == 1  # one broken file: reported
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p1.png"]
    assert main(["upscale", str(folder / "broken.png"), *model]) == 1  # a failure, not a usage error
    assert main(["upscale", str(folder / "p0.png"), str(tmp_path / "x.xyz"), *model]) == 2


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_streamed_png_equals_the_in_memory_image(tiny, tmp_path, mode):
    """Several bands of tiles (tile 8 on a 37x45 image), written row band by row band."""
    from quantsr.runtime.output import upscale_to_file

    img = Image.fromarray(photo(37, 45)).convert(mode)
    expected = cpu_upscale(img, scale=2, model=tiny, tile=8, overlap=4)
    size, kept = upscale_to_file(img, tmp_path / "s.png", 2, tiny, tile=8, overlap=4)
    with Image.open(tmp_path / "s.png") as streamed:
        assert kept is None and size == (90, 74) and streamed.mode == mode
        assert np.array_equal(np.asarray(streamed), np.asarray(expected))
