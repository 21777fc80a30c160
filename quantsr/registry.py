"""Model registry in the style of timm: ``@register_model`` on a factory, ``create_model(name, **kw)``."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_MODEL_FACTORIES: dict[str, Callable[..., nn.Module]] = {}
_MODEL_SCALES: dict[str, tuple[int, ...]] = {}


def register_model(name: str | None = None, scales: tuple[int, ...] = (2, 3, 4)):
    """Register ``fn(scale=..., **kw) -> nn.Module`` under ``name`` (default: the function name).

    ``scales`` lists the upscaling factors the architecture supports; tests iterate over them.
    """

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _MODEL_FACTORIES:
            raise ValueError(f"model {key!r} is registered twice")
        _MODEL_FACTORIES[key] = fn
        _MODEL_SCALES[key] = tuple(scales)
        return fn

    return decorator


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    _ensure_builtin_models()
    return sorted(_MODEL_FACTORIES)


def model_scales(name: str) -> tuple[int, ...]:
    """Upscaling factors supported by a registered architecture."""
    _ensure_builtin_models()
    _check_known(name)
    return _MODEL_SCALES[name]


def create_model(name: str, scale: int = 4, **kwargs) -> nn.Module:
    """Build a registered model. Every model maps RGB in [0, 1] to RGB in [0, 1]."""
    _ensure_builtin_models()
    _check_known(name)
    if scale not in _MODEL_SCALES[name]:
        raise ValueError(
            f"model {name!r} supports scales {_MODEL_SCALES[name]}, not x{scale}; pick one of those"
        )
    return _MODEL_FACTORIES[name](scale=scale, **kwargs)


def _check_known(name: str) -> None:
    if name not in _MODEL_FACTORIES:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_MODEL_FACTORIES))}")


def _ensure_builtin_models() -> None:
    # Importing the package registers the built-in architectures as a side effect.
    import quantsr.models  # noqa: F401
