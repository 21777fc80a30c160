"""The bad-input matrix of the command line, run as a user runs it (a subprocess): the exit code (0 success, 1 a
failure or skipped files, 2 a usage error), one line on stderr, no traceback, and no input file lost or changed.
Then the conventions users expect (short options, formats, metadata kept) in-process, and the API's input types."""
import hashlib
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from quantsr import create_model
from quantsr.artifacts.atomic import atomic_write
from quantsr.artifacts.embedded import default_model_path
from quantsr.cli import main
from quantsr.data.image_io import ImageError
from quantsr.runtime.upscale import cpu_upscale
from quantsr.train.checkpoint import save_atomic

REPO = Path(__file__).resolve().parents[1]
TINY_KW = {"num_feat": 8, "num_block": 1}


def photo(h=12, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png_header_only(path: Path, width: int, height: int) -> None:
    """A small file that claims a huge image: the shape of a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "quantsr", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_line_error(proc: subprocess.CompletedProcess, rc: int, *fragments: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == rc, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with photos, a tiny x2 quantsr checkpoint and a copy of the embedded x4 .pte with its card."""
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = create_model("edsr", scale=2, **TINY_KW)
    save_atomic({"model": model.state_dict(), "metadata": {"model": "edsr", "scale": 2, "model_kwargs": TINY_KW}},
                root / "tiny.pt")
    pte = default_model_path(4, 4)
    (root / "x4.pte").write_bytes(pte.read_bytes())
    (root / "x4.pte.json").write_bytes(pte.with_name(pte.name + ".json").read_bytes())
    Image.fromarray(photo()).save(root / "x.png")
    return root


# -- data loss and wrong output ------------------------------------------------------------------------------

def test_an_output_that_is_the_input_is_refused(work):
    before = snapshot(work)
    assert_one_line_error(run_cli("upscale", "x.png", "x.png", "--model", "tiny.pt", cwd=work), 2,
                          "overwrite the input x.png")
    assert_one_line_error(run_cli("upscale", "x.png", "./sub/../x.png", "--model", "tiny.pt", cwd=work), 2)
    assert snapshot(work) == before


def test_a_folder_into_itself_keeps_its_inputs(work, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photo(seed=1)).save(folder / "a.png")
    Image.fromarray(photo(seed=2)).save(folder / "b.jpg")
    before = snapshot(folder)
    proc = run_cli("upscale", str(folder), str(folder), "--model", str(work / "tiny.pt"), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    after = snapshot(folder)
    assert {k: after[k] for k in before} == before and sorted(after) == ["a.png", "a_x2.png", "b.jpg", "b_x2.png"]
    assert_one_line_error(run_cli("upscale", str(folder), str(folder), "--suffix", "", "--model",
                                  str(work / "tiny.pt"), cwd=tmp_path), 2, "a.png")
    assert {k: snapshot(folder)[k] for k in before} == before


def test_a_folder_batch_keeps_both_same_stem_results_and_skips_bad_files(work, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photo(seed=3)).save(folder / "x.png")
    Image.fromarray(photo(seed=4)).save(folder / "x.jpg")
    Image.fromarray(photo(seed=5)).save(folder / "z.png")
    png_header_only(folder / "bomb.png", 20000, 20000)  # over twice PIL's limit: PIL raises, not an OSError
    png_header_only(folder / "nearbomb.png", 10000, 10000)  # between PIL's warning and its error
    (folder / "broken.png").write_text("not a png")
    before = snapshot(folder)
    proc = run_cli("upscale", str(folder), str(tmp_path / "out"), "--model", str(work / "tiny.pt"), cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x_jpg.png", "x_png.png", "z.png"]
    assert Image.open(tmp_path / "out" / "x_jpg.png").size == (32, 24)
    skipped = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(skipped) == 3 and all(line.startswith("quantsr: skipped ") for line in skipped)
    assert any("bomb.png" in line and "decompression" in line for line in skipped)
    assert any("nearbomb.png" in line and "decompression" in line for line in skipped)
    assert proc.stdout.strip().splitlines()[-1].startswith("3 upscaled, 3 skipped")
    assert "x.jpg and x.png would share one output name" in proc.stdout  # the renaming is said, not silent
    assert snapshot(folder) == before


def test_a_scale_the_model_does_not_have_is_refused(work):
    assert_one_line_error(run_cli("upscale", "x.png", "out.png", "--model", "x4.pte", "--scale", "2", cwd=work),
                          2, "x4 model", "--scale 4")
    assert_one_line_error(run_cli("upscale", "x.png", "out.png", "--model", "tiny.pt", "--scale", "4", cwd=work),
                          1, "x2 model", "--scale 2")
    assert not (work / "out.png").exists()


def test_the_tile_check_catches_a_model_of_another_scale():
    """A runner that says nothing about its scale (here a bare module) still cannot write a wrong image."""
    torch.manual_seed(0)
    x2 = create_model("edsr", scale=2, **TINY_KW).eval()
    del x2.scale
    with pytest.raises(ValueError, match="upscales x2, not x4: use --scale 2"):
        cpu_upscale(photo(), scale=4, model=x2)


def test_public_weights_of_another_scale_or_architecture_are_one_line(work, tmp_path):
    torch.manual_seed(0)
    torch.save(create_model("edsr", scale=2, **TINY_KW).state_dict(), tmp_path / "renamed.pth")
    torch.save(create_model("edsr", scale=2, num_feat=16, num_block=1).state_dict(), tmp_path / "wide.pth")
    args = ["eval", "--model", "edsr", "--model-kw", "num_feat=8", "num_block=1", "--datasets", str(tmp_path)]
    assert_one_line_error(run_cli(*args, "--weights", "renamed.pth", "--scale", "4", cwd=tmp_path), 1,
                          "renamed.pth", "--scale")
    assert_one_line_error(run_cli(*args, "--weights", "wide.pth", "--scale", "2", cwd=tmp_path), 1,
                          "another shape", "conv_first.weight is 16x3x3x3")


def test_a_kill_during_a_save_leaves_no_temp_file_for_long(tmp_path):
    target = tmp_path / "model.pt"
    code = ("import os, signal, sys; from quantsr.artifacts.atomic import atomic_write\n"
            f"with atomic_write({str(target)!r}) as fh:\n"
            "    fh.write(b'half'); fh.flush(); os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -signal.SIGKILL
    stale = [p.name for p in tmp_path.iterdir()]
    assert len(stale) == 1 and stale[0].startswith(".model.pt.") and not target.exists()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a concurrent writer's temp file (its process still runs) must survive the cleanup
        (tmp_path / f".model.pt.{live.pid}.abc123.tmp").write_bytes(b"in progress")
        with atomic_write(target) as fh:
            fh.write(b"whole")
        assert target.read_bytes() == b"whole"
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".model.pt.{live.pid}.abc123.tmp", "model.pt"]
    finally:
        live.kill()
        live.wait()


# -- crashes and tracebacks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, message", [("text", "not an ExecuTorch program"), ("zip", "not an ExecuTorch"),
                                           ("truncated", "truncated"), ("empty", "empty file"),
                                           ("missing", "no such file"), ("stale-card", "belongs to another")])
def test_a_bad_pte_is_one_line_not_an_abort(work, tmp_path, kind, message):
    pte = tmp_path / "model.pte"
    data = (work / "x4.pte").read_bytes()
    if kind == "text":
        pte.write_text("hello, I am not a program\n")
    elif kind == "zip":
        pte.write_bytes((work / "tiny.pt").read_bytes())  # a torch checkpoint renamed .pte
    elif kind == "truncated":
        pte.write_bytes(data[: len(data) // 3])
    elif kind == "empty":
        pte.write_bytes(b"")
    elif kind == "stale-card":  # right size, other bytes: the card's sha256 tells
        pte.write_bytes(data[:4096] + bytes(len(data) - 4096))
        (tmp_path / "model.pte.json").write_bytes((work / "x4.pte.json").read_bytes())
    proc = run_cli("upscale", str(work / "x.png"), str(tmp_path / "o.png"), "--model", str(pte), cwd=tmp_path)
    assert_one_line_error(proc, 1, message)
    assert proc.returncode != -signal.SIGABRT and not (tmp_path / "o.png").exists()


def test_a_bomb_alone_is_one_line(tmp_path):
    png_header_only(tmp_path / "bomb.png", 20000, 20000)
    assert_one_line_error(run_cli("upscale", "bomb.png", cwd=tmp_path), 1, "decompression bombs")


@pytest.mark.parametrize("output, rc, message", [
    ("x.xbm", 2, "cannot write '.xbm'"),
    ("afile/out.png", 1, "is a file, not a folder"),
    ("/proc/out.png", 1, "not writable"),
])
def test_an_unwritable_output_fails_before_the_work(work, output, rc, message):
    (work / "afile").write_text("a file, not a folder")
    assert_one_line_error(run_cli("upscale", "x.png", output, "--model", "tiny.pt", cwd=work), rc, message)


def test_json_and_export_outputs_are_checked_first(work, tmp_path):
    (tmp_path / "folder.json").mkdir()
    assert_one_line_error(run_cli("eval", "--weights", str(work / "tiny.pt"), "--datasets", str(tmp_path),
                                  "--json", "folder.json", cwd=tmp_path), 1, "is a folder")
    (tmp_path / "notdir").write_text("x")
    assert_one_line_error(run_cli("export", str(work / "tiny.pt"), "--out", "notdir", cwd=tmp_path), 1,
                          "is a file, not a folder")
    assert_one_line_error(run_cli("profile", "--model", "edsr", "--json", "/proc/p.json", cwd=tmp_path), 1,
                          "not writable")


@pytest.mark.parametrize("args, rc, message", [
    (["--tile", "400"], 2, "--tile 288 or less"),
    (["--overlap", "200"], 2, "--overlap"),
    (["--tile", "4"], 2, "at least 8"),
    (["--threads", "-1"], 2, "--threads"),
    (["--quality", "0"], 2, "--quality"),
    (["--scale", "two"], 2, "--scale"),
])
def test_flag_values_the_model_cannot_take(work, args, rc, message):
    proc = run_cli("upscale", "x.png", "o.png", "--model", "x4.pte", *args, cwd=work)
    assert_one_line_error(proc, rc, message)


def test_model_options_devices_and_versions_are_one_line(work):
    assert_one_line_error(run_cli("profile", "--model", "edsr", "--model-kw", "foo=1", cwd=work), 1,
                          "no option 'foo'", "num_feat")
    assert_one_line_error(run_cli("profile", "--model", "edsr", "--model-kw", "foo", cwd=work), 2, "key=value")
    device = "cuda:99" if torch.cuda.is_available() else "cuda"
    assert_one_line_error(run_cli("eval", "--weights", "tiny.pt", "--device", device, "--datasets", ".",
                                  cwd=work), 1, f"--device {device}")
    assert_one_line_error(run_cli("eval", "--weights", "tiny.pt", "--device", "gpu0", "--datasets", ".",
                                  cwd=work), 2, "--device gpu0")
    proc = run_cli("--version", cwd=work)
    assert proc.returncode == 0 and proc.stdout.startswith("quantsr ")
    assert_one_line_error(run_cli("upscale", cwd=work), 2, "name an image")


# -- conventions -------------------------------------------------------------------------------------------------

def test_short_options_suffix_format_and_quality(work, tmp_path, capsys):
    src = tmp_path / "p.png"
    Image.fromarray(photo(seed=7)).save(src)
    model = ["-m", str(work / "tiny.pt"), "--no-progress"]
    assert main(["upscale", "-i", str(src), "-o", str(tmp_path / "o.jpg"), "-s", "2", "-q", "60", *model]) == 0
    with Image.open(tmp_path / "o.jpg") as im:
        assert im.format == "JPEG" and im.size == (32, 24)
    assert main(["upscale", str(src), "--suffix", "_big", "-f", "webp", *model]) == 0
    with Image.open(tmp_path / "p_big.webp") as im:
        assert im.format == "WEBP"
    out = tmp_path / "into"
    out.mkdir()
    assert main(["upscale", str(src), "-o", str(out), *model]) == 0  # an existing folder: the default name in it
    assert (out / "p.png").exists()
    assert main(["upscale", str(src), str(tmp_path / "o.png"), "-f", "jpg", *model]) == 2


def test_icc_profile_and_exif_are_kept_with_the_orientation_applied(work, tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "quantsr test camera"  # Make
    exif[0x0112] = 6  # rotated 90 degrees: the upscaled pixels are upright, so the tag must go
    src = tmp_path / "cam.jpg"
    Image.fromarray(photo(12, 16, seed=8)).save(src, icc_profile=icc, exif=exif, quality=95)
    for suffix in (".png", ".jpg", ".webp"):
        out = tmp_path / f"out{suffix}"
        assert main(["upscale", str(src), str(out), "-m", str(work / "tiny.pt"), "--no-progress"]) == 0
        with Image.open(out) as im:
            assert im.info.get("icc_profile") == icc and im.size == (24, 32), suffix  # 12x16 turned upright, x2
            kept = im.getexif()
            assert kept.get(0x010F) == "quantsr test camera" and 0x0112 not in kept, suffix


def test_an_animation_says_only_its_first_frame_is_used(work, tmp_path, capsys):
    frames = [Image.fromarray(photo(seed=s)) for s in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert main(["upscale", str(tmp_path / "anim.gif"), "-m", str(work / "tiny.pt"), "--no-progress"]) == 0
    assert "3 frames; only the first is upscaled" in capsys.readouterr().err
    assert Image.open(tmp_path / "anim_x2.png").size == (32, 24)


# -- the API's inputs ----------------------------------------------------------------------------------------------

def test_cpu_upscale_takes_batches_and_tensors_and_refuses_the_rest():
    torch.manual_seed(0)
    x2 = create_model("edsr", scale=2, **TINY_KW).eval()
    img = photo()
    expected = np.asarray(cpu_upscale(img, model=x2))
    assert expected.shape == (24, 32, 3)  # the scale comes from the model
    assert np.array_equal(np.asarray(cpu_upscale(img[None], model=x2)), expected)
    chw = torch.from_numpy(img).permute(2, 0, 1)
    assert np.array_equal(np.asarray(cpu_upscale(chw, model=x2)), expected)  # uint8 tensor
    assert np.array_equal(np.asarray(cpu_upscale(chw[None].float() / 255, model=x2)), expected)
    for bad, message in [(img.transpose(2, 0, 1), "transpose"), (img[None, None], "shape"), ([[1, 2]], "list"),
                         (None, "NoneType"), (img.astype(np.float32), "uint8"), (torch.zeros(5, 4, 4), "tensor")]:
        with pytest.raises(ImageError, match=message):
            cpu_upscale(bad, model=x2)


# -- quiet by default -------------------------------------------------------------------------------------------

def test_the_sample_photo_prints_its_result_line_and_nothing_else(tmp_path):
    """The embedded W4A4 .pte through the ExecuTorch runtime: no cpuinfo lines, no warnings, and (stderr not
    being a terminal here) no progress bar carriage returns."""
    proc = run_cli("upscale", str(REPO / "examples" / "chelsea.png"), "c.png", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert len(proc.stdout.splitlines()) == 1 and "-> c.png" in proc.stdout
    with Image.open(REPO / "examples" / "chelsea.png") as src, Image.open(tmp_path / "c.png") as out:
        assert out.size == (src.width * 4, src.height * 4)


def test_threads_size_the_executorch_pool_too():
    from executorch.extension.pybindings import portable_lib

    from quantsr.runtime.pte import PteModule, set_runtime_threads

    before = portable_lib._threadpool_get_thread_count()
    try:
        PteModule(default_model_path(4, 4), threads=1)
        assert portable_lib._threadpool_get_thread_count() == 1
    finally:
        set_runtime_threads(max(before, 1))


def test_library_warnings_are_hidden_unless_verbose():
    import warnings

    from quantsr.cli.errors import QuietLibraries

    def emit() -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with quiet:
                warnings.warn_explicit("from a library", FutureWarning, "lib.py", 1, module="coremltools.x")
                warnings.warn_explicit("from quantsr", UserWarning, "q.py", 1, module="quantsr.runtime.tiling")
        return [str(w.message) for w in caught]

    quiet = QuietLibraries(verbose=False)
    assert emit() == ["from quantsr"]
    quiet = QuietLibraries(verbose=True)
    assert emit() == ["from a library", "from quantsr"]


def test_output_names_for_links_aliases_and_repeated_collisions(tmp_path):
    from quantsr.cli.upscale import plan_jobs

    photos, other = tmp_path / "photos", tmp_path / "elsewhere"
    photos.mkdir()
    other.mkdir()
    for name in ("x.png", "x.jpg", "x_png.png"):
        Image.fromarray(photo()).save(photos / name)
    jobs, notes = plan_jobs(photos, str(tmp_path / "out"), 4)
    assert sorted(j.output.name for j in jobs) == ["x_jpg.png", "x_png.png", "x_png_2.png"] and len(notes) == 2
    (other / "link.png").symlink_to(photos / "x.png")  # a link's own folder decides "beside", not its target's
    jobs, _ = plan_jobs(other / "link.png", None, 4)
    assert [j.output for j in jobs] == [other / "link_x4.png"]
    jobs, _ = plan_jobs(photos / "x.png", str(tmp_path / "o.tiff"), 4, fmt="tiff")  # .tiff is --format tiff
    assert jobs[0].output.name == "o.tiff"
    from quantsr.cli.errors import UsageError

    with pytest.raises(UsageError, match="overwrite the input link.png"):
        plan_jobs(other / "link.png", str(photos / "x.png"), 4)  # the same file through the link


def test_input_flag_with_a_positional_output(work, tmp_path):
    assert main(["upscale", "-i", str(work / "x.png"), str(tmp_path / "y.png"), "-m", str(work / "tiny.pt"),
                 "--no-progress"]) == 0
    assert Image.open(tmp_path / "y.png").size == (32, 24)


def test_single_channel_and_16_bit_arrays():
    torch.manual_seed(0)
    x2 = create_model("edsr", scale=2, **TINY_KW).eval()
    gray8 = photo()[:, :, 0]
    expected = np.asarray(cpu_upscale(gray8, model=x2))
    gray16 = gray8.astype(np.uint16) * 257  # the same picture in 16 bits, also as (H, W, 1)
    assert np.array_equal(np.asarray(cpu_upscale(gray16, model=x2)), expected)
    assert np.array_equal(np.asarray(cpu_upscale(gray16[:, :, None], model=x2)), expected)
