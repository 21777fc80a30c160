"""quantsr: tiny, fast, low-bit image super-resolution."""
from quantsr.data import BenchmarkSet, PatchDataset
from quantsr.evaluate import EvalResult, evaluate
from quantsr.image_io import ImageError, load_image
from quantsr.imresize import imresize
from quantsr.metrics import calculate_psnr, calculate_ssim
from quantsr.pretrained import load_pretrained
from quantsr.registry import create_model, list_models, register_model
from quantsr.trainer import TrainConfig, Trainer

__version__ = "0.1.0"
__all__ = [
    "BenchmarkSet", "EvalResult", "ImageError", "PatchDataset", "TrainConfig", "Trainer", "calculate_psnr",
    "calculate_ssim", "create_model", "evaluate", "imresize", "list_models", "load_image", "load_pretrained",
    "register_model",
]
