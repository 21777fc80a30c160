"""QSA: the Quantized Slimmable Architecture (docs/method.md, "QSA").

Workflow::

    teacher = overparameterize("edsr", scale=4)               # 32 blocks; train it FP (the SFD teacher)
    student = make_slimmable_(copy.deepcopy(teacher))          # body.{i} -> SlimmableBlock(body.{i})
    quantize_(student, QuantSRConfig(2, 2))                    # body.{i}.block.conv1 ... quantized
    qsa = QSAScheduler(total_iters=T)                          # keeps N/2 blocks by default
    Trainer(student, data, SFDLoss(student), opt, teacher=teacher, callbacks=[qsa], ...).fit()
    deploy = strip_skipped(student)                            # pruned blocks replaced by a parameter-free pass-through

Every wrapped block computes ``out = beta_blk * x + (block(x) - x)``, i.e. ``beta_blk * x + res_scale * F(x)``
for a block whose forward is ``x + res_scale * F(x)``; evaluated as ``block(x) + (beta_blk - 1) * x`` so that
``beta_blk == 1`` reproduces the block bit for bit. For blocks without an internal skip (RFDB, RLFB: the output is
``esa(conv(...))``, not ``x + something``) ``block(x) - x`` is still a well defined C -> C branch, so the same
formula applies. A skipped block returns its input and never runs its branch.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from quantsr.eval.opcount import BitsFn, ProfileReport, profile
from quantsr.models.registry import create_model, get_descriptor, list_models
from quantsr.models.slimmable import SlimmableBlock, make_slimmable_, slimmable_blocks, strip_skipped

__all__ = ["PruneEvent", "QSAScheduler", "blocks_for_budget", "overparameterize", "slim_report"]

def overparameterize(name: str, scale: int = 4, target_blocks: int | None = None, slimmable: bool = False,
                     **kw) -> nn.Module:
    """Build ``name`` with twice its target depth: EDSR/SRResNet 32 blocks (target 16), SwinIR-S 8 residual groups
    of ``group_depth`` (6) Swin blocks with ``group_heads`` (6) heads (target 4), IMDN/RFDN/RLFN twice their
    published block count. ``slimmable=True`` also applies :func:`make_slimmable_` (the student); the SFD teacher is
    the plain model. Other keywords go to the model (e.g. ``num_feat``, ``embed_dim``, ``window_size``).
    """
    descriptor = get_descriptor(name)
    if descriptor.depth_kwarg is None:
        supported = sorted(n for n in list_models() if get_descriptor(n).depth_kwarg)
        raise ValueError(f"overparameterize supports {supported}, not {name!r}")
    kwarg, default = descriptor.depth_kwarg, descriptor.depth
    if kwarg in kw or (name == "swinir_s" and "num_heads" in kw):
        raise ValueError(f"pass target_blocks (and group_depth/group_heads for SwinIR) instead of {kwarg!r}")
    target = default if target_blocks is None else int(target_blocks)
    if target < 1:
        raise ValueError(f"target_blocks must be >= 1, got {target}")
    if name == "swinir_s":
        depth, heads = kw.pop("group_depth", 6), kw.pop("group_heads", 6)
        kw.update(depths=[depth] * 2 * target, num_heads=[heads] * 2 * target)
    else:
        kw[kwarg] = 2 * target
    model = create_model(name, scale=scale, **kw)
    return make_slimmable_(model) if slimmable else model


# ---------------------------------------------------------------------------------------------------------------
# the pruning schedule


@dataclass
class PruneEvent:
    iteration: int
    block: int
    psnr: float | None  # the validation PSNR that triggered it (the latest one for the first prune)
    beta: float  # beta_blk of the block when it was pruned
    reason: str  # "first" (0.2 T), "recovered", "interval" (2T/N elapsed), "finalize", "restored" (from a checkpoint)


class QSAScheduler:
    """The QSA pruning schedule, as a Trainer callback (``scheduler(trainer)`` after every iteration).

    With ``T = total_iters``, N slimmable blocks and ``budget`` blocks kept (default N // 2):

    * first prune at iteration ``round(first_prune * T)`` (0.2 T);
    * afterwards, at each validation (a record of ``trainer.history.validation`` made at this iteration), while
      fewer than ``N - budget`` blocks are pruned, prune one more block if the validation PSNR has recovered to
      the best PSNR seen up to the previous prune (``psnr >= best - recover_tol``), or if ``2T/N`` iterations have
      passed since the previous prune. If no validation preceded the previous prune only the second rule applies;
      if the trainer validates never (no ``val_sets`` or ``val_every == 0``) that rule is checked every iteration;
    * the block pruned is the unskipped one with the largest ``beta_blk`` (lowest index on ties); it gets
      skipped = 1, beta_blk = 1, frozen. Pruned betas are re-set to 1 after every iteration.

    The state lives in the model (``skipped``/``pruned_at`` buffers) and the trainer's history, so a resumed run
    continues the schedule. :meth:`finalize` prunes what the schedule has not reached by the end, if wanted.
    """

    def __init__(self, total_iters: int, budget: int | None = None, first_prune: float = 0.2,
                 recover_tol: float = 0.0) -> None:
        if total_iters < 1:
            raise ValueError(f"total_iters must be >= 1, got {total_iters}")
        self.total_iters, self.budget = int(total_iters), budget
        self.first_iter = max(1, round(first_prune * total_iters))
        self.recover_tol = float(recover_tol)
        self.events: list[PruneEvent] = []

    # -- derived quantities ----------------------------------------------------------------------------------
    def _blocks(self, model: nn.Module) -> list[SlimmableBlock]:
        blocks = slimmable_blocks(model)
        if not blocks:
            raise ValueError("the model has no SlimmableBlock; call "
                             "quantsr.models.slimmable.make_slimmable_(model) first")
        return blocks

    def kept_budget(self, num_blocks: int) -> int:
        budget = num_blocks // 2 if self.budget is None else int(self.budget)
        if not 1 <= budget <= num_blocks:
            raise ValueError(f"budget (blocks kept) must be in [1, {num_blocks}], got {budget}")
        return budget

    def interval(self, num_blocks: int) -> float:
        return 2 * self.total_iters / num_blocks

    @staticmethod
    def _reference_psnr(validation: list[dict[str, float]], last_prune: int) -> float | None:
        seen = [r["psnr"] for r in validation if r["iteration"] <= last_prune]
        return max(seen) if seen else None

    # -- the schedule ---------------------------------------------------------------------------------------
    def __call__(self, trainer: Any) -> PruneEvent | None:
        validation = list(trainer.history.validation)
        never_validates = (hasattr(trainer, "val_sets") and not trainer.val_sets) or (
            getattr(getattr(trainer, "config", None), "val_every", 1) == 0)
        return self.step(trainer.model, trainer.iteration, validation, never_validates=never_validates)

    def step(self, model: nn.Module, iteration: int, validation: list[dict[str, float]],
             never_validates: bool = False) -> PruneEvent | None:
        """One schedule decision at ``iteration`` (after that iteration's validation, if any)."""
        blocks = self._blocks(model)
        for b in blocks:  # keep pruned shortcut weights at exactly 1, whatever the optimizer did
            if b.is_skipped:
                b.freeze_beta_()
        pruned = [i for i, b in enumerate(blocks) if b.is_skipped]
        if not self.events and pruned:
            self._restore_events(blocks, validation)
        if len(pruned) >= len(blocks) - self.kept_budget(len(blocks)):
            return None
        if not pruned:
            if iteration < self.first_iter:
                return None
            latest = validation[-1]["psnr"] if validation else None
            return self._prune(blocks, iteration, latest, "first")
        last = max(int(blocks[i].pruned_at) for i in pruned)
        validated_now = bool(validation) and validation[-1]["iteration"] == iteration and iteration > last
        if not (validated_now or never_validates):
            return None
        psnr = validation[-1]["psnr"] if validated_now else None
        reference = self._reference_psnr(validation, last)
        if psnr is not None and reference is not None and psnr >= reference - self.recover_tol:
            return self._prune(blocks, iteration, psnr, "recovered")
        if iteration - last >= self.interval(len(blocks)):
            return self._prune(blocks, iteration, psnr, "interval")
        return None

    def finalize(self, model: nn.Module, iteration: int = -1) -> list[PruneEvent]:
        """Prune, most important first, until the budget is met (e.g. when training ended before the schedule)."""
        blocks, out = self._blocks(model), []
        while sum(b.is_skipped for b in blocks) < len(blocks) - self.kept_budget(len(blocks)):
            out.append(self._prune(blocks, iteration, None, "finalize"))
        return out

    def _prune(self, blocks: list[SlimmableBlock], iteration: int, psnr: float | None, reason: str) -> PruneEvent:
        candidates = [(b.beta_blk.item(), -i) for i, b in enumerate(blocks) if not b.is_skipped]
        beta, neg_index = max(candidates)
        blocks[-neg_index].skip_(iteration)
        event = PruneEvent(iteration, -neg_index, psnr, beta, reason)
        self.events.append(event)
        return event

    def _restore_events(self, blocks: list[SlimmableBlock], validation: list[dict[str, float]]) -> None:
        for it, i in sorted((int(b.pruned_at), i) for i, b in enumerate(blocks) if b.is_skipped):
            psnr = [r["psnr"] for r in validation if r["iteration"] <= it]
            self.events.append(PruneEvent(it, i, psnr[-1] if psnr else None, 1.0, "restored"))

    def state_dict(self) -> dict[str, Any]:
        return {"events": [vars(e).copy() for e in self.events]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.events = [PruneEvent(**e) for e in state["events"]]


# ---------------------------------------------------------------------------------------------------------------
# budgets


def slim_report(model: nn.Module, input_size: tuple[int, ...], bits_fn: BitsFn | None = None,
                **profile_kw: Any) -> ProfileReport:
    """OPs and storage of the slimmed model (pruned blocks cost nothing): ``profile(strip_skipped(model))``."""
    return profile(strip_skipped(model), input_size, bits_fn=bits_fn, **profile_kw)


def blocks_for_budget(model_builder: Callable[[int], nn.Module], max_blocks: int, budget_bytes: float | None = None,
                      budget_ops: float | None = None, input_size: tuple[int, ...] = (3, 256, 256),
                      bits_fn: BitsFn | None = None, on_meta: bool = False) -> int:
    """The largest number of kept blocks ``n <= max_blocks`` whose model ``model_builder(n)`` fits the budget.

    ``budget_bytes`` bounds ``profile(...).storage_bits / 8``, ``budget_ops`` bounds ``profile(...).ops`` (OPs =
    FLOPs + BitOPs / 64 at ``input_size``); both may be given. ``bits_fn`` is passed to
    :func:`quantsr.eval.opcount.profile`
    (e.g. W2A2 for ``body.*``), so a quantized budget can be computed on FP models. Costs grow with the block
    count, so this bisects. Raises ValueError if even one block does not fit.
    """
    if budget_bytes is None and budget_ops is None:
        raise ValueError("give budget_bytes and/or budget_ops")

    def fits(n: int) -> bool:
        r = profile(model_builder(n), input_size, bits_fn=bits_fn, on_meta=on_meta)
        return (budget_bytes is None or r.storage_bits / 8 <= budget_bytes) and (
            budget_ops is None or r.ops <= budget_ops)

    if not fits(1):
        raise ValueError("even a single block exceeds the budget")
    lo, hi = 1, int(max_blocks)  # invariant: lo fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo
