"""GPTQ rounding of int8 conv weights (Frantar et al., 2023, "GPTQ: accurate post-training quantization"): each
layer's weights are rounded one input column at a time onto the grid the int8 program will use, and the rounding
error of each column is compensated on the columns not yet rounded, weighted by the inverse of the layer input's
second-moment matrix ``H = E[x x^T]`` (im2col columns of real calibration images). Round-to-nearest minimises
``||W - Q(W)||``; GPTQ minimises the layer's output error ``||(W - Q(W)) x||`` instead, which is what PSNR sees.

The grid is stock XNNPACK's per-channel symmetric int8: one step per output channel, ``max|W| / 127``, codes in
``[-127, 127]``. The rounded weights are written back as floats *on that grid*, with each channel's largest
weight kept at +-127 steps, so the observer of a later PT2E prepare computes the same step and rounds every
weight to itself: the PT2E program (and its ``.pte``) holds exactly GPTQ's codes.

Layers are processed in the order the forward pass reaches them, each with ``H`` measured on the inputs the
already-rounded layers before it produce (GPTQ's sequential mode), so later layers also compensate earlier
layers' rounding. Grouped convs get one ``H`` per group; a transposed conv is handled as the equivalent conv over
its zero-stuffed input. GPTQ is greedy: where its compensation runs into the clamp (an RGB image's nearly
collinear 3x3 neighbourhoods) a channel can end worse than round-to-nearest, so each channel keeps whichever of
the two has the smaller output error on the calibration images.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GPTQConfig", "conv_columns", "gptq_codes", "gptq_int8_weights_", "int8_weight_steps", "rows_to_weight",
           "weight_rows"]

QMAX = 127
STOCK_MIN_STEP = 2**-12  # the eps of ExecuTorch's XNNPACK weight observer
MAX_POSITIONS = 4096  # im2col columns per image; an x4 FSRCNN deconv has 65536 of 4536 values each


@dataclass(frozen=True)
class GPTQConfig:
    """``damp``: ridge added to ``H`` as a fraction of its mean diagonal (GPTQ's ``percdamp``); ``block``: columns
    per lazy-update block; ``act_order``: round the columns with the largest input energy first."""

    damp: float = 0.01
    block: int = 128
    act_order: bool = True
    version: int = 1


def weight_rows(weight: torch.Tensor, transposed: bool = False) -> torch.Tensor:
    """(out, in/groups * kh * kw): a conv weight as rows over the layer's (possibly zero-stuffed) input."""
    if transposed:
        # conv_transpose(x, W) == conv(zero_stuff(x), W') with W'[o, i] = flip(W[i, o]); groups == 1 (checked)
        weight = weight.flip(-1, -2).transpose(0, 1)
    return weight.reshape(weight.shape[0], -1)


def rows_to_weight(rows: torch.Tensor, like: torch.Tensor, transposed: bool = False) -> torch.Tensor:
    """The inverse of :func:`weight_rows`, shaped as ``like``."""
    if transposed:
        return rows.reshape(like.shape[1], like.shape[0], *like.shape[2:]).transpose(0, 1).flip(-1, -2)
    return rows.reshape(like.shape)


def _weight_rows(layer: nn.Module) -> torch.Tensor:
    return weight_rows(layer.weight.detach(), isinstance(layer, nn.ConvTranspose2d))


def int8_weight_steps(rows: torch.Tensor, segments: Sequence[int] = (), min_step: float = STOCK_MIN_STEP
                      ) -> torch.Tensor:
    """XNNPACK int8 weight steps (PerChannelMinMaxObserver with eps ``min_step``) of every weight of ``rows``, as
    a matrix of its shape: one step per output channel, ``max|W| / 127``, or one per output channel and column
    segment when the conv will be split by input (``segments``: column counts, the concat split)."""
    segments = list(segments) or [rows.shape[1]]
    parts = rows.split(segments, dim=1)
    return torch.cat([(p.abs().amax(dim=1, keepdim=True) / QMAX).clamp_min(min_step).expand_as(p) for p in parts],
                     dim=1)


def conv_columns(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """im2col of ``x`` as ``layer`` sees it: (groups, in/groups * kh * kw, positions)."""
    if isinstance(layer, nn.ConvTranspose2d):
        s, p, op = layer.stride, layer.padding, layer.output_padding
        kh, kw = layer.kernel_size
        n, c, h, w = x.shape
        stuffed = x.new_zeros(n, c, (h - 1) * s[0] + 1, (w - 1) * s[1] + 1)
        stuffed[:, :, ::s[0], ::s[1]] = x
        x = F.pad(stuffed, (kw - 1 - p[1], kw - 1 - p[1] + op[1], kh - 1 - p[0], kh - 1 - p[0] + op[0]))
        cols = F.unfold(x, (kh, kw))
    else:
        padding = layer.padding
        if layer.padding_mode != "zeros":
            x, padding = F.pad(x, layer._reversed_padding_repeated_twice, mode=layer.padding_mode), 0
        cols = F.unfold(x, layer.kernel_size, dilation=layer.dilation, padding=padding, stride=layer.stride)
    groups = layer.groups
    return cols.reshape(x.shape[0], groups, -1, cols.shape[-1]).permute(1, 2, 0, 3).reshape(groups, -1,
                                                                                            x.shape[0] * cols.shape[-1])


def gptq_codes(w: torch.Tensor, h: torch.Tensor, step: torch.Tensor, config: GPTQConfig) -> torch.Tensor:
    """Plain GPTQ of ``w`` (rows = output channels, float64; ``step``: its steps, same shape) against input
    second moments ``h``; returns codes."""
    w, h = w.clone(), h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    order = torch.argsort(torch.diag(h), descending=True) if config.act_order else torch.arange(len(h))
    w, h, step = w[:, order], h[order][:, order], step[:, order]
    h += config.damp * torch.diag(h).mean() * torch.eye(len(h), dtype=h.dtype)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    codes = torch.zeros_like(w)
    cols = w.shape[1]
    for start in range(0, cols, config.block):
        end = min(start + config.block, cols)
        block, block_inv = w[:, start:end].clone(), hinv[start:end, start:end]
        errors = torch.zeros_like(block)
        for i in range(end - start):
            column, column_step = block[:, i], step[:, start + i]
            code = torch.round(column / column_step).clamp(-QMAX, QMAX)
            codes[:, start + i] = code
            error = (column - code * column_step) / block_inv[i, i]
            block[:, i:] -= error[:, None] * block_inv[i, i:][None, :]
            errors[:, i] = error
        w[:, end:] -= errors @ hinv[start:end, end:]
    out = torch.empty_like(codes)
    out[:, order] = codes
    return out


def _gptq_rows(w: torch.Tensor, h: torch.Tensor, segments: Sequence[int], config: GPTQConfig,
               min_step: float = STOCK_MIN_STEP) -> torch.Tensor:
    """GPTQ codes of one weight matrix (rows = output channels). The largest weight of each row (of each row's
    segment) is exactly its top code (+-127 steps, zero error) and is held there, so its step stays
    ``max|W| / 127`` (an observer recomputes it from the rounded weights): rows that share the columns of their
    largest weights are rounded together over the other columns, where GPTQ may move any weight."""
    w, h = w.double(), h.double()
    step = int8_weight_steps(w, segments, min_step)
    bounds = torch.tensor([0, *list(segments or [w.shape[1]])]).cumsum(0).tolist()
    tops = torch.stack([w[:, a:b].abs().argmax(dim=1) + a for a, b in zip(bounds[:-1], bounds[1:])], dim=1)
    codes = torch.zeros_like(w)
    for pinned in tops.unique(dim=0):
        mine = (tops == pinned).all(dim=1).nonzero().flatten()
        free = torch.ones(w.shape[1], dtype=torch.bool)
        free[pinned] = False
        others = free.nonzero().flatten()
        if len(others):
            codes[mine[:, None], others[None, :]] = gptq_codes(w[mine][:, others], h[others][:, others],
                                                              step[mine][:, others], config)
        # +-127 exactly, unless the step is at its floor (then the observer's step does not depend on it)
        top = mine[:, None], pinned[None, :]
        codes[top] = torch.round(w[top] / step[top]).clamp(-QMAX, QMAX)
    # GPTQ is greedy: where its compensation runs into the clamp (highly correlated inputs, e.g. an RGB image's
    # 3x3 neighbourhoods) a row can end worse than round-to-nearest; keep whichever has less output error
    nearest = torch.round(w / step).clamp(-QMAX, QMAX)
    better = _output_error(w, codes, step, h) <= _output_error(w, nearest, step, h)
    return torch.where(better[:, None], codes, nearest)


def _output_error(w: torch.Tensor, codes: torch.Tensor, step: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Each row's ``E||(w - q) x||^2`` under the input second moments ``h``."""
    delta = w - codes * step
    return ((delta @ h) * delta).sum(dim=1)


def _round_layer(layer: nn.Module, h: torch.Tensor, config: GPTQConfig, in_channels: Sequence[int] = (),
                 min_step: float = STOCK_MIN_STEP) -> None:
    rows = _weight_rows(layer)
    taps = rows.shape[1] // sum(in_channels) if in_channels else 0
    segments = [c * taps for c in in_channels]
    groups = h.shape[0]
    per_group = rows.shape[0] // groups
    codes = torch.cat([_gptq_rows(rows[g * per_group:(g + 1) * per_group], h[g], segments, config, min_step)
                       for g in range(groups)])
    new_rows = (codes * int8_weight_steps(rows.double(), segments, min_step)).to(rows.dtype)
    with torch.no_grad():
        layer.weight.copy_(rows_to_weight(new_rows, layer.weight, isinstance(layer, nn.ConvTranspose2d)))


class _LayerSeen(Exception):
    pass


def _supported(layer: nn.Module) -> bool:
    if isinstance(layer, nn.ConvTranspose2d):
        return layer.groups == 1 and layer.dilation == (1, 1)
    return isinstance(layer, nn.Conv2d)


def gptq_int8_weights_(model: nn.Module, batches: Sequence[torch.Tensor], config: GPTQConfig | None = None,
                       split_inputs: Mapping[str, Sequence[int]] | None = None, min_step: float = STOCK_MIN_STEP,
                       progress: Callable[[str], None] | None = None) -> list[str]:
    """Round every conv weight of ``model`` (in place) onto its int8 per-channel grid with GPTQ; returns the
    names of the layers rounded, in the order they were. ``batches``: calibration inputs of the model (LR
    images). ``split_inputs``: layer name -> input channel counts, for convs the program will split into one
    conv per input part (the concat split), each part with its own per-channel steps. ``min_step``: the weight
    observer's eps (:class:`~quantsr.export.pt2e_quantizer.Int8PTQConfig` ``min_weight_step``). Layers the
    forward pass never reaches keep their weights."""
    split_inputs = dict(split_inputs or {})
    config = config or GPTQConfig()
    layers = {id(m): n for n, m in model.named_modules() if _supported(m)}
    order: list[nn.Module] = []
    calls: dict[int, int] = {}  # per forward: a shared block runs its convs more than once

    def record(module, inputs):
        if id(module) not in calls:
            order.append(module)
        calls[id(module)] = calls.get(id(module), 0) + 1

    handles = [m.register_forward_pre_hook(record) for m in model.modules() if id(m) in layers]
    model.eval()
    with torch.no_grad():
        model(batches[0])
    for handle in handles:
        handle.remove()

    done = []
    generator = torch.Generator().manual_seed(0)
    for layer in order:
        h: torch.Tensor | None = None
        count = seen = 0

        def accumulate(module, inputs):
            nonlocal h, count, seen
            for image in inputs[0].detach().split(1):  # one image at a time: a 9x9 deconv's im2col is large
                cols = conv_columns(module, image)
                if cols.shape[-1] > MAX_POSITIONS:  # a fixed subsample of output positions estimates H as well
                    keep = torch.randperm(cols.shape[-1], generator=generator)[:MAX_POSITIONS]
                    cols = cols[..., keep]
                moment = (cols @ cols.transpose(1, 2)).double()
                h = moment if h is None else h + moment
                count += cols.shape[-1]
            seen += 1
            if seen % calls[id(module)] == 0:
                raise _LayerSeen  # the rest of the forward pass cannot change this layer's inputs

        handle = layer.register_forward_pre_hook(accumulate)
        with torch.no_grad():
            for batch in batches:
                try:
                    model(batch)
                except _LayerSeen:
                    pass
        handle.remove()
        _round_layer(layer, h / max(count, 1), config, split_inputs.get(layers[id(layer)], ()), min_step)
        done.append(layers[id(layer)])
        if progress is not None:
            progress(layers[id(layer)])
    return done
