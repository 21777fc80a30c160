"""The README's pictures, in ``docs/images/``:

* ``chelsea_compare.png``: ``examples/chelsea.png`` upscaled x4 by ``quantsr.cpu_upscale`` (the embedded default
  x4 ``.pte``, ExecuTorch runtime), drawn by ``quantsr.runtime.compare.compare_image`` (the ``--compare`` picture).
* ``psnr_vs_size.png``: Set5 PSNR against stored model bytes of every x4 model the project ships or compares,
  read from the committed result JSONs (``benchmarks/results/``) and the embedded models' cards.

    .venv/bin/python benchmarks/readme_figures.py   # ~40 s on 2 cores (importing the ExecuTorch runtime: ~20 s)

Sizes: the file bytes of an artifact where the JSONs record one (``.pte``, ONNX, ``.mlpackage``); the public FP32
models have no stored artifact in the JSONs, so theirs is 4 bytes per parameter, computed like the bench JSON's
``ideal_bytes`` (``quantsr.bench.desktop.ideal_packed_bytes``; checked against IMDN's recorded value). Left out:
the low-bit PTQ baselines (``ptq_baselines*.json``) and the QAT runs (``qat_*.json``), which are fake-quant
evaluations with no stored file, and the FP32 IMDN's other containers (``.pte``/ONNX/``.mlpackage``: the same
model, within 8% of its parameter bytes).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ASSETS = ROOT / "quantsr" / "assets"
IMAGES = ROOT / "docs" / "images"

FP32, INT8, LOW_BIT = "FP32 public weights", "int8 PTQ (IMDN)", "shipped low-bit quantsr"
NAMES = {"imdn": "IMDN", "rfdn": "RFDN", "rlfn": "RLFN", "carn_m": "CARN-M", "fsrcnn": "FSRCNN", "span": "SPAN"}


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def compare_figure(out: Path, width: int = 900, crop: int = 64, bits: int = 4) -> int:
    """Write the bicubic | quantsr picture of the example photo; returns its bytes."""
    from PIL import Image, ImageOps

    import quantsr
    from quantsr.artifacts.atomic import atomic_write
    from quantsr.artifacts.embedded import default_model_path
    from quantsr.runtime.compare import compare_image

    pte = default_model_path(4, bits)  # the embedded model cpu_upscale picks for bits
    card = _json(pte.with_name(pte.name + ".json"))
    with Image.open(ROOT / "examples" / "chelsea.png") as original:
        original.load()
    upscaled = quantsr.cpu_upscale(original, scale=4, bits=bits)
    label = f"quantsr W{card['bits']['weights']}A{card['bits']['activations']}"
    picture = compare_image(original, upscaled, crop=crop, width=width, label=label)
    # dropping the 2 lowest bits per channel (an error of at most 3/255, invisible) shrinks the PNG by a third;
    # a 256-colour palette would be smaller still but visibly bands the background blur and shifts the eyes' green
    picture = ImageOps.posterize(picture, 6)
    with atomic_write(out, "wb") as fh:
        picture.save(fh, format="PNG", optimize=True)
    return out.stat().st_size


def size_points() -> list[tuple[str, str, int, float]]:
    """(kind, label, stored bytes, Set5 PSNR) of every x4 model, from the committed JSONs."""
    import quantsr
    from quantsr.bench.desktop import ideal_packed_bytes

    bench = _json(RESULTS / "bench_imdn_w4a4.json")["rows"]
    points = []
    public = _json(RESULTS / "pretrained_imdn.json") + _json(RESULTS / "pretrained_others.json")
    for row in public:
        if row["scale"] == 4 and row["set"] == "Set5":
            size = ideal_packed_bytes(quantsr.create_model(row["model"], scale=4))
            points.append((FP32, NAMES.get(row["model"], row["model"]), size, row["psnr"]))
    # the FP32 sizes are computed, not read: they must agree with the one the bench recorded
    recorded = next(r["ideal_bytes"] for r in bench if r["variant"] == "eager fp32")
    computed = next(p[2] for p in points if p[1] == "IMDN")
    if computed != recorded:
        raise SystemExit(f"IMDN FP32 bytes: computed {computed:,}, bench_imdn_w4a4.json says {recorded:,}")
    int8 = {"pte int8 PTQ": "int8 .pte (XNNPACK PTQ)", "onnxruntime int8 QDQ": "int8 ONNX QDQ"}
    for variant, label in int8.items():
        row = next(r for r in bench if r["variant"] == variant)  # one row per input size; bytes/PSNR are equal
        points.append((INT8, label, row["bytes"], row["set5_psnr"]))
    coreml = _json(RESULTS / "coreml_sizes.json")
    for card_path in sorted(ASSETS.glob("*.pte.json")):
        card = _json(card_path)
        if card["scale"] != 4:
            continue
        arch = NAMES.get(card["architecture"], card["architecture"])
        tag = f"{arch} W{card['bits']['weights']}A{card['bits']['activations']}"
        points.append((LOW_BIT, f"{tag} .pte", card["bytes"], card["set5_psnr"]))
        stem = card["file"].removesuffix(".pte")
        if stem in coreml:
            # Core ML prediction needs macOS: the package's PSNR is its eager model's (README, "Deployment")
            points.append((LOW_BIT, f"{tag} .mlpackage (eager PSNR)", coreml[stem], card["eager_set5_psnr"]))
    return points


def _overlaps(a: Any, b: Any) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _place_labels(ax: Any, points: list[tuple[str, str, int, float]], marker_pt: float) -> None:
    """Put each label at the nearest of several offsets around its point whose text box is inside the axes and
    clear of every label already placed, of every marker and of the legend (extents measured by the renderer)."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    r_px = marker_pt * fig.dpi / 72
    centres = [ax.transData.transform((p[2], p[3])) for p in points]
    taken = [Bbox.from_extents(x - r_px, y - r_px, x + r_px, y + r_px) for x, y in centres]
    if ax.get_legend() is not None:
        taken.append(ax.get_legend().get_window_extent(renderer))
    # (dx, dy in points, ha, va): beside, above, below, then the diagonals, then the same twice as far
    r = marker_pt + 2
    ring = [(r, 0, "left", "center"), (-r, 0, "right", "center"), (0, r, "center", "bottom"),
            (0, -r, "center", "top"), (r, r, "left", "bottom"), (-r, r, "right", "bottom"),
            (r, -r, "left", "top"), (-r, -r, "right", "top")]
    offsets = ring + [(2 * dx, 2 * dy, ha, va) for dx, dy, ha, va in ring]
    order = sorted(range(len(points)), key=lambda i: (points[i][2], points[i][3]))
    for i in order:
        _, label, x, y = points[i]
        best = None
        for dx, dy, ha, va in offsets:
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                               fontsize=9)
            box = text.get_window_extent(renderer).expanded(1.04, 1.1)
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            clashes = sum(_overlaps(box, t) for t in taken) + (0 if inside else 100)
            if best is None or clashes < best[0]:
                if best is not None:
                    best[1].remove()
                best = (clashes, text, box)
            else:
                text.remove()
            if clashes == 0:
                break
        assert best is not None
        if best[0]:
            print(f"warning: no clear spot for the label {label!r}; it overlaps something")
        taken.append(best[2])


def size_figure(out: Path, points: list[tuple[str, str, int, float]]) -> int:
    """Write the PSNR-vs-size plot; returns its bytes."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from quantsr.artifacts.atomic import atomic_write

    styles = {FP32: dict(marker="o", color="#777777"), INT8: dict(marker="s", color="#e07b24"),
              LOW_BIT: dict(marker="*", color="#2a6fdb", s=160)}
    fig, ax = plt.subplots(figsize=(8.5, 5.2), dpi=110)
    for kind, style in styles.items():
        mine = [p for p in points if p[0] == kind]
        ax.scatter([p[2] for p in mine], [p[3] for p in mine], label=kind, zorder=3, **{"s": 60, **style})
    ax.set_xscale("log")
    xs, ys = [p[2] for p in points], [p[3] for p in points]
    ax.set_xlim(min(xs) / 1.8, max(xs) * 2.2)  # room for labels left and right of the extreme points
    ax.set_ylim(min(ys) - 0.35, max(ys) + 0.35)
    ticks = [m * 10.0**e for e in range(4, 8) for m in (1, 2, 5)]
    ax.set_xticks([t for t in ticks if min(xs) / 1.8 <= t <= max(xs) * 2.2])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{v / 1e6:g} MB" if v >= 1e6 else f"{v / 1e3:g} kB"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("stored model bytes (log scale; FP32 public models: 4 bytes per parameter)")
    ax.set_ylabel("Set5 PSNR (Y), dB")
    ax.set_title("x4 super-resolution: Set5 PSNR vs model size")
    ax.grid(alpha=0.3, which="major")
    ax.legend(loc="upper left", fontsize=9, framealpha=0.9)  # the small-but-accurate corner stays empty
    fig.tight_layout()
    fig.canvas.draw()  # fixes the layout, so the label placement measures final positions
    _place_labels(ax, points, marker_pt=6.5)  # the stars' radius: s=160 pt² is ~13 pt across
    with atomic_write(out, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
    return out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=IMAGES)
    args = parser.parse_args()
    start = time.perf_counter()
    points = size_points()
    for kind, label, size, psnr in points:
        print(f"{kind:<32} {label:<28} {size:>10,} bytes {psnr:7.3f} dB")
    print(f"{args.out / 'psnr_vs_size.png'}: {size_figure(args.out / 'psnr_vs_size.png', points):,} bytes")
    print(f"{args.out / 'chelsea_compare.png'}: {compare_figure(args.out / 'chelsea_compare.png'):,} bytes")
    print(f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
