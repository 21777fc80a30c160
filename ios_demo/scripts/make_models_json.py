#!/usr/bin/env python3
"""Write ``models.json`` (schema 1, the format of tests/vectors/models.json) for the iOS demo from the model cards
that ``quantsr export`` writes beside each artifact (``NAME.pte.json``, ``NAME.mlpackage.json``).

    quantsr export runs/x4/model.pt --format all --out ios_demo/QuantSRDemo/Models
    python ios_demo/scripts/make_models_json.py ios_demo/QuantSRDemo/Models

Only the standard library is needed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SCHEMA = 1
DEFAULT_TILE, DEFAULT_OVERLAP, MIN_SIDE, MAX_SIDE = 256, 16, 8, 1024


def entry_from_card(card: dict, folder: Path) -> dict:
    file = card["file"]
    if not (folder / file).exists():
        raise FileNotFoundError(f"{folder / file}: the card names it but it is not there")
    backend = card.get("backend") or ("coreml" if file.endswith(".mlpackage") else "executorch-xnnpack")
    bits = card.get("bits") or {}
    w, a = bits.get("weights"), bits.get("activations")
    label = f"W{w}A{a}" if w and a and (w, a) != (32, 32) else "FP32"
    kind = "Core ML" if backend.startswith("coreml") else "ExecuTorch"
    shape = (card.get("input") or {}).get("shape")
    name = f"{card.get('architecture', Path(file).stem)} x{card['scale']} {label} ({kind})"
    entry = {
        "name": name, "file": file, "sha256": card.get("sha256"), "bytes": card.get("bytes"),
        "scale": int(card["scale"]), "bits": {"weights": w, "activations": a}, "backend": backend,
        "tile": int(card.get("tile") or DEFAULT_TILE), "overlap": DEFAULT_OVERLAP, "min_side": MIN_SIDE,
        "input": {"name": "lr", "dtype": "float32", "shape": shape},
        "output": {"name": "sr", "dtype": "float32", "shape": (card.get("output") or {}).get("shape")},
    }
    if shape is None:
        entry["max_side"] = MAX_SIDE
    return entry


def build(folder: Path) -> dict:
    cards = sorted(folder.glob("*.pte.json")) + sorted(folder.glob("*.mlpackage.json"))
    if not cards:
        raise SystemExit(f"no model cards (*.pte.json, *.mlpackage.json) in {folder}: run quantsr export first")
    return {"schema": SCHEMA, "models": [entry_from_card(json.loads(c.read_text()), folder) for c in cards]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="the folder quantsr export wrote (ios_demo/QuantSRDemo/Models)")
    ap.add_argument("--out", type=Path, help="default FOLDER/models.json")
    args = ap.parse_args(argv)
    manifest = build(args.folder)
    out = args.out or args.folder / "models.json"
    out.write_text(json.dumps(manifest, indent=1) + "\n")
    for m in manifest["models"]:
        print(f"{m['name']}: {m['file']}")
    print(f"wrote {out} ({len(manifest['models'])} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
