"""Measuring models: ``evaluate`` (PSNR/SSIM on benchmark sets: ``from quantsr.eval.evaluate import evaluate``, or
``quantsr.evaluate``), ``metrics`` (BasicSR/MATLAB conventions),
``opcount`` (MACs, BitOPs, OPs and storage per layer: ``quantsr profile``)."""
from quantsr._lazy import lazy_exports

_EXPORTS = {
    "EvalResult": "evaluate",
    "calculate_psnr": "metrics",
    "calculate_ssim": "metrics",
    "ProfileReport": "opcount",
    "profile": "opcount",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
