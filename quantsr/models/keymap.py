"""Checkpoint key conversion helpers: the regex rules each architecture's ``convert_checkpoint`` applies to map a
public checkpoint's key layout onto the module's, and the scale check of a pixel-shuffle upsampler."""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch

__all__ = ["Replacement", "block_index_rule", "check_upsample_scale", "convert_reference", "remap_keys"]

Replacement = str | Callable[[re.Match[str]], str]


def remap_keys(state_dict: dict[str, torch.Tensor], rules: Sequence[tuple[str, Replacement]]) -> dict:
    """Strip a DataParallel ``module.`` prefix, then apply every regex rule in order to each key."""
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new_key = key.removeprefix("module.")
        for pattern, repl in compiled:
            new_key = pattern.sub(repl, new_key)
        out[new_key] = value
    return out


def block_index_rule(old_prefix: str, new_prefix: str = "body") -> tuple[str, Replacement]:
    """Rule turning the references' 1-based ``IMDB3.`` / ``B3.`` attributes into ``body.2.``."""
    return (rf"^{old_prefix}(\d+)\.", lambda m: f"{new_prefix}.{int(m.group(1)) - 1}.")


def check_upsample_scale(
    state_dict: dict[str, torch.Tensor], key: str, scale: int, out_ch: int = 3, name: str = "model"
) -> None:
    """Fail with a readable message when a checkpoint's pixel-shuffle conv was trained for another scale."""
    weight = state_dict.get(key)
    if weight is None:
        return  # let load_state_dict report the missing key
    expected = out_ch * scale * scale
    if weight.shape[0] != expected:
        found = (weight.shape[0] / out_ch) ** 0.5
        raise ValueError(
            f"{name} checkpoint upsampler has {weight.shape[0]} output channels (x{found:g}), "
            f"but the model is x{scale} ({expected} channels); check --scale"
        )


def convert_reference(state_dict: dict[str, torch.Tensor], block_prefix: str,
                      block_rules: Sequence[tuple[str, Replacement]], scale: int, name: str,
                      img_range: float | None = None) -> dict[str, torch.Tensor]:
    """The key conversion the distillation-family reference files (IMDN, RFDN, RLFN) share: ``fea_conv`` ->
    ``conv_first``, ``<block_prefix>N`` -> ``body.N-1``, ``c.0`` -> ``conv_fuse``, ``LR_conv`` ->
    ``conv_after_body``, ``upsampler`` -> ``upsample``, then the architecture's ``block_rules``; the upsampler's
    scale is checked, and ``img_range`` (a buffer the reference models lack) is supplied when given, so a plain
    strict ``load_state_dict`` works too."""
    state = remap_keys(state_dict, [
        (r"^fea_conv\.", "conv_first."),
        block_index_rule(block_prefix),
        (r"^c\.0\.", "conv_fuse."),
        (r"^LR_conv\.", "conv_after_body."),
        (r"^upsampler\.", "upsample."),
        *block_rules,
    ])
    check_upsample_scale(state, "upsample.0.weight", scale, name=name)
    if img_range is not None:
        state.setdefault("img_range", torch.tensor(img_range))
    return state
