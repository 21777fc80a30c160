"""Public FP checkpoints (``../shared/weights``): finding them from the descriptors, reading a checkpoint file once
and loading it onto a registry module with the architecture's one-time key conversion. The loader users call is
:func:`quantsr.load_model` (``quantsr.checkpoints.load``), built on these."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from quantsr.artifacts.locations import locate
from quantsr.models.registry import descriptor_of, get_descriptor, list_models

__all__ = ["PublicCheckpoint", "default_weights_dir", "find_checkpoint", "load_weights",
           "public_checkpoints", "read_checkpoint", "read_state_dict"]


@dataclass(frozen=True)
class PublicCheckpoint:
    file: str
    model: str
    scales: tuple[int, ...]


def public_checkpoints() -> list[PublicCheckpoint]:
    """Every public checkpoint file a registered architecture declares, with the scales it serves."""
    return [PublicCheckpoint(w.file, name, w.scales) for name in list_models()
            for w in get_descriptor(name).public_weights]


def default_weights_dir() -> Path:
    """The folder holding the public checkpoints: ``$QUANTSR_WEIGHTS``, else ``../shared/weights`` beside the source
    checkout, else ``~/.cache/quantsr/weights`` (:func:`quantsr.artifacts.locations.locate`); raises
    :class:`~quantsr.artifacts.locations.LocationNotFoundError` (one line naming QUANTSR_WEIGHTS) when none exists."""
    return locate("weights")


def find_checkpoint(model: str, scale: int, weights_dir: str | Path | None = None) -> Path:
    """Path of the known public checkpoint for ``model`` at ``scale``."""
    known = public_checkpoints()
    for ckpt in known:
        if ckpt.model == model and scale in ckpt.scales:
            # Resolved only here: an unknown model/scale is reported as such, not as missing weights.
            path = (Path(weights_dir) if weights_dir else default_weights_dir()) / ckpt.file
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found; set QUANTSR_WEIGHTS or pass --weights PATH")
            return path
    listed = ", ".join(f"{c.model} x{s}" for c in known for s in c.scales)
    raise ValueError(f"no public checkpoint known for {model} x{scale}; known: {listed}")


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint file once: its tensor dict (unwrapping ``state_dict``/``params``/``model`` keys) and the
    quantsr ``metadata`` dict (empty for public checkpoints)."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # pickle / zip errors: report the file, not the internals
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, dict) and obj.get("kind") == "int8-program":
        base = (obj.get("metadata") or {}).get("base_checkpoint", "its base checkpoint")
        raise ValueError(f"{path} is a fine-tuned int8 program of {base}, not a model: export it with "
                         f"`quantsr export {base} --quant static-int8 --program {path}`")
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return _unwrap_state_dict(obj, path), meta if isinstance(meta, dict) else {}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensor dict of a checkpoint file (see :func:`read_checkpoint`)."""
    return read_checkpoint(path)[0]


def _unwrap_state_dict(obj, path: Path) -> dict[str, torch.Tensor]:
    for key in ("params_ema", "params", "state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a dict of tensors (a state_dict)")
    return dict(obj)


def load_weights(model: nn.Module, path: str | Path, scale: int,
                 state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Load a public or quantsr checkpoint into ``model``, mapping foreign key layouts first with the
    architecture's ``convert_checkpoint`` (``state``: the already-read tensor dict of ``path``)."""
    state = read_state_dict(path) if state is None else state
    own_keys = set(model.state_dict())
    if not set(state) <= own_keys or not own_keys - _buffer_names(model) <= set(state):
        descriptor = descriptor_of(model)
        if descriptor is not None and descriptor.convert_checkpoint is not None:
            state = descriptor.convert_checkpoint(state, scale)
    mismatched = [(k, tuple(v.shape), tuple(own[k].shape)) for own in [model.state_dict()] for k, v in state.items()
                  if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if mismatched:
        key, theirs, ours = mismatched[0]
        raise ValueError(f"{path} does not match {type(model).__name__} x{scale}: {len(mismatched)} tensors of "
                         f"another shape (first: {key} is {'x'.join(map(str, theirs))} in the file, "
                         f"{'x'.join(map(str, ours))} in the model); check --model, --scale and --model-kw")
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in _buffer_names(model)]
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match {type(model).__name__} x{scale}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}. "
            "Check --model and --scale."
        )
    return model


def _buffer_names(model: nn.Module) -> set[str]:
    return {name for name, _ in model.named_buffers()}
