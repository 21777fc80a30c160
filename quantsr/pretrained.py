"""Loading the public FP checkpoints (``../shared/weights``) onto the registry's modules."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from quantsr.registry import create_model


@dataclass(frozen=True)
class PretrainedCheckpoint:
    file: str
    model: str
    scales: tuple[int, ...]


# File name in the shared weights folder -> (architecture, scales it serves).
KNOWN_CHECKPOINTS: tuple[PretrainedCheckpoint, ...] = (
    PretrainedCheckpoint("IMDN_x2.pth", "imdn", (2,)),
    PretrainedCheckpoint("IMDN_x3.pth", "imdn", (3,)),
    PretrainedCheckpoint("IMDN_x4.pth", "imdn", (4,)),
    PretrainedCheckpoint("rfdn_aim_x4.pth", "rfdn", (4,)),
    PretrainedCheckpoint("rlfn_ntire2022_x4.pth", "rlfn", (4,)),
    PretrainedCheckpoint("carn_m.pth", "carn_m", (2, 3, 4)),
    PretrainedCheckpoint("fsrcnn_x2.pth", "fsrcnn", (2,)),
    PretrainedCheckpoint("fsrcnn_x3.pth", "fsrcnn", (3,)),
    PretrainedCheckpoint("fsrcnn_x4.pth", "fsrcnn", (4,)),
    PretrainedCheckpoint("span_ch28_x4.pth", "span", (4,)),
)


def default_weights_dir() -> Path:
    """``$QUANTSR_WEIGHTS`` if set, else ``../shared/weights`` relative to the repository."""
    env = os.environ.get("QUANTSR_WEIGHTS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "weights"


def find_checkpoint(model: str, scale: int, weights_dir: str | Path | None = None) -> Path:
    """Path of the known public checkpoint for ``model`` at ``scale``."""
    root = Path(weights_dir) if weights_dir else default_weights_dir()
    for ckpt in KNOWN_CHECKPOINTS:
        if ckpt.model == model and scale in ckpt.scales:
            path = root / ckpt.file
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found; set QUANTSR_WEIGHTS or pass --weights PATH")
            return path
    known = ", ".join(f"{c.model} x{s}" for c in KNOWN_CHECKPOINTS for s in c.scales)
    raise ValueError(f"no public checkpoint known for {model} x{scale}; known: {known}")


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
    """Load a public or quantsr checkpoint into ``model``, mapping foreign key layouts first (``state``: the
    already-read tensor dict of ``path``)."""
    state = read_state_dict(path) if state is None else state
    own_keys = set(model.state_dict())
    if not set(state) <= own_keys or not own_keys - _buffer_names(model) <= set(state):
        convert = getattr(type(model), "convert_checkpoint", None)
        if convert is not None:
            state = convert(state, scale)
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


def load_pretrained(model: str, scale: int, path: str | Path | None = None, **kwargs) -> nn.Module:
    """``create_model`` plus the public checkpoint for it (from ``path`` or the shared weights folder)."""
    net = create_model(model, scale=scale, **kwargs)
    load_weights(net, path or find_checkpoint(model, scale), scale)
    return net.eval()


def _buffer_names(model: nn.Module) -> set[str]:
    return {name for name, _ in model.named_buffers()}


def load_model(model: str | None, scale: int, weights: str | Path | None = None,
               model_kwargs: dict | None = None) -> nn.Module:
    """The model a user names: a quantsr checkpoint (its metadata names the architecture), a public checkpoint,
    or the known public checkpoint for ``model`` at ``scale`` when ``weights`` is None."""
    kwargs = dict(model_kwargs or {})
    state = None
    if weights is not None:
        state, meta = read_checkpoint(weights)
        if meta:
            if model is not None and meta.get("model") not in (None, model):
                raise ValueError(f"{weights} holds a {meta['model']} model, not {model}; drop --model or fix it")
            model = meta.get("model", model)
            if meta.get("scale") not in (None, scale):
                raise ValueError(f"{weights} is a x{meta['scale']} model; use --scale {meta['scale']}")
            kwargs = {**meta.get("model_kwargs", {}), **kwargs}
            if "qat" in meta:  # a low-bit checkpoint from `quantsr quantize`: rebuild its quantized layers
                from quantsr.qat import load_quantized

                return load_quantized({**meta, "model_kwargs": kwargs}, state)
    if model is None:
        raise ValueError("name the architecture with --model (see `quantsr models`)")
    net = create_model(model, scale=scale, **kwargs)
    load_weights(net, weights or find_checkpoint(model, scale), scale, state)
    return net.eval()
