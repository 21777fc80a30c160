"""Quantized layers: ``QConv2d`` / ``QLinear`` (activation-quantized input x quantized weight, FP bias) and
:func:`quantize_attention_` (SwinIR window attention with q, k, v and the softmax output activation-quantized,
through ``WindowAttention``'s ``q_act``/``k_act``/``v_act``/``attn_act`` hooks).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from quantsr.models.swinir import WindowAttention
from quantsr.quant.quantizers import ActQuantizer, make_weight_quantizer

if TYPE_CHECKING:  # pragma: no cover
    from quantsr.quant.api import QuantSRConfig

__all__ = ["QUANT_LAYERS", "QConv2d", "QLinear", "is_quantized_attention", "quantize_attention_"]


class _QuantMixin:
    """Shared parts of QConv2d / QLinear; the subclass sets ``_channel_dim`` and ``_in_features``."""

    weight: nn.Parameter
    w_bits: int
    a_bits: int

    def _setup_quantizers(
        self, w_bits: int, a_bits: int, rounding: str, weight_quantizer: str, in_features: int, channel_dim: int
    ) -> None:
        self.w_bits, self.a_bits = w_bits, a_bits
        wq = make_weight_quantizer(weight_quantizer, w_bits, self.weight)
        aq = ActQuantizer(a_bits, in_features, channel_dim=channel_dim, rounding=rounding)
        self.weight_quantizer = wq.to(device=self.weight.device, dtype=self.weight.dtype)
        self.act_quantizer = aq.to(device=self.weight.device, dtype=self.weight.dtype)

    def reset_step(self) -> None:
        """Re-initialise the weight step from the current weight (e.g. after loading FP weights in place)."""
        self.weight_quantizer.init_from(self.weight)

    def quantized_weight(self) -> torch.Tensor:
        """The fake-quantized weight used in forward."""
        return self.weight_quantizer(self.weight)

    def integer_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(int32 levels, step)`` with ``quantized_weight() == step * levels`` (for export)."""
        return self.weight_quantizer.integer_weight(self.weight)

    @staticmethod
    def _from_float_kwargs(module: nn.Module, config: QuantSRConfig) -> dict:
        """Keyword arguments shared by every ``from_float``: placement of ``module`` and the quantizer settings."""
        return dict(device=module.weight.device, dtype=module.weight.dtype, w_bits=config.w_bits,
                    a_bits=config.a_bits, rounding=config.rounding, weight_quantizer=config.weight_quantizer)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, w_bits={self.w_bits}, a_bits={self.a_bits}"


class QConv2d(_QuantMixin, nn.Conv2d):
    """``nn.Conv2d`` whose input goes through an :class:`ActQuantizer` (tau per input channel, dim -3) and whose
    weight goes through an RBD (or LSQ) weight quantizer; the bias stays full precision."""

    def __init__(
        self,
        *args,
        w_bits: int = 4,
        a_bits: int = 4,
        rounding: str = "ste",
        weight_quantizer: str = "rbd",
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._setup_quantizers(w_bits, a_bits, rounding, weight_quantizer, self.in_channels, channel_dim=-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.act_quantizer(x), self.weight_quantizer(self.weight), self.bias)

    @classmethod
    def from_float(cls, module: nn.Conv2d, config: QuantSRConfig) -> QConv2d:
        """A QConv2d with ``module``'s hyper-parameters and a copy of its weight/bias; step init from the weight."""
        new = cls(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=module.groups,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
            **cls._from_float_kwargs(module, config),
        )
        _copy_params(module, new)
        return new


class QLinear(_QuantMixin, nn.Linear):
    """``nn.Linear`` with a quantized input (tau per input feature, last dim) and a quantized weight."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        w_bits: int = 4,
        a_bits: int = 4,
        rounding: str = "ste",
        weight_quantizer: str = "rbd",
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._setup_quantizers(w_bits, a_bits, rounding, weight_quantizer, in_features, channel_dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.act_quantizer(x), self.weight_quantizer(self.weight), self.bias)

    @classmethod
    def from_float(cls, module: nn.Linear, config: QuantSRConfig) -> QLinear:
        new = cls(
            module.in_features,
            module.out_features,
            bias=module.bias is not None,
            **cls._from_float_kwargs(module, config),
        )
        _copy_params(module, new)
        return new


@torch.no_grad()
def _copy_params(src: nn.Module, dst: _QuantMixin) -> None:
    dst.weight.copy_(src.weight)
    dst.weight.requires_grad_(src.weight.requires_grad)
    if src.bias is not None:
        dst.bias.copy_(src.bias)
        dst.bias.requires_grad_(src.bias.requires_grad)
    dst.reset_step()


QUANT_LAYERS = (QConv2d, QLinear)


def quantize_attention_(attn: WindowAttention, a_bits: int, rounding: str = "ste") -> WindowAttention:
    """Put activation quantizers at a SwinIR :class:`WindowAttention`'s matmul inputs, in place (METHOD.md,
    SwinIR-S): ``q_act``/``k_act`` before QK^T, ``attn_act`` (softmax output) and ``v_act`` before AV.

    q, k, v (B*heads, N, d) get a per-head-dim tau on the last dim (shared by the heads); q is quantized after
    the 1/sqrt(d) scaling, i.e. exactly as it enters the matmul. The softmax output gets no tau (its rows are
    probabilities; a shift would only add a constant times sum(v)), so it is decided unsigned at init. The new
    quantizers follow ``attn``'s device, dtype and train/eval mode. Returns ``attn``.
    """
    d = attn.dim // attn.num_heads
    ref = attn.relative_position_bias_table
    quantizers = {
        "q_act": ActQuantizer(a_bits, d, channel_dim=-1, rounding=rounding),
        "k_act": ActQuantizer(a_bits, d, channel_dim=-1, rounding=rounding),
        "v_act": ActQuantizer(a_bits, d, channel_dim=-1, rounding=rounding),
        "attn_act": ActQuantizer(a_bits, 1, channel_dim=-1, rounding=rounding, redistribute=False),
    }
    for name, q in quantizers.items():
        setattr(attn, name, q.to(device=ref.device, dtype=ref.dtype).train(attn.training))
    return attn


def is_quantized_attention(attn: nn.Module) -> bool:
    """True when ``attn`` is a :class:`WindowAttention` whose matmul inputs already carry activation quantizers."""
    return isinstance(attn, WindowAttention) and any(
        isinstance(getattr(attn, name, None), ActQuantizer) for name in WindowAttention.ACT_HOOKS
    )
