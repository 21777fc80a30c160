"""The size/quality frontier (issue 14): every model as a point (ideal stored bytes, PSNR per benchmark set), which
points no other point beats, and the table and plot of them. Pure: the measuring is ``benchmarks/pareto.py``.

A point *dominates* another at a set when it is no larger (ideal bytes) and scores higher, or is smaller and
scores at least as well. The *frontier* of a set is the points nothing dominates there."""
from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ParetoPoint", "dominated_by", "frontier", "ideal_bytes", "markdown_table", "merge_reused",
           "model_ideal_bytes", "plot"]

KINDS = ("fp32", "int8", "low-bit")


@dataclass
class ParetoPoint:
    """One model as shipped in one numeric form. ``psnr``/``ssim``: set name -> score of the artifact a user runs
    (the ``.pte`` for int8 and low-bit models); ``eager_psnr``: the same model's eager (fake-quant) scores."""

    name: str
    kind: str  # one of KINDS
    model: str
    scale: int
    ideal_bytes: int
    psnr: dict[str, float]
    ssim: dict[str, float] = field(default_factory=dict)
    eager_psnr: dict[str, float] = field(default_factory=dict)
    pte_bytes: int | None = None
    pte_gzip_bytes: int | None = None
    mlpackage_bytes: int | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> ParetoPoint:
        return cls(**row)


def ideal_bytes(param_bits: Iterable[tuple[int, int]]) -> int:
    """Bytes of a perfectly packed file holding ``(numel, bits)`` tensors."""
    return (sum(n * b for n, b in param_bits) + 7) // 8


def model_ideal_bytes(model, rest_weight_bits: int = 32) -> int:
    """Ideal bytes of ``model``: quantized layers' weights at their bit-width, every other conv/linear weight at
    ``rest_weight_bits`` (8 for an int8 program, 32 for FP32), biases and quantizer parameters at 32 bits."""
    from quantsr.quant.layers import QUANT_LAYERS

    quantized = {id(m.weight): m.w_bits for m in model.modules() if isinstance(m, QUANT_LAYERS)}
    sizes = []
    for name, p in model.named_parameters():
        if id(p) in quantized:
            bits = quantized[id(p)]
        elif p.dim() > 1 and "quantizer" not in name:
            bits = rest_weight_bits
        else:
            bits = 32
        sizes.append((p.numel(), bits))
    return ideal_bytes(sizes)


def _beats(a: ParetoPoint, b: ParetoPoint, set_name: str) -> bool:
    pa, pb = a.psnr.get(set_name, math.nan), b.psnr.get(set_name, math.nan)
    if math.isnan(pa) or math.isnan(pb):
        return False
    return (a.ideal_bytes <= b.ideal_bytes and pa > pb) or (a.ideal_bytes < b.ideal_bytes and pa >= pb)


def dominated_by(point: ParetoPoint, points: Sequence[ParetoPoint], set_name: str) -> list[ParetoPoint]:
    """The points that dominate ``point`` at ``set_name`` (empty: it is on the frontier)."""
    return [p for p in points if p is not point and _beats(p, point, set_name)]


def frontier(points: Sequence[ParetoPoint], set_name: str) -> list[ParetoPoint]:
    """The points of ``points`` that nothing dominates at ``set_name``, smallest first."""
    scored = [p for p in points if not math.isnan(p.psnr.get(set_name, math.nan))]
    return sorted((p for p in scored if not dominated_by(p, scored, set_name)), key=lambda p: p.ideal_bytes)


def merge_reused(cached: dict[str, dict], points: dict[str, dict]) -> dict[str, dict]:
    """The points of a ``--reuse`` run (key -> point dict): this run's ``points``, and the ``cached`` ones it did
    not visit (other ``--only`` / ``--scales``). A public model's old int8 points go once its public points are
    visited (its PTQ config changed, its fitted program refitted or removed); visiting a low-bit model of the
    same architecture leaves them."""
    visited = {(p["model"], p["scale"]) for p in points.values() if p["kind"] != "low-bit"}
    return {**{k: v for k, v in cached.items() if k not in points
               and not (v["kind"] == "int8" and (v["model"], v["scale"]) in visited)}, **points}


def _bytes(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def markdown_table(points: Sequence[ParetoPoint], sets: Sequence[str]) -> str:
    """Points by scale then size: bytes, PSNR per set (``*``: on that set's frontier, among the points of the same
    scale), and the eager score in brackets where it differs from the artifact's (or the artifact has none)."""
    head = ["model", "form", "ideal bytes", ".pte", ".pte gzip", ".mlpackage"] + [f"{s} PSNR" for s in sets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scale in sorted({p.scale for p in points}):
        same = [p for p in points if p.scale == scale]
        on = {s: {id(p) for p in frontier(same, s)} for s in sets}
        for p in sorted(same, key=lambda p: (p.ideal_bytes, p.name)):
            cells = []
            for s in sets:
                value = p.psnr.get(s, math.nan)
                text = "—" if math.isnan(value) else f"{value:.3f}" + (" \\*" if id(p) in on[s] else "")
                eager = p.eager_psnr.get(s)
                if eager is not None and (math.isnan(value) or abs(eager - value) >= 0.0005):
                    text += f" ({eager:.3f})"
                cells.append(text)
            lines.append(f"| {p.name} x{scale} | {p.kind} | {p.ideal_bytes:,} | {_bytes(p.pte_bytes)} | "
                         f"{_bytes(p.pte_gzip_bytes)} | {_bytes(p.mlpackage_bytes)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


_STYLE = {"fp32": ("o", "#4c72b0"), "int8": ("s", "#55a868"), "low-bit": ("D", "#c44e52")}


def plot(points: Sequence[ParetoPoint], sets: Sequence[str], path: str | Path, scale: int) -> Path:
    """PSNR vs ideal bytes (log x), one panel per set, the frontier drawn as a step line; a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    from quantsr.artifacts.atomic import atomic_write

    same = [p for p in points if p.scale == scale]
    fig, axes = plt.subplots(1, len(sets), figsize=(5.2 * len(sets), 4.4), squeeze=False)
    for ax, s in zip(axes[0], sets):
        for kind, (marker, color) in _STYLE.items():
            pts = [p for p in same if p.kind == kind and not math.isnan(p.psnr.get(s, math.nan))]
            ax.scatter([p.ideal_bytes for p in pts], [p.psnr[s] for p in pts], marker=marker, color=color,
                       label=kind, zorder=3)
            for p in pts:
                ax.annotate(p.name, (p.ideal_bytes, p.psnr[s]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        edge = frontier(same, s)
        if edge:
            ax.step([p.ideal_bytes for p in edge], [p.psnr[s] for p in edge], where="post", color="#999999",
                    linewidth=1, zorder=1, label="frontier")
        ax.set_xscale("log")
        ax.set_xlabel("ideal stored bytes")
        ax.set_ylabel("PSNR-Y (dB)")
        ax.set_title(f"{s} x{scale}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    with atomic_write(path, "wb") as f:
        f.write(buffer.getvalue())
    return path
