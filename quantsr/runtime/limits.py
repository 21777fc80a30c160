"""The input limits of a model, read without loading it (standard library only, so ``quantsr upscale`` checks its
flags against a ``.pte``'s card before torch and the runtime are imported): the card's scale and side limits, and
the tile that fits them."""
from __future__ import annotations

from pathlib import Path

from quantsr.artifacts.cards import (
    DEFAULT_MIN_SIDE,
    DEFAULT_PTE_MAX_SIDE,
    ArtifactError,
    card_min_side,
    load_card,
    verify_digest,
)
from quantsr.artifacts.pte_file import check_pte_file

__all__ = ["DEFAULT_TILE", "fit_tile", "pte_limits"]

DEFAULT_TILE = 256


def pte_limits(path: str | Path) -> tuple[dict | None, int, int]:
    """(card or None, min side, max side) of a ``.pte``, checked to be a whole ExecuTorch file first; no runtime
    is loaded, so a caller can validate its arguments against the limits before the slow import."""
    path = Path(path)
    size = check_pte_file(path)
    try:  # only its size limits and scale are needed here, and a bare .pte (no card) still runs
        card: dict | None = load_card(path, verify=False)
    except (ArtifactError, OSError):
        card = None
    if card is None:
        return None, DEFAULT_MIN_SIDE, DEFAULT_PTE_MAX_SIDE
    if isinstance(card.get("bytes"), int) and card["bytes"] != size:
        raise ArtifactError(f"{path}: {size} bytes, but its card {path.name}.json says {card['bytes']}; the file "
                            "is truncated or belongs to another export: copy or export it again")
    verify_digest(path, card)  # ~2 ms a MB; a damaged program can abort the runtime
    if not card.get("dynamic_hw", True) and card.get("tile"):  # a fixed-shape export takes exactly its tile
        return card, int(card["tile"]), int(card["tile"])
    return card, card_min_side(card), int(card.get("max_side") or DEFAULT_PTE_MAX_SIDE)


def fit_tile(tile: int | None, overlap: int, max_side: int | None) -> int:
    """The tile side to use: ``tile``, or by default the largest up to 256 whose tile plus margins the model
    accepts; an explicit tile that does not fit ``max_side`` is an error saying what fits."""
    if overlap < 0:
        raise ValueError(f"--overlap must be >= 0, got {overlap}")
    if max_side is not None and 2 * overlap + DEFAULT_MIN_SIDE > max_side:
        most = (max_side - DEFAULT_MIN_SIDE) // 2
        raise ValueError(f"--overlap {overlap} leaves no room for a tile: this model accepts inputs of at most "
                         f"{max_side} px; use --overlap {most} or less")
    if tile is None:
        return min(DEFAULT_TILE, max_side - 2 * overlap) if max_side is not None else DEFAULT_TILE
    if tile < DEFAULT_MIN_SIDE:
        raise ValueError(f"--tile must be at least {DEFAULT_MIN_SIDE} px, got {tile}")
    if max_side is not None and tile + 2 * overlap > max_side:
        raise ValueError(f"--tile {tile} with --overlap {overlap} needs {tile + 2 * overlap}-px inputs, but this "
                         f"model accepts at most {max_side} px: use --tile {max_side - 2 * overlap} or less")
    return tile
