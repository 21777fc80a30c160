"""Static all-int8 programs: build the PT2E graph XNNPACK runs (int8 at every boundary), save and load its
fine-tuned state, and lower it to a ``.pte`` whose output is checked code for code against its integer-faithful
model (issue 13; the arithmetic in docs/integer_faithful.md).

* A QAT checkpoint keeps its learned steps as fixed qparams (its b-bit inputs are int8 tensors at scale ``a``
  clamped to the b-bit range); head, tail and glue get calibrated static int8.
* An FP model gets plain observer-calibrated static int8 (PTQ), the comparison every low-bit model must beat.

A *program file* (``*_int8.pt``) holds what defines the program's arithmetic: the converted graph's trained
weight codes and biases, its activation qparams (every numeric argument of its ops) and its fixed tensors
(per-channel weight scales). The graph's ops are rebuilt from the base checkpoint; the file's numbers replace the
calibration's, whose last bits differ between machines and thread counts (format 1 depended on them), and the
result must have the file's signature, the digest of the arithmetic the program was trained as."""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from quantsr.artifacts.atomic import atomic_write
from quantsr.artifacts.cards import ArtifactError, card_path
from quantsr.export.pt2e_quantizer import Int8PTQConfig
from quantsr.quant.int8_graph import (
    LEARNED_SCALE_KEY,
    LEVEL_RANGE_KEY,
    get_constant,
    integer_faithful,
    program_signature,
    set_constant,
    write_back,
)

__all__ = ["PROGRAM_FORMAT", "codes_agreement", "export_int8_program", "load_program", "save_program",
           "static_int8_graph"]

PROGRAM_FORMAT = 2
DEFAULT_MAX_SIDE = 320
CALIBRATION_SIDE = 64


def _example(max_side: int) -> torch.Tensor:
    side = min(CALIBRATION_SIDE, max_side)
    return torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))


def static_int8_graph(model: nn.Module, calibration: Sequence[torch.Tensor], *, max_side: int = DEFAULT_MAX_SIDE,
                      min_side: int = 8, ptq: Int8PTQConfig | None = None) -> fx.GraphModule:
    """The ``convert_pt2e`` graph of ``model`` as a static all-int8 program (dynamic H/W up to ``max_side``).
    ``ptq``: how an FP model is quantized (default :class:`Int8PTQConfig()`); a QAT model keeps its learned
    steps and calibrates the rest as the stock quantizer does."""
    from quantsr.export.deploy import split_output_convs, to_deploy_model
    from quantsr.export.pt2e_quantizer import LearnedQParamsQuantizer, int8_quantizer
    from quantsr.export.pte import _dynamic_shapes, convert_calibrated, pt2e_graph
    from quantsr.quant.layers import QConv2d

    model = model.cpu().eval()
    example = _example(max_side)
    qparams = {}
    if any(isinstance(m, QConv2d) for m in model.modules()):
        graph_model, qparams = to_deploy_model(model, "static")
        split_output_convs(graph_model, qparams)
        quantizer = LearnedQParamsQuantizer(qparams, rest="int8", activations="static")
        split_concat = program_gptq = False
    else:
        ptq = ptq or Int8PTQConfig()
        graph_model = copy.deepcopy(model)
        if ptq.act_equalization is not None:  # an exact rewrite of the FP net: before GPTQ sees its weights
            from quantsr.quant.equalize import equalize_activations_

            equalize_activations_(graph_model, calibration, alpha=ptq.act_equalization, example=example)
        if ptq.weight_rounding in ("gptq", "gptq_program"):  # the program pass refines eager GPTQ's codes
            from quantsr.quant.gptq import gptq_int8_weights_

            split = _concat_split_inputs(graph_model, example) if ptq.split_concat_convs else {}
            gptq_int8_weights_(graph_model, calibration, split_inputs=split, min_step=ptq.min_weight_step)
        graph_model = split_output_convs(graph_model)
        quantizer, split_concat = int8_quantizer(ptq), ptq.split_concat_convs
        program_gptq = ptq.weight_rounding == "gptq_program"
    ep = torch.export.export(graph_model, (example,), dynamic_shapes=_dynamic_shapes(True, max_side, min_side))
    module = pt2e_graph(ep, split_concat=split_concat)
    reference = copy.deepcopy(module) if program_gptq else None
    converted = convert_calibrated(module, quantizer, example, calibration)
    if reference is not None:
        from quantsr.export.program_gptq import gptq_program_

        gptq_program_(converted, reference, [x for batch in calibration for x in batch.split(1)])
    _mark_level_ranges(converted, qparams)
    _mark_learned_scales(converted, qparams)
    return converted


def _concat_split_inputs(model: nn.Module, example: torch.Tensor) -> dict[str, list[int]]:
    """Layer name -> input channel counts of each conv that ``split_concat_convs`` will split (one conv per
    branch of its concat, each with its own per-channel weight steps), from an export of ``model``."""
    from quantsr.export.graph_passes import concat_conv_parts
    from quantsr.export.pt2e_quantizer import node_layer_name

    graph = torch.export.export(model, (example,)).module()
    return {node_layer_name(conv): parts for conv, parts in concat_conv_parts(graph)}


def _mark_level_ranges(converted: fx.GraphModule, qparams: dict) -> None:
    """Tell :func:`~quantsr.quant.int8_graph.integer_faithful` the trained level range of each learned weight
    (RBD 4-bit: [-7, 8]); the graph itself declares them over the whole int8 range (deploy.py says why)."""
    from quantsr.export.pt2e_quantizer import node_layer_name

    for node in converted.graph.nodes:
        if node.op == "call_function" and node.target == torch.ops.aten.conv2d.default:
            qp = qparams.get(node_layer_name(node))
            weight = node.args[1]
            if qp is not None and isinstance(weight, fx.Node):
                weight.meta[LEVEL_RANGE_KEY] = (qp.weight_qmin, qp.weight_qmax)


def _mark_learned_scales(converted: fx.GraphModule, qparams: dict) -> None:
    """Mark the quantize/dequantize nodes at a learned activation step (the fixed specs the QAT quantizer gave),
    so that training the program's activation scales leaves the trained b-bit grids as they are."""
    learned = {float(torch.tensor(qp.act_scale, dtype=torch.float32)) for qp in qparams.values()}
    per_tensor = (torch.ops.quantized_decomposed.quantize_per_tensor.default,
                  torch.ops.quantized_decomposed.dequantize_per_tensor.default)
    for node in converted.graph.nodes:
        if node.op == "call_function" and node.target in per_tensor and float(node.args[1]) in learned:
            node.meta[LEARNED_SCALE_KEY] = True
    for pinned, _ in _image_grid_qparam_nodes(converted):  # the output's grid is fixed too
        pinned.meta[LEARNED_SCALE_KEY] = True


def _image_grid_qparam_nodes(graph_module: fx.GraphModule) -> list[tuple[fx.Node, float]]:
    """The quantize node of the output pinned to the 8-bit image grid and its dequantize users, each with the
    grid's step (float32, as the graph holds it)."""
    from quantsr.export.pt2e_quantizer import IMAGE_GRID_KEY

    quantize = torch.ops.quantized_decomposed.quantize_per_tensor.default
    found = []
    for node in graph_module.graph.nodes:
        source = node.args[0] if node.op == "call_function" and node.target == quantize else None
        grid = source.meta.get(IMAGE_GRID_KEY) if isinstance(source, fx.Node) else None
        if grid:
            found += [(n, float(torch.tensor(float(grid), dtype=torch.float32))) for n in (node, *node.users)]
    return found


def _numeric_args(converted: fx.GraphModule) -> dict[str, list]:
    """Node name -> [op name, its numeric arguments] for every op of ``converted`` that has any (the activation
    qparams of quantize/dequantize, clamp bounds, slopes)."""
    out = {}
    for node in converted.graph.nodes:
        numbers = [a for a in node.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        if node.op == "call_function" and numbers:
            out[node.name] = [getattr(node.target, "__name__", str(node.target)), numbers]
    return out


def _with_numeric_args(converted: fx.GraphModule, saved: dict[str, list], path: Path) -> None:
    """Replace, in place, the numeric arguments of ``converted``'s ops with the ones saved in a program file."""
    here = _numeric_args(converted)
    if {k: v[0] for k, v in here.items()} != {k: v[0] for k, v in saved.items()}:
        raise ArtifactError(f"{path} was trained for another int8 graph (its ops differ): rebuild it from the same "
                            "base checkpoint, or fine-tune again")
    for node in converted.graph.nodes:
        if node.name in saved:
            numbers = iter(saved[node.name][1])
            node.args = tuple(next(numbers) if isinstance(a, (int, float)) and not isinstance(a, bool) else a
                              for a in node.args)
    converted.recompile()


def _fixed_tensors(converted: fx.GraphModule, trainable: set[str]) -> dict[str, torch.Tensor]:
    return {n.target: get_constant(converted, n.target).detach().clone() for n in converted.graph.nodes
            if n.op == "get_attr" and n.target not in trainable
            and isinstance(get_constant(converted, n.target), torch.Tensor)}


def save_program(program: fx.GraphModule, converted: fx.GraphModule, path: str | Path,
                 metadata: dict[str, Any]) -> Path:
    """Write the trained constants of ``program`` (an integer-faithful module of ``converted``) and the numbers
    that fix ``converted``'s arithmetic to ``path``."""
    from quantsr.train.checkpoint import save_atomic

    trained = write_back(program, converted)
    targets = {t for ts in program.trainable_targets.values() for t in ts}
    constants = {target: get_constant(trained, target).detach().clone() for target in targets}
    # the signature and numbers of the program as trained (its activation scales, if it learned them)
    payload = {"format": PROGRAM_FORMAT, "kind": "int8-program", "signature": program_signature(
               integer_faithful(trained)), "constants": constants, "numeric_args": _numeric_args(trained),
               "fixed": _fixed_tensors(converted, targets), "metadata": metadata}
    return save_atomic(payload, path)


def _set_checked(out: fx.GraphModule, tensors: dict[str, torch.Tensor], path: Path,
                 ranges: dict[str, tuple[int, int] | None]) -> None:
    for target, value in tensors.items():
        try:
            old = get_constant(out, target)
        except AttributeError:
            raise ArtifactError(f"{path} was trained for another int8 graph (it has no {target})") from None
        if old.shape != value.shape or old.dtype != value.dtype:
            raise ArtifactError(f"{path}: {target} is {tuple(value.shape)} {value.dtype} in the file, "
                                f"{tuple(old.shape)} {old.dtype} in the graph")
        bounds = ranges.get(target)
        if bounds is not None and not bounds[0] <= int(value.min()) <= int(value.max()) <= bounds[1]:
            raise ArtifactError(f"{path}: {target} holds codes outside its trained range {list(bounds)}")
        set_constant(out, target, value)


def _unmark_restored_output(program: fx.GraphModule) -> None:
    """A file saved before the output was pinned restores its calibrated output scale: that scale trains again."""
    for node, grid in _image_grid_qparam_nodes(program):
        if float(node.args[1]) != grid:
            node.meta.pop(LEARNED_SCALE_KEY, None)


def load_program(path: str | Path, converted: fx.GraphModule, *, rebase: bool = False) -> fx.GraphModule:
    """A copy of ``converted`` with the arithmetic and trained constants of the program file at ``path``.

    ``rebase`` (for format-1 files, which hold no qparams) keeps ``converted``'s own calibrated numbers and takes
    only the file's trained constants: a program close to, but not bit for bit, the one that was trained."""
    path = Path(path)
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("kind") != "int8-program":
        raise ArtifactError(f"{path} is not a quantsr int8 program file (made by benchmarks/int8_finetune.py)")
    fmt = payload.get("format")
    if fmt not in (1, PROGRAM_FORMAT) or (fmt == 1 and not rebase):
        raise ArtifactError(f"{path} is an int8 program file of format {fmt}; this quantsr reads format "
                            f"{PROGRAM_FORMAT} (re-save it: benchmarks/int8_finetune.py --init-program {path} "
                            "--iterations 0)")
    out = copy.deepcopy(converted)
    ranges = {n.args[0].target: n.meta.get(LEVEL_RANGE_KEY) for n in converted.graph.nodes
              if n.op == "call_function" and n.target == torch.ops.quantized_decomposed.dequantize_per_channel.default}
    if not rebase:
        _with_numeric_args(out, payload["numeric_args"], path)
        _set_checked(out, payload["fixed"], path, {})
        _unmark_restored_output(out)
    _set_checked(out, payload["constants"], path, ranges)
    if not rebase and payload.get("signature") != program_signature(integer_faithful(out)):
        raise ArtifactError(f"{path} was trained for another int8 graph (scales or ops differ): rebuild it from "
                            "the same base checkpoint, or fine-tune again")
    return out


def codes_agreement(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int]:
    """(fraction of identical uint8 output values, largest difference in levels) of two images in [0, 1]."""
    def u8(t: torch.Tensor) -> torch.Tensor:
        return t.clamp(0, 1).mul(255).round().to(torch.int16)

    diff = (u8(a) - u8(b)).abs()
    return float((diff == 0).float().mean()), int(diff.max())


def export_int8_program(converted: fx.GraphModule, path: str | Path, *, max_side: int = DEFAULT_MAX_SIDE,
                        min_side: int = 8, check_inputs: Sequence[torch.Tensor] = (), min_identical: float = 0.99,
                        max_levels: int = 2, verify: bool = True,
                        stage: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Lower a converted static int8 graph to an XNNPACK ``.pte`` at ``path``, load the written file with the
    ExecuTorch runtime and compare its output with the integer-faithful model on ``check_inputs`` (default: the
    calibration example): at least ``min_identical`` of the uint8 values equal and none more than
    ``max_levels`` apart, else the file is removed and :class:`~quantsr.export.pte.ExportMismatchError` raised.
    ``verify=False`` skips that comparison, for graphs the integer-faithful model cannot express yet (grouped
    transposed convs, ops outside :mod:`quantsr.quant.int8_graph`): the caller must score the file itself."""
    from quantsr.export.pte import ExportMismatchError, _delegation, lower_to_pte
    from quantsr.runtime.pte import PteModule

    start = time.perf_counter()
    example = _example(max_side)
    program, edge = lower_to_pte(converted, example, dynamic=True, max_side=max_side, min_side=min_side,
                                 stage=stage)
    delegated, non_delegated, ops = _delegation(edge)
    path = Path(path)
    card_path(path).unlink(missing_ok=True)
    with atomic_write(path, "wb") as f:
        f.write(program.buffer)
    info = {"path": str(path), "bytes": path.stat().st_size, "delegated_nodes": delegated,
            "non_delegated_nodes": non_delegated, "non_delegated_ops": ops, "max_side": max_side, "min_side": min_side}
    if not verify:
        return {**info, "identical_fraction": None, "max_levels": None}
    stage("verify the saved file against the integer-faithful model")
    model = integer_faithful(converted).eval()
    pte = PteModule(path)
    same_total, values, worst = 0.0, 0, 0
    for x in list(check_inputs) or [example]:
        with torch.no_grad():
            identical, levels = codes_agreement(pte(x), model(x))
        n = x.shape[-1] * x.shape[-2]
        same_total, values, worst = same_total + identical * n, values + n, max(worst, levels)
    identical = same_total / values
    if identical < min_identical or worst > max_levels:
        path.unlink(missing_ok=True)
        raise ExportMismatchError(f"the int8 .pte disagrees with its integer-faithful model ({100 * identical:.2f}% "
                                  f"identical, up to {worst} levels); removed ({time.perf_counter() - start:.0f} s)")
    return {**info, "identical_fraction": identical, "max_levels": worst}
