"""Where quantsr looks for the benchmark data and the public weights, in this order:

1. ``$QUANTSR_DATA`` / ``$QUANTSR_WEIGHTS`` when set (a folder that must exist: a typo fails instead of falling
   through to another copy);
2. ``../shared/data`` / ``../shared/weights`` beside the source checkout, when quantsr runs from one (the
   repository's layout; an installed wheel has no checkout, so this step is skipped there);
3. the user cache ``${XDG_CACHE_HOME:-~/.cache}/quantsr/data`` / ``.../weights`` when that folder exists.

Nothing found raises :class:`LocationNotFoundError`, one line naming the variable to set. Standard library only
(``tests/test_layout.py`` checks it)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KINDS", "LocationNotFoundError", "candidates", "checkout_shared", "locate", "user_cache"]


@dataclass(frozen=True)
class _Kind:
    variable: str
    what: str      # for "no {what} found"
    holding: str   # for "set VAR to the folder holding {holding}"


KINDS = {
    "data": _Kind("QUANTSR_DATA", "benchmark data", "benchmark/ and train/"),
    "weights": _Kind("QUANTSR_WEIGHTS", "public weights", "the public checkpoints (e.g. IMDN_x4.pth)"),
}
_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../quantsr


class LocationNotFoundError(FileNotFoundError):
    """No folder for the data or the weights; the message (one line) says where quantsr looked and what to set.
    A FileNotFoundError, so the command line reports it like any missing file."""


def _spec(kind: str) -> _Kind:
    if kind not in KINDS:
        raise ValueError(f"unknown artifact kind {kind!r}; use one of {', '.join(KINDS)}")
    return KINDS[kind]


def checkout_shared(package_dir: Path | None = None) -> Path | None:
    """``shared/`` beside the source checkout holding ``package_dir`` (default: this quantsr), or None when quantsr
    is not run from a checkout (no ``pyproject.toml`` next to the package, as in site-packages)."""
    package_dir = _PACKAGE_DIR if package_dir is None else Path(package_dir)
    repo = package_dir.parent
    return repo.parent / "shared" if (repo / "pyproject.toml").is_file() else None


def user_cache(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/quantsr``, or ``~/.cache/quantsr``; a relative ``XDG_CACHE_HOME`` is ignored as the XDG
    spec asks (it would resolve against whatever the current folder happens to be)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "quantsr"


def candidates(kind: str, *, package_dir: Path | None = None,
               environ: Mapping[str, str] | None = None) -> list[Path]:
    """The fallback folders for ``kind`` ("data" or "weights") after the variable, in lookup order."""
    _spec(kind)
    shared = checkout_shared(package_dir)
    return ([shared / kind] if shared is not None else []) + [user_cache(environ) / kind]


def locate(kind: str, *, package_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The folder holding ``kind`` ("data" or "weights"), by the order in this module's docstring.
    ``package_dir`` and ``environ`` stand in for this quantsr's folder and ``os.environ`` (tests)."""
    environ = os.environ if environ is None else environ
    spec = _spec(kind)
    value = environ.get(spec.variable, "")
    if value:
        path = Path(value).expanduser()
        if not path.is_dir():
            raise LocationNotFoundError(f"{spec.variable}={value} is not a folder; set {spec.variable} to the "
                                        f"folder holding {spec.holding}, or unset it")
        return path
    folders = candidates(kind, package_dir=package_dir, environ=environ)
    for folder in folders:
        if folder.is_dir():
            return folder
    looked = [f"${spec.variable} (unset)"] + [str(f) for f in folders]
    if checkout_shared(package_dir) is None:  # say the step was skipped, so nobody hunts for the folder
        looked.insert(1, f"../shared/{kind} (not a source checkout)")
    raise LocationNotFoundError(f"no {spec.what} found: looked in {', '.join(looked)}; set {spec.variable} to the "
                                f"folder holding {spec.holding}")
