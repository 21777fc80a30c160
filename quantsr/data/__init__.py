"""Images in and out: ``image_io`` (reading any image as 8-bit RGB with one-line errors), ``imresize``
(MATLAB-exact bicubic: ``from quantsr.data.imresize import imresize``), ``datasets`` (benchmark sets with MATLAB
LR, the deterministic training patch set)."""
from quantsr._lazy import lazy_exports

_EXPORTS = {
    "BenchmarkSet": "datasets",
    "PatchDataset": "datasets",
    "default_data_root": "datasets",
    "ImageError": "image_io",
    "load_image": "image_io",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
