"""Running a saved ``.pte`` through the ExecuTorch Python runtime: :class:`PteModule`, called like a module."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from quantsr.artifacts.cards import ArtifactError
from quantsr.runtime import VERBOSE_ENV
from quantsr.runtime.limits import pte_limits

__all__ = ["PteModule", "quiet_native_stderr", "quiet_runtime_imports", "register_quantized_kernels",
           "set_runtime_threads"]


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Drop what C++ code writes to file descriptor 2 meanwhile (ExecuTorch's cpuinfo prints five
    ``[cpuinfo_utils.cpp]`` lines on every start); Python's own errors are raised after it is restored."""
    if os.environ.get(VERBOSE_ENV):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


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
    """Load the quantized operator library (q/dq out-variants for ops left outside the delegate) into torch."""
    try:
        import executorch.kernels.quantized  # noqa: F401
    except ImportError:  # pragma: no cover - present in the pinned wheel
        pass


def runtime_bindings():
    """The ExecuTorch C++ runtime bindings (``executorch.extension.pybindings._C``), XNNPACK delegate included.

    Imported directly: ``executorch.runtime`` and ``portable_lib`` first import ``executorch.exir``, the whole
    exporter and compiler stack (about 12 s and 150 MB more here), which running a program never uses."""
    with quiet_runtime_imports(), quiet_native_stderr():
        import torch  # noqa: F401  (the extension links libtorch, which `import torch` loads)
        from executorch.extension.pybindings import _C

        register_quantized_kernels()
    return _C


def set_runtime_threads(threads: int) -> None:
    """Size ExecuTorch's CPU thread pool (XNNPACK's kernels run on it; torch.set_num_threads does not reach it)."""
    bindings = runtime_bindings()
    with quiet_native_stderr():
        bindings._unsafe_reset_threadpool(int(threads))


class PteModule:
    """A saved ``.pte`` run through the ExecuTorch C++ runtime, called like a module on (1, C, H, W) tensors.

    ``scale`` (None without a model card), ``min_side`` and ``max_side`` are the input limits its card states."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.card, self.min_side, self.max_side = pte_limits(self.path)
        self.scale: int | None = self.card["scale"] if self.card else None
        bindings = runtime_bindings()
        if threads:
            set_runtime_threads(threads)
        with quiet_native_stderr():
            try:
                self.module = bindings._load_for_executorch(str(self.path))
            except RuntimeError as exc:
                raise ArtifactError(f"{self.path}: the ExecuTorch runtime cannot load it ({exc}); export it "
                                    "again with `quantsr export`") from None
        if "forward" not in self.module.method_names():
            raise ValueError(f"{self.path} has no 'forward' method; is it a quantsr export?")

        self._started = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self._started:  # the first run starts the thread pool, whose cpuinfo probe logs to stderr
            self._started = True
            with quiet_native_stderr():
                return self.module.forward([x.contiguous().float()])[0]
        return self.module.forward([x.contiguous().float()])[0]
