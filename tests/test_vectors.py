"""The shared vectors in tests/vectors/ (read by the Android demo's JUnit tests) are current and agree with quantsr."""
import inspect
import json
import statistics

import numpy as np
import pytest
import torch

from quantsr.artifacts.cards import DEFAULT_MIN_SIDE as MIN_SIDE
from quantsr.export.model_card import artifact_card
from quantsr.runtime.tiling import plan_tiles
from quantsr.runtime.upscale import _run_tiled
from tests import make_vectors as mv

FILES = ["pixels.json", "tiling.json", "stitch.json", "models.json", "models_expected.json", "latency.json"]


def load(name: str) -> dict:
    path = mv.VECTORS / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `python tests/make_vectors.py`")
    return json.loads(path.read_text(encoding="utf-8"))


def argb_to_rgb(values: list[int], h: int, w: int) -> np.ndarray:
    v = np.array(values, np.int64) & 0xFFFFFFFF
    return np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], -1).astype(np.uint8).reshape(h, w, 3)


def test_committed_vectors_are_current_and_small():
    rendered = mv.render()
    assert sorted(rendered) == sorted(FILES)
    stale = [n for n, text in rendered.items()
             if not (mv.VECTORS / n).is_file() or (mv.VECTORS / n).read_text(encoding="utf-8") != text]
    assert not stale, f"tests/vectors/{stale} differ from quantsr's output: run `python tests/make_vectors.py`"
    total = sum((mv.VECTORS / n).stat().st_size for n in FILES)
    assert total < 50_000, f"vectors are {total} bytes; keep them commit-sized (< 50 KB)"


def test_pixel_vectors_follow_the_upscale_conversion():
    v = load("pixels.json")
    a = v["argb_to_float"]
    rgb = argb_to_rgb(a["argb"], a["height"], a["width"])
    expected = torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float().div_(255.0)
    assert torch.equal(torch.tensor(a["float"], dtype=torch.float32).reshape(1, 3, a["height"], a["width"])[0],
                       expected)
    assert any((x & 0xFFFFFFFF) >> 24 != 255 for x in a["argb"]), "input alpha should vary (and be ignored)"
    f = v["float_to_uint8"]
    src = torch.tensor(f["float"], dtype=torch.float32)
    assert f["uint8"] == src.clamp(0, 1).mul(255.0).round().byte().tolist()
    ties = torch.tensor(f["ties_half_to_even"], dtype=torch.float32).mul(255.0)
    assert len(ties) >= 4 and torch.equal(ties, ties.floor() + 0.5), "ties must be exact .5 in float32"
    assert {int(t) % 2 for t in torch.tensor(f["ties_half_to_even"]).mul(255.0).round()} == {0}
    u = v["uint8_to_argb"]
    planar = np.array(u["planar_uint8"], np.uint8).reshape(3, u["height"], u["width"]).transpose(1, 2, 0)
    assert np.array_equal(argb_to_rgb(u["argb"], u["height"], u["width"]), planar)
    assert all((x & 0xFFFFFFFF) >> 24 == 255 for x in u["argb"])


def test_exif_vectors_match_pil_exif_transpose():
    from PIL import Image, ImageOps

    e = load("pixels.json")["exif_orientation"]
    im = Image.fromarray(argb_to_rgb(e["argb"], e["height"], e["width"]))
    for case in e["cases"]:
        tagged = im.copy()
        tagged.getexif()[0x0112] = case["orientation"]
        exif = tagged.getexif()
        tagged.info["exif"] = exif.tobytes()
        upright = np.asarray(ImageOps.exif_transpose(tagged))
        assert np.array_equal(upright, argb_to_rgb(case["argb"], case["height"], case["width"])), case["orientation"]


def test_tiling_vectors_are_plan_tiles():
    v = load("tiling.json")
    assert len(v["cases"]) >= 10
    for case in v["cases"]:
        h, w, tile, overlap = case["height"], case["width"], case["tile"], case["overlap"]
        assert case["tiles"] == [[t.y0, t.y1, t.x0, t.x1, t.py0, t.py1, t.px0, t.px1]
                                 for t in plan_tiles(h, w, tile, overlap)]
        cover = np.zeros((h, w), int)
        for y0, y1, x0, x1, *_ in case["tiles"]:
            cover[y0:y1, x0:x1] += 1
        assert (cover == 1).all()
    for bad in v["invalid"]:
        with pytest.raises(ValueError):
            plan_tiles(10, 10, bad["tile"], bad["overlap"])


def test_stitch_vectors_are_run_tiled():
    v = load("stitch.json")
    assert v["min_side"] == MIN_SIDE
    rgb = argb_to_rgb(v["argb"], v["height"], v["width"])
    for case in v["cases"]:
        s = case["scale"]
        got = argb_to_rgb(case["argb"], case["out_height"], case["out_width"])
        assert np.array_equal(got, np.asarray(_run_tiled(mv.FAKE_MODELS[case["model"]](s), rgb, s, case["tile"],
                                                         case["overlap"], None)))
        if case["model"] == "nearest":  # translation-invariant: tiles must reproduce the whole image
            assert np.array_equal(got, rgb.repeat(s, 0).repeat(s, 1))
    # the ramp model is position dependent: different tilings give different pictures (the vectors catch offsets)
    ramps = [c for c in v["cases"] if c["model"] == "ramp" and c["scale"] == 2]
    assert len({tuple(c["argb"]) for c in ramps}) == len(ramps)
    # the mirror model reads the padding: replicating the edge differs from e.g. wrapping around or zeros
    mirror = next(c for c in v["cases"] if c["model"] == "mirror" and c["tile"] >= v["height"])
    h, w, s = v["height"], v["width"], mirror["scale"]
    padded = np.pad(rgb, ((0, MIN_SIDE - h), (0, 0), (0, 0)), mode="wrap")
    run = mv.FAKE_MODELS["mirror"](s)
    wrapped = run(torch.from_numpy(padded.transpose(2, 0, 1).copy()).float().div(255).unsqueeze(0))[0, :, : h * s]
    wrapped = wrapped.clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).numpy()
    assert not np.array_equal(wrapped, argb_to_rgb(mirror["argb"], h * s, w * s))


def test_models_manifest_follows_the_model_card():
    card_keys = set(inspect.getsource(artifact_card).split("return {", 1)[1].split('"')[1::2])
    manifest = load("models.json")
    expected = load("models_expected.json")
    assert manifest["schema"] == 1 and len(manifest["models"]) == len(expected["models"]) >= 2
    for m, e in zip(manifest["models"], expected["models"]):
        extra = set(m) - card_keys - {"name", "overlap", "min_side", "max_side"}
        assert not extra, f"models.json fields {extra} are not model-card fields"
        assert m["input"]["name"] == "lr" and m["output"]["name"] == "sr"
        assert e["file"] == m["file"] and e["weight_bits"] == m["bits"]["weights"]
        if m["input"]["shape"] is not None:
            assert m["output"]["shape"][2:] == [d * m["scale"] for d in m["input"]["shape"][2:]]
    for bad in expected["invalid"]:
        if bad["error_contains"] == "JSON":
            with pytest.raises(json.JSONDecodeError):
                json.loads(bad["text"])
        else:
            json.loads(bad["text"])


def test_latency_vectors():
    v = load("latency.json")
    for case in v["cases"]:
        xs = case["samples"]
        assert case["median"] == statistics.median(xs) and case["min"] == min(xs) and case["max"] == max(xs)
        assert case["mean"] == pytest.approx(statistics.fmean(xs), rel=1e-12)
        for p in (50, 90, 99):  # nearest rank == numpy's inverted_cdf
            assert case[f"p{p}"] == float(np.percentile(xs, p, method="inverted_cdf"))
    row = v["bench_row"]
    from quantsr.bench.rows import BenchRow

    assert set(row["expected"]) == set(BenchRow.__dataclass_fields__)
    assert row["expected"]["median_ms"] == round(statistics.median(row["samples_ms"]), 2)
