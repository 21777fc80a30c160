"""``quantsr mobile sync``: exported artifacts and their model cards into the demo apps, with ``models.json``.

The Android app (``android_demo/``) runs ``.pte`` files from ``app/src/main/assets``; the iOS app (``ios_demo/``)
runs ``.pte`` and ``.mlpackage`` models from ``QuantSRDemo/Models``. Both read ``models.json`` (schema 1, the
format of ``tests/vectors/models.json``), written here from the cards ``quantsr export`` puts beside each artifact
(``NAME.pte.json``, ``NAME.mlpackage.json``). Standard library only: no torch is needed to fill the apps.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantsr.artifacts.atomic import atomic_write
from quantsr.artifacts.cards import DEFAULT_PTE_MAX_SIDE, ArtifactError, card_min_side, card_path, load_card
from quantsr.artifacts.digest import file_digest
from quantsr.artifacts.embedded import PACKAGE_ASSETS

__all__ = ["APPS", "SyncResult", "default_assets", "manifest_entry", "sync", "sync_apps"]

SCHEMA = 1


@dataclass(frozen=True)
class AppTarget:
    name: str
    demo_folder: str  # the app's folder in the repository
    assets: str  # where the app reads models.json and the models, relative to demo_folder
    suffixes: tuple[str, ...]  # the artifact kinds the app runs


APPS = {
    "android": AppTarget("android", "android_demo", "app/src/main/assets", (".pte",)),
    "ios": AppTarget("ios", "ios_demo", "QuantSRDemo/Models", (".pte", ".mlpackage")),
}


@dataclass
class SyncResult:
    app: str
    assets: Path
    manifest: dict[str, Any]
    copied: list[Path] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)  # other models in the folder that models.json no longer lists


def default_assets(app: str, search_from: Sequence[Path] | None = None) -> Path:
    """The app's model folder in the repository checkout found from the current directory (or this package's)."""
    target = APPS[app]
    roots = list(search_from) if search_from is not None else [Path.cwd(), PACKAGE_ASSETS.parent.parent]
    for root in roots:
        if (root / target.demo_folder).is_dir():
            return root / target.demo_folder / target.assets
    raise ArtifactError(f"cannot find {target.demo_folder}/: run this from the quantsr repository root, or pass "
                      f"--assets DIR")


def _backend(artifact: Path, card: dict[str, Any]) -> str:
    return card.get("backend") or ("coreml" if artifact.suffix == ".mlpackage" else "executorch-xnnpack")


def _precision_label(card: dict[str, Any]) -> str:
    bits = card.get("bits") or {}
    w, a = bits.get("weights"), bits.get("activations")
    if w and a and (w, a) != (32, 32):
        return f"W{w}A{a}"
    return "INT8" if card.get("quant") == "int8" else "FP32"


def manifest_entry(artifact: Path, card: dict[str, Any], *, tile: int = 256, overlap: int = 16,
                   name: str | None = None) -> dict[str, Any]:
    """One ``models.json`` model from an artifact and its card; raises ArtifactError if the tiling cannot work."""
    backend = _backend(artifact, card)
    fixed = card.get("tile")
    input_shape = (card.get("input") or {}).get("shape")
    if fixed and fixed - 2 * overlap < 1:
        raise ArtifactError(f"{artifact}: its fixed {fixed} px input leaves no tile core with overlap {overlap}; "
                          "use a smaller --overlap")
    max_side = None
    if input_shape is None:
        max_side = card.get("max_side") or DEFAULT_PTE_MAX_SIDE
        if tile + 2 * overlap > max_side:
            raise ArtifactError(f"{artifact}: tile {tile} + 2 x {overlap} overlap exceeds its largest input side "
                              f"{max_side}; use a smaller --tile")
    bits = card.get("bits") or {}
    entry = {
        "name": name or f"{card.get('architecture', artifact.stem)} x{card['scale']} {_precision_label(card)}",
        "file": artifact.name,
        "sha256": card.get("sha256") or file_digest(artifact),
        "bytes": artifact.stat().st_size if artifact.is_file() else card.get("bytes"),
        "scale": int(card["scale"]),
        "bits": {"weights": bits.get("weights"), "activations": bits.get("activations")},
        "backend": backend,
        "tile": int(fixed or tile),
        "overlap": overlap,
        "min_side": card_min_side(card),
        **({"max_side": max_side} if max_side else {}),
        "input": {"name": (card.get("input") or {}).get("name", "lr"), "dtype": "float32", "shape": input_shape},
        "output": {"name": (card.get("output") or {}).get("name", "sr"), "dtype": "float32",
                   "shape": (card.get("output") or {}).get("shape")},
    }
    return entry


def _name_suffixes(entries: list[dict[str, Any]]) -> None:
    """Say the runtime only where a manifest mixes them, the tile side of fixed-shape .pte files, and the file
    name where two models would otherwise look the same in the app's picker."""
    mixed = len({e["backend"].startswith("coreml") for e in entries}) > 1
    for e in entries:
        coreml = e["backend"].startswith("coreml")
        parts = [("Core ML" if coreml else "ExecuTorch")] if mixed else []
        if e["input"]["shape"] is not None and not coreml:
            parts.append(f"{e['tile']} px tiles")
        if parts:
            e["name"] += f" ({', '.join(parts)})"
    names = [e["name"] for e in entries]
    for e in entries:
        if names.count(e["name"]) > 1:
            e["name"] += f" [{e['file']}]"


def find_artifacts(sources: Sequence[Path], suffixes: Sequence[str]) -> list[Path]:
    """Artifacts with one of ``suffixes``: the paths given, and those inside the folders given (sorted)."""
    found = []
    for source in sources:
        if not source.exists():
            raise ArtifactError(f"{source} does not exist")
        if source.suffix in (".pte", ".mlpackage"):
            if source.suffix in suffixes:
                found.append(source)
        elif source.is_dir():
            found += sorted(p for p in source.iterdir() if p.suffix in suffixes and not p.name.startswith("."))
        else:
            raise ArtifactError(f"{source}: not a .pte file, an .mlpackage or a folder of them")
    return found


def _copy_atomically(src: Path, dst: Path) -> None:
    """Copy a file or a package directory so that ``dst`` is never a half-written copy."""
    if src.is_file():
        with src.open("rb") as fin, atomic_write(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        return
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    try:
        shutil.copytree(src, staging, dirs_exist_ok=True)
        staging.chmod(src.stat().st_mode & 0o777)  # mkdtemp makes it private
        if dst.exists():
            os.replace(dst, old)  # a directory cannot be renamed over a non-empty one: move it aside first
        os.replace(staging, dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not dst.exists():
            os.replace(old, dst)  # put the previous copy back
        raise
    shutil.rmtree(old, ignore_errors=True)


def _same_place(a: Path, b: Path) -> bool:
    return b.exists() and a.resolve() == b.resolve()


def sync(sources: Sequence[Path], app: str, assets: Path | None = None, *, tile: int = 256,
         overlap: int = 16) -> SyncResult:
    """Copy the app's kinds of artifacts (with cards) from ``sources`` into ``assets`` and write models.json there.
    Artifacts already in ``assets`` (``quantsr export --out`` straight into the app) are not copied again."""
    target = APPS[app]
    if tile < 1 or overlap < 0:
        raise ArtifactError(f"--tile must be >= 1 and --overlap >= 0, got {tile} and {overlap}")
    artifacts = find_artifacts(sources, target.suffixes)
    if not artifacts:
        kinds = " or ".join(target.suffixes)
        raise ArtifactError(f"no {kinds} artifacts in {', '.join(map(str, sources))}; export some with "
                          "`quantsr export CHECKPOINT`")
    names = [a.name for a in artifacts]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise ArtifactError(f"two artifacts share the name {duplicates[0]}; the app needs unique file names")
    assets = assets if assets is not None else default_assets(app)
    cards = [load_card(a) for a in artifacts]  # every card is checked before anything is copied
    entries = [manifest_entry(a, c, tile=tile, overlap=overlap) for a, c in zip(artifacts, cards)]
    _name_suffixes(entries)
    assets.mkdir(parents=True, exist_ok=True)
    result = SyncResult(app, assets, {"schema": SCHEMA, "models": entries})
    for artifact in artifacts:
        dst = assets / artifact.name
        if _same_place(artifact, dst):
            continue
        _copy_atomically(artifact, dst)
        _copy_atomically(card_path(artifact), card_path(dst))
        result.copied.append(dst)
    with atomic_write(assets / "models.json", "w") as fh:
        fh.write(json.dumps(result.manifest, indent=1) + "\n")
    result.stale = sorted(p for p in assets.iterdir() if p.suffix in (".pte", ".mlpackage") and p.name not in names)
    return result


def sync_apps(sources: Sequence[Path], app: str, assets: Path | None = None, *, tile: int = 256,
              overlap: int = 16) -> list[SyncResult]:
    """:func:`sync` for ``app`` (android, ios) or both; with no ``sources``, the embedded package models."""
    if app not in APPS and app != "both":
        raise ArtifactError(f"unknown app {app!r}: android, ios or both")
    apps = list(APPS) if app == "both" else [app]
    if assets is not None and len(apps) > 1:
        raise ArtifactError("--assets names one folder: use it with --app android or --app ios")
    sources = list(sources) or [PACKAGE_ASSETS]
    return [sync(sources, a, assets, tile=tile, overlap=overlap) for a in apps]
