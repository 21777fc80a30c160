"""``quantize_(model, config)``: swap a model's conv/linear layers for QuantSR+ quantized ones, in place
(configs: :mod:`quantsr.quant.configs`), and ``calibrate_``: the activation steps' LSQ initialisation."""
from __future__ import annotations

import torch
from torch import nn

from quantsr.models.hooks import OperandHooks
from quantsr.quant.configs import Config, FilterFn
from quantsr.quant.layers import QUANT_LAYERS, QConv2d, QLinear, is_quantized_attention, quantize_attention_
from quantsr.quant.quantizers import ActQuantizer

__all__ = ["calibrate_", "quantize_", "quantized_layers"]


def _set_submodule(model: nn.Module, fqn: str, new: nn.Module) -> None:
    parent_name, _, child = fqn.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def quantize_(model: nn.Module, config: Config, filter_fn: FilterFn | None = None) -> nn.Module:
    """Swap, in place, every ``nn.Conv2d``/``nn.Linear`` for which ``filter_fn(module, fqn)`` is True for a
    :class:`QConv2d`/:class:`QLinear` built by ``from_float`` with ``config.layer_config(module, fqn)``.

    ``filter_fn`` defaults to ``config.default_filter`` (QuantSRConfig: the body only; W8A8/Mixed: all layers).
    With ``config.quantize_attention``, each module with operand hooks (:class:`~quantsr.models.hooks.OperandHooks`,
    e.g. SwinIR's window attention) whose gate layer (``qkv``) passes the filter gets :class:`ActQuantizer` s in
    its hooks (q, k, v, softmax output at that layer's ``a_bits``; see :func:`quantize_attention_`). Layers and
    attentions already quantized are left
    alone. Returns ``model`` (or the replacement, if ``model`` itself is a conv/linear).
    """
    filter_fn = filter_fn or config.default_filter

    if config.quantize_attention:
        attns = [
            (fqn, m)
            for fqn, m in model.named_modules()
            if isinstance(m, OperandHooks) and not is_quantized_attention(m)
        ]
        for fqn, attn in attns:
            gate_name = f"{fqn}.{attn.gate_layer}" if fqn else attn.gate_layer
            gate = attn.get_submodule(attn.gate_layer)
            if isinstance(gate, nn.Linear) and filter_fn(gate, gate_name):
                spec = config.layer_config(gate, gate_name)
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

