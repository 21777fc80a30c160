"""Model cards: the JSON that ``quantsr export`` writes beside each artifact (``NAME.pte.json``,
``NAME.mlpackage.json``), read by the runtime, the app tooling and the benchmarks, and the input-size limits an
artifact's consumer needs when its card does not state them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantsr.artifacts.digest import file_digest

__all__ = ["DEFAULT_MIN_SIDE", "DEFAULT_PTE_MAX_SIDE", "ArtifactError", "card_min_side", "card_path", "load_card",
           "verify_digest"]

# Smallest input side of every exported model unless its card says more (smaller tiles are padded up to it).
DEFAULT_MIN_SIDE = 8
# `quantsr export` exports dynamic .pte files up to this side by default (ExecuTorch plans memory for the largest
# shape, so it bounds the runtime's RSS); consumers assume it for a card that records no "max_side".
DEFAULT_PTE_MAX_SIDE = 320


class ArtifactError(ValueError):
    """A problem the user can fix (missing artifact, card, tool or device); the message says what to do."""


def card_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".json")  # `quantsr export` writes NAME.pte.json, NAME.mlpackage.json


def load_card(artifact: Path, verify: bool = True) -> dict[str, Any]:
    """The model card beside ``artifact``; with ``verify``, its sha256 must match the artifact's."""
    path = card_path(artifact)
    if not path.is_file():
        raise ArtifactError(f"{artifact}: no model card {path.name} beside it (`quantsr export` writes one)")
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not a JSON model card ({exc})") from None
    if not isinstance(card, dict) or not isinstance(card.get("scale"), int):
        raise ArtifactError(f"{path}: not a quantsr model card (no integer \"scale\")")
    if verify:
        verify_digest(artifact, card)
    return card


def verify_digest(artifact: Path, card: dict[str, Any]) -> None:
    """The artifact's sha256 must be the one its card records (a card without one: nothing to check)."""
    if card.get("sha256"):
        actual = file_digest(artifact)
        if actual != card["sha256"]:
            raise ArtifactError(f"{artifact}: sha256 {actual[:12]}... differs from {card_path(artifact).name} "
                                f"({card['sha256'][:12]}...); the card belongs to another export, re-export it")


def card_min_side(card: dict[str, Any]) -> int:
    """The smallest input side the artifact accepts (cards before the "min_side" field: the default)."""
    return int(card.get("min_side") or DEFAULT_MIN_SIDE)
