"""The ``.pte`` models shipped inside the package (``quantsr/assets``), the defaults of ``quantsr upscale``."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["DEFAULT_BITS", "PACKAGE_ASSETS", "default_model_path", "embedded_models"]

DEFAULT_BITS = 4
PACKAGE_ASSETS = Path(__file__).resolve().parent.parent / "assets"


def embedded_models() -> dict[tuple[int, int], Path]:
    """The ``.pte`` files shipped inside the package, keyed by (scale, weight bits)."""
    found = {}
    folder = resources.files("quantsr") / "assets"
    if folder.is_dir():
        for entry in folder.iterdir():
            name = entry.name
            if name.endswith(".pte") and "_x" in name and "_w" in name:
                scale = int(name.split("_x")[1].split("_")[0])
                bits = int(name.split("_w")[1].split("a")[0])
                found[(scale, bits)] = Path(str(entry))
    return found


def default_model_path(scale: int = 4, bits: int = DEFAULT_BITS) -> Path:
    """The embedded model for ``scale`` and ``bits``; a clear error listing what exists otherwise."""
    models = embedded_models()
    if (scale, bits) not in models:
        have = ", ".join(f"x{s} W{b}" for s, b in sorted(models)) or "none"
        raise ValueError(f"no embedded model for x{scale} at {bits} bits (embedded: {have}); pass a .pte or a "
                         "quantsr checkpoint with --model, or pick one of those with --scale/--bits")
    return models[(scale, bits)]
