"""Checkpoint files: what a quantsr checkpoint's metadata says (``format``: versions and the migration of old
checkpoints) and the one loader for every kind of file (``load``: ``quantsr.load_model``)."""
from quantsr._lazy import lazy_exports

_EXPORTS = {
    "CheckpointInfo": "format",
    "checkpoint_metadata": "format",
    "parse_metadata": "format",
    "load_model": "load",
    "load_model_and_info": "load",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
