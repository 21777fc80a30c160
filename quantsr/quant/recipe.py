"""The quantization recipe: the small, versioned description of a low-bit checkpoint's architecture.

A QAT checkpoint stores its recipe (``QuantRecipe.to_dict()``) in its metadata; loading rebuilds exactly that
architecture (:func:`build_quantized_`) before the weights go in. Training settings (iterations, lr, batch, ...)
are not part of it: they live in :class:`quantsr.qat.config.TrainRecipe` and are saved only for resuming, so a
renamed training flag never breaks a shipped checkpoint. Bump :data:`RECIPE_VERSION` when a field's meaning
changes and teach :meth:`QuantRecipe.from_dict` to read the old form.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn

from quantsr.models.slimmable import make_slimmable_, slimmable_blocks
from quantsr.quant.call_sites import untie_call_sites_
from quantsr.quant.concat import concat_inputs, segment_concat_steps_
from quantsr.quant.configs import MixedConfig, QuantSRConfig
from quantsr.quant.quantize import quantize_
from quantsr.quant.quantizers import ROUNDINGS, WEIGHT_GRANULARITIES, WEIGHT_QUANTIZERS, _check_bits

__all__ = ["RECIPE_VERSION", "QuantRecipe", "build_quantized_"]

RECIPE_VERSION = 1
LAYER_SETS = ("body",)  # which layers get ``w_bits``/``a_bits`` (the rest: ``head_tail_bits``)
HEAD_TAIL_BITS = (8, 32)


@dataclass(frozen=True)
class QuantRecipe:
    """What a low-bit checkpoint's architecture is.

    * ``w_bits`` / ``a_bits``: the body's weight and activation bits.
    * ``weight_quantizer``: ``"rbd"`` (QuantSR+) or ``"lsq"`` (plain LSQ, same levels).
    * ``weight_granularity``: one weight step per tensor (``"per_tensor"``, the paper's setting) or per output
      channel (``"per_channel"``; ``"per_channel_oriented"``: each channel's step starts with the sign whose
      asymmetric grid fits it better), in every quantized layer.
    * ``rounding``: the activation rounding gradient, ``"ste"`` or ``"soft"`` (a training choice that also
      selects the quantizer module, so it is recorded here).
    * ``layers``: which layers are low-bit (``"body"``: docs/method.md, "Which layers are quantized").
    * ``head_tail_bits``: 32 (FP head/tail/upsampler, the paper's accounting) or 8 (int8, deployable).
    * ``concat_steps``: one activation step per branch at the input of each conv over a channel concat (the
      fusion convs; :mod:`quantsr.quant.concat`), as the deployed graph's split concat has; off: one step.
    * ``call_site_steps``: a block the network runs several times with one set of weights (CARN-M's recursive
      residual block) gets its own activation quantizers at each call (:mod:`quantsr.quant.call_sites`); off:
      one quantizer per layer, shared by its calls.
    * ``qsa_keep``: QSA's target block count (None: no learned slimming); ``skip_blocks``: body blocks skipped
      from the start (fixed slimming). Either makes the body slimmable; the blocks QSA pruned are recorded in the
      state dict (each block's ``skipped`` flag).
    """

    w_bits: int = 4
    a_bits: int = 4
    weight_quantizer: str = "rbd"
    weight_granularity: str = "per_tensor"
    rounding: str = "ste"
    layers: str = "body"
    head_tail_bits: int = 32
    concat_steps: bool = False
    call_site_steps: bool = False
    qsa_keep: int | None = None
    skip_blocks: tuple[int, ...] = ()  # any iterable (or None) on input, a tuple after construction
    version: int = field(default=RECIPE_VERSION)

    def __post_init__(self) -> None:
        _check_bits(self.w_bits)
        _check_bits(self.a_bits)
        _check_version(self.version)
        for name, value, allowed in (("weight_quantizer", self.weight_quantizer, WEIGHT_QUANTIZERS),
                                     ("weight_granularity", self.weight_granularity, WEIGHT_GRANULARITIES),
                                     ("rounding", self.rounding, ROUNDINGS), ("layers", self.layers, LAYER_SETS),
                                     ("head_tail_bits", self.head_tail_bits, HEAD_TAIL_BITS)):
            if value not in allowed:
                raise ValueError(f"quantization recipe: {name} must be one of {allowed}, got {value!r}")
        if self.qsa_keep is not None and self.qsa_keep < 1:
            raise ValueError(f"quantization recipe: qsa_keep must be >= 1, got {self.qsa_keep}")
        object.__setattr__(self, "skip_blocks", tuple(int(b) for b in self.skip_blocks or ()))

    @property
    def slimmable(self) -> bool:
        return self.qsa_keep is not None or bool(self.skip_blocks)

    def quant_config(self) -> QuantSRConfig | MixedConfig:
        """The :func:`quantize_` config this recipe builds with."""
        if self.head_tail_bits == 8:
            return MixedConfig(body_bits=(self.w_bits, self.a_bits), rounding=self.rounding,
                               weight_quantizer=self.weight_quantizer, weight_granularity=self.weight_granularity)
        return QuantSRConfig(self.w_bits, self.a_bits, self.rounding, self.weight_quantizer,
                             weight_granularity=self.weight_granularity)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["skip_blocks"] = list(self.skip_blocks)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantRecipe:
        """Read a saved recipe; a newer version or an unknown field is a clear error, not a silent guess."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        _check_version(data.get("version", RECIPE_VERSION))
        if unknown:
            raise ValueError(f"quantization recipe has unknown fields {unknown}; was it written by a newer quantsr?")
        return cls(**data)

    @classmethod
    def from_legacy_qat(cls, qat: dict[str, Any]) -> QuantRecipe:
        """The recipe of a checkpoint written before recipes were versioned: its metadata held the whole
        training config (quantsr 0.1's ``QATConfig``: 24 fields) under ``"qat"``; only the architecture-defining
        ones matter."""
        return cls(w_bits=int(qat.get("w_bits", 4)), a_bits=int(qat.get("a_bits", 4)),
                   weight_quantizer=qat.get("weight_quantizer", "rbd"), rounding=qat.get("rounding", "ste"),
                   head_tail_bits=8 if qat.get("rest_int8") else 32, qsa_keep=qat.get("qsa_keep"),
                   skip_blocks=qat.get("skip_blocks"))


def _check_version(version: Any) -> None:
    if version != RECIPE_VERSION:
        raise ValueError(f"quantization recipe version {version} is not readable by this quantsr (it reads "
                         f"version {RECIPE_VERSION}); upgrade quantsr")


def build_quantized_(net: nn.Module, recipe: QuantRecipe) -> nn.Module:
    """Turn an FP model into the recipe's architecture in place: slimmable blocks (skipping ``skip_blocks``) if
    the recipe slims, then quantized layers (and the shared blocks' calls untied, with ``call_site_steps``).
    Returns the model."""
    if recipe.slimmable:
        make_slimmable_(net)
    blocks = slimmable_blocks(net)
    for index in recipe.skip_blocks:
        if not 0 <= index < len(blocks):
            raise ValueError(f"skip_blocks: block {index} does not exist (the body has {len(blocks)} blocks)")
        blocks[index].skip_()
    parts = {}
    if recipe.concat_steps:  # found on the FP net (one forward), applied to the quantized one
        example = net.example_inputs()[0] if hasattr(net, "example_inputs") else torch.rand(1, 3, 16, 16)
        parts = concat_inputs(net, example)
    net = quantize_(net, recipe.quant_config())
    segment_concat_steps_(net, parts)
    if recipe.call_site_steps:
        untie_call_sites_(net)
    return net
