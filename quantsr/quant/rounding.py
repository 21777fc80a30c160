"""Rounding with surrogate gradients (STE, QuantSR's tanh soft rounding), the clip-STE sign of RBD's bit planes,
and LSQ's step-size gradient scale.

Step-size gradient scaling. The method writes ``a' = (a - a*g).detach() + a*g``. We compute the same thing as
``a.detach() + (a*g - (a*g).detach())``: identical gradient (g), but the forward value is *exactly* ``a`` (x - x
is exactly 0 in floating point, whereas (a - a*g) + a*g can be off by one ulp), so ``step * integer_levels``
reproduces the fake-quantized weights bit for bit at export.
"""
from __future__ import annotations

import math

import torch

__all__ = ["grad_scale", "round_soft", "round_ste", "sign_clip_ste", "soft_round_grad"]


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor) -> torch.Tensor:
        return torch.round(u)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def soft_round_grad(u: torch.Tensor, k: float = 1.0) -> torch.Tensor:
    """QuantSR's tanh surrogate derivative: ``k (1 - tanh^2(k (frac(u) - 1/2))) / (2 tanh(k/2))``.

    It is the derivative of ``floor(u) + 1/2 + tanh(k (frac(u) - 1/2)) / (2 tanh(k/2))``, a smooth staircase
    that passes through the integers; its mean over one period is 1 (as the STE's).
    """
    frac = u - torch.floor(u)
    th = torch.tanh(k * (frac - 0.5))
    return k * (1.0 - th * th) / (2.0 * math.tanh(k / 2.0))


class _RoundSoft(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor, k: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.k = k
        return torch.round(u)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (u,) = ctx.saved_tensors
        return grad * soft_round_grad(u, ctx.k), None


def round_ste(u: torch.Tensor) -> torch.Tensor:
    """``round(u)`` forward, identity gradient (straight-through)."""
    return _RoundSTE.apply(u)


def round_soft(u: torch.Tensor, k: float = 1.0) -> torch.Tensor:
    """``round(u)`` forward, :func:`soft_round_grad` gradient."""
    return _RoundSoft.apply(u, k)


class _SignClipSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z)
        return torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        return grad * (z.abs() <= 1).to(grad.dtype)


def sign_clip_ste(z: torch.Tensor) -> torch.Tensor:
    """``sign(z)`` in {-1, +1} (0 -> +1); backward ``1 if |z| <= 1 else 0`` (clip-STE)."""
    return _SignClipSTE.apply(z)


def grad_scale(a: torch.Tensor, g: float) -> torch.Tensor:
    """Value ``a`` exactly, gradient ``g * dL/da`` (LSQ step-size gradient scaling; see module docstring)."""
    ag = a * g
    return a.detach() + (ag - ag.detach())
