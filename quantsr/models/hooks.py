"""The activation-hook contract between architectures and quantizers.

Some operands are not the input of any conv/linear layer (attention's q, k, v and softmax output feed matrix
products). An architecture exposes them as identity child modules ("hooks") and declares them by subclassing
:class:`OperandHooks`; ``quantsr.quant`` puts activation quantizers into the hooks without knowing the
architecture.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HookSpec", "OperandHooks"]


@dataclass(frozen=True)
class HookSpec:
    """One hooked operand: ``features`` channels along ``channel_dim`` (the per-channel shift's length);
    ``redistribute=False`` for operands that must not be shifted (softmax rows are probabilities)."""

    features: int
    channel_dim: int = -1
    redistribute: bool = True


class OperandHooks:
    """Mixin for an ``nn.Module`` whose matmul operands pass through identity hooks named in
    :meth:`operand_hooks`. ``gate_layer`` names the child linear whose quantization switches the hooks on: the
    hooks are quantized when that layer is selected by the quantization filter."""

    gate_layer: str = ""

    def operand_hooks(self) -> dict[str, HookSpec]:
        raise NotImplementedError
