"""Running a saved ``.pte`` through the ExecuTorch Python runtime: :class:`PteModule`, called like a module."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from quantsr.artifacts.cards import DEFAULT_MIN_SIDE, ArtifactError, card_min_side, load_card

__all__ = ["PteModule", "quiet_runtime_imports", "register_quantized_kernels"]


@contextlib.contextmanager
def quiet_runtime_imports() -> Iterator[None]:
    """Importing the runtime imports torchao, which logs a warning for each CUDA extension a CPU machine cannot
    load, and torch logs a deprecation from its pytree registry: noise for someone upscaling a photo."""
    noisy = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [logger.level for logger in noisy]
    for logger in noisy:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(noisy, levels):
            logger.setLevel(level)


def register_quantized_kernels() -> None:
    try:
        import executorch.kernels.quantized  # noqa: F401
    except ImportError:  # pragma: no cover - present in the pinned wheel
        pass


class PteModule:
    """A saved ``.pte`` run through the ExecuTorch Python runtime, called like a module on (1, C, H, W) tensors."""

    def __init__(self, path: str | Path) -> None:
        with quiet_runtime_imports():
            from executorch.runtime import Runtime

            register_quantized_kernels()
        self.path = Path(path)
        try:  # only its size limits are needed here, and a bare .pte (no card) still runs
            self.card: dict | None = load_card(self.path, verify=False)
        except (ArtifactError, OSError):
            self.card = None
        self.min_side = card_min_side(self.card) if self.card else DEFAULT_MIN_SIDE  # smaller inputs: pad first
        program = Runtime.get().load_program(self.path)
        self.method = program.load_method("forward")
        if self.method is None:
            raise ValueError(f"{self.path} has no 'forward' method; is it a quantsr export?")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.method.execute([x.contiguous().float()])[0]
