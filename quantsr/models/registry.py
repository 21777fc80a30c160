"""Model registry in the style of timm: ``@register_model`` on a factory, ``create_model(name, **kw)``.

Each registration declares the architecture's :class:`~quantsr.models.descriptor.ModelDescriptor`; the built-in
architectures (``quantsr.models.archs``) register themselves when the registry is first used.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from quantsr.artifacts.cards import DEFAULT_MIN_SIDE
from quantsr.models.descriptor import ModelDescriptor, PublicWeights

__all__ = ["create_model", "descriptor_of", "get_descriptor", "list_models", "model_scales", "register_model"]

_DESCRIPTORS: dict[str, ModelDescriptor] = {}
_builtins_loaded = False
_BUILTIN_ARCHS = ("carn", "edsr", "fsrcnn", "imdn", "rfdn", "rlfn", "span", "srresnet", "swinir")


def register_model(name: str | None = None, scales: tuple[int, ...] = (2, 3, 4), *, module: type[nn.Module],
                   public_weights: Mapping[str, tuple[int, ...]] | None = None,
                   min_side: int = DEFAULT_MIN_SIDE, tile_exact: bool = True,
                   channel_splits: Callable[[nn.Module], Mapping[str, tuple[int, ...]]] | None = None,
                   convert_checkpoint: Callable[[dict[str, Any], int], dict[str, Any]] | None = None,
                   body: str | None = "body", depth_kwarg: str | None = None, depth: int = 0,
                   distill_shallow: bool = False) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``fn(scale=..., **kw) -> nn.Module`` under ``name`` (default: the function name) with its
    descriptor (see :class:`ModelDescriptor`). ``module`` (required) is the class the factory builds, by which
    :func:`descriptor_of` recognises its instances; ``public_weights`` maps public checkpoint file names to the
    scales they serve."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _DESCRIPTORS:
            raise ValueError(f"model {key!r} is registered twice")
        _DESCRIPTORS[key] = ModelDescriptor(
            name=key, factory=fn, module=module, scales=tuple(scales),
            public_weights=tuple(PublicWeights(f, tuple(s)) for f, s in (public_weights or {}).items()),
            min_side=min_side, tile_exact=tile_exact, channel_splits=channel_splits,
            convert_checkpoint=convert_checkpoint, body=body, depth_kwarg=depth_kwarg, depth=depth,
            distill_shallow=distill_shallow, summary=(fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return decorator


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    _ensure_builtin_models()
    return sorted(_DESCRIPTORS)


def get_descriptor(name: str) -> ModelDescriptor:
    """The descriptor of a registered architecture; a clear error naming the known ones otherwise."""
    _ensure_builtin_models()
    if name not in _DESCRIPTORS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_DESCRIPTORS))}")
    return _DESCRIPTORS[name]


def descriptor_of(model: nn.Module) -> ModelDescriptor | None:
    """The descriptor of the registered architecture ``model`` is an instance of (also after ``quantize_``,
    slimming or deploy transforms, which keep the top-level class), or None for an unregistered module."""
    _ensure_builtin_models()
    for descriptor in _DESCRIPTORS.values():
        if isinstance(model, descriptor.module):
            return descriptor
    return None


def model_scales(name: str) -> tuple[int, ...]:
    """Upscaling factors supported by a registered architecture."""
    return get_descriptor(name).scales


def create_model(name: str, scale: int = 4, **kwargs: Any) -> nn.Module:
    """Build a registered model. Every model maps RGB in [0, 1] to RGB in [0, 1]."""
    descriptor = get_descriptor(name)
    if scale not in descriptor.scales:
        raise ValueError(f"model {name!r} supports scales {descriptor.scales}, not x{scale}; pick one of those")
    options = model_options(name)
    unknown = sorted(set(kwargs) - set(options)) if options is not None else []
    if unknown:
        raise ValueError(f"{name} has no option {', '.join(map(repr, unknown))} (--model-kw); its options: "
                         f"{', '.join(options) or 'none'}")
    return descriptor.factory(scale=scale, **kwargs)


def model_options(name: str) -> list[str] | None:
    """The keyword options of a registered architecture (``--model-kw``), None if it takes any."""
    params = inspect.signature(get_descriptor(name).module).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in ("self", "scale", "upscale")
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]


def _ensure_builtin_models() -> None:
    global _builtins_loaded
    if not _builtins_loaded:  # descriptor_of runs per evaluated image: import the architectures once
        for arch in _BUILTIN_ARCHS:  # each module registers its architecture when imported
            importlib.import_module(f"quantsr.models.archs.{arch}")
        _builtins_loaded = True
