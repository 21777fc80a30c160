"""quantsr: tiny, fast, low-bit image super-resolution.

The public API is loaded lazily: ``import quantsr`` imports no torch; each name below imports its module the first
time it is used. Packages by stage: ``models`` (architectures, registry, descriptors, weights), ``quant``
(quantizers, ``quantize_``, recipes, PTQ), ``checkpoints`` (reading any checkpoint, ``load_model``), ``data``,
``eval``, ``train``, ``qat`` (QuantSR+ training), ``runtime`` (running a ``.pte``: ``cpu_upscale``), ``export``,
``bench``, ``apps``, ``artifacts`` (standard-library file handling), ``cli``.
"""
from quantsr._lazy import lazy_exports

__version__ = "0.2.0"  # 0.2: packages by stage, versioned checkpoint metadata (format 2)

_EXPORTS = {
    "cpu_upscale": "runtime.upscale",
    "load_model": "checkpoints.load",
    "quantize_": "quant.quantize",
    "QuantSRConfig": "quant.configs",
    "QuantRecipe": "quant.recipe",
    "quantize_checkpoint": "qat.pipeline",
    "TrainRecipe": "qat.config",
    "export_checkpoint": "export.pipeline",
    "evaluate": "eval.evaluate",
    "create_model": "models.registry",
    "list_models": "models.registry",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
