"""The metadata a quantsr checkpoint carries beside its state dict, and its versions.

Format 2 (written now)::

    {"format_version": 2, "model": "imdn", "scale": 4, "model_kwargs": {...},
     "quant": {"version": 1, "w_bits": 4, ...}}          # only for low-bit checkpoints: a QuantRecipe

Format 1 (no ``format_version``; the committed ``checkpoints/*.pt``): the same, but a low-bit checkpoint held its
whole training config under ``"qat"``. :func:`parse_metadata` reads both into one :class:`CheckpointInfo`, so the
rest of the library sees a single, canonical form.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quantsr.quant.recipe import QuantRecipe

__all__ = ["FORMAT_VERSION", "CheckpointInfo", "checkpoint_metadata", "parse_metadata"]

FORMAT_VERSION = 2


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint file says about the model it holds (public checkpoints say nothing: ``model`` and
    ``scale`` then come from the descriptors' public weights, or from the caller)."""

    model: str | None
    scale: int | None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    recipe: QuantRecipe | None = None  # set for low-bit checkpoints
    format_version: int | None = None  # None: a public (non-quantsr) checkpoint


def checkpoint_metadata(model: str, scale: int, model_kwargs: dict[str, Any] | None = None,
                        recipe: QuantRecipe | None = None) -> dict[str, Any]:
    """The metadata dict to save beside a model's state dict."""
    meta: dict[str, Any] = {"format_version": FORMAT_VERSION, "model": model, "scale": int(scale),
                            "model_kwargs": dict(model_kwargs or {})}
    if recipe is not None:
        meta["quant"] = recipe.to_dict()
    return meta


def parse_metadata(meta: dict[str, Any], source: str = "checkpoint") -> CheckpointInfo:
    """The canonical :class:`CheckpointInfo` of a metadata dict of any format version (``{}``: public)."""
    if not meta:
        return CheckpointInfo(model=None, scale=None)
    version = int(meta.get("format_version", 1))
    if version > FORMAT_VERSION:
        raise ValueError(f"{source} was written by a newer quantsr (checkpoint format {version}; this one reads "
                         f"up to {FORMAT_VERSION}); upgrade quantsr")
    recipe = None
    try:
        if version == 1 and "qat" in meta:
            recipe = QuantRecipe.from_legacy_qat(meta["qat"])
        elif "quant" in meta:
            recipe = QuantRecipe.from_dict(meta["quant"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {exc}") from None
    scale = meta.get("scale")
    return CheckpointInfo(model=meta.get("model"), scale=None if scale is None else int(scale),
                          model_kwargs=dict(meta.get("model_kwargs") or {}), recipe=recipe, format_version=version)
