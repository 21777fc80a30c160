"""The ``.pte`` models shipped inside the package (``quantsr/assets``), the defaults of ``quantsr upscale``.

Files are named ``<arch>_x<scale>_w<b>a<b>.pte``. A model is picked by scale and bits: ``bits`` is either the
weight bits (``4``: of the models with 4-bit weights at that scale, the one with the narrowest activations) or an
exact ``"w4a8"``.

Only models on the size/quality frontier are embedded (issue 14): each scores higher on Set14 and B100 than every
public model, FP32 or int8, of equal or smaller ideal bytes (``benchmarks/pareto.py``; checked against the
committed results by ``tests/test_embedded.py``). A dominated model is not worth shipping: a user would bundle
the public one."""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

__all__ = ["DEFAULT_BITS", "PACKAGE_ASSETS", "default_model_path", "embedded_models", "parse_bits",
           "pick_embedded"]

DEFAULT_BITS = 4
PACKAGE_ASSETS = Path(__file__).resolve().parent.parent / "assets"
_NAME = re.compile(r"^(?P<arch>[a-z0-9_]+?)_x(?P<scale>\d+)_w(?P<w>\d+)a(?P<a>\d+)\.pte$")
_BITS = re.compile(r"^(?:w(?P<w>\d+)a(?P<a>\d+)|(?P<only>\d+))$", re.IGNORECASE)


def embedded_models() -> dict[tuple[int, int, int], Path]:
    """The ``.pte`` files shipped inside the package, keyed by (scale, weight bits, activation bits)."""
    found = {}
    folder = resources.files("quantsr") / "assets"
    if folder.is_dir():
        for entry in folder.iterdir():
            match = _NAME.match(entry.name)
            if match:
                found[(int(match["scale"]), int(match["w"]), int(match["a"]))] = Path(str(entry))
    return found


def parse_bits(bits: int | str) -> tuple[int, int | None]:
    """``4`` or ``"4"`` -> (4, None); ``"w4a8"`` -> (4, 8); anything else is a ``ValueError`` saying what is
    accepted."""
    match = _BITS.match(str(bits).strip())
    if match is None:
        raise ValueError(f"bits must be the weight bits (4, 2) or weight and activation bits (w4a8), got {bits!r}")
    if match["only"] is not None:
        return int(match["only"]), None
    return int(match["w"]), int(match["a"])


def pick_embedded(models: dict[tuple[int, int, int], Path], scale: int, bits: int | str) -> Path | None:
    """The model of ``models`` (as :func:`embedded_models` returns them) that ``scale`` and ``bits`` select."""
    w, a = parse_bits(bits)
    matches = sorted(key for key in models if key[:2] == (scale, w) and a in (None, key[2]))
    return models[matches[0]] if matches else None  # sorted: the narrowest activations first


def default_model_path(scale: int = 4, bits: int | str = DEFAULT_BITS) -> Path:
    """The embedded model for ``scale`` and ``bits`` (see the module docstring); a clear error listing what
    exists otherwise."""
    models = embedded_models()
    path = pick_embedded(models, scale, bits)
    if path is None:
        w, a = parse_bits(bits)
        have = ", ".join(f"x{s} W{wb}A{ab}" for s, wb, ab in sorted(models)) or "none"
        asked = f"W{w}A{a}" if a is not None else f"{w}-bit weights"
        raise ValueError(f"no embedded model for x{scale} at {asked} (embedded: {have}); pass a .pte or a "
                         "quantsr checkpoint with --model, or pick one of those with --scale/--bits")
    return path
