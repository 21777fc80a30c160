"""Post-training quantization (PTQ) baselines: set every quantizer's step from calibration data, no training.

``ptq_(model, config, calib_batches, method)`` applies :func:`quantsr.quant.quantize_` and then initialises all
quantizers so the model can be evaluated directly (``quantsr.eval.evaluate``). Methods:

* ``"minmax"``: no clipping of the observed range.
  - Weights (per tensor, RBD with ``s = 1``, ``beta = 0``, i.e. uniform rounding onto the levels ``[lo, hi]`` =
    ``[-(2^(b-1)-1), 2^(b-1)]``; ``lsq_sym``: ``hi = 2^(b-1)-1``): ``a = max|W| / hi``, so max|W| maps to the top
    level (on the skewed RBD grid the most negative weights can clip by one level: -(hi-1)a vs -max|W|).
  - Activations: signed iff the calibration minimum is < -1e-5 (the rule ActQuantizer uses), ``tau = 0``;
    ``a = max(max(x) / Qp, min(x) / Qn)`` (signed ``Qn = -2^(b-1)``, ``Qp = 2^(b-1)-1``; unsigned
    ``a = max(x) / (2^b - 1)``), so neither end of the range is clipped.
* ``"percentile"``: as minmax with the ``percentile``-th percentile of ``|W|`` for weights and, for activations,
  the ``percentile``-th percentile of x as the top and the ``(100 - percentile)``-th as the bottom (per tail,
  because the activation grid is asymmetric). Steps are never larger than minmax's.
* ``"mse"``: grid search over clipping ratios ``r = k / grid`` (k = 1..grid) of the minmax step, keeping the step
  with the least ``||Q(x) - x||^2`` (weights: exact on the tensor; activations: on a ``bins``-bin histogram of
  all calibration activations, bin centres weighted by counts). ``r = 1`` is minmax, so its error is <= minmax's.
* ``"lsq"``: the LSQ initial values the quantizers give themselves at the first training batch (weights
  ``2 mean|W| / sqrt(Qp)``, activations ``2 mean|x~| / sqrt(Qp)``), i.e. :func:`quantsr.quant.calibrate_` on the
  concatenated calibration batches with no training.

With ``weight_granularity="per_channel_oriented"`` each channel's weight step is found for the channel and for
its negation, and the one with the smaller error wins; the mirrored grid is stored as a negative step.

Statistics for minmax/percentile/mse come from the full-precision network (all quantizers bypassed while
forward pre-hooks on each :class:`ActQuantizer` record its input); ``"lsq"`` follows ``calibrate_``, where each
quantizer sees the output of the already-quantized layers before it.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from quantsr.models.slimmable import is_pruned
from quantsr.quant import (
    ActQuantizer,
    RBDWeightQuantizer,
    calibrate_,
    disabled,
    quantize_,
)
from quantsr.quant.layers import QUANT_LAYERS

if TYPE_CHECKING:  # pragma: no cover
    from quantsr.data.datasets import PatchDataset

__all__ = ["PTQ_METHODS", "calibration_batches", "ptq_", "weight_quant_error"]

PTQ_METHODS = ("minmax", "percentile", "mse", "lsq")
_SIGN_EPS = 1e-5  # ActQuantizer's signed/unsigned rule: signed iff min(x~) < -1e-5


def calibration_batches(data: PatchDataset, n: int, start: int = 0) -> Iterator[torch.Tensor]:
    """The LR tensors of batches ``start .. start + n - 1`` of a :class:`PatchDataset` (deterministic)."""
    for i in range(start, start + n):
        yield data.batch(i)[0]


# --------------------------------------------------------------------------------------------- statistics
class _Observer:
    """Running min/max (pass 1) and a fixed-range histogram (pass 2) of one quantizer's input."""

    def __init__(self) -> None:
        self.lo, self.hi = math.inf, -math.inf
        self.hist: torch.Tensor | None = None

    def observe_range(self, x: torch.Tensor) -> None:
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))

    def observe_hist(self, x: torch.Tensor, bins: int) -> None:
        lo, hi = self.span()
        h = torch.histc(x.detach().float().flatten(), bins=bins, min=lo, max=hi).cpu().double()
        self.hist = h if self.hist is None else self.hist + h

    def span(self) -> tuple[float, float]:
        return self.lo, max(self.hi, self.lo + 1e-8)

    @property
    def signed(self) -> bool:
        return self.lo < -_SIGN_EPS

    def centers(self) -> torch.Tensor:
        assert self.hist is not None
        lo, hi = self.span()
        width = (hi - lo) / self.hist.numel()
        return lo + width * (torch.arange(self.hist.numel(), dtype=torch.float64) + 0.5)

    def quantile(self, q: float) -> float:
        """q-quantile (0..1) of everything observed, linear inside the histogram bin."""
        assert self.hist is not None
        lo, hi = self.span()
        total = float(self.hist.sum())
        if total <= 0:
            return hi
        cdf = torch.cumsum(self.hist, 0) / total
        idx = min(int(torch.searchsorted(cdf, torch.tensor([q], dtype=cdf.dtype))[0]), cdf.numel() - 1)
        prev = float(cdf[idx - 1]) if idx > 0 else 0.0
        frac = (q - prev) / max(float(cdf[idx]) - prev, 1e-300)
        width = (hi - lo) / cdf.numel()
        return min(max(lo + width * (idx + min(max(frac, 0.0), 1.0)), lo), hi)


@contextmanager
def _fp_observed(model: nn.Module, record: Callable[[ActQuantizer, torch.Tensor], None]):
    """Bypass every quantizer (full-precision forward, :func:`quantsr.quant.disabled`) and call
    ``record(quantizer, x~)`` on each ActQuantizer's input through forward pre-hooks; everything is restored on
    exit."""
    acts = [m for m in model.modules() if isinstance(m, ActQuantizer)]
    handles = [m.register_forward_pre_hook(lambda mod, inp: record(mod, mod._shift(inp[0]).detach())) for m in acts]
    try:
        with disabled(model):
            yield
    finally:
        for h in handles:
            h.remove()


# --------------------------------------------------------------------------------------------- step choices
def _act_range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def _act_step(lo: float, hi: float, qn: int, qp: int) -> float:
    """Smallest step whose grid ``[qn a, qp a]`` contains ``[lo, hi]``."""
    step = max(hi, 0.0) / qp
    if qn < 0:
        step = max(step, min(lo, 0.0) / qn)
    return max(step, 1e-8)


def _uniform(x: torch.Tensor, step: torch.Tensor, qn: float, qp: float) -> torch.Tensor:
    return step * torch.clamp(torch.round(x / step), qn, qp)


def _mse_step(x: torch.Tensor, step_max: float, qn: int, qp: int, grid: int,
              weights: torch.Tensor | None = None) -> float:
    """Step ``r * step_max`` (r = k/grid, k = 1..grid) minimising the (weighted) squared rounding+clipping error."""
    steps = step_max * torch.arange(1, grid + 1, dtype=torch.float64) / grid
    x = x.detach().double().flatten()
    w = torch.ones_like(x) if weights is None else weights.double().flatten()
    err = torch.stack([(w * (_uniform(x, s, qn, qp) - x).square()).sum() for s in steps])
    return float(steps[int(torch.argmin(err))])  # argmin returns the first minimum: ties go to the smaller step


def _abs_quantile(t: torch.Tensor, q: float) -> float:
    v, _ = torch.sort(t.detach().abs().flatten().double())
    pos = q * (v.numel() - 1)
    i = math.floor(pos)
    j = min(i + 1, v.numel() - 1)
    return float(v[i] + (v[j] - v[i]) * (pos - i))


@torch.no_grad()
def _set_weight_step(layer: nn.Module, method: str, percentile: float, grid: int) -> None:
    wq, w = layer.weight_quantizer, layer.weight
    lo, hi = wq.level_range
    if isinstance(wq, RBDWeightQuantizer):  # s = 1, beta = 0: RBD is plain uniform rounding onto [lo, hi]
        wq.s.fill_(1.0)
        wq.beta.fill_(0.0)
    if method == "lsq":
        wq.init_from(w)
        return
    # a per-channel quantizer gets each output channel's own step, by the same rule
    rows = w.detach().flatten(1) if wq.per_channel else [w.detach()]
    steps = []
    for row in rows:
        step = _row_step(row, method, percentile, lo, hi, grid)
        if wq.oriented and lo != -hi:  # the mirrored grid (a negative step) where it fits the channel better
            mirrored = _row_step(-row, method, percentile, lo, hi, grid)
            if _grid_error(-row, mirrored, lo, hi) < _grid_error(row, step, lo, hi):
                step = -mirrored
        steps.append(step)
    wq.set_step(torch.tensor(steps) if len(steps) > 1 else steps[0])


def _row_step(row: torch.Tensor, method: str, percentile: float, lo: int, hi: int, grid: int) -> float:
    """One weight step (positive) for the values ``row`` on the levels ``[lo, hi]``, by ``method``."""
    w_max = float(row.abs().max())
    if method == "percentile":
        w_max = _abs_quantile(row, percentile / 100.0)
    step = max(w_max, 1e-8) / hi
    return _mse_step(row, step, lo, hi, grid) if method == "mse" else step


def _grid_error(row: torch.Tensor, step: float, lo: int, hi: int) -> float:
    x = row.double()
    return float((_uniform(x, torch.tensor(step, dtype=torch.float64), lo, hi) - x).square().sum())


@torch.no_grad()
def _set_act(q: ActQuantizer, parts: list[_Observer], method: str, percentile: float, grid: int) -> None:
    """One step per observed part (one part, or one per concat segment), on one shared signed/unsigned grid."""
    signed = any(obs.signed for obs in parts)
    qn, qp = _act_range(q.bits, signed)
    steps = []
    for obs in parts:
        lo, hi = obs.span()
        if method == "percentile":
            p = percentile / 100.0
            lo, hi = obs.quantile(1.0 - p), obs.quantile(p)
        step = _act_step(lo, hi, qn, qp)
        if method == "mse":
            step = _mse_step(obs.centers(), step, qn, qp, grid, weights=obs.hist)
        steps.append(step)
    q.set_range(torch.tensor(steps) if len(steps) > 1 else steps[0], signed)


# --------------------------------------------------------------------------------------------- entry point
@torch.no_grad()
def ptq_(model: nn.Module, config, calib_batches: Iterable[torch.Tensor], method: str = "minmax",
         percentile: float = 99.99, filter_fn=None, *, bins: int = 2048, grid: int = 100) -> nn.Module:
    """Quantize ``model`` in place with ``quantize_(model, config, filter_fn)`` and set every quantizer from
    calibration data (``method`` in :data:`PTQ_METHODS`, see the module docstring). ``calib_batches`` are model
    inputs (e.g. :func:`calibration_batches`); they are read once into memory (twice forwarded for percentile and
    mse: range pass, then histogram pass). Activation shifts ``tau`` are set to 0. Returns the model (the
    replacement if ``model`` itself was a single conv/linear) in eval mode, ready for ``quantsr.eval.evaluate``."""
    if method not in PTQ_METHODS:
        raise ValueError(f"method must be one of {PTQ_METHODS}, got {method!r}")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    if bins < 2 or grid < 1:
        raise ValueError(f"need bins >= 2 and grid >= 1, got bins={bins}, grid={grid}")
    model = quantize_(model, config, filter_fn)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    batches = [b.to(device) for b in calib_batches]
    if not batches:
        raise ValueError("ptq_ needs at least one calibration batch")
    # A block skipped from the start (QuantRecipe.skip_blocks) never runs: its quantizers have nothing to see.
    idle = {id(m) for block in model.modules() if is_pruned(block) for m in block.modules()}
    acts = [m for m in model.modules() if isinstance(m, ActQuantizer) and id(m) not in idle]
    for q in acts:
        if q.tau is not None:
            q.tau.zero_()
    for layer in _distinct_weight_layers(model):
        _set_weight_step(layer, method, percentile, grid)
    model.eval()
    if method == "lsq":
        for q in acts:
            q.reset()
        calibrate_(model, torch.cat(batches))
        return model

    observers = {q: [_Observer() for _ in range(q.step.numel())] for q in acts}  # one per step

    def observe(q: ActQuantizer, x: torch.Tensor, hist: bool) -> None:
        for obs, part in zip(observers[q], q.split(x)):
            obs.observe_hist(part, bins) if hist else obs.observe_range(part)

    with _fp_observed(model, lambda q, x: observe(q, x, hist=False)):
        for x in batches:
            model(x)
    if method in ("percentile", "mse"):
        with _fp_observed(model, lambda q, x: observe(q, x, hist=True)):
            for x in batches:
                model(x)
    for q, parts in observers.items():
        if any(obs.lo == math.inf for obs in parts):
            raise RuntimeError(f"an activation quantizer ({q.extra_repr()}) saw no input during calibration; "
                               "is it on the forward path?")
        _set_act(q, parts, method, percentile, grid)
    return model


@torch.no_grad()
def weight_quant_error(model: nn.Module) -> float:
    """Sum over quantized layers of ``||Q(W) - W||^2`` (a PTQ diagnostic)."""
    return float(sum((m.quantized_weight() - m.weight).square().sum() for m in _distinct_weight_layers(model)))


def _distinct_weight_layers(model: nn.Module) -> list[nn.Module]:
    """The quantized layers, one per weight tensor (tied copies of a shared block hold their original's)."""
    layers: dict[int, nn.Module] = {}
    for m in model.modules():
        if isinstance(m, QUANT_LAYERS):
            layers.setdefault(id(m.weight), m)
    return list(layers.values())
