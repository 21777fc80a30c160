"""SR architectures, their registry and descriptors, and public-weight loading.

* ``registry``: ``register_model`` / ``create_model`` / ``list_models`` / ``get_descriptor`` / ``descriptor_of``.
* ``descriptor``: :class:`ModelDescriptor`, the per-architecture contract (scales, public weights, minimum input
  side, tile exactness, export channel splits, checkpoint key conversion).
* ``weights``: finding, reading and key-converting public checkpoints (``quantsr.load_model`` loads them).
* ``archs/``: one file per architecture; ``blocks/``: building blocks shared by a family; ``keymap``: key
  remapping helpers; ``hooks``: the activation-hook contract quantizers attach to; ``slimmable``: the block
  wrapper QSA trains and strips.

Every model maps RGB in [0, 1] (N, 3, H, W) to RGB in [0, 1] (N, 3, sH, sW), keeps constants (mean shifts, input
range) as buffers and has ``example_inputs()``; state-dict names follow BasicSR (``conv_first``, ``body``,
``conv_after_body``, ``upsample``, ``conv_last``).
"""
from quantsr._lazy import lazy_exports

_EXPORTS = {
    "ModelDescriptor": "descriptor",
    "PublicWeights": "descriptor",
    "create_model": "registry",
    "descriptor_of": "registry",
    "get_descriptor": "registry",
    "list_models": "registry",
    "register_model": "registry",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
