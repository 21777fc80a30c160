"""Quantization configs (torchao style, small dataclasses) and which layers are "body".

* :class:`QuantSRConfig` (``w_bits``, ``a_bits``, ``rounding``, ``weight_quantizer``): the paper's setting,
  only the body layers are quantized; head, tail and upsampler stay FP.
* :class:`W8A8Config`: every conv/linear at W8A8 (symmetric int8 weights by default).
* :class:`MixedConfig` (``body_bits=(w, a)``, ``rest_bits=(8, 8)``): body at low bits, every other conv/linear
  (head, conv_after_body, fusion convs, upsampler, tail) at int8: the fully-integer deployable model.

Which layers are "body" (docs/method.md, "Which layers are quantized"), by fully qualified name:

* Conv nets (EDSR, SRResNet, IMDN, RFDN, RLFN, CARN, SPAN, FSRCNN): every ``nn.Conv2d`` under ``body.``. This
  includes the attention convs inside the blocks (IMDN's CCA, RFDN/RLFN's ESA) and the blocks' own 1x1
  ``conv_fuse``: they are part of the residual body the paper quantizes, and leaving them FP would break the
  "body runs in b-bit integers" accounting. To keep them FP, pass
  ``filter_fn=lambda m, n: is_body_layer(m, n) and not any(s in n for s in (".esa.", ".cca."))``.
  Not quantized: ``conv_first``, top-level ``conv_fuse``, ``conv_after_body``, ``upsample*``/``upconv*``,
  ``conv_hr``, ``conv_last`` (and ConvTranspose2d, which is never swapped).
* SwinIR: every linear/conv under ``layers.{i}.`` (qkv, proj, fc1, fc2 of each block and the group's 3x3
  ``conv``), plus the operands each attention hooks (q, k, v and the softmax output) when its ``qkv`` is
  quantized (``quantize_attention=True``). Patch embedding/LayerNorms/softmax/GELU/bias table, ``conv_first``,
  ``conv_after_body`` and ``upsample`` stay FP.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from quantsr.quant.quantizers import ROUNDINGS, WEIGHT_QUANTIZERS, _check_bits, _check_granularity

__all__ = ["BODY_PREFIXES", "Config", "FilterFn", "MixedConfig", "QuantSRConfig", "W8A8Config", "is_body_layer"]

FilterFn = Callable[[nn.Module, str], bool]
BODY_PREFIXES = ("body", "layers")


def is_body_layer(module: nn.Module, fqn: str) -> bool:
    """True for conv/linear layers inside the residual body (``body.*`` conv nets, ``layers.*`` SwinIR)."""
    return isinstance(module, (nn.Conv2d, nn.Linear)) and fqn.split(".", 1)[0] in BODY_PREFIXES


def _any_layer(module: nn.Module, fqn: str) -> bool:
    return isinstance(module, (nn.Conv2d, nn.Linear))


@dataclass
class QuantSRConfig:
    """QuantSR+ quantization of the body: RBD weights (``"rbd"``; ``"lsq"`` = plain LSQ with the same levels,
    ``"lsq_sym"`` = symmetric LSQ) and redistributed LSQ activations with ``"ste"`` or ``"soft"`` rounding.

    Also the per-layer setting that :meth:`QConv2d.from_float` / :meth:`QLinear.from_float` take.
    """

    w_bits: int = 4
    a_bits: int = 4
    rounding: str = "ste"
    weight_quantizer: str = "rbd"
    quantize_attention: bool = True
    weight_granularity: str = "per_tensor"  # "per_channel" / "per_channel_oriented": one step per output channel

    def __post_init__(self) -> None:
        _check_bits(self.w_bits)
        _check_bits(self.a_bits)
        _check_granularity(self.weight_granularity)
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, got {self.rounding!r}")
        if self.weight_quantizer not in WEIGHT_QUANTIZERS:
            raise ValueError(f"weight_quantizer must be one of {WEIGHT_QUANTIZERS}, got {self.weight_quantizer!r}")

    def default_filter(self, module: nn.Module, fqn: str) -> bool:
        return is_body_layer(module, fqn)

    def layer_config(self, module: nn.Module, fqn: str) -> QuantSRConfig:
        return self


@dataclass
class W8A8Config:
    """Every conv/linear layer (and SwinIR attention matmuls) at 8-bit weights and activations."""

    rounding: str = "ste"
    weight_quantizer: str = "lsq_sym"
    quantize_attention: bool = True

    def default_filter(self, module: nn.Module, fqn: str) -> bool:
        return _any_layer(module, fqn)

    def layer_config(self, module: nn.Module, fqn: str) -> QuantSRConfig:
        return QuantSRConfig(8, 8, self.rounding, self.weight_quantizer, self.quantize_attention)


@dataclass
class MixedConfig:
    """Body layers at ``body_bits = (w, a)`` with ``weight_quantizer``; every other conv/linear at
    ``rest_bits`` (int8 by default) with ``rest_weight_quantizer``."""

    body_bits: tuple[int, int] = (4, 4)
    rest_bits: tuple[int, int] = (8, 8)
    rounding: str = "ste"
    weight_quantizer: str = "rbd"
    rest_weight_quantizer: str = "lsq_sym"
    quantize_attention: bool = True
    weight_granularity: str = "per_tensor"  # of every layer, body and rest

    def __post_init__(self) -> None:
        for bits in (*self.body_bits, *self.rest_bits):
            _check_bits(bits)
        _check_granularity(self.weight_granularity)

    def default_filter(self, module: nn.Module, fqn: str) -> bool:
        return _any_layer(module, fqn)

    def layer_config(self, module: nn.Module, fqn: str) -> QuantSRConfig:
        if is_body_layer(module, fqn):
            w, a = self.body_bits
            return QuantSRConfig(w, a, self.rounding, self.weight_quantizer, self.quantize_attention,
                                 self.weight_granularity)
        w, a = self.rest_bits
        return QuantSRConfig(w, a, self.rounding, self.rest_weight_quantizer, self.quantize_attention,
                             self.weight_granularity)


Config = QuantSRConfig | W8A8Config | MixedConfig
