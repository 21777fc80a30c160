"""What ``--resume`` may change: the settings a run saved in its ``last.pt`` against the flags given now.

A resumed run is the saved run: a flag not given takes its saved value, a flag given with the saved value is
fine, and a flag given with another value is refused (the run would silently become something its checkpoint
and model card do not describe) unless it is one of the few a run may change midway, such as ``--iterations``
to extend it. Standard library only: the command line checks before it loads any model.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["TRAIN_DEFAULTS", "TRAIN_RESUMABLE", "cli_flag", "merge_resume_settings"]

# `quantsr train`'s settings when neither the command line nor a resumed run gives them (``None``: resolved by
# the command from the others: scale 4, the T91 + BSD200 training folders, milestones at 50/80/90/95%).
TRAIN_DEFAULTS: dict[str, Any] = {
    "model": None, "scale": None, "model_kwargs": {}, "init_weights": None, "iterations": 10000, "batch_size": 16,
    "lr_patch": 48, "lr": 2e-4, "milestones": None, "gamma": 0.5, "val_every": 1000, "checkpoint_every": 500,
    "train_dirs": None, "val_sets": ["Set5"], "data_root": None, "bf16": False, "channels_last": False,
    "seed": 0, "device": "cpu",
}
# The `quantsr train` settings a resumed run may change: how long it runs, how often it reports, where it runs.
TRAIN_RESUMABLE = frozenset({"iterations", "val_every", "checkpoint_every", "device"})


def cli_flag(name: str) -> str:
    """The command-line flag of a setting: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def merge_resume_settings(saved: Mapping[str, Any] | None, given: Mapping[str, Any], *, source: str,
                          allowed: Collection[str] = (), reached: int | None = None,
                          flags: Mapping[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The settings of a resumed run and the lines to print about it.

    ``saved``: the settings in ``source`` (None: a checkpoint from before settings were saved; then ``given`` is
    used unchecked, with a note). ``given``: the settings passed explicitly now. A given setting that differs from
    its saved value raises ValueError naming its flag (``flags[name]``, else ``--name-with-dashes``), unless it is
    in ``allowed``; ``iterations`` must then also be above ``reached``, the iteration the run got to. Settings not
    saved (added since) are taken from ``given`` unchecked.
    """
    if saved is None:
        return dict(given), [f"note: {source} holds no saved run settings (an older quantsr wrote it), so the "
                             "flags given now cannot be checked against the run's"]
    flags = flags or {}
    merged, changes = dict(saved), []
    for name, value in given.items():
        if name not in saved:
            merged[name] = value
            continue
        if _same(value, saved[name]):  # keep the saved form (a list stays a list)
            continue
        label = flags.get(name, cli_flag(name))
        if name not in allowed:
            raise ValueError(f"{label} {_show(value)} differs from the run's {_show(saved[name])} saved in {source}; "
                             f"drop {label.split()[0]} to keep it, or start a new --out")
        if name == "iterations" and reached is not None and value <= reached:
            raise ValueError(f"{label} {value} is not above iteration {reached}, already reached in {source}; pass "
                             f"a larger {label.split()[0]} to extend the run, or drop it")
        merged[name] = value
        changes.append(f"{label} {_show(value)} (was {_show(saved[name])})")
    return merged, changes


def _same(a: Any, b: Any) -> bool:
    # A checkpoint round-trips tuples as lists; compare the values, not the containers.
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _show(value: Any) -> str:
    """A value as it would be typed on the command line."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "{}"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) or "[]"
    return str(value)
