"""QuantSR+ quantization-aware training: the training recipe (``config``), the student (``student``), QSA's pruning
schedule (``qsa``), SFD distillation (``sfd``) and the ``quantize_checkpoint`` pipeline behind ``quantsr quantize``
(``pipeline``). See docs/method.md."""
from quantsr._lazy import lazy_exports

_EXPORTS = {
    "PRESETS": "config",
    "TrainRecipe": "config",
    "make_student": "student",
    "QSAScheduler": "qsa",
    "overparameterize": "qsa",
    "SFDLoss": "sfd",
    "quantize_checkpoint": "pipeline",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
