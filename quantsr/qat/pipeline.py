"""Quantization-aware training with QuantSR+ (RBD quantizer, optional QSA slimming, SFD distillation): the
pipeline behind ``quantsr quantize``, from an FP checkpoint to a trained low-bit checkpoint and its model card."""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn as nn

from quantsr.artifacts.atomic import write_text_atomic
from quantsr.artifacts.digest import file_digest
from quantsr.checkpoints.format import checkpoint_metadata, parse_metadata
from quantsr.data.datasets import BenchmarkSet, PatchDataset, default_data_root
from quantsr.eval.evaluate import evaluate
from quantsr.eval.opcount import profile
from quantsr.models.slimmable import block_container
from quantsr.qat.config import TrainRecipe
from quantsr.qat.output_distill import OutputDistillLoss
from quantsr.qat.qsa import QSAScheduler
from quantsr.qat.reconstruct import ReconstructionConfig, reconstruct_
from quantsr.qat.sfd import SFDLoss
from quantsr.qat.student import make_student, param_groups
from quantsr.quant.call_sites import check_call_site_steps, has_call_site_steps, untie_call_sites_
from quantsr.quant.ptq import ptq_
from quantsr.quant.quantize import calibrate_
from quantsr.quant.recipe import QuantRecipe
from quantsr.train.checkpoint import load_checkpoint, save_atomic
from quantsr.train.distributed import RankShard, check_divisible, finish_distributed, init_distributed
from quantsr.train.resume import cli_flag, merge_resume_settings
from quantsr.train.trainer import TrainConfig, Trainer

__all__ = ["TRAIN_RESUMABLE", "check_resume", "initialize_student_", "quantize_checkpoint", "start_checkpoint"]

# The training settings a resumed `quantsr quantize` run may change (how long, how often it reports, where it
# runs); everything else, and the whole QuantRecipe, must be the run's.
TRAIN_RESUMABLE = frozenset({"iterations", "val_every", "checkpoint_every", "max_train_minutes", "device"})
# The flags that set a recipe or training field under another name (the rest: --field-name).
_FLAGS = {"head_tail_bits": "--rest-int8 (head/tail bits)", "distill": "--no-distill (distillation)"}


def check_resume(path: str | Path, recipe: QuantRecipe, train: TrainRecipe, teacher_source: str = "",
                 ckpt: dict | None = None) -> list[str]:
    """Refuse (ValueError naming the flag) to resume the run in ``path`` (its ``last.pt``) as another recipe,
    training recipe or teacher; return the lines that tell what the resumed run changes (``TRAIN_RESUMABLE``).
    ``ckpt``: ``path`` already loaded, so a caller that needs it too reads the file once."""
    ckpt = load_checkpoint(path) if ckpt is None else ckpt
    source = str(path)
    info = parse_metadata(ckpt.get("metadata") or {}, source)
    if info.recipe is None:
        raise ValueError(f"{path} is not a quantize run (it holds no quantization recipe); resume it with "
                         "`quantsr train`, or choose another --out")
    merge_resume_settings(info.recipe.to_dict(), recipe.to_dict(), source=source, flags=_FLAGS)
    settings = ckpt.get("run_settings") or {}
    saved_teacher = settings.get("teacher")
    if saved_teacher and teacher_source and Path(saved_teacher).resolve() != Path(teacher_source).resolve():
        raise ValueError(f"--weights {teacher_source} differs from the run's teacher {saved_teacher} saved in "
                         f"{source}; drop --weights to keep it, or start a new --out")
    saved_train = settings.get("train_recipe")
    if saved_train is not None:
        # A setting added to TrainRecipe since the run was saved defaults to what such a run trained with (and
        # the resumed run gets that default too): a changed flag is checked against it, not taken unchecked.
        saved_train = {**asdict(TrainRecipe()), **saved_train}
    _, lines = merge_resume_settings(saved_train, asdict(train), source=source,
                                     allowed=TRAIN_RESUMABLE, reached=int(ckpt["iteration"]), flags=_FLAGS)
    return lines


def initialize_student_(student: nn.Module, teacher: nn.Module, data: PatchDataset, recipe: QuantRecipe,
                        train: TrainRecipe, val_sets: list[BenchmarkSet] = (), *, progress: bool = True,
                        device: str | None = None, start_model: nn.Module | None = None) -> dict:
    """Give the student its starting point as ``train.init`` says (:class:`~quantsr.qat.config.TrainRecipe`),
    in place; return what was done (method, CPU seconds, per-unit errors, the validation PSNR reached), for
    the model card. The calibration patches are the first training batches. ``start_model``: for ``init`` "checkpoint",
    ``train.init_from`` already read by :func:`start_checkpoint` (else it is read here)."""
    start, wall = time.process_time(), time.perf_counter()
    info: dict = {"method": train.init}
    device = device or train.device
    student.to(device)
    teacher.to(device)
    if train.init == "lsq":  # the activation steps' LSQ init at the first training batch
        calibrate_(student, data.batch(0)[0].to(device))
    elif train.init == "checkpoint":
        info["from"] = str(Path(train.init_from).resolve())
        info["sha256"] = file_digest(Path(train.init_from))[:12]
        start_model = start_model if start_model is not None else start_checkpoint(train.init_from, recipe)
        if has_call_site_steps(start_model):
            untie_call_sites_(student)
        try:
            student.load_state_dict(start_model.state_dict())
        except RuntimeError as exc:  # same recipe, other shapes: other architecture options (--model-kw)
            raise ValueError(f"--init-from {train.init_from} does not fit this run's model (other --model-kw?): "
                             f"{str(exc).splitlines()[0]}") from None
    else:
        batches = -(-train.init_samples // train.batch_size)
        patches = torch.cat([data.batch(i)[0] for i in range(batches)])[:train.init_samples].to(device)
        ptq_(student, recipe.quant_config(), [patches], method="mse")
        info["samples"] = int(patches.shape[0])
        if train.init == "block":
            config = ReconstructionConfig(iterations=train.init_iterations, seed=train.seed)
            reports = reconstruct_(student, teacher, patches, config, progress=progress)
            info["reconstruction"] = {**asdict(config), "units": [asdict(r) for r in reports]}
    info["cpu_seconds"] = round(time.process_time() - start, 1)
    info["seconds"] = round(time.perf_counter() - wall, 1)
    if val_sets:
        result = evaluate(student.eval(), val_sets, val_sets[0].scale, progress=False, ssim=False, device=device)
        info["psnr"] = {s.name: round(s.psnr, 3) for s in result.sets}
        if progress:
            print(f"start ({train.init}, {info['seconds']:.0f} s): "
                  + ", ".join(f"{k} {v:.3f} dB" for k, v in info["psnr"].items()))
    return info


def start_checkpoint(path: str | Path, recipe: QuantRecipe, model: str | None = None,
                     scale: int | None = None) -> nn.Module:
    """The low-bit model in ``path`` (a ``model.pt`` or a run's ``last.pt``) as the start of a run of ``recipe``
    (``TrainRecipe.init_from``); a checkpoint of another architecture, scale or recipe is a ValueError naming the
    flags that differ."""
    from quantsr.checkpoints.load import load_model_and_info

    if not Path(path).is_file():
        raise ValueError(f"--init-from {path}: no such file (a quantize run's model.pt or last.pt)")
    start, info = load_model_and_info(path, model=model, scale=scale)
    if info.recipe is None:
        raise ValueError(f"--init-from {path} is an FP checkpoint; start from a low-bit one (a quantize run's "
                         "model.pt or last.pt), or pass it as --weights")
    saved, given = info.recipe.to_dict(), recipe.to_dict()
    # A start with shared activation quantizers may go on with one per call (each starts from the shared values).
    if given.get("call_site_steps") and not saved.get("call_site_steps"):
        saved["call_site_steps"] = True
    differ = [f"{_FLAGS.get(k, cli_flag(k))} {saved[k]} (this run: {given.get(k)})" for k in saved
              if saved[k] != given.get(k)]
    if differ:
        raise ValueError(f"--init-from {path} was trained with " + ", ".join(differ) + "; pass the same flags")
    return start


def _check_sfd_body(teacher: nn.Module, model: str) -> None:
    try:
        block_container(teacher)
    except ValueError:
        raise ValueError(f"SFD distils the features of a body of residual blocks, which {model} has not; pass "
                         "--distill-target output (L1 to the teacher's output) or --no-distill") from None


# distill_target -> (its name in the model card, the loss it trains with)
_DISTILLATION = {
    "output": ("output L1", lambda student, train: OutputDistillLoss(1.0, hr_weight=train.hr_weight)),
    "features": ("SFD", lambda student, train: SFDLoss(student, weight=train.distill_weight)),
}


def _loss(student: nn.Module, train: TrainRecipe) -> nn.Module:
    return _DISTILLATION[train.distill_target][1](student, train) if train.distill else nn.L1Loss()


def _distillation_name(train: TrainRecipe) -> str | None:
    if not train.distill:
        return None
    name = _DISTILLATION[train.distill_target][0]
    return name if train.hr_weight == 1.0 else f"{name}, HR weight {train.hr_weight:g}"


def quantize_checkpoint(teacher: nn.Module, model: str, scale: int, recipe: QuantRecipe, train: TrainRecipe,
                        out_dir: str | Path, *, model_kwargs: dict | None = None, teacher_source: str = "",
                        resume: bool = False, progress: bool = True, saved_run: dict | None = None,
                        eval_sets: tuple[str, ...] = ("Set5", "Set14", "B100")) -> dict:
    """Train a low-bit student of ``recipe``'s architecture from the FP ``teacher`` as ``train`` says, and write
    ``out_dir/last.pt`` (resumable: it also holds the training recipe), ``best.pt``, ``model.pt`` (final weights
    and the quantization recipe) and ``model_card.json``. Returns the model card. ``resume`` continues
    ``out_dir/last.pt`` if there is one, which must then have the same recipes (see :func:`check_resume`);
    ``saved_run``: that file's contents, if the caller has read them already."""
    out_dir = Path(out_dir)
    model_kwargs = dict(model_kwargs or {})
    # Under torchrun: this rank's place, and its device (cuda -> cuda:LOCAL_RANK); else one process, unchanged.
    context, device = init_distributed(train.device)
    check_divisible(train.batch_size, context.world_size)
    progress = progress and context.is_main
    last = out_dir / "last.pt"
    if last.exists() and not resume:
        raise ValueError(f"{last} exists; pass --resume to continue it, or choose another --out")
    resuming = resume and last.exists()
    saved = (load_checkpoint(last) if saved_run is None else saved_run) if resuming else None  # checked, resumed
    if resuming:  # checked before anything is built, so a refused resume costs nothing
        for line in check_resume(last, recipe, train, teacher_source, ckpt=saved):
            print(f"resuming {last}: {line}")
    start_model = None  # --init-from: read (and checked) before the data loads, once
    if train.init == "checkpoint" and not resuming:
        start_model = start_checkpoint(train.init_from, recipe, model, scale)
    if train.distill and train.distill_target == "features":  # before the start, which can take minutes
        _check_sfd_body(teacher, model)
    torch.manual_seed(train.seed)
    teacher = teacher.eval()
    # Block-wise reconstruction pairs each student layer with the teacher's of the same name, and an --init-from
    # checkpoint may have one quantizer for all calls: those starts fit the shared form, and each call's quantizers
    # then start from its values. An LSQ or MSE start calibrates each call on its own input.
    shared_start = not resuming and train.init in ("block", "checkpoint")
    student = make_student(teacher, replace(recipe, call_site_steps=False) if shared_start else recipe)
    if recipe.call_site_steps:  # refused before a start that can take minutes
        check_call_site_steps(student)

    train_dirs = train.train_dirs or [str(default_data_root() / "train" / name) for name in ("T91", "BSD200")]
    data = PatchDataset(train_dirs, scale, lr_patch=train.lr_patch, batch_size=train.batch_size, seed=train.seed,
                        show_progress=progress, edge_candidates=train.edge_candidates)
    val_sets = [BenchmarkSet.from_name(name, scale) for name in train.val_sets]
    if resuming:  # the starting point is in last.pt (its weights and steps, and how it was made)
        calibrate_(student, data.batch(0)[0])
        init_info = (saved.get("run_settings") or {}).get("init") or {"method": train.init}
    else:  # on every rank alike (DDP starts every rank from rank 0's weights anyway); rank 0 reports it
        init_info = initialize_student_(student, teacher, data, recipe, train,
                                        val_sets if context.is_main else [], progress=progress, device=device,
                                        start_model=start_model)
        if recipe.call_site_steps:
            untie_call_sites_(student)
    loss = _loss(student, train)
    optimizer = torch.optim.Adam(param_groups(student, train), lr=train.lr, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=train.schedule(), gamma=0.5)
    callbacks = []
    qsa = None
    if recipe.qsa_keep is not None:
        qsa = QSAScheduler(train.iterations, budget=recipe.qsa_keep)
        callbacks.append(qsa)
    metadata = checkpoint_metadata(model, scale, model_kwargs, recipe)
    config = TrainConfig(iterations=train.iterations, val_every=train.val_every,
                         checkpoint_every=train.checkpoint_every, out_dir=str(out_dir), bf16=train.bf16,
                         channels_last=train.channels_last, progress=progress, device=device,
                         max_train_seconds=None if train.max_train_minutes is None else 60.0 * train.max_train_minutes)
    shard = RankShard(data, context, train.batch_size) if context.enabled else data
    trainer = Trainer(student, shard, loss, optimizer, scheduler, teacher=teacher if train.distill else None,
                      val_sets=val_sets, config=config, metadata=metadata, callbacks=callbacks,
                      run_settings={"train_recipe": asdict(train),  # absolute: a resume may run from elsewhere
                                    "teacher": str(Path(teacher_source).resolve()) if teacher_source else "",
                                    "init": init_info},
                      dist=context)
    if resuming and trainer.resume(saved) and progress:
        print(f"resumed from {last} at iteration {trainer.iteration}")
    saved = None  # its weights and optimizer state are in the trainer now
    start = time.process_time()
    history = trainer.fit()
    cpu_seconds = time.process_time() - start
    if not context.is_main:  # rank 0 evaluates and writes model.pt and the card
        finish_distributed()
        return {}
    if qsa is not None:
        qsa.finalize(student)

    student.eval()
    result = evaluate(student, eval_sets, scale, progress=progress, model_name=model, device=device)
    fp_result = evaluate(teacher, eval_sets, scale, progress=progress, model_name=model, device=device)
    report = profile(student.cpu(), (3, 64, 64))
    card = {
        "architecture": model, "scale": scale, "model_kwargs": model_kwargs,
        "bits": {"weights": recipe.w_bits, "activations": recipe.a_bits,
                 "head_tail": recipe.head_tail_bits, "weight_quantizer": recipe.weight_quantizer,
                 "weight_granularity": recipe.weight_granularity},
        "teacher": teacher_source, "distillation": _distillation_name(train), "init": init_info,
        "qsa": None if qsa is None else {"kept_blocks": recipe.qsa_keep,
                                         "events": [asdict(e) for e in qsa.events]},
        "data": {"train": train_dirs, "lr_patch": train.lr_patch, "batch_size": train.batch_size,
                 "edge_candidates": train.edge_candidates},
        "iterations": trainer.iteration, "cpu_seconds_this_run": round(cpu_seconds, 1),
        "train_seconds_total": round(history.data_seconds + history.step_seconds, 1),
        "machine": platform.processor() or platform.machine(), "device": train.device,
        "world_size": context.world_size,
        "results": [{"set": s.name, "psnr": round(s.psnr, 3), "ssim": round(s.ssim, 4),
                     "fp_psnr": round(f.psnr, 3), "drop_db": round(f.psnr - s.psnr, 3)}
                    for s, f in zip(result.sets, fp_result.sets)],
        "profile": {"input": [3, 64, 64], "ops": report.ops, "storage_bits": report.storage_bits,
                    "ops_reduction_pct": round(report.ops_reduction_pct, 2),
                    "storage_reduction_pct": round(report.storage_reduction_pct, 2)},
    }
    save_atomic({"model": student.state_dict(), "metadata": metadata}, out_dir / "model.pt")
    write_text_atomic(json.dumps(card, indent=1), out_dir / "model_card.json")
    finish_distributed()
    return card
