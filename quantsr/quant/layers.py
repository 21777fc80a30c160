"""Quantized layers: ``QConv2d`` / ``QLinear`` (activation-quantized input x quantized weight, FP bias) and
:func:`quantize_attention_` (activation quantizers in the operand hooks an architecture declares, e.g. SwinIR window
attention's q, k, v and softmax output).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from quantsr.models.hooks import OperandHooks
from quantsr.quant.quantizers import ActQuantizer, make_weight_quantizer

if TYPE_CHECKING:  # pragma: no cover
    from quantsr.quant.configs import QuantSRConfig

__all__ = ["QUANT_LAYERS", "QConv2d", "QLinear", "is_quantized_attention", "quantize_attention_"]


class _QuantMixin:
    """Shared parts of QConv2d / QLinear; the subclass sets ``_channel_dim`` and ``_in_features``."""

    weight: nn.Parameter
    w_bits: int
    a_bits: int

    def _setup_quantizers(
        self, w_bits: int, a_bits: int, rounding: str, weight_quantizer: str, in_features: int, channel_dim: int,
        weight_granularity: str = "per_tensor",
    ) -> None:
        self.w_bits, self.a_bits = w_bits, a_bits
        wq = make_weight_quantizer(weight_quantizer, w_bits, self.weight, weight_granularity)
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
                    a_bits=config.a_bits, rounding=config.rounding, weight_quantizer=config.weight_quantizer,
                    weight_granularity=config.weight_granularity)

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
        weight_granularity: str = "per_tensor",
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._setup_quantizers(w_bits, a_bits, rounding, weight_quantizer, self.in_channels, channel_dim=-3,
                               weight_granularity=weight_granularity)

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
        weight_granularity: str = "per_tensor",
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._setup_quantizers(w_bits, a_bits, rounding, weight_quantizer, in_features, channel_dim=-1,
                               weight_granularity=weight_granularity)

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


def quantize_attention_(attn: OperandHooks, a_bits: int, rounding: str = "ste") -> OperandHooks:
    """Put activation quantizers into the operand hooks of ``attn`` (a module with
    :class:`~quantsr.models.hooks.OperandHooks`, e.g. SwinIR's window attention: ``q_act``/``k_act`` before QK^T,
    ``attn_act`` (softmax output) and ``v_act`` before AV), in place (docs/method.md, "Which layers are
    quantized"). Each hook's :class:`~quantsr.models.hooks.HookSpec` gives its channel count and dim and whether it
    gets a shift tau. The new quantizers follow ``attn``'s device, dtype and train/eval mode. Returns ``attn``.
    """
    ref = next(attn.parameters())
    for name, spec in attn.operand_hooks().items():
        q = ActQuantizer(a_bits, spec.features, channel_dim=spec.channel_dim, rounding=rounding,
                         redistribute=spec.redistribute)
        setattr(attn, name, q.to(device=ref.device, dtype=ref.dtype).train(attn.training))
    return attn


def is_quantized_attention(attn: nn.Module) -> bool:
    """True when ``attn`` has operand hooks that already carry activation quantizers."""
    return isinstance(attn, OperandHooks) and any(
        isinstance(attn.get_submodule(name), ActQuantizer) for name in attn.operand_hooks()
    )
