"""Quantized layers: ``QConv2d`` / ``QLinear`` (activation-quantized input x quantized weight, FP bias) and
``QWindowAttention`` (SwinIR window attention with q, k, v and the softmax output activation-quantized).
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

__all__ = ["QUANT_LAYERS", "QConv2d", "QLinear", "QWindowAttention"]


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
            device=module.weight.device,
            dtype=module.weight.dtype,
            w_bits=config.w_bits,
            a_bits=config.a_bits,
            rounding=config.rounding,
            weight_quantizer=config.weight_quantizer,
        )
        _copy_params(module, new)
        return new

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, w_bits={self.w_bits}, a_bits={self.a_bits}"


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
            device=module.weight.device,
            dtype=module.weight.dtype,
            w_bits=config.w_bits,
            a_bits=config.a_bits,
            rounding=config.rounding,
            weight_quantizer=config.weight_quantizer,
        )
        _copy_params(module, new)
        return new

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, w_bits={self.w_bits}, a_bits={self.a_bits}"


@torch.no_grad()
def _copy_params(src: nn.Module, dst: _QuantMixin) -> None:
    dst.weight.copy_(src.weight)
    dst.weight.requires_grad_(src.weight.requires_grad)
    if src.bias is not None:
        dst.bias.copy_(src.bias)
        dst.bias.requires_grad_(src.bias.requires_grad)
    dst.reset_step()


QUANT_LAYERS = (QConv2d, QLinear)


class QWindowAttention(WindowAttention):
    """SwinIR window attention with activation quantizers at the matmul inputs (METHOD.md, SwinIR-S):
    ``q_quant``/``k_quant`` before QK^T, ``attn_quant`` (softmax output) and ``v_quant`` before AV.

    q, k, v (B*heads, N, d) get a per-head-dim tau on the last dim (shared by the heads); q is quantized after
    the 1/sqrt(d) scaling, i.e. exactly as it enters the matmul. The softmax output gets no tau (its rows are
    probabilities; a shift would only add a constant times sum(v)), so it is decided unsigned at init.
    The forward mirrors ``WindowAttention.forward`` (``quantsr/models/swinir.py`` offers no hook for the matmul
    inputs); tests check that with identity quantizers both agree, so a change there shows up.
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, a_bits: int = 4, rounding: str = "ste") -> None:
        super().__init__(dim, window_size, num_heads)
        d = dim // num_heads
        self.a_bits = a_bits
        self.q_quant = ActQuantizer(a_bits, d, channel_dim=-1, rounding=rounding)
        self.k_quant = ActQuantizer(a_bits, d, channel_dim=-1, rounding=rounding)
        self.v_quant = ActQuantizer(a_bits, d, channel_dim=-1, rounding=rounding)
        self.attn_quant = ActQuantizer(a_bits, 1, channel_dim=-1, rounding=rounding, redistribute=False)

    @classmethod
    def from_float(cls, attn: WindowAttention, a_bits: int, rounding: str = "ste") -> QWindowAttention:
        """Wrap ``attn``: its qkv/proj modules and bias table are reused (not copied)."""
        new = cls(attn.dim, attn.window_size, attn.num_heads, a_bits=a_bits, rounding=rounding)
        new.qkv = attn.qkv
        new.proj = attn.proj
        new.relative_position_bias_table = attn.relative_position_bias_table
        new.relative_position_index = attn.relative_position_index
        ref = attn.relative_position_bias_table
        for m in (new.q_quant, new.k_quant, new.v_quant, new.attn_quant):
            m.to(device=ref.device, dtype=ref.dtype)
        new.train(attn.training)
        return new

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        bw, n, c = x.shape
        qkv = self.qkv(x)
        q = self.q_quant(self._heads(qkv[..., :c]) * self.scale)
        k = self.k_quant(self._heads(qkv[..., c : 2 * c]))
        v = self.v_quant(self._heads(qkv[..., 2 * c :]))
        attn = torch.bmm(q, k.transpose(1, 2)).reshape(bw, self.num_heads, n, n)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        bias = bias.reshape(n, n, self.num_heads).permute(2, 0, 1)
        if mask is None:
            attn = attn + bias
        else:
            nw = mask.shape[0]
            attn = attn.reshape(-1, nw, self.num_heads, n, n) + (bias[None] + mask[:, None])[None]
        attn = self.attn_quant(torch.softmax(attn.reshape(bw * self.num_heads, n, n), dim=-1))
        out = torch.bmm(attn, v).reshape(bw, self.num_heads, n, c // self.num_heads)
        return self.proj(out.permute(0, 2, 1, 3).reshape(bw, n, c))
