"""``quantsr.load_model(path)``: one loader for public FP weights, quantsr FP checkpoints and low-bit (QAT)
checkpoints. The file is read once; its metadata (or, for a public file, the descriptors' public weights) names
the architecture and the scale, and a low-bit checkpoint's recipe rebuilds its quantized architecture."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from torch import nn

from quantsr.checkpoints.format import CheckpointInfo, parse_metadata
from quantsr.models.registry import create_model, get_descriptor
from quantsr.models.weights import find_checkpoint, load_weights, public_checkpoints, read_checkpoint
from quantsr.quant.recipe import build_quantized_

__all__ = ["load_model", "load_model_and_info"]

DEFAULT_SCALE = 4


def load_model(path: str | Path | None = None, *, model: str | None = None, scale: int | None = None,
               model_kwargs: dict | None = None) -> nn.Module:
    """The model in ``path`` (in eval mode), or the known public checkpoint of ``model`` at ``scale`` when
    ``path`` is None. ``model``/``scale`` may be omitted when the file says them; given and different, they are
    an error (a checkpoint is never loaded as something it is not)."""
    return load_model_and_info(path, model=model, scale=scale, model_kwargs=model_kwargs)[0]


def load_model_and_info(path: str | Path | None = None, *, model: str | None = None, scale: int | None = None,
                        model_kwargs: dict | None = None) -> tuple[nn.Module, CheckpointInfo]:
    """:func:`load_model` and the :class:`CheckpointInfo` it resolved (architecture, scale, kwargs, recipe)."""
    kwargs = dict(model_kwargs or {})
    if path is None:
        if model is None:
            raise ValueError("name the architecture with --model (see `quantsr models`) or pass a checkpoint")
        get_descriptor(model)  # an unknown name is a clear error before any file lookup
        scale = scale or DEFAULT_SCALE
        path = find_checkpoint(model, scale)
    path = Path(path)
    state, meta = read_checkpoint(path)
    info = parse_metadata(meta, str(path))
    if info.format_version is not None:  # a quantsr checkpoint: it names its architecture and scale
        if model is not None and info.model not in (None, model):
            raise ValueError(f"{path} holds a {info.model} model, not {model}; drop --model or fix it")
        if scale is not None and info.scale not in (None, scale):
            raise ValueError(f"{path} is a x{info.scale} model; use --scale {info.scale}")
        info = replace(info, model=info.model or model, scale=info.scale or scale or DEFAULT_SCALE,
                       model_kwargs={**info.model_kwargs, **kwargs})
    else:
        info = _public_info(path, model, scale, kwargs)
    if info.model is None:
        raise ValueError(f"{path} does not say which architecture it holds; name it with --model "
                         "(see `quantsr models`)")
    net = create_model(info.model, scale=info.scale, **info.model_kwargs)
    if info.recipe is not None:
        build_quantized_(net, info.recipe)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{path} does not match its own recipe ({str(exc).splitlines()[0]})") from None
    else:
        load_weights(net, path, info.scale, state)
    return net.eval(), info


def _public_info(path: Path, model: str | None, scale: int | None, kwargs: dict) -> CheckpointInfo:
    """A public checkpoint says nothing itself; a known file name tells the architecture and its scales."""
    known = next((c for c in public_checkpoints() if c.file == path.name), None)
    if known is not None:
        if model is not None and model != known.model:
            raise ValueError(f"{path.name} holds {known.model} weights, not {model}; drop --model or fix it")
        if scale is not None and scale not in known.scales:
            raise ValueError(f"{path.name} is a x{'/x'.join(map(str, known.scales))} checkpoint; use --scale "
                             f"{known.scales[0]}")
        model = known.model
        if scale is None and len(known.scales) == 1:
            scale = known.scales[0]
    return CheckpointInfo(model, scale or DEFAULT_SCALE, kwargs)
