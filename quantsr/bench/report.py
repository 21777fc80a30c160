"""``quantsr mobile report``: one markdown table and one latency-vs-quality plot from benchmark JSON files.

Reads ``quantsr bench --json`` files (``{"checkpoint", "threads", "rows"}``), ``quantsr mobile bench-android``
files (``{"device", ..., "rows"}``) and the iOS app's benchmark file (a JSON array of rows with ``device``). The
plot puts median latency on x, Set5 PSNR on y and makes each marker's area proportional to the file's bytes. It
is drawn with matplotlib when installed (``pip install 'quantsr[plot]'``), otherwise written as a plain SVG.
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from quantsr.artifacts.atomic import atomic_write
from quantsr.artifacts.cards import ArtifactError

__all__ = ["load_rows", "markdown_table", "svg_scatter", "write_plot"]


def _source(row: dict[str, Any], meta: dict[str, Any], path: Path) -> str:
    if row.get("device") or meta.get("device"):
        return str(row.get("device") or meta.get("device"))
    threads = meta.get("threads")
    return f"{path.name}, {threads} threads" if threads else path.name  # a desktop `quantsr bench` run


def load_rows(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every row of every file, each with ``source`` (the device, or the file for desktop runs)."""
    rows = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{path}: cannot read benchmark JSON ({exc})") from None
        meta, file_rows = ({}, data) if isinstance(data, list) else (data, data.get("rows"))
        if not isinstance(file_rows, list) or not all(isinstance(r, dict) and "variant" in r for r in file_rows):
            raise ArtifactError(f"{path}: no rows with a \"variant\"; expected `quantsr bench --json` or "
                              "`quantsr mobile bench-android` output")
        rows += [{**r, "source": _source(r, meta, Path(path))} for r in file_rows]
    return rows


def _fmt(value: Any, spec: str = "{:,}") -> str:
    return "—" if value is None else spec.format(value)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| variant | device / source | input | median ms | MP/s | bytes | gzip bytes | Set5 PSNR |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r.get('source', '—')} | {r.get('input', '—')} | "
                     f"{_fmt(r.get('median_ms'), '{:.2f}')} | {_fmt(r.get('megapixels_per_s'), '{:.2f}')} | "
                     f"{_fmt(r.get('bytes'))} | {_fmt(r.get('gzip_bytes'))} | {_fmt(r.get('set5_psnr'), '{:.3f}')} |")
    return "\n".join(lines)


def _points(rows: Sequence[dict[str, Any]]) -> list[tuple[float, float, int, str]]:
    """(median ms, Set5 PSNR, bytes, label) of the rows that have both numbers."""
    several_sources = len({r.get("source") for r in rows}) > 1
    points = []
    for r in rows:
        if r.get("median_ms") and r.get("set5_psnr") is not None:
            label = f"{r['variant']} {r.get('input', '')}" + (f" · {r['source']}" if several_sources else "")
            points.append((float(r["median_ms"]), float(r["set5_psnr"]), int(r.get("bytes") or 0), label))
    return points


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    """A handful of round values spanning [lo, hi]: 1-2-5 steps, or 1-2-5 per decade on a log axis."""
    if log:
        out = [m * 10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
               for m in (1, 2, 5)]
        return [t for t in out if lo <= t <= hi]
    raw = (hi - lo) / 5 or 1.0
    step = min((m * 10.0 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    # round away k * step's float noise (0.30000000000000004), so labels and positions are the round values
    return [round(k * step, 12) for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def _tick_text(values: Sequence[float], log: bool) -> list[str]:
    """Tick labels as people write them: 20, 500, 2,000 on a log axis; on a linear one as many decimals as the
    spacing needs (31.5, 32.0 rather than 31.50, or 3.15e+01)."""
    if log:
        return [f"{v:,.0f}" if v >= 1 else f"{v:g}" for v in values]
    step = min((b - a for a, b in zip(values, values[1:])), default=1.0)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))  # 31.2 - 31.1 is 0.0999...: still one decimal
    return [f"{v:,.{decimals}f}" for v in values]


_LABEL_FONT = 11  # px


def _text_box(x: float, baseline: float, text: str, anchor: str, font: float = _LABEL_FONT) -> tuple[float, ...]:
    """Estimated (x0, y0, x1, y1) of SVG text: no font metrics without a renderer, so the width comes from the
    character count (0.6 em per character is a little wider than sans-serif averages: estimates err on the side
    of more space) and the height from the em box (ascent 0.8 em, descent 0.25 em)."""
    w = 0.6 * font * len(text)
    x0 = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
    return (x0, baseline - 0.8 * font, x0 + w, baseline + 0.25 * font)


def _overlap(a: Sequence[float], b: Sequence[float], gap: float = 2.0) -> bool:
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def _place_labels(markers: Sequence[tuple[float, float, float]], labels: Sequence[str],
                  area: tuple[float, float, float, float]) -> list[tuple[float, float, str, tuple[float, ...]]]:
    """(x, baseline, text-anchor, box) for each marker's (cx, cy, radius) label: the first of a ring of
    candidate spots around the marker (right, left, above, below, diagonals; then rings further out) whose box
    lies inside ``area`` and clears every marker and every label placed so far. Points are labelled from the
    most crowded outward, so isolated points, which have room anywhere, do not take a crowded one's spots. If
    nothing is clear the spot with the fewest collisions is used."""
    font = _LABEL_FONT
    marker_boxes = [(cx - r, cy - r, cx + r, cy + r) for cx, cy, r in markers]

    def crowding(i: int) -> float:
        cx, cy, _ = markers[i]
        return -sum(1 for j, (x, y, _) in enumerate(markers) if j != i and math.hypot(x - cx, y - cy) < 80)

    placed: dict[int, tuple[float, float, str, tuple[float, ...]]] = {}
    boxes: list[tuple[float, ...]] = []
    for i in sorted(range(len(markers)), key=crowding):
        cx, cy, r = markers[i]
        best: tuple[int, tuple[float, float, str, tuple[float, ...]]] | None = None
        for ring in (0, 10, 24, 42, 64, 90, 120, 160, 210):
            d = r + 3 + ring
            above, below = cy - d - 0.25 * font, cy + d + 0.8 * font  # baselines of text just above / below
            # (x, baseline, anchor): the baseline sits 0.3 em below the centre line for vertically centred text;
            # above and below also flush left and right, so a long label near an edge has somewhere to go
            spots = [(cx + d, cy + 0.3 * font, "start"), (cx - d, cy + 0.3 * font, "end"),
                     (cx, above, "middle"), (cx, below, "middle"),
                     (cx + d * 0.7, cy - d * 0.7, "start"), (cx - d * 0.7, cy - d * 0.7, "end"),
                     (cx + d * 0.7, cy + d * 0.7 + 0.8 * font, "start"),
                     (cx - d * 0.7, cy + d * 0.7 + 0.8 * font, "end"),
                     (cx + r, above, "end"), (cx - r, above, "start"), (cx + r, below, "end"), (cx - r, below, "start")]
            for x, y, anchor in spots:
                box = _text_box(x, y, labels[i], anchor, font)
                outside = box[0] < area[0] or box[1] < area[1] or box[2] > area[2] or box[3] > area[3]
                clashes = 1000 * outside + sum(_overlap(box, b) for b in boxes + marker_boxes)
                if best is None or clashes < best[0]:
                    best = (clashes, (x, y, anchor, box))
                if clashes == 0:
                    break
            if best is not None and best[0] == 0:
                break
        assert best is not None
        x, y, anchor, box = best[1]
        # nothing fits inside (a label longer than the free width): slide it in rather than off the picture
        dx = max(area[0] - box[0], 0.0) or min(area[2] - box[2], 0.0)
        dy = max(area[1] - box[1], 0.0) or min(area[3] - box[3], 0.0)
        placed[i] = (x + dx, y + dy, anchor, (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy))
        boxes.append(placed[i][3])
    return [placed[i] for i in range(len(markers))]


def svg_scatter(points: Sequence[tuple[float, float, int, str]], width: int = 800, height: int = 500) -> str:
    """The plot as standalone SVG text, for when matplotlib is not installed."""
    left, right, top, bottom = 70, 40, 50, 60
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
              'font-family="sans-serif" font-size="12">'),
             f'<rect width="{width}" height="{height}" fill="white"/>',
             (f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="15">Latency vs Set5 PSNR '
              '(marker area ∝ file bytes)</text>')]
    if not points:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no rows with both a latency '
                     'and a Set5 PSNR</text></svg>')
        return "\n".join(parts) + "\n"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    log = max(xs) / min(xs) > 20  # 64 px and 256 px inputs differ ~16x in latency: a log axis keeps both readable
    x_lo, x_hi = (min(xs) / 1.5, max(xs) * 1.5) if log else (0.0, max(xs) * 1.15)
    y_pad = max(0.25, (max(ys) - min(ys)) * 0.15)
    y_lo, y_hi = min(ys) - y_pad, max(ys) + y_pad
    tx = (lambda v: math.log10(v)) if log else (lambda v: v)

    def px(x: float) -> float:
        return left + (tx(x) - tx(x_lo)) / (tx(x_hi) - tx(x_lo)) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - (y - y_lo) / (y_hi - y_lo) * (height - top - bottom)

    parts.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
                 'fill="none" stroke="#444"/>')
    x_ticks = _ticks(x_lo, x_hi, log)
    for t, text in zip(x_ticks, _tick_text(x_ticks, log)):
        parts.append(f'<line x1="{px(t):.1f}" y1="{height - bottom}" x2="{px(t):.1f}" y2="{top}" stroke="#ddd"/>'
                     f'<text x="{px(t):.1f}" y="{height - bottom + 16}" text-anchor="middle">{text}</text>')
    y_ticks = _ticks(y_lo, y_hi, False)
    for t, text in zip(y_ticks, _tick_text(y_ticks, False)):
        parts.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{width - right}" y2="{py(t):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{text}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 18}" text-anchor="middle">median latency, '
                 f'ms{" (log scale)" if log else ""}</text>'
                 f'<text transform="translate(18 {(top + height - bottom) / 2}) rotate(-90)" '
                 'text-anchor="middle">Set5 PSNR, dB</text>')
    largest = max(p[2] for p in points) or 1
    markers = [(px(x), py(y), 4 + 16 * math.sqrt(size / largest)) for x, y, size, _ in points]  # area ~ bytes
    for (cx, cy, radius), (x, y, size, label) in zip(markers, points):
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{radius:.1f}" fill="#3b7dd8" '
                     f'fill-opacity="0.45" stroke="#1f4f99"><title>{escape(label)}: {x:g} ms, {y:.3f} dB, '
                     f'{size:,} bytes</title></circle>')
    # labels after every marker, so no marker is painted over a label
    area = (left + 2, top + 2, width - right - 2, height - bottom - 2)
    spots = _place_labels(markers, [p[3] for p in points], area)
    for (cx, cy, radius), (_, _, _, box) in zip(markers, spots):
        lx, ly = min(max(cx, box[0]), box[2]), min(max(cy, box[1]), box[3])  # the box's point nearest the marker
        d = math.hypot(lx - cx, ly - cy)
        if d > radius + 8:  # pushed out of a crowd: a leader line from the marker's edge says whose label it is
            parts.append(f'<line x1="{cx + (lx - cx) * radius / d:.1f}" y1="{cy + (ly - cy) * radius / d:.1f}" '
                         f'x2="{lx:.1f}" y2="{ly:.1f}" stroke="#888" stroke-width="0.8"/>')
    for (x, y, anchor, _), point in zip(spots, points):
        # a white outline under the glyphs keeps a label readable where a leader line or grid line crosses it
        parts.append(f'<text class="label" x="{x:.1f}" y="{y:.1f}" font-size="{_LABEL_FONT}" '
                     f'text-anchor="{anchor}" stroke="white" stroke-width="3" stroke-linejoin="round" '
                     f'paint-order="stroke">{escape(point[3])}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _matplotlib_figure(points: Sequence[tuple[float, float, int, str]], fmt: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(9, 5.5))
    if points:
        largest = max(p[2] for p in points) or 1
        ax.scatter([p[0] for p in points], [p[1] for p in points], alpha=0.5,
                   s=[30 + 600 * p[2] / largest for p in points])  # scatter's s is an area
        for x, y, _, label in points:
            ax.annotate(label, (x, y), xytext=(6, 4), textcoords="offset points", fontsize=8)
        ax.margins(0.15)
        xs = [p[0] for p in points]
        if max(xs) / min(xs) > 20:
            ax.set_xscale("log")
            ax.set_xticks(_ticks(min(xs) / 1.5, max(xs) * 1.5, log=True))  # 20, 50, 100 rather than 2x10^1
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    else:
        ax.text(0.5, 0.5, "no rows with both a latency and a Set5 PSNR", ha="center", transform=ax.transAxes)
    ax.set_xlabel("median latency, ms")
    ax.set_ylabel("Set5 PSNR, dB")
    ax.set_title("Latency vs Set5 PSNR (marker area ∝ file bytes)")
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def write_plot(rows: Sequence[dict[str, Any]], path: Path, use_matplotlib: bool | None = None) -> str:
    """Write the plot (format from the suffix); returns "matplotlib" or "svg", whichever drew it."""
    if use_matplotlib is None:
        try:
            import matplotlib  # noqa: F401
            use_matplotlib = True
        except ImportError:
            use_matplotlib = False
    points = _points(rows)
    fmt = path.suffix.lower().lstrip(".") or "svg"
    if use_matplotlib:
        data = _matplotlib_figure(points, fmt)
    elif fmt == "svg":
        data = svg_scatter(points).encode()
    else:
        raise ArtifactError(f"{path}: without matplotlib only .svg plots can be written "
                          "(pip install 'quantsr[plot]', or use --plot report.svg)")
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return "matplotlib" if use_matplotlib else "svg"
