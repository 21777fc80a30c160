"""The model contract, one descriptor per architecture (in the spirit of spandrel's ``ImageModelDescriptor``).

Everything tiling, export, upscaling, evaluation and the CLI need to know about an architecture lives here,
declared once where the architecture is registered (``@register_model``), instead of in attributes probed at
run time or constants copied between modules. Standard library only.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from quantsr.artifacts.cards import DEFAULT_MIN_SIDE

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["ModelDescriptor", "PublicWeights"]


@dataclass(frozen=True)
class PublicWeights:
    """A public FP checkpoint (a file in the shared weights folder) and the scales it serves."""

    file: str
    scales: tuple[int, ...]


@dataclass(frozen=True)
class ModelDescriptor:
    """What quantsr knows about one registered architecture.

    * ``scales``: the upscaling factors it can be built for.
    * ``public_weights``: the public checkpoint files that load into it (``quantsr.models.weights``).
    * ``min_side``: the smallest LR input side it accepts; smaller inputs (and tiles) are padded up to it.
    * ``tile_exact``: True when the network is local (its output at a pixel depends on a bounded neighbourhood),
      so tiled inference with a margin above the receptive radius equals whole-image inference; False when some
      layer pools over the whole input (channel attention, ESA's strided pooling), where tiles are only close.
    * ``channel_splits``: ``fn(model) -> {conv fqn: output group sizes}`` for convs whose outputs the model
      slices; export computes each group with its own conv (XNNPACK does not take dynamic-shape slices).
    * ``convert_checkpoint``: ``fn(state_dict, scale) -> state_dict`` mapping a public checkpoint's keys onto the
      module's (applied once, when the keys do not already match).
    * ``body``: the attribute holding the residual body, a list of C -> C blocks that QSA slims and SFD aligns
      block by block (None: the architecture has no such body).
    * ``depth_kwarg`` / ``depth``: the factory keyword holding the block count and its published value (QSA builds
      the over-parameterised teacher at twice that depth; None: not over-parameterisable).
    * ``distill_shallow``: SFD also aligns the shallow feature (``conv_first``'s output), as for SwinIR.
    """

    name: str
    factory: Callable[..., nn.Module]
    module: type[nn.Module]
    scales: tuple[int, ...] = (2, 3, 4)
    public_weights: tuple[PublicWeights, ...] = ()
    min_side: int = DEFAULT_MIN_SIDE
    tile_exact: bool = True
    channel_splits: Callable[[nn.Module], Mapping[str, tuple[int, ...]]] | None = None
    convert_checkpoint: Callable[[dict[str, Any], int], dict[str, Any]] | None = None
    body: str | None = "body"
    depth_kwarg: str | None = None
    depth: int = 0
    distill_shallow: bool = False
    summary: str = ""

    def splits(self, model: nn.Module) -> dict[str, tuple[int, ...]]:
        """The output channel splits export needs for ``model`` (empty when the architecture slices nothing)."""
        return dict(self.channel_splits(model)) if self.channel_splits else {}
