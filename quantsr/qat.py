"""Quantization-aware training with QuantSR+ (RBD quantizer, optional QSA slimming, SFD distillation): the
pipeline behind ``quantsr quantize``, from an FP checkpoint to a trained low-bit checkpoint and its model card."""
from __future__ import annotations

import copy
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from quantsr.data import BenchmarkSet, PatchDataset, default_data_root
from quantsr.distill import SFDLoss
from quantsr.evaluate import evaluate
from quantsr.image_io import write_text_atomic
from quantsr.profile import profile
from quantsr.quant import MixedConfig, QuantSRConfig, calibrate_, quantize_
from quantsr.registry import create_model
from quantsr.slim import QSAScheduler, make_slimmable_, slimmable_blocks
from quantsr.trainer import TrainConfig, Trainer


@dataclass
class QATConfig:
    w_bits: int = 4
    a_bits: int = 4
    weight_quantizer: str = "rbd"  # "rbd" (QuantSR+) or "lsq" (ablation: plain LSQ, same levels)
    rounding: str = "ste"  # activation rounding gradient: "ste" or "soft"
    rest_int8: bool = False  # head/tail/upsampler int8 (deployable) instead of FP32 (the paper's setting)
    distill: bool = True  # SFD feature loss (weight 1e-4) on top of L1
    distill_weight: float = 1e-4
    qsa_keep: int | None = None  # QSA: slim the body to this many blocks (None: no slimming)
    skip_blocks: list[int] | None = None  # fixed slimming (QSA's "off" arm): these body blocks skipped from the start
    iterations: int = 10000
    batch_size: int = 16
    lr_patch: int = 48
    lr: float = 2e-4
    quantizer_lr_scale: float = 1.0  # lr multiplier for quantizer parameters (steps, tau, s_i, beta_i)
    milestones: list[int] | None = None  # default: 50/80/90/95% of iterations
    val_every: int = 1000
    checkpoint_every: int = 250
    max_train_minutes: float | None = None  # stop (checkpoint, evaluate, write the card) after this much training
    bf16: bool = False
    channels_last: bool = False
    device: str = "cpu"
    seed: int = 0
    train_dirs: list[str] = field(default_factory=list)
    val_sets: list[str] = field(default_factory=lambda: ["Set5"])

    def quant_config(self) -> QuantSRConfig | MixedConfig:
        if self.rest_int8:
            return MixedConfig(body_bits=(self.w_bits, self.a_bits), rounding=self.rounding,
                               weight_quantizer=self.weight_quantizer)
        return QuantSRConfig(self.w_bits, self.a_bits, self.rounding, self.weight_quantizer)


# The paper's recipe (METHOD.md) for a machine with GPUs: 500k iterations, batch 128 (conv nets), HR patch 256.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(iterations=500_000, batch_size=128, lr_patch=64, lr=2e-4,
                  milestones=[250_000, 400_000, 450_000, 475_000], val_every=5000, checkpoint_every=5000),
    # About 2 h for IMDN x4 W4A4 on 2 AVX2 cores in fp32 (measured 3.6 s/it with the SFD teacher and quantizers;
    # bf16 is 10x slower without AVX512-BF16/AMX, channels_last no faster: benchmarks/train_throughput.py).
    "cpu-2h": dict(iterations=2000, batch_size=16, lr_patch=48, lr=2e-4, val_every=250, checkpoint_every=100),
}


def prepare_student_(net: nn.Module, qat: QATConfig) -> nn.Module:
    """Turn an FP model into the student architecture in place: slimmable if QSA is on, then quantized layers."""
    if qat.qsa_keep is not None or qat.skip_blocks:
        make_slimmable_(net)
    for index in qat.skip_blocks or []:
        blocks = slimmable_blocks(net)
        if not 0 <= index < len(blocks):
            raise ValueError(f"skip_blocks: block {index} does not exist (the body has {len(blocks)} blocks)")
        blocks[index].skip_()
    return quantize_(net, qat.quant_config())


def _is_quantizer_param(name: str) -> bool:
    return ".act_quantizer." in name or ".weight_quantizer." in name or name.split(".")[-1] in ("tau", "step")


def _param_groups(student: nn.Module, qat: QATConfig) -> list[dict]:
    """Network weights at ``lr``; quantizer parameters (tau, steps, s_i, beta_i) at ``lr * quantizer_lr_scale``.
    At the paper's 500k iterations lr 2e-4 moves tau far enough; at a CPU budget of ~2k steps it cannot."""
    quant, net = [], []
    for name, p in student.named_parameters():
        (quant if _is_quantizer_param(name) else net).append(p)
    return [{"params": net, "lr": qat.lr}, {"params": quant, "lr": qat.lr * qat.quantizer_lr_scale}]


def build_student(model: str, scale: int, model_kwargs: dict, qat: QATConfig) -> nn.Module:
    """The architecture a QAT checkpoint holds, built from the registry."""
    return prepare_student_(create_model(model, scale=scale, **model_kwargs), qat)


def load_quantized(meta: dict, state: dict[str, torch.Tensor]) -> nn.Module:
    """Rebuild a trained low-bit model from a checkpoint's metadata and state dict."""
    qat = QATConfig(**meta["qat"])
    net = build_student(meta["model"], meta["scale"], meta.get("model_kwargs", {}), qat)
    net.load_state_dict(state)
    return net.eval()


def quantize_checkpoint(teacher: nn.Module, model: str, scale: int, qat: QATConfig, out_dir: str | Path, *,
                        model_kwargs: dict | None = None, teacher_source: str = "", resume: bool = False,
                        progress: bool = True, eval_sets: tuple[str, ...] = ("Set5", "Set14", "B100")) -> dict:
    """Train a low-bit student from the FP ``teacher`` and write ``out_dir/last.pt``, ``best.pt``, ``model.pt``
    (final weights) and ``model_card.json``. Returns the model card."""
    out_dir = Path(out_dir)
    model_kwargs = dict(model_kwargs or {})
    torch.manual_seed(qat.seed)
    teacher = teacher.eval()
    student = prepare_student_(copy.deepcopy(teacher), qat)

    root = default_data_root() / "train"
    train_dirs = qat.train_dirs or [str(root / "T91"), str(root / "BSD200")]
    data = PatchDataset(train_dirs, scale, lr_patch=qat.lr_patch, batch_size=qat.batch_size, seed=qat.seed,
                        show_progress=progress)
    calibrate_(student, data.batch(0)[0])  # LSQ init of the activation steps at the first training batch
    val_sets = [BenchmarkSet.from_name(name, scale) for name in qat.val_sets]
    loss = SFDLoss(student, weight=qat.distill_weight) if qat.distill else nn.L1Loss()
    optimizer = torch.optim.Adam(_param_groups(student, qat), lr=qat.lr, betas=(0.9, 0.99))
    milestones = qat.milestones or [int(qat.iterations * f) for f in (0.5, 0.8, 0.9, 0.95)]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.5)
    callbacks = []
    qsa = None
    if qat.qsa_keep is not None:
        qsa = QSAScheduler(qat.iterations, budget=qat.qsa_keep)
        callbacks.append(qsa)
    metadata = {"model": model, "scale": scale, "model_kwargs": model_kwargs, "qat": asdict(qat)}
    config = TrainConfig(iterations=qat.iterations, val_every=qat.val_every, checkpoint_every=qat.checkpoint_every,
                         out_dir=str(out_dir), bf16=qat.bf16, channels_last=qat.channels_last, progress=progress,
                         device=qat.device,
                         max_train_seconds=None if qat.max_train_minutes is None else 60.0 * qat.max_train_minutes)
    trainer = Trainer(student, data, loss, optimizer, scheduler, teacher=teacher if qat.distill else None,
                      val_sets=val_sets, config=config, metadata=metadata, callbacks=callbacks)
    if (out_dir / "last.pt").exists() and not resume:
        raise ValueError(f"{out_dir / 'last.pt'} exists; pass --resume to continue it, or choose another --out")
    if resume:
        trainer.resume()
    start = time.process_time()
    history = trainer.fit()
    cpu_seconds = time.process_time() - start
    if qsa is not None:
        qsa.finalize(student)

    student.eval()
    result = evaluate(student, eval_sets, scale, progress=progress, model_name=model, device=qat.device)
    fp_result = evaluate(teacher, eval_sets, scale, progress=progress, model_name=model, device=qat.device)
    report = profile(student.cpu(), (3, 64, 64))
    card = {
        "architecture": model, "scale": scale, "model_kwargs": model_kwargs,
        "bits": {"weights": qat.w_bits, "activations": qat.a_bits,
                 "head_tail": 8 if qat.rest_int8 else 32, "weight_quantizer": qat.weight_quantizer},
        "teacher": teacher_source, "distillation": "SFD" if qat.distill else None,
        "qsa": None if qsa is None else {"kept_blocks": qat.qsa_keep,
                                         "events": [asdict(e) for e in qsa.events]},
        "data": {"train": train_dirs, "lr_patch": qat.lr_patch, "batch_size": qat.batch_size},
        "iterations": trainer.iteration, "cpu_seconds_this_run": round(cpu_seconds, 1),
        "train_seconds_total": round(history.data_seconds + history.step_seconds, 1),
        "machine": platform.processor() or platform.machine(), "device": qat.device,
        "results": [{"set": s.name, "psnr": round(s.psnr, 3), "ssim": round(s.ssim, 4),
                     "fp_psnr": round(f.psnr, 3), "drop_db": round(f.psnr - s.psnr, 3)}
                    for s, f in zip(result.sets, fp_result.sets)],
        "profile": {"input": [3, 64, 64], "ops": report.ops, "storage_bits": report.storage_bits,
                    "ops_reduction_pct": round(report.ops_reduction_pct, 2),
                    "storage_reduction_pct": round(report.storage_reduction_pct, 2)},
    }
    torch.save({"model": student.state_dict(), "metadata": metadata}, out_dir / "model.pt")
    write_text_atomic(json.dumps(card, indent=1), out_dir / "model_card.json")
    return card
