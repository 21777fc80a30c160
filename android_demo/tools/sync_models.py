"""Copy exported ``.pte`` files into the demo's assets and write ``models.json`` from their model cards.

    python android_demo/tools/sync_models.py exported/            # every <name>.pte with its <name>.pte.json card
    python android_demo/tools/sync_models.py a.pte b.pte --tile 128 --overlap 16

The cards are the JSON files ``quantsr export`` writes beside each artifact; only ``.pte`` (ExecuTorch) artifacts
are taken. Standard library only (no torch), so it also runs where quantsr is not installed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "app" / "src" / "main" / "assets"
SCHEMA = 1
MIN_SIDE = 8  # quantsr.upscale.MIN_SIDE


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest_entry(pte: Path, card: dict, tile: int, overlap: int) -> dict:
    bits = card.get("bits") or {}
    w, a = bits.get("weights"), bits.get("activations")
    quant = card.get("quant", "")
    label = f"W{w}A{a}" if w and w < 32 else (quant if quant and quant != "fp32" else "fp32")
    fixed = card.get("tile")
    return {
        "name": f"{card.get('architecture', pte.stem)} x{card['scale']} {label}",
        "file": pte.name, "sha256": _sha256(pte), "bytes": pte.stat().st_size, "scale": int(card["scale"]),
        "bits": {"weights": w, "activations": a}, "backend": card.get("backend", "executorch-xnnpack"),
        "tile": fixed or tile, "overlap": overlap, "min_side": MIN_SIDE, "max_side": 1024,
        "input": {"name": card.get("input", {}).get("name", "lr"), "dtype": "float32",
                  "shape": card.get("input", {}).get("shape")},
        "output": {"name": card.get("output", {}).get("name", "sr"), "dtype": "float32",
                   "shape": card.get("output", {}).get("shape")},
    }


def sync(sources: list[Path], assets: Path, tile: int = 256, overlap: int = 16) -> dict:
    ptes = []
    for s in sources:
        ptes += sorted(s.glob("*.pte")) if s.is_dir() else [s]
    if not ptes:
        raise SystemExit(f"no .pte files in {', '.join(map(str, sources))}; run `quantsr export CHECKPOINT` first")
    assets.mkdir(parents=True, exist_ok=True)
    models = []
    for pte in ptes:
        card_path = pte.with_name(pte.name + ".json")  # quantsr export writes <name>.pte.json
        if not card_path.is_file():
            card_path = pte.with_suffix(".json")
        if not card_path.is_file():
            raise SystemExit(f"{pte}: no model card {pte.name}.json beside it (`quantsr export` writes one)")
        card = json.loads(card_path.read_text())
        if (fixed := card.get("tile")) and fixed - 2 * overlap < 1:
            raise SystemExit(f"{pte}: fixed {fixed} px input leaves no tile core with overlap {overlap}")
        shutil.copyfile(pte, assets / pte.name)
        models.append(manifest_entry(assets / pte.name, card, tile, overlap))
    manifest = {"schema": SCHEMA, "models": models}
    (assets / "models.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sources", nargs="+", type=Path, help=".pte files or folders of them (with their .json cards)")
    p.add_argument("--assets", type=Path, default=ASSETS, help=f"default {ASSETS}")
    p.add_argument("--tile", type=int, default=256, help="LR tile side for dynamic-shape models (default 256)")
    p.add_argument("--overlap", type=int, default=16, help="LR margin around each tile (default 16)")
    args = p.parse_args(argv)
    manifest = sync(args.sources, args.assets, args.tile, args.overlap)
    for m in manifest["models"]:
        print(f"{args.assets / m['file']}: {m['name']}, {m['bytes'] / 1e6:.3f} MB")
    print(f"wrote {args.assets / 'models.json'} ({len(manifest['models'])} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
