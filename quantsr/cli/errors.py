"""How the command line fails and stays quiet: usage errors (exit 2) apart from failures (exit 1), one-line
messages, the libraries' warnings and log lines hidden unless ``--verbose``, and the resource flags checked."""
from __future__ import annotations

import argparse
import logging
import os
import warnings
from typing import NoReturn

from quantsr.runtime import VERBOSE_ENV

__all__ = ["QuietLibraries", "UsageError", "apply_resource_flags", "one_line", "OneLineParser"]



class UsageError(ValueError):
    """A command line that cannot work as given (exit code 2); the message names the flag to change."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points to --help instead of the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (library errors sometimes carry several)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, FileNotFoundError) and exc.filename and exc.filename not in text:
        text = f"{exc.filename}: {text}"
    return text or type(exc).__name__


class QuietLibraries:
    """Hide third-party warnings and log lines (coremltools version notes, FutureWarnings, torchao extension
    failures) for the duration of a command, unless ``verbose``; quantsr's own warnings still show."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self._warnings = warnings.catch_warnings()
        self._env: str | None = None
        self._tqdm: str | None = None

    def __enter__(self) -> QuietLibraries:
        self._warnings.__enter__()
        self._env = os.environ.get(VERBOSE_ENV)
        if self.verbose:
            os.environ[VERBOSE_ENV] = "1"
        else:
            os.environ.pop(VERBOSE_ENV, None)
            warnings.simplefilter("ignore")
            warnings.filterwarnings("default", module=r"quantsr(\.|$)")
            logging.disable(logging.WARNING)
            # coremltools' conversion bars: tqdm reads TQDM_* when imported; quantsr's own bars pass disable=None
            # (shown on a terminal only), which this default does not override.
            self._tqdm = os.environ.get("TQDM_DISABLE")
            os.environ["TQDM_DISABLE"] = "1"
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.verbose:
            logging.disable(logging.NOTSET)
            if self._tqdm is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = self._tqdm
        if self._env is None:
            os.environ.pop(VERBOSE_ENV, None)
        else:
            os.environ[VERBOSE_ENV] = self._env
        self._warnings.__exit__(*exc)


def apply_resource_flags(args: argparse.Namespace) -> None:
    """--threads for torch (ExecuTorch's pool is sized where a .pte is loaded) and a --device that exists."""
    threads = getattr(args, "threads", None)
    device = getattr(args, "device", None)
    if not threads and (device is None or device == "cpu"):
        return  # nothing to check: do not import torch for it
    import torch

    if threads:
        torch.set_num_threads(threads)
        if getattr(args, "command", None) in ("bench", "export"):  # they run .pte files through ExecuTorch
            from quantsr.runtime.pte import set_runtime_threads

            try:
                set_runtime_threads(threads)
            except ImportError:  # no ExecuTorch runtime: those commands say so themselves
                pass
    if device is None or device == "cpu":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {device} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: this machine has no CUDA device (or torch is the CPU build); "
                             "use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available here; use --device cpu")


