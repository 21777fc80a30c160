"""A small resumable trainer (``trainer``: minGPT style, it receives model, data, loss and teacher) and its atomic
checkpoints with RNG states (``checkpoint``)."""
from quantsr._lazy import lazy_exports

_EXPORTS = {"TrainConfig": "trainer", "Trainer": "trainer", "TeacherLoss": "trainer"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
