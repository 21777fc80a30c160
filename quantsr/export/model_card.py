"""The model card written beside each exported artifact: JSON an app or a benchmark reads without PyTorch
(docs/deploy.md, "Model cards")."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from quantsr.artifacts.digest import file_digest, gzip_bytes, package_bytes
from quantsr.eval.opcount import profile
from quantsr.quant.layers import QUANT_LAYERS

__all__ = ["artifact_card"]


def _bits(model: nn.Module) -> dict[str, Any]:
    layers = [m for m in model.modules() if isinstance(m, QUANT_LAYERS)]
    if not layers:
        return {"weights": 32, "activations": 32, "head_tail": 32}
    # the body's (lowest) bits name the model (W4A8); head/tail/upsampler layers kept wider are reported apart
    w, a = min(m.w_bits for m in layers), min(m.a_bits for m in layers)
    out: dict[str, Any] = {"weights": w, "activations": a}
    wide = max(m.w_bits for m in layers)
    if wide > w:
        out["head_tail"] = wide
    return {**out, "quantized_layers": len({id(m.weight) for m in layers})}  # tied copies hold their original's


def artifact_card(path: Path, *, model_name: str, scale: int, model: nn.Module, backend: str, quant: str,
                  input_shape: list[int] | None, tile: int | None, set5_psnr: float | None,
                  psnr_source: str, extra: dict | None = None) -> dict[str, Any]:
    """The model card of one artifact (see the module docstring)."""
    report = profile(model, (3, 64, 64))
    out_shape = None if input_shape is None else [3, input_shape[1] * scale, input_shape[2] * scale]
    return {
        "file": path.name, "backend": backend, "architecture": model_name, "scale": scale, "quant": quant,
        "bits": _bits(model),
        "input": {"name": "lr", "dtype": "float32", "layout": "NCHW, RGB in [0, 1]",
                  "shape": None if input_shape is None else [1, *input_shape]},
        "output": {"name": "sr", "dtype": "float32", "layout": "NCHW, RGB, clamp to [0, 1]",
                   "shape": None if out_shape is None else [1, *out_shape]},
        "dynamic_hw": input_shape is None, "tile": tile,
        "sha256": file_digest(path), "bytes": package_bytes(path), "gzip_bytes": gzip_bytes(path),
        "profile": {"input": [3, 64, 64], "ops": report.ops, "storage_bits": report.storage_bits,
                    "ops_reduction_pct": round(report.ops_reduction_pct, 2),
                    "storage_reduction_pct": round(report.storage_reduction_pct, 2)},
        "set5_psnr": None if set5_psnr is None else round(set5_psnr, 3), "set5_psnr_of": psnr_source,
        **(extra or {}),
    }
