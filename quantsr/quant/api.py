"""``quantize_(model, config)``: swap a model's conv/linear layers for QuantSR+ quantized ones, in place.

Configs (torchao style, small dataclasses):

* :class:`QuantSRConfig` (``w_bits``, ``a_bits``, ``rounding``, ``weight_quantizer``): the paper's setting,
  only the body layers are quantized; head, tail and upsampler stay FP.
* :class:`W8A8Config`: every conv/linear at W8A8 (symmetric int8 weights by default).
* :class:`MixedConfig` (``body_bits=(w, a)``, ``rest_bits=(8, 8)``): body at low bits, every other conv/linear
  (head, conv_after_body, fusion convs, upsampler, tail) at int8: the fully-integer deployable model.

Which layers are "body" (METHOD.md, "Which layers are quantized"), by fully qualified name:

* Conv nets (EDSR, SRResNet, IMDN, RFDN, RLFN, CARN, SPAN, FSRCNN): every ``nn.Conv2d`` under ``body.``. This
  includes the attention convs inside the blocks (IMDN's CCA, RFDN/RLFN's ESA) and the blocks' own 1x1
  ``conv_fuse``: they are part of the residual body the paper quantizes, and leaving them FP would break the
  "body runs in b-bit integers" accounting. To keep them FP, pass
  ``filter_fn=lambda m, n: is_body_layer(m, n) and not any(s in n for s in (".esa.", ".cca."))``.
  Not quantized: ``conv_first``, top-level ``conv_fuse``, ``conv_after_body``, ``upsample*``/``upconv*``,
  ``conv_hr``, ``conv_last`` (and ConvTranspose2d, which is never swapped).
* SwinIR: every linear/conv under ``layers.{i}.`` (qkv, proj, fc1, fc2 of each block and the group's 3x3
  ``conv``), plus q, k, v and the softmax output of each attention whose ``qkv`` is quantized
  (``quantize_attention=True``). Patch embedding/LayerNorms/softmax/GELU/bias table, ``conv_first``,
  ``conv_after_body`` and ``upsample`` stay FP.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from quantsr.models.swinir import WindowAttention
from quantsr.quant.layers import QUANT_LAYERS, QConv2d, QLinear, is_quantized_attention, quantize_attention_
from quantsr.quant.quantizers import ROUNDINGS, WEIGHT_QUANTIZERS, ActQuantizer, _check_bits

__all__ = [
    "MixedConfig",
    "QuantSRConfig",
    "W8A8Config",
    "calibrate_",
    "is_body_layer",
    "quantize_",
    "quantized_layers",
]

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

    def __post_init__(self) -> None:
        _check_bits(self.w_bits)
        _check_bits(self.a_bits)
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

    def __post_init__(self) -> None:
        for bits in (*self.body_bits, *self.rest_bits):
            _check_bits(bits)

    def default_filter(self, module: nn.Module, fqn: str) -> bool:
        return _any_layer(module, fqn)

    def layer_config(self, module: nn.Module, fqn: str) -> QuantSRConfig:
        if is_body_layer(module, fqn):
            w, a = self.body_bits
            return QuantSRConfig(w, a, self.rounding, self.weight_quantizer, self.quantize_attention)
        w, a = self.rest_bits
        return QuantSRConfig(w, a, self.rounding, self.rest_weight_quantizer, self.quantize_attention)


Config = QuantSRConfig | W8A8Config | MixedConfig


def _set_submodule(model: nn.Module, fqn: str, new: nn.Module) -> None:
    parent_name, _, child = fqn.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def quantize_(model: nn.Module, config: Config, filter_fn: FilterFn | None = None) -> nn.Module:
    """Swap, in place, every ``nn.Conv2d``/``nn.Linear`` for which ``filter_fn(module, fqn)`` is True for a
    :class:`QConv2d`/:class:`QLinear` built by ``from_float`` with ``config.layer_config(module, fqn)``.

    ``filter_fn`` defaults to ``config.default_filter`` (QuantSRConfig: the body only; W8A8/Mixed: all layers).
    With ``config.quantize_attention``, each SwinIR ``WindowAttention`` whose ``qkv`` passes the filter gets
    :class:`ActQuantizer` s in its ``q_act``/``k_act``/``v_act``/``attn_act`` hooks (q, k, v, softmax output at
    that layer's ``a_bits``; see :func:`quantize_attention_`). Layers and attentions already quantized are left
    alone. Returns ``model`` (or the replacement, if ``model`` itself is a conv/linear).
    """
    filter_fn = filter_fn or config.default_filter

    if config.quantize_attention:
        attns = [
            (fqn, m)
            for fqn, m in model.named_modules()
            if isinstance(m, WindowAttention) and not is_quantized_attention(m)
        ]
        for fqn, attn in attns:
            qkv_name = f"{fqn}.qkv" if fqn else "qkv"
            if isinstance(attn.qkv, nn.Linear) and filter_fn(attn.qkv, qkv_name):
                spec = config.layer_config(attn.qkv, qkv_name)
                quantize_attention_(attn, spec.a_bits, spec.rounding)

    layers = [
        (fqn, m)
        for fqn, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, QUANT_LAYERS) and filter_fn(m, fqn)
    ]
    for fqn, module in layers:
        spec = config.layer_config(module, fqn)
        cls = QConv2d if isinstance(module, nn.Conv2d) else QLinear
        new = cls.from_float(module, spec)
        new.train(module.training)
        if not fqn:
            return new
        _set_submodule(model, fqn, new)
    return model


def quantized_layers(model: nn.Module) -> dict[str, tuple[int, int]]:
    """``{fqn: (w_bits, a_bits)}`` for every QConv2d/QLinear in ``model`` (for checks and ops/storage reports)."""
    return {fqn: (m.w_bits, m.a_bits) for fqn, m in model.named_modules() if isinstance(m, QUANT_LAYERS)}


@torch.no_grad()
def calibrate_(model: nn.Module, *inputs: torch.Tensor) -> nn.Module:
    """Initialise every not-yet-initialised :class:`ActQuantizer` with one forward on ``inputs`` (no gradient),
    then restore the train/eval mode of each module. Already initialised quantizers are unchanged."""
    modes = {m: m.training for m in model.modules()}
    try:
        for m in model.modules():
            if isinstance(m, ActQuantizer):
                m.train(True)
        model(*inputs)
    finally:
        for m, mode in modes.items():
            m.training = mode
    return model

