"""Every odd or broken input gives a correct result or a one-line error, from the loader and from `quantsr eval`."""
import numpy as np
import pytest
from PIL import Image

from quantsr.cli import main
from quantsr.data.datasets import BenchmarkSet, PatchDataset
from quantsr.data.image_io import ImageError, load_image
from tests.conftest import tiny_fp_checkpoint


def _photo(h=40, w=36):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 6 % 256, y * 5 % 256, (x + y) * 3 % 256], axis=2).astype(np.uint8)


def _write_valid_variants(folder):
    rgb = _photo()
    Image.fromarray(rgb).save(folder / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(folder / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])).save(folder / "rgba.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(folder / "gray16.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")


def _write_broken_variants(folder):
    good = folder / "ok.png"
    Image.fromarray(_photo()).save(good)
    data = good.read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image\n")
    Image.fromarray(_photo(3, 3)).save(folder / "tiny.png")
    good.unlink()


def test_loader_turns_every_valid_variant_into_rgb8(tmp_path):
    _write_valid_variants(tmp_path)
    rgb = _photo()
    for path in sorted(tmp_path.iterdir()):
        img = load_image(path)
        assert img.dtype == np.uint8 and img.shape == (40, 36, 3), path.name
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.png"), rgb)
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png"), rgb)  # alpha dropped, colour kept
    np.testing.assert_array_equal(load_image(tmp_path / "gray.png")[..., 2], rgb[..., 0])
    np.testing.assert_array_equal(load_image(tmp_path / "gray16.png")[..., 0], rgb[..., 1])  # 16 -> 8 bit exact


@pytest.mark.parametrize("name, message", [("truncated.png", "corrupt or truncated"), ("empty.png", "empty file"),
                                           ("text.png", "not a recognised image")])
def test_loader_errors_name_the_file_and_the_problem(tmp_path, name, message):
    _write_broken_variants(tmp_path)
    with pytest.raises(ImageError, match=message) as info:
        load_image(tmp_path / name)
    assert name in str(info.value) and "\n" not in str(info.value)


def _tiny_checkpoint(tmp_path):
    return tiny_fp_checkpoint(tmp_path / "tiny.pt", scale=4)


def test_eval_gives_results_for_every_valid_variant(tmp_path, capsys):
    folder = tmp_path / "valid"
    folder.mkdir()
    _write_valid_variants(folder)
    ckpt = _tiny_checkpoint(tmp_path)
    assert main(["eval", "--weights", str(ckpt), "--datasets", str(folder), "--no-progress", "--per-image"]) == 0
    out = capsys.readouterr().out
    for stem in ("rgb", "gray", "rgba", "palette", "gray16", "cmyk"):
        assert f"valid/{stem}" in out


@pytest.mark.parametrize("name, message", [("truncated.png", "corrupt or truncated"), ("empty.png", "empty file"),
                                           ("text.png", "not a recognised image"),
                                           ("tiny.png", "smaller than the scale")])
def test_eval_reports_one_line_errors(tmp_path, capsys, name, message):
    folder = tmp_path / "bad"
    folder.mkdir()
    _write_broken_variants(folder)
    for other in folder.iterdir():
        if other.name != name:
            other.unlink()
    ckpt = _tiny_checkpoint(tmp_path)
    assert main(["eval", "--weights", str(ckpt), "--datasets", str(folder), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_benchmark_and_patch_loaders_report_bad_files(tmp_path):
    _write_broken_variants(tmp_path)
    bench = BenchmarkSet(tmp_path, scale=4)
    for i, path in enumerate(bench.files):
        with pytest.raises(ImageError, match=path.name):
            bench.load(i)
    with pytest.raises(ImageError):
        PatchDataset([tmp_path], scale=4, lr_patch=8)


def test_patch_loader_skips_images_smaller_than_a_patch(tmp_path):
    Image.fromarray(_photo(40, 36)).save(tmp_path / "big.png")
    Image.fromarray(_photo(10, 10)).save(tmp_path / "small.png")
    data = PatchDataset([tmp_path], scale=2, lr_patch=8)
    assert len(data) == 1 and data.skipped == ["small.png"]
    with pytest.raises(ImageError, match="smaller --lr-patch"):
        PatchDataset([tmp_path], scale=4, lr_patch=16)


def test_unknown_model_and_bad_checkpoint_are_clear(tmp_path, capsys):
    assert main(["eval", "--model", "edsrr", "--datasets", str(tmp_path)]) == 1
    assert "unknown model 'edsrr'" in capsys.readouterr().err
    bogus = tmp_path / "bogus.pth"
    bogus.write_text("not a checkpoint")
    assert main(["eval", "--model", "edsr", "--weights", str(bogus), "--datasets", str(tmp_path)]) == 1
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err
    wrong = _tiny_checkpoint(tmp_path)
    assert main(["eval", "--model", "imdn", "--weights", str(wrong), "--datasets", str(tmp_path)]) == 1
    assert "holds a edsr model" in capsys.readouterr().err


def test_atomic_writes_leave_normal_permissions(tmp_path):
    import os

    from quantsr.artifacts.atomic import write_text_atomic

    path = write_text_atomic("{}", tmp_path / "out.json")
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
