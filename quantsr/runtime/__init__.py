"""Inference on the CPU: loading and running a ``.pte`` (``pte``), tiling (``tiling``) and ``cpu_upscale``
(``upscale``). Everything ``quantsr upscale`` needs and nothing of training, export or benchmarking
(``tests/test_layout.py`` checks it)."""
from quantsr._lazy import lazy_exports

_EXPORTS = {
    "PteModule": "pte",
    "plan_tiles": "tiling",
    "tiled_forward": "tiling",
    "cpu_upscale": "upscale",
    "load_runner": "upscale",
}
__all__ = sorted(_EXPORTS)

# `quantsr --verbose` sets it (quantsr.cli.errors); quantsr.runtime.pte then shows the runtime's own C++ log lines.
VERBOSE_ENV = "QUANTSR_VERBOSE"
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
