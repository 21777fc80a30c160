"""Write the shared test vectors in ``tests/vectors/`` (JSON, a few KB each) from quantsr's Python code.

The Android demo's JUnit tests (``android_demo/app/src/test``) read these files, so the app's pixel conversion,
tile plan, crop-and-stitch, manifest parsing and latency statistics are checked against the same numbers that
``quantsr.runtime.upscale`` and ``quantsr.runtime.tiling`` produce. ``tests/test_vectors.py`` regenerates everything
in memory and
fails if a committed file differs (then run ``python tests/make_vectors.py`` and review the diff).

Conventions (all files):
- ARGB pixels are Android ``Bitmap.getPixels`` values: signed 32-bit ints ``(a << 24) | (r << 16) | (g << 8) | b``,
  row-major. Input alpha is ignored (quantsr upscales alpha separately; the demo writes opaque pixels, a = 255).
- Float tensors are planar NCHW ``[1, 3, H, W]`` flattened row-major (R plane, then G, then B), float32 values
  written as the shortest decimal that round-trips the float32-widened double.
- float -> uint8 is quantsr's ``clamp(0, 1) * 255`` (float32 multiply), then ``torch.round``, which rounds half to
  even (Kotlin/Java ``Math.rint``); ``pixels.json`` holds exact ``.5`` ties to pin that down.
- uint8 -> float is ``value / 255`` in float32.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python tests/make_vectors.py` from anywhere
    sys.path.insert(0, str(ROOT))

from quantsr.artifacts.cards import DEFAULT_MIN_SIDE as MIN_SIDE  # noqa: E402
from quantsr.runtime.tiling import plan_tiles  # noqa: E402
from quantsr.runtime.upscale import _run_tiled  # noqa: E402

VECTORS = Path(__file__).resolve().parent / "vectors"
SCHEMA = 1


# --------------------------------------------------------------------------------------------------- helpers
def to_argb(rgb: np.ndarray, alpha: np.ndarray | None = None) -> list[int]:
    """(H, W, 3) uint8 (+ optional (H, W) alpha) -> signed 32-bit ARGB ints, row-major."""
    h, w, _ = rgb.shape
    a = np.full((h, w), 255, np.int64) if alpha is None else alpha.astype(np.int64)
    r, g, b = (rgb[:, :, i].astype(np.int64) for i in range(3))
    value = (a << 24) | (r << 16) | (g << 8) | b
    value = np.where(value >= 2**31, value - 2**32, value)
    return [int(v) for v in value.reshape(-1)]


def floats(t: torch.Tensor) -> list[float]:
    return [float(v) for v in t.detach().to(torch.float32).reshape(-1).tolist()]


def to_uint8(t: torch.Tensor) -> torch.Tensor:
    """quantsr.runtime.upscale._run_tiled's conversion, verbatim."""
    return t.clamp(0, 1).mul(255.0).round().byte()


def nearest_model(scale: int):
    """Fake model "nearest": nearest-neighbour upscaling, out[c, Y, X] = in[c, Y // s, X // s]."""
    def run(x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    return run


def ramp_model(scale: int):
    """Fake model "ramp": nearest plus (Y + X) / 512 (float32), Y, X the output coordinates inside the (padded)
    patch. Not translation-invariant, so a wrong crop offset, tile order or padding side changes the result; values
    above 1 exercise the clamp."""
    def run(x: torch.Tensor) -> torch.Tensor:
        up = nearest_model(scale)(x)
        h, w = up.shape[2:]
        ramp = (torch.arange(h)[:, None] + torch.arange(w)[None, :]).to(torch.float32) / 512.0
        return up + ramp
    return run


def mirror_model(scale: int):
    """Fake model "mirror": (nearest(x) + nearest(x rotated by 180 degrees)) * 0.5 in float32. Every output pixel
    depends on the pixel at the opposite corner of the (padded) patch, so the padding's side, size and content
    (edge replication) all show in the result."""
    def run(x: torch.Tensor) -> torch.Tensor:
        up = nearest_model(scale)
        return (up(x) + up(torch.flip(x, dims=(2, 3)))) * 0.5
    return run


FAKE_MODELS = {"nearest": nearest_model, "ramp": ramp_model, "mirror": mirror_model}


def _image(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 256, (h, w), dtype=np.uint8)


# --------------------------------------------------------------------------------------------------- vectors
def pixel_vectors() -> dict:
    h, w = 4, 5
    rgb, alpha = _image(h, w, 1)
    rgb[0, 0] = (0, 0, 0)
    rgb[0, 1] = (255, 255, 255)
    rgb[0, 2] = (255, 0, 128)
    alpha[0, 0], alpha[0, 1] = 0, 255
    planar = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0).unsqueeze(0)

    # float -> uint8: out of range, near the rounding boundaries, and exact float32 ties (x.5 after * 255).
    ties = []
    for k in range(255):
        v = torch.tensor([(k + 0.5) / 255.0], dtype=torch.float32)
        if float(v.mul(255.0)[0]) == k + 0.5:
            ties.append(float(v[0]))
    ties = ties[:4] + ties[-2:]
    values = [-1.0, -1e-6, 0.0, 0.5 / 255 - 1e-4, 1 / 255, 0.25, 0.5, 0.7, 254.49 / 255, 254.51 / 255,
              1.0, 1.0000001, 1.5, 3.0, *ties]
    src = torch.tensor(values, dtype=torch.float32)
    u8 = to_uint8(src)

    # planar uint8 [3, H, W] -> opaque ARGB (the stitch output path)
    out_rgb = np.ascontiguousarray(rgb[::-1, :, [2, 0, 1]])  # any other image, alpha dropped
    return {
        "schema": SCHEMA,
        "about": "ARGB <-> planar float [1,3,H,W] (value/255, float32) and float -> uint8 "
                 "(clamp(0,1)*255 in float32, round half to even), as quantsr.runtime.upscale._run_tiled",
        "argb_to_float": {"height": h, "width": w, "argb": to_argb(rgb, alpha), "float": floats(planar)},
        "float_to_uint8": {"float": floats(src), "uint8": [int(v) for v in u8.tolist()],
                           "ties_half_to_even": ties},
        "uint8_to_argb": {"height": h, "width": w,
                          "planar_uint8": [int(v) for v in out_rgb.transpose(2, 0, 1).reshape(-1)],
                          "argb": to_argb(out_rgb)},
        "exif_orientation": exif_vectors(),
    }


# PIL.ImageOps.exif_transpose's table: EXIF orientation -> transpose applied to make the image upright
_EXIF = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
         7: "TRANSVERSE", 8: "ROTATE_90"}


def exif_vectors() -> dict:
    """quantsr applies EXIF orientation (ImageOps.exif_transpose) before upscaling; the app does the same."""
    from PIL import Image

    h, w = 2, 3
    rgb, _ = _image(h, w, 2)
    im = Image.fromarray(rgb)
    cases = []
    for orientation in range(1, 9):
        out = im if orientation == 1 else im.transpose(getattr(Image.Transpose, _EXIF[orientation]))
        arr = np.asarray(out)
        cases.append({"orientation": orientation, "height": arr.shape[0], "width": arr.shape[1],
                      "argb": to_argb(arr)})
    return {"height": h, "width": w, "argb": to_argb(rgb), "cases": cases}


TILING_CASES = [  # (height, width, tile, overlap)
    (1, 1, 8, 2), (1, 1, 1, 0), (7, 3, 4, 1), (7, 3, 4, 0), (3, 7, 2, 5), (8, 8, 4, 2), (8, 8, 8, 0),
    (16, 12, 4, 3), (9, 10, 4, 3), (10, 9, 3, 1), (33, 1, 8, 2), (5, 5, 8, 16), (12, 12, 6, 6), (20, 13, 7, 2),
]


def tiling_vectors() -> dict:
    cases = []
    for h, w, tile, overlap in TILING_CASES:
        tiles = [[t.y0, t.y1, t.x0, t.x1, t.py0, t.py1, t.px0, t.px1] for t in plan_tiles(h, w, tile, overlap)]
        cases.append({"height": h, "width": w, "tile": tile, "overlap": overlap, "tiles": tiles})
    return {"schema": SCHEMA, "about": "quantsr.runtime.tiling.plan_tiles: cores [y0,y1)x[x0,x1), padded input "
                                       "[py0,py1)x[px0,px1), row-major tile order",
            "fields": ["y0", "y1", "x0", "x1", "py0", "py1", "px0", "px1"], "cases": cases,
            "invalid": [{"tile": 0, "overlap": 0}, {"tile": -3, "overlap": 1}, {"tile": 4, "overlap": -1}]}


STITCH_CASES = [  # (model, scale, tile, overlap)
    ("nearest", 2, 4, 2), ("ramp", 2, 4, 2), ("ramp", 2, 5, 3), ("ramp", 3, 5, 1), ("ramp", 2, 16, 16),
    ("ramp", 2, 3, 0), ("mirror", 2, 4, 2), ("mirror", 2, 16, 16), ("mirror", 3, 5, 1),
]


def stitch_vectors() -> dict:
    h, w = 6, 7
    rgb, alpha = _image(h, w, 3)
    cases = []
    for name, scale, tile, overlap in STITCH_CASES:
        out = np.asarray(_run_tiled(FAKE_MODELS[name](scale), rgb, scale, tile, overlap, None))
        cases.append({"model": name, "scale": scale, "tile": tile, "overlap": overlap,
                      "out_height": h * scale, "out_width": w * scale, "argb": to_argb(out)})
    return {"schema": SCHEMA,
            "about": "quantsr.runtime.upscale._run_tiled with fake models: per tile, planar float patch of the padded "
                     "region, "
                     f"padded on the bottom/right by edge replication to at least min_side={MIN_SIDE}, model, crop "
                     "the core, clamp/255/round to uint8, write opaque ARGB. nearest: out[c,Y,X] = in[c,Y//s,X//s]; "
                     "ramp: nearest + (Y+X)/512 in float32, Y,X output coordinates inside the padded patch; mirror: "
                     "(nearest(x) + nearest(x flipped in H and W)) * 0.5 in float32",
            "min_side": MIN_SIDE, "height": h, "width": w, "argb": to_argb(rgb, alpha), "cases": cases}


def models_manifest() -> dict:
    """Example ``models.json`` (what the app reads from its assets; fields follow the model cards of
    ``quantsr export``, plus ``name`` for the picker and ``overlap`` for tiling)."""
    def entry(name, file, sha, size, bits, tile, dynamic):
        side = None if dynamic else tile
        return {
            "name": name, "file": file, "sha256": sha, "bytes": size, "scale": 4,
            "bits": {"weights": bits, "activations": bits}, "backend": "executorch-xnnpack",
            "tile": tile, "overlap": 16, "min_side": MIN_SIDE, "max_side": 1024,
            "input": {"name": "lr", "dtype": "float32", "shape": None if dynamic else [1, 3, side, side]},
            "output": {"name": "sr", "dtype": "float32", "shape": None if dynamic else [1, 3, 4 * side, 4 * side]},
        }
    return {"schema": SCHEMA, "models": [
        entry("IMDN x4 W4A4", "imdn_x4_w4a4.pte", "3f" * 32, 1234567, 4, 256, True),
        entry("IMDN x4 W2A2 (64 px tiles)", "imdn_x4_w2a2_t64.pte", "a0" * 32, 654321, 2, 64, False),
    ]}


def manifest_expected() -> dict:
    """What the app's manifest parser must return for ``models.json`` (flattened), and texts it must reject
    (the error message must contain ``error_contains``)."""
    parsed = []
    for m in models_manifest()["models"]:
        parsed.append({"name": m["name"], "file": m["file"], "sha256": m["sha256"], "bytes": m["bytes"],
                       "scale": m["scale"], "weight_bits": m["bits"]["weights"],
                       "activation_bits": m["bits"]["activations"], "backend": m["backend"], "tile": m["tile"],
                       "overlap": m["overlap"], "min_side": m["min_side"],
                       "input_name": m["input"]["name"], "input_shape": m["input"]["shape"],
                       "output_name": m["output"]["name"], "output_shape": m["output"]["shape"]})
    invalid = [
        {"text": "", "error_contains": "JSON"},
        {"text": "{\"schema\": 1}", "error_contains": "models"},
        {"text": "{\"schema\": 1, \"models\": [{\"name\": \"x\", \"scale\": 4}]}", "error_contains": "file"},
        {"text": "{\"schema\": 1, \"models\": [{\"name\": \"x\", \"file\": \"x.pte\", \"scale\": \"4\"}]}",
         "error_contains": "scale"},
        {"text": "{\"schema\": 2, \"models\": []}", "error_contains": "schema"},
        {"text": "{\"schema\": 1, \"models\": [{\"name\": \"x\", \"file\": \"x.pte\", \"scale\": 4,}]}",
         "error_contains": "JSON"},
        {"text": "{\"schema\": 1, \"models\": [{\"name\": \"x\", \"file\": \"../x.pte\", \"scale\": 4}]}",
         "error_contains": "file"},
    ]
    defaults = {"tile": 256, "overlap": 16, "min_side": MIN_SIDE, "input_name": "lr", "output_name": "sr"}
    return {"schema": SCHEMA, "models": parsed, "defaults_when_missing": defaults, "invalid": invalid}


def _median(xs: list[float]) -> float:
    import statistics

    return float(statistics.median(xs))  # what `quantsr bench` reports as median_ms


def _nearest_rank(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[max(1, math.ceil(p / 100.0 * len(s))) - 1]


def latency_stats(xs: list[float]) -> dict:
    total = 0.0
    for x in xs:  # left-to-right double sum, then / n (what a Kotlin loop computes bit for bit)
        total += x
    return {"n": len(xs), "min": min(xs), "max": max(xs), "mean": total / len(xs), "median": _median(xs),
            "p50": _nearest_rank(xs, 50), "p90": _nearest_rank(xs, 90), "p99": _nearest_rank(xs, 99)}


def latency_vectors() -> dict:
    rng = np.random.default_rng(4)
    sets = [
        [12.5],
        [3.0, 1.0, 2.0],
        [4.0, 1.0, 3.0, 2.0],
        [10.0, 10.0, 10.0, 10.0, 10.0],
        [round(float(x), 3) for x in rng.gamma(4.0, 5.0, 20)],
        [round(float(x), 2) for x in rng.gamma(2.0, 30.0, 101)],
    ]
    # one bench row, as `quantsr bench` rounds it: median_ms 2 decimals, megapixels_per_s 3 (Python round)
    samples = sets[4]
    side, scale = 64, 4
    ms = _median(samples)
    row = {"variant": "IMDN x4 W4A4 (android executorch)", "input": f"{side}x{side}", "median_ms": round(ms, 2),
           "megapixels_per_s": round((side * scale) ** 2 / 1e6 / (ms / 1000.0), 3), "bytes": 1234567,
           "gzip_bytes": None, "ideal_bytes": None, "set5_psnr": None, "rss_mb": round(123456 / 1024, 1),
           "samples_ms": [round(x, 2) for x in samples]}
    return {"schema": SCHEMA,
            "about": "min, max, mean (left-to-right double sum / n), median as Python statistics.median (mean of "
                     "the two middle values for even n; `quantsr bench`'s median_ms), p50/p90/p99 nearest-rank: "
                     "sorted[ceil(p/100*n) - 1] (p50 is the lower middle value for even n)",
            "cases": [{"samples": xs, **latency_stats(xs)} for xs in sets],
            "bench_row": {"samples_ms": samples, "side": side, "scale": scale, "bytes": 1234567,
                          "vm_rss_kb": 123456, "expected": row}}


def build() -> dict[str, dict]:
    return {"pixels.json": pixel_vectors(), "tiling.json": tiling_vectors(), "stitch.json": stitch_vectors(),
            "models.json": models_manifest(), "models_expected.json": manifest_expected(),
            "latency.json": latency_vectors()}


# --------------------------------------------------------------------------------------------------- output
def dumps(obj, indent: int = 0) -> str:
    """Deterministic JSON: objects one key per line, arrays of scalars on one line (small diffs, small files)."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return "[" + ", ".join(json.dumps(v, allow_nan=False) for v in obj) + "]"
        return "[\n" + ",\n".join(inner + dumps(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, allow_nan=False)


def render() -> dict[str, str]:
    return {name: dumps(obj) + "\n" for name, obj in build().items()}


def main() -> int:
    VECTORS.mkdir(exist_ok=True)
    total = 0
    for name, text in render().items():
        (VECTORS / name).write_text(text, encoding="utf-8")
        total += len(text.encode())
        print(f"wrote {VECTORS / name} ({len(text.encode())} bytes)")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
