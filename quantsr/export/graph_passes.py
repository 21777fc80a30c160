"""Rewrites of an exported graph that keep its function but quantize better.

:func:`split_concat_convs`: ``conv(cat([a, b, c], dim=1))`` becomes ``conv_a(a) + conv_b(b) + conv_c(c)``, the
conv's weight sliced along its input channels (exact in real arithmetic: a convolution is linear in its input
channels). XNNPACK's int8 concatenate makes every input share one scale, so a cat of branches with different
ranges (SPAN's and IMDN's fusion convs) rounds the small branches onto the big one's grid; split, each branch
keeps its own scale and the int8 adds requantize. On SPAN ch28 x4 the shared scale of the cat alone cost 4 dB.

:func:`fold_slices_of_cat`: ``cat(parts)[:, a:b]`` that is exactly one part becomes that part (a QAT model with
per-branch steps, :class:`~quantsr.export.deploy.SegmentedFixedQuantConv2d`, cuts its branches back out of the
concat its architecture builds; folded, the concat goes and each branch keeps its own int8 scale).

:func:`untie_shared_params`: a conv that reuses another conv's weight or bias (CARN-M runs one weight-shared
residual block three times) gets its own copy. The XNNPACK quantizer annotates a shared parameter with its first
conv only and leaves the reuses in fp32, and the lowering then hands those fp32 convs the first conv's int32
bias, which XNNPACK refuses ("Failed to create convolution node"). Untied, every use is an int8 conv with its
own bias scale; identical int8 weights are stored once in the ``.pte`` (its named data is content-hashed).
"""
from __future__ import annotations

from operator import attrgetter

import torch
from torch import fx, nn

__all__ = ["CONV_OR_LINEAR", "SOURCE_PARAM", "concat_conv_parts", "fold_slices_of_cat", "split_concat_convs",
           "untie_shared_params"]

_CONV = torch.ops.aten.conv2d.default
_CAT = torch.ops.aten.cat.default
_ADD = torch.ops.aten.add.Tensor
_SLICE = torch.ops.aten.slice.Tensor
_NARROW = torch.ops.aten.narrow.default
# the ops that read a weight (args[1]) and a bias (args[2])
CONV_OR_LINEAR = frozenset({_CONV, torch.ops.aten.convolution.default, torch.ops.aten.linear.default})
# node.meta key of an untied copy: the attribute path of the parameter it copies (the owning layer's name)
SOURCE_PARAM = "quantsr_source_param"


def _like_meta(template: fx.Node, tensor: torch.Tensor):
    """``tensor`` as the kind of value ``template.meta["val"]`` holds (a FakeTensor of the same fake mode)."""
    fake_mode = getattr(template.meta.get("val"), "fake_mode", None)
    return fake_mode.from_tensor(tensor) if fake_mode is not None else tensor


def _splittable(node: fx.Node) -> bool:
    if node.op != "call_function" or node.target != _CONV:
        return False
    source, weight = node.args[0], node.args[1]
    if not (isinstance(source, fx.Node) and source.target == _CAT and isinstance(weight, fx.Node)
            and weight.op == "get_attr"):
        return False
    dim = source.args[1] if len(source.args) > 1 else source.kwargs.get("dim", 0)
    groups = node.args[6] if len(node.args) > 6 else node.kwargs.get("groups", 1)
    parts = source.args[0]
    return dim in (1, -3) and groups == 1 and len(parts) > 1 and all(
        isinstance(p, fx.Node) and "val" in p.meta for p in parts)


def concat_conv_parts(gm: fx.GraphModule) -> list[tuple[fx.Node, list[int]]]:
    """Each conv :func:`split_concat_convs` would split, with the channel count of each part of its concat."""
    return [(node, [int(part.meta["val"].shape[1]) for part in node.args[0].args[0]])
            for node in gm.graph.nodes if _splittable(node)]


def split_concat_convs(gm: fx.GraphModule) -> int:
    """Split, in place, every ``conv2d(cat(parts, dim=1))`` of ``gm`` (a ``torch.export`` module) into one conv
    per part summed; the cat goes when nothing else reads it. Returns how many convs were split."""
    split = 0
    for node in list(gm.graph.nodes):
        if not _splittable(node):
            continue
        source, weight_node = node.args[0], node.args[1]
        bias = node.args[2] if len(node.args) > 2 else None
        weight = attrgetter(str(weight_node.target))(gm)
        total = None
        offset = 0
        with gm.graph.inserting_before(node):
            for i, part in enumerate(source.args[0]):
                channels = int(part.meta["val"].shape[1])
                name = f"{str(weight_node.target).replace('.', '_')}_cat_part{i}"
                piece = weight.detach()[:, offset:offset + channels].clone()
                gm.register_parameter(name, nn.Parameter(piece, requires_grad=False))
                offset += channels
                w = gm.graph.get_attr(name)
                w.meta.update({k: v for k, v in weight_node.meta.items() if k != "val"})
                w.meta["val"] = _like_meta(weight_node, piece)
                conv = gm.graph.call_function(_CONV, (part, w, bias if i == 0 else None, *node.args[3:]))
                conv.meta.update(node.meta)
                if total is None:
                    total = conv
                else:
                    total = gm.graph.call_function(_ADD, (total, conv))
                    total.meta.update(node.meta)
        if offset != weight.shape[1]:
            raise RuntimeError(f"{node.name}: the cat's {offset} channels do not match the conv's {weight.shape[1]}")
        node.replace_all_uses_with(total)
        gm.graph.erase_node(node)
        if not source.users:
            gm.graph.erase_node(source)
        split += 1
    if split:
        gm.graph.eliminate_dead_code()
        gm.delete_all_unused_submodules()
        gm.recompile()
    return split


def _channel_window(node: fx.Node) -> tuple[fx.Node, int, int] | None:
    """(source, start, end) of a unit-step slice or narrow of ``node`` along dim 1, else None."""
    if node.op != "call_function" or node.target not in (_SLICE, _NARROW):
        return None
    args = list(node.args)
    source, dim = args[0], args[1] if len(args) > 1 else node.kwargs.get("dim", 0)
    if node.target == _NARROW:
        start, length = args[2], args[3]
        end = start + length if isinstance(start, int) and isinstance(length, int) else None
        step = 1
    else:
        start = args[2] if len(args) > 2 else node.kwargs.get("start", 0)
        end = args[3] if len(args) > 3 else node.kwargs.get("end")
        step = args[4] if len(args) > 4 else node.kwargs.get("step", 1)
    if dim not in (1, -3) or step != 1 or not isinstance(start, int) or not isinstance(end, int):
        return None
    return source, start, end


def fold_slices_of_cat(gm: fx.GraphModule) -> int:
    """Replace, in place, every channel slice of a ``cat(parts, dim=1)`` that spans exactly one part by that
    part; a cat left unread goes. Returns how many slices were folded."""
    folded = 0
    for node in list(gm.graph.nodes):
        window = _channel_window(node)
        if window is None:
            continue
        source, start, end = window
        if not (isinstance(source, fx.Node) and source.target == _CAT):
            continue
        dim = source.args[1] if len(source.args) > 1 else source.kwargs.get("dim", 0)
        if dim not in (1, -3):
            continue
        offset = 0
        for part in source.args[0]:
            channels = int(part.meta["val"].shape[1]) if isinstance(part, fx.Node) and "val" in part.meta else None
            if channels is None:
                break
            if (offset, offset + channels) == (start, end):
                node.replace_all_uses_with(part)
                gm.graph.erase_node(node)
                folded += 1
                break
            offset += channels
    if folded:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return folded


def untie_shared_params(gm: fx.GraphModule) -> int:
    """Give, in place, every conv/linear that reads a shared weight or bias its own copy (a new attribute: a
    re-export would merge a mere second read back into one parameter), except the parameter's first user (in
    fx's user order), which keeps it. Returns how many copies were made. Each copy's node records the
    original's path under ``meta[SOURCE_PARAM]``, so qparams keyed by layer name still find it. The copies stay
    equal: the integer-faithful fine-tune trains bit-identical copies as one parameter (XNNPACK stores them once)."""
    untied = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in CONV_OR_LINEAR:
            continue
        for index in (1, 2):
            param = node.args[index] if len(node.args) > index else None
            if not (isinstance(param, fx.Node) and param.op == "get_attr") or len(param.users) < 2:
                continue
            if next(iter(param.users)) is node:  # the first reader keeps the original
                continue
            source = param.meta.get(SOURCE_PARAM, str(param.target))
            value = attrgetter(str(param.target))(gm).detach().clone()
            name = f"{source.replace('.', '_')}_untied_{node.name}"
            gm.register_buffer(name, value)
            with gm.graph.inserting_before(node):
                copy = gm.graph.get_attr(name)
            copy.meta.update(param.meta)
            copy.meta[SOURCE_PARAM] = source
            node.replace_input_with(param, copy)
            untied += 1
    if untied:
        gm.recompile()
    return untied
