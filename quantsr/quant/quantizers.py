"""QuantSR+ quantizers (docs/method.md, "RBD weight quantizer" and "Activation quantizer"): the redistributed
activation quantizer and the RBD bit-plane weight quantizer, plus a plain LSQ weight quantizer for ablations. The
rounding functions and the LSQ gradient scale they use are in :mod:`quantsr.quant.rounding` (re-exported here).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from quantsr.quant.rounding import grad_scale, round_soft, round_ste, sign_clip_ste, soft_round_grad

__all__ = [
    "ROUNDINGS",
    "WEIGHT_GRANULARITIES",
    "WEIGHT_QUANTIZERS",
    "ActQuantizer",
    "LSQWeightQuantizer",
    "RBDWeightQuantizer",
    "disabled",
    "grad_scale",
    "make_weight_quantizer",
    "round_soft",
    "round_ste",
    "shift_only",
    "sign_clip_ste",
    "soft_round_grad",
]

ROUNDINGS = ("ste", "soft")
WEIGHT_QUANTIZERS = ("rbd", "lsq", "lsq_sym")
# one weight step per tensor (the paper's setting) or per output channel (dim 0 of the weight); "oriented": per
# channel, each step's sign chosen at initialisation (a negative step mirrors the channel's asymmetric grid)
WEIGHT_GRANULARITIES = ("per_tensor", "per_channel", "per_channel_oriented")


def _check_granularity(granularity: str) -> str:
    if granularity not in WEIGHT_GRANULARITIES:
        raise ValueError(f"weight_granularity must be one of {WEIGHT_GRANULARITIES}, got {granularity!r}")
    return granularity


def _check_bits(bits: int) -> int:
    if not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"bit-width must be an int in [2, 16], got {bits!r}")
    return bits


# --------------------------------------------------------------------------------------------- activations
def fp32_quantizer_math(forward):
    """Run a quantizer's forward in float32 even inside a bf16/fp16 autocast region: rounding onto a b-bit grid
    and LSQ step gradients need fp32 precision (bf16 has an 8-bit mantissa). Outside autocast it is a no-op."""

    @functools.wraps(forward)
    def wrapper(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(device_type=x.device.type, enabled=False):
                return forward(self, x.float())
        return forward(self, x)

    return wrapper


@torch.no_grad()
def _set_step_(param: nn.Parameter, step: float | torch.Tensor) -> None:
    """Copy ``step`` into a step parameter: one value for every entry, or one value per entry."""
    value = torch.as_tensor(step, dtype=param.dtype, device=param.device)
    param.copy_(value.reshape(param.shape) if value.numel() > 1 else value.reshape(()).expand_as(param))


def _batch_numel(x: torch.Tensor, training: bool) -> int:
    """The element count LSQ's gradient scale uses: that of the whole batch the loss is over, so under DDP
    (each rank holding a shard) it is the shard's times the ranks, and N ranks step as one process."""
    n = x.numel()
    if training and torch.distributed.is_available() and torch.distributed.is_initialized():
        n *= torch.distributed.get_world_size()
    return n


class ActQuantizer(nn.Module):
    """Redistributed LSQ activation quantizer: ``x~ = x + tau``; ``xq = a' * round(clip(x~ / a', Qn, Qp))``.

    * ``tau``: one learnable shift per channel along ``channel_dim`` (-3 for conv inputs (N, C, H, W) or
      (C, H, W); -1 for linear / matmul inputs (..., C)), initialised to 0. Nothing is subtracted afterwards.
      ``redistribute=False`` drops tau (used for the softmax output in attention, whose rows must stay
      non-negative and sum to ~1).
    * ``step`` (a): learnable per-tensor scalar, LSQ gradient scale ``g = 1 / sqrt(numel(x) * Qp)``; with
      ``segments`` (channel counts of consecutive parts along ``channel_dim``, e.g. the branches of a concat)
      one step per part instead (``g`` over the part's share of the elements), so a fusion conv's input keeps
      each branch on its own grid, as the deployed graph's split concat does (``quantsr.quant.concat``).
    * Range: decided once, at the first forward in training mode: signed ``[-2^(b-1), 2^(b-1)-1]`` if
      ``min(x~) < -1e-5``, else unsigned ``[0, 2^b-1]``; ``a`` is then set to ``2 mean(|x~|) / sqrt(Qp)``.
      Both are stored in buffers (``signed``, ``initialized``), so checkpoints keep them.
    * Calling an uninitialised quantizer in eval mode raises ``RuntimeError`` (we do not silently calibrate on
      an evaluation batch): train for one step, call :func:`quantsr.quant.calibrate_`, :meth:`set_range`, or load
      a checkpoint.
    * ``enabled`` (Python attribute, default True, not saved): when False, forward returns its input unchanged
      (no shift, no rounding, no initialisation); see :func:`disabled` for a full-precision pass of a model.
      ``shift_only`` (likewise, default False): forward returns ``x~`` unclipped and unrounded, the input the
      next layer's bias was trained against (see :func:`shift_only`).
    * Rounding gradient: ``"ste"`` (default) or ``"soft"`` (QuantSR's tanh surrogate, ``soft_k`` = k).
      Out-of-range values get zero gradient w.r.t. x and pass ``Qn``/``Qp`` to a (LSQ).
    """

    def __init__(
        self,
        bits: int,
        num_channels: int = 1,
        channel_dim: int = -3,
        rounding: str = "ste",
        redistribute: bool = True,
        soft_k: float = 1.0,
        segments: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        segments = tuple(int(n) for n in segments) if segments else None
        if segments is not None and (sum(segments) != num_channels or min(segments) < 1):
            raise ValueError(f"segments {segments} must be positive channel counts summing to {num_channels}")
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
        self.bits = _check_bits(bits)
        self.num_channels = num_channels
        self.channel_dim = channel_dim
        self.rounding = rounding
        self.soft_k = soft_k
        if redistribute:
            self.tau = nn.Parameter(torch.zeros(num_channels))
        else:
            self.register_parameter("tau", None)
        self.segments = segments
        self.step = nn.Parameter(torch.tensor(1.0) if segments is None else torch.ones(len(segments)))
        if segments is not None:  # channel -> its segment's step
            index = torch.repeat_interleave(torch.arange(len(segments)), torch.tensor(segments))
            self.register_buffer("segment_index", index, persistent=False)
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("signed", torch.tensor(False))
        self._flags: tuple[bool, bool] | None = None  # python mirror of (initialized, signed): no device sync
        self.enabled = True
        self.shift_only = False

    # -- state -------------------------------------------------------------------------------------------
    def _state(self) -> tuple[bool, bool]:
        if self._flags is None:
            self._flags = (bool(self.initialized), bool(self.signed))
        return self._flags

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._flags = None

    def reset(self) -> None:
        """Forget the range decision and step init; the next training forward re-initialises."""
        self.initialized.fill_(False)
        self.signed.fill_(False)
        self._flags = None

    @torch.no_grad()
    def set_range(self, step: float | torch.Tensor, signed: bool) -> None:
        """Decide the range and step from outside (e.g. PTQ calibration): signed ``[-2^(b-1), 2^(b-1)-1]`` or
        unsigned ``[0, 2^b-1]`` levels, step ``a = step``; marks the quantizer initialised. ``tau`` is left as is."""
        signed = bool(signed)
        _set_step_(self.step, step)
        self.signed.fill_(signed)
        self.initialized.fill_(True)
        self._flags = (True, signed)

    @property
    def is_initialized(self) -> bool:
        return self._state()[0]

    def qrange(self) -> tuple[int, int]:
        """(Qn, Qp) of the decided range (unsigned until initialised)."""
        b = self.bits
        return (-(2 ** (b - 1)), 2 ** (b - 1) - 1) if self._state()[1] else (0, 2**b - 1)

    # -- forward -----------------------------------------------------------------------------------------
    def _shift(self, x: torch.Tensor) -> torch.Tensor:
        if self.tau is None:
            return x
        shape = [1] * x.dim()
        shape[self.channel_dim] = self.num_channels
        return x + self.tau.view(shape)

    @torch.no_grad()
    def _initialize(self, xs: torch.Tensor) -> None:
        signed = bool(xs.min() < -1e-5)
        self.signed.fill_(signed)
        self.initialized.fill_(True)
        self._flags = (True, signed)
        _, qp = self.qrange()
        parts = self.split(xs)
        steps = torch.stack([2.0 * part.abs().mean() / math.sqrt(qp) for part in parts]).clamp_min(1e-8)
        self.step.copy_(steps.reshape(self.step.shape))

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``x`` cut into the parts that share a step (one part without ``segments``)."""
        return (x,) if self.segments is None else x.split(self.segments, dim=self.channel_dim)

    def _expanded(self, a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.segments is None:
            return a
        shape = [1] * x.dim()
        shape[self.channel_dim] = self.num_channels
        return a[self.segment_index].view(shape)

    @fp32_quantizer_math
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        xs = self._shift(x)
        if self.shift_only:
            return xs
        if not self._state()[0]:
            if not self.training:
                raise RuntimeError(
                    f"{self.__class__.__name__}(bits={self.bits}) is not initialised: its range and step are set by "
                    "the first forward in training mode. Train a step, call quantsr.quant.calibrate_(model, x), "
                    "or load a quantized checkpoint before evaluating."
                )
            self._initialize(xs.detach())
        qn, qp = self.qrange()
        per_step = _batch_numel(x, self.training) / self.step.numel()
        a = self._expanded(grad_scale(self.step, 1.0 / math.sqrt(per_step * qp)), x)
        v = torch.clamp(xs / a, qn, qp)
        v = round_ste(v) if self.rounding == "ste" else round_soft(v, self.soft_k)
        return v * a

    def extra_repr(self) -> str:
        rng = "unset" if not self._state()[0] else ("signed" if self._state()[1] else "unsigned")
        tau = "none" if self.tau is None else f"{self.num_channels}@dim{self.channel_dim}"
        off = "" if self.enabled else ", enabled=False"
        seg = "" if self.segments is None else f", segments={self.segments}"
        return f"bits={self.bits}, range={rng}, tau={tau}, rounding={self.rounding}{seg}{off}"


# --------------------------------------------------------------------------------------------- weights
class _WeightQuantizerBase(nn.Module):
    """Step ``a`` per tensor (or, ``per_channel=True``, per output channel; init ``2 mean(|W|) / sqrt(Qp)``,
    Qp = 2^(b-1)-1) with the LSQ gradient scale.

    ``oriented=True`` (per channel only): each channel's step starts with the sign whose grid fits the channel
    better. The level set ``[lo, hi]`` is asymmetric (RBD: one more level above zero than below), and
    ``a * levels(W / a)`` with ``a < 0`` is that grid mirrored, its extra level on the negative side: at 2 bits
    ``{-2, -1, 0, 1} |a|`` instead of ``{-1, 0, 1, 2} |a|``, for a channel whose largest weights are negative.
    The sign lives in the step itself (no extra state); export already takes a negative step's sign into the
    integer levels.

    Integer levels lie in ``[lo, hi]``; ``integer_weight(W)`` returns ``(levels, step)`` with
    ``forward(W) == step * levels`` exactly. ``enabled = False`` (Python attribute, not saved) makes forward
    return ``W`` unchanged; ``integer_weight`` is unaffected.
    """

    def __init__(self, bits: int, weight: torch.Tensor | None = None, per_channel: bool = False,
                 oriented: bool = False) -> None:
        super().__init__()
        self.bits = _check_bits(bits)
        self.qp = 2 ** (bits - 1) - 1
        if oriented and not per_channel:
            raise ValueError("an oriented weight grid needs per-channel steps (weight_granularity "
                             "'per_channel_oriented')")
        self.per_channel = per_channel
        self.oriented = oriented  # a construction setting (the signs themselves are in the step)
        if per_channel:
            if weight is None:
                raise ValueError("a per-channel weight quantizer needs the weight (its step has one entry per "
                                 "output channel)")
            shape = (weight.shape[0],) + (1,) * (weight.dim() - 1)  # broadcasts over each channel's weights
            self.step = nn.Parameter(torch.ones(shape))
        else:
            self.step = nn.Parameter(torch.tensor(1.0))
        self.enabled = True

    def _initialise(self, weight: torch.Tensor | None) -> None:
        """The subclass's last step of construction (its level range is known by then): the step from ``weight``."""
        if weight is not None:
            self.init_from(weight)

    @torch.no_grad()
    def init_from(self, weight: torch.Tensor) -> None:
        """(Re)initialise the step from a weight tensor: ``a = 2 mean(|W|) / sqrt(2^(b-1) - 1)``, the mean taken
        over each output channel for a per-channel step; ``oriented``: each channel's ``a`` negated where the
        mirrored grid fits its weights better (:meth:`orient`)."""
        w = weight.detach().abs()
        mean = w.flatten(1).mean(1).reshape(self.step.shape) if self.per_channel else w.mean()
        step = (2.0 * mean / math.sqrt(self.qp)).clamp_min(1e-8)
        self.step.copy_(self.orient(weight, step) if self.oriented else step)

    @torch.no_grad()
    def orient(self, weight: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """``step`` (positive, one per channel) with each channel's sign chosen to minimise its squared rounding
        and clipping error on the level grid; a tie keeps the positive step."""
        lo, hi = self.level_range
        w = weight.detach().flatten(1).double()
        a = step.detach().reshape(-1, 1).double()

        def error(signed: torch.Tensor) -> torch.Tensor:
            return (signed * torch.clamp(torch.round(w / signed), lo, hi) - w).square().sum(1)

        mirrored = error(-a) < error(a)
        return torch.where(mirrored.reshape(step.shape), -step, step)

    @torch.no_grad()
    def set_step(self, step: float | torch.Tensor) -> None:
        """Set the step ``a`` directly (e.g. from PTQ calibration): a scalar (every channel), or one per channel."""
        _set_step_(self.step, step)

    def _scaled_step(self, weight: torch.Tensor) -> torch.Tensor:
        per_step = weight.numel() // self.step.numel()  # LSQ's gradient scale: the weights each step serves
        return grad_scale(self.step, 1.0 / math.sqrt(per_step * self.qp))

    def _levels(self, weight: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @fp32_quantizer_math
    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return weight
        a = self._scaled_step(weight)
        return a * self._levels(weight, a)

    @torch.no_grad()
    def integer_weight(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(levels int32 tensor shaped like W, step)`` such that ``forward(W) == step * levels``; the step is a
        0-dim tensor, or per channel shaped ``(C, 1, ...)``."""
        step = self.step.detach().clone()
        return torch.round(self._levels(weight, step)).to(torch.int32), step

    def extra_repr(self) -> str:
        off = "" if self.enabled else ", enabled=False"
        per = ", per_channel" if self.per_channel else ""
        per += "_oriented" if self.oriented else ""
        return f"bits={self.bits}, levels=[{self.level_range[0]}, {self.level_range[1]}]{per}{off}"


class RBDWeightQuantizer(_WeightQuantizerBase):
    """RBD: bit-plane decomposition of the weight with learned redistribution (s_i, beta_i), i = 0..b-1.

    ``t = 2W/a' - 1``; for i = b-1 .. 0: ``r_i = t - sum_{j>i} c_j s_j 2^j``, ``c_i = sign(s_i r_i - beta_i)``
    (0 -> +1, clip-STE backward); ``q = sum_i c_i 2^i``; ``Wq = a' (q + 1) / 2``.

    Reading of the identity (the method's formula is used literally; no offset is needed): with s = 1, beta = 0
    the loop is greedy signed-binary coding of t. After fixing bits b-1..i+1, the remaining sum
    ``sum_{j<=i} c_j 2^j`` ranges over the odd integers in ``[-(2^(i+1)-1), 2^(i+1)-1]``, which splits into the
    halves ``c_i = -1`` / ``c_i = +1`` whose boundary is exactly 0, so ``sign(r_i)`` picks the half holding the
    nearest odd integer, and by induction q is the odd integer nearest to t, clipped to ``+-(2^b - 1)``. Since
    ``t - q = 2 (W/a - (q+1)/2)``, the nearest odd q to t is ``2 round(W/a) - 1``, hence
    ``Wq = a * clip(round(W/a), -(2^(b-1)-1), 2^(b-1))``. Only at exact ties (W/a = k + 1/2, measure zero)
    do they differ: sign(0) = +1 rounds half up, torch.round rounds half to even.
    s and beta move the decision thresholds only; q stays an odd integer in that range, so
    ``Wq`` keeps at most 2^b distinct values. The integer level ``(q+1)/2`` lies in ``[-(2^(b-1)-1), 2^(b-1)]``
    (2^b values): an int8 container holds it as is for b <= 7; signed b-bit storage (and b = 8 in int8) needs
    the offset ``level - 1`` in ``[-2^(b-1), 2^(b-1)-1]``, i.e. a zero point of -1.
    """

    def __init__(self, bits: int, weight: torch.Tensor | None = None, per_channel: bool = False,
                 oriented: bool = False) -> None:
        super().__init__(bits, weight, per_channel, oriented)
        self.s = nn.Parameter(torch.ones(bits))
        self.beta = nn.Parameter(torch.zeros(bits))
        self._initialise(weight)

    @property
    def level_range(self) -> tuple[int, int]:
        return -self.qp, self.qp + 1

    def code(self, weight: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The odd integer code q (as float, differentiable through the clip-STE signs)."""
        t = 2.0 * weight / a - 1.0
        acc = torch.zeros_like(t)  # sum_{j>i} c_j s_j 2^j
        q = torch.zeros_like(t)
        for i in reversed(range(self.bits)):
            c = sign_clip_ste(self.s[i] * (t - acc) - self.beta[i])
            p = float(2**i)
            acc = acc + c * (self.s[i] * p)
            q = q + c * p
        return q

    def _levels(self, weight: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return (self.code(weight, a) + 1.0) * 0.5


class LSQWeightQuantizer(_WeightQuantizerBase):
    """Plain LSQ weight quantizer (ablation): ``Wq = a' * round(clip(W/a', lo, hi))``, STE rounding.

    ``symmetric=False`` (``"lsq"``): RBD's level set ``[-(2^(b-1)-1), 2^(b-1)]``. ``symmetric=True``
    (``"lsq_sym"``): ``[-(2^(b-1)-1), 2^(b-1)-1]``, which stores as signed b-bit with zero point 0 (what
    XNNPACK's symmetric per-tensor/per-channel int8 weights need), used for int8 head/tail layers.
    """

    def __init__(self, bits: int, weight: torch.Tensor | None = None, symmetric: bool = False,
                 per_channel: bool = False, oriented: bool = False) -> None:
        super().__init__(bits, weight, per_channel, oriented)
        self.symmetric = symmetric
        self._initialise(weight)

    @property
    def level_range(self) -> tuple[int, int]:
        return -self.qp, self.qp if self.symmetric else self.qp + 1

    def _levels(self, weight: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        lo, hi = self.level_range
        return round_ste(torch.clamp(weight / a, lo, hi))


def make_weight_quantizer(kind: str, bits: int, weight: torch.Tensor | None = None,
                          granularity: str = "per_tensor") -> _WeightQuantizerBase:
    """``"rbd"`` | ``"lsq"`` (same levels as RBD) | ``"lsq_sym"`` (symmetric levels), with one step per tensor
    or per output channel (``granularity``, one of :data:`WEIGHT_GRANULARITIES`)."""
    per_channel = _check_granularity(granularity) != "per_tensor"
    oriented = granularity == "per_channel_oriented"
    if kind == "rbd":
        return RBDWeightQuantizer(bits, weight, per_channel, oriented)
    if kind in ("lsq", "lsq_sym"):
        return LSQWeightQuantizer(bits, weight, symmetric=kind == "lsq_sym", per_channel=per_channel,
                                  oriented=oriented)
    raise ValueError(f"weight_quantizer must be one of {WEIGHT_QUANTIZERS}, got {kind!r}")


# --------------------------------------------------------------------------------------------- bypass
QUANTIZERS = (ActQuantizer, _WeightQuantizerBase)


@contextmanager
def disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Full-precision pass: inside the block every activation and weight quantizer in ``model`` has
    ``enabled = False`` (identity forward); each one's previous ``enabled`` is restored on exit, even on error.
    Forward hooks on the quantizers still run (they see the un-quantized inputs). Yields ``model``."""
    qs = [m for m in model.modules() if isinstance(m, QUANTIZERS)]
    prev = [q.enabled for q in qs]
    try:
        for q in qs:
            q.enabled = False
        yield model
    finally:
        for q, e in zip(qs, prev):
            q.enabled = e


@contextmanager
def shift_only(quantizers: Iterable[ActQuantizer]) -> Iterator[None]:
    """Inside the block each of ``quantizers`` returns ``x + tau``, neither clipped nor rounded: that tensor's
    rounding taken out while the learned shift, which the next conv's bias compensates, stays (a probe of one
    quantizer's share of a low-bit model's loss). Restored on exit, even on error."""
    quantizers = list(quantizers)
    prev = [q.shift_only for q in quantizers]
    try:
        for q in quantizers:
            q.shift_only = True
        yield
    finally:
        for q, p in zip(quantizers, prev):
            q.shift_only = p
