"""Block-wise reconstruction: the post-training starting point of QAT (calibration by distillation, in the style
of BRECQ, 2DQuant and CompSRT).

The low-bit student is cut into *units*, in forward order: each residual block of the body, and each quantized
layer outside the body (head, fusion convs, upsampler). Unit by unit, the student's own input to the unit (so the
error of the units already fitted is seen, not hidden) is cached on a few calibration patches together with the
FP teacher's output of the same unit, and the unit's weights, biases and quantizer parameters (steps, RBD's s and
beta) are fitted by Adam to the teacher's output (mean squared error over every tensor the unit returns). A unit
whose fitted error is not below its starting error is put back as it was. The steps start from the PTQ ``"mse"``
solution (:func:`quantsr.quant.ptq.ptq_`), which is already far better than LSQ's initial values at low bits.

Why: at 4 bits LSQ's initial steps leave a SPAN W4A8 student at 16 dB, and end-to-end QAT spends its first
thousand CPU iterations undoing that; a unit's fit needs only that unit's compute, so the whole student is fitted
in a few CPU minutes.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from quantsr.models.slimmable import block_container, is_pruned
from quantsr.quant.layers import QUANT_LAYERS

__all__ = ["RECONSTRUCTION_VERSION", "ReconstructionConfig", "UnitReport", "reconstruct_", "reconstruction_units"]

RECONSTRUCTION_VERSION = 1


@dataclass(frozen=True)
class ReconstructionConfig:
    """How each unit is fitted: ``iterations`` Adam steps (cosine-decayed from ``lr``) on random minibatches of
    ``batch_size`` of the cached calibration patches."""

    iterations: int = 400
    batch_size: int = 8
    lr: float = 1e-4
    seed: int = 0
    version: int = field(default=RECONSTRUCTION_VERSION)

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"reconstruction needs iterations >= 0, batch_size >= 1 and lr > 0, got {self}")
        if self.version != RECONSTRUCTION_VERSION:
            raise ValueError(f"reconstruction config version {self.version} is not readable by this quantsr")


@dataclass
class UnitReport:
    """One fitted unit: its name in the student, its error against the teacher before and after, the CPU seconds
    its fit took, and whether the fit was kept."""

    name: str
    mse_before: float
    mse_after: float
    cpu_seconds: float
    kept: bool


class _Stop(Exception):
    """Raised by a capture hook once it has what it needs: the rest of the forward is not computed."""


def _blocks(model: nn.Module) -> list[nn.Module]:
    try:
        return list(block_container(model))
    except ValueError:  # no residual body (FSRCNN): every quantized layer is its own unit
        return []


def reconstruction_units(student: nn.Module, teacher: nn.Module,
                         example: torch.Tensor) -> list[tuple[str, nn.Module, nn.Module]]:
    """``(name, student unit, teacher unit)`` in the order the student calls them on ``example``: the body's
    blocks (matched by position, so a slimmable student's wrapped blocks meet the teacher's plain ones; pruned
    blocks are left out) and the quantized layers outside them (matched by name)."""
    student_blocks, teacher_blocks = _blocks(student), _blocks(teacher)
    if len(student_blocks) != len(teacher_blocks):
        raise ValueError(f"the student has {len(student_blocks)} body blocks and the teacher "
                         f"{len(teacher_blocks)}; reconstruct from the teacher the student was made from")
    inside = {id(m) for block in student_blocks for m in block.modules()}
    names = {id(m): fqn for fqn, m in student.named_modules()}
    candidates: list[tuple[str, nn.Module, nn.Module]] = []
    for s_block, t_block in zip(student_blocks, teacher_blocks):
        if is_pruned(s_block):
            continue
        candidates.append((names[id(s_block)], s_block, t_block))
    for fqn, layer in student.named_modules():
        if isinstance(layer, QUANT_LAYERS) and id(layer) not in inside:
            candidates.append((fqn, layer, teacher.get_submodule(fqn)))
    order: dict[int, int] = {}

    def record(module: nn.Module, _args) -> None:  # a pre-hook returning a value would replace the inputs
        order.setdefault(id(module), len(order))

    handles = [unit.register_forward_pre_hook(record) for _, unit, _ in candidates]
    try:
        with torch.no_grad():
            student(example[:1])
    finally:
        for handle in handles:
            handle.remove()
    called = [c for c in candidates if id(c[1]) in order]
    return sorted(called, key=lambda c: order[id(c[1])])


def _tensors(value) -> tuple[torch.Tensor, ...]:
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, (tuple, list)):
        return tuple(t for v in value for t in _tensors(v))
    raise TypeError(f"a reconstruction unit returned a {type(value).__name__}, not tensors")


@torch.no_grad()
def _capture(model: nn.Module, module: nn.Module, inputs: torch.Tensor, batch_size: int,
             want_inputs: bool) -> list[torch.Tensor]:
    """Run ``model`` on ``inputs`` (in chunks) up to ``module``; return its inputs or outputs, concatenated."""
    chunks: list[tuple[torch.Tensor, ...]] = []

    def hook(_module, args, output):
        chunks.append(tuple(a.detach() for a in (args if want_inputs else _tensors(output))))
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        for chunk in inputs.split(batch_size):
            try:
                model(chunk)
            except _Stop:
                continue
            raise RuntimeError("a reconstruction unit was not called by the model's forward")
    finally:
        handle.remove()
    return [torch.cat(parts) for parts in zip(*chunks)]


def _mse(unit: nn.Module, args: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
    outputs = _tensors(unit(*args))
    return sum(torch.mean((o - t) ** 2) for o, t in zip(outputs, targets, strict=True))


@torch.no_grad()
def _full_mse(unit: nn.Module, args: list[torch.Tensor], targets: list[torch.Tensor], batch_size: int) -> float:
    total = 0.0
    for chunk in zip(*(a.split(batch_size) for a in args), *(t.split(batch_size) for t in targets)):
        chunk_args, chunk_targets = chunk[:len(args)], chunk[len(args):]
        total += float(_mse(unit, chunk_args, chunk_targets)) * chunk_args[0].shape[0]
    return total / args[0].shape[0]


def _fit(unit: nn.Module, args: list[torch.Tensor], targets: list[torch.Tensor],
         config: ReconstructionConfig, seed: int) -> None:
    params = [p for p in unit.parameters() if p.requires_grad]
    if not params or config.iterations == 0:
        return
    optimizer = torch.optim.Adam(params, lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.iterations)
    generator = torch.Generator().manual_seed(seed)
    n = args[0].shape[0]
    for _ in range(config.iterations):
        index = torch.randint(n, (min(config.batch_size, n),), generator=generator)
        loss = _mse(unit, [a[index] for a in args], [t[index] for t in targets])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()


def reconstruct_(student: nn.Module, teacher: nn.Module, inputs: torch.Tensor,
                 config: ReconstructionConfig | None = None, *, progress: bool = True) -> list[UnitReport]:
    """Fit ``student`` (a quantized copy of ``teacher`` with initialised quantizers) to ``teacher`` unit by unit
    (see the module docstring) on the calibration LR patches ``inputs``, in place. Returns one report per unit.
    The student's train/eval modes are restored; the teacher is not changed."""
    config = config or ReconstructionConfig()
    if inputs.dim() != 4 or inputs.shape[0] < 1:
        raise ValueError(f"reconstruction needs a batch of LR patches (N, C, H, W), got shape {tuple(inputs.shape)}")
    modes = {m: m.training for m in student.modules()}
    teacher_mode = teacher.training
    student.eval()
    teacher.eval()
    units = reconstruction_units(student, teacher, inputs)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(units), unit="unit", desc="block reconstruction", dynamic_ncols=True, disable=None)
    reports: list[UnitReport] = []
    try:
        for index, (name, unit, teacher_unit) in enumerate(units):
            start = time.process_time()
            args = _capture(student, unit, inputs, config.batch_size, want_inputs=True)
            targets = _capture(teacher, teacher_unit, inputs, config.batch_size, want_inputs=False)
            before = _full_mse(unit, args, targets, config.batch_size)
            saved = copy.deepcopy(unit.state_dict())
            with torch.enable_grad():  # in eval mode: the quantizers are initialised, and no block is sampled
                _fit(unit, args, targets, config, config.seed + index)
            after = _full_mse(unit, args, targets, config.batch_size)
            kept = after < before
            if not kept:
                unit.load_state_dict(saved)
                after = before
            reports.append(UnitReport(name, before, after, round(time.process_time() - start, 2), kept))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(unit=name, mse=f"{before:.3g}->{after:.3g}")
    finally:
        if bar is not None:
            bar.close()
        for m, mode in modes.items():
            m.training = mode
        teacher.train(teacher_mode)
    return reports
