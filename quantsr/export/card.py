"""``quantsr export``'s core: a checkpoint to verified ``.pte`` / ``.mlpackage`` artifacts, each with a model card
(JSON) beside it that an app or a benchmark can read without PyTorch."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quantsr.artifacts import file_digest, gzip_bytes
from quantsr.export.coreml import package_bytes
from quantsr.image_io import write_text_atomic

__all__ = ["artifact_card", "export_checkpoint", "file_digest", "gzip_bytes"]

FORMATS = ("pte", "coreml")


def _bits(model: nn.Module) -> dict[str, Any]:
    from quantsr.quant.layers import QUANT_LAYERS

    layers = [m for m in model.modules() if isinstance(m, QUANT_LAYERS)]
    if not layers:
        return {"weights": 32, "activations": 32, "head_tail": 32}
    return {"weights": max(m.w_bits for m in layers), "activations": max(m.a_bits for m in layers),
            "quantized_layers": len(layers)}


def artifact_card(path: Path, *, model_name: str, scale: int, model: nn.Module, backend: str, quant: str,
                  input_shape: list[int] | None, tile: int | None, set5_psnr: float | None,
                  psnr_source: str, extra: dict | None = None) -> dict[str, Any]:
    """The model card of one artifact (see the module docstring)."""
    from quantsr.profile import profile

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


class _Runtime(nn.Module):
    """An artifact runner as a module, so ``quantsr.evaluate`` can score it."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _set5(model: nn.Module, scale: int) -> float:
    from quantsr.evaluate import evaluate

    return evaluate(model, ["Set5"], scale, progress=False, ssim=False)["Set5"].psnr


def _calibration(scale: int, side: int, batches: int = 8) -> list[torch.Tensor]:
    """LR patches from T91 for observer calibration (int8 PTQ export)."""
    from quantsr.data import PatchDataset, default_data_root
    from quantsr.ptq import calibration_batches

    data = PatchDataset([default_data_root() / "train" / "T91"], scale, lr_patch=side, batch_size=4)
    return list(calibration_batches(data, batches))


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, *, formats: tuple[str, ...] = FORMATS,
                      tile: int | None = None, quant: str | None = None, evaluate_set5: bool = True,
                      max_side: int = 320,
                      stage: Callable[[str], None] = lambda s: None) -> list[dict[str, Any]]:
    """Export a quantsr (or public) checkpoint to ``out_dir/<stem>.pte`` and/or ``<stem>.mlpackage`` with a
    ``.json`` card beside each. ``quant``: default ``learned`` for a QAT checkpoint, ``fp32`` otherwise.
    ``tile``: fixed input side (default: dynamic H/W up to ``max_side`` for .pte, 64 for Core ML; ExecuTorch
    plans memory for the largest shape, so ``max_side`` bounds the runtime's RSS: 320 covers 256-px tiles with
    32-px margins and every Set5 image at x2-x4). Returns the cards."""
    from quantsr.export.coreml import export_coreml
    from quantsr.export.pte import PteModule, export_pte
    from quantsr.pretrained import load_model, read_checkpoint

    checkpoint = Path(checkpoint)
    _, meta = read_checkpoint(checkpoint)
    if not meta or "model" not in meta:
        raise ValueError(f"{checkpoint} is not a quantsr checkpoint (no metadata naming its architecture); "
                         "export models trained or quantized with quantsr")
    scale = int(meta["scale"])
    model = load_model(None, scale, checkpoint)
    qat = "qat" in meta
    quant = quant or ("learned" if qat else "fp32")
    out_dir = Path(out_dir)
    stem = checkpoint.stem if checkpoint.stem not in ("model", "best", "last") else checkpoint.parent.name
    eager_psnr = _set5(model, scale) if evaluate_set5 else None
    cards = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
        if fmt == "pte":
            path = out_dir / f"{stem}.pte"
            size = (3, tile, tile) if tile else (3, 64, 64)
            result = export_pte(model, path, quant=quant, input_size=size, dynamic=tile is None, stage=stage,
                                max_side=max_side,
                                calibration=_calibration(scale, size[1]) if quant == "int8" else ())
            psnr = _set5(_Runtime(PteModule(path)), scale) if evaluate_set5 and tile is None else None
            extra = {"max_side": None if tile else max_side,  # the largest H/W the dynamic .pte accepts
                     "delegated_fraction": round(result.delegated_fraction, 4),
                     "non_delegated_ops": result.non_delegated_ops,  # what runs outside XNNPACK, op -> count
                     "agreement_psnr_vs_eager": round(result.agreement_psnr, 2), "eager_set5_psnr": eager_psnr}
            card = artifact_card(path, model_name=meta["model"], scale=scale, model=model, backend="executorch-xnnpack",
                                 quant=quant, input_shape=None if tile is None else list(size), tile=tile,
                                 set5_psnr=psnr, psnr_source="the .pte through the ExecuTorch runtime", extra=extra)
        else:
            path = out_dir / f"{stem}.mlpackage"
            side = tile or 64
            result = export_coreml(model, path, input_size=(3, side, side), stage=stage)
            extra = {"weights_exact": result.weights_exact, "int8_layers": result.int8_layers,
                     "minimum_deployment_target": "iOS17"}
            card = artifact_card(path, model_name=meta["model"], scale=scale, model=model, backend="coreml",
                                 quant=quant, input_shape=[3, side, side], tile=side, set5_psnr=eager_psnr,
                                 psnr_source="the eager model (Core ML prediction needs macOS)", extra=extra)
        write_text_atomic(json.dumps(card, indent=1), path.with_name(path.name + ".json"))
        cards.append(card)
    return cards
