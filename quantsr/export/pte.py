"""ExecuTorch ``.pte`` export for the XNNPACK delegate, in the ExecuTorch-examples style: torch.export → PT2E →
lower → save → load the saved file with the ExecuTorch runtime and compare it with the eager model.

Three kinds (``quant``):

* ``"learned"``: a QAT model keeps its trained steps (fixed qparams, :mod:`quantsr.export.pt2e_quantizer`); the layers
  the model keeps in FP stay fp32 (``rest="fp32"``) or get calibrated int8 (``rest="int8"``).
* ``"int8"``: plain observer-calibrated static int8 PTQ of an FP model.
* ``"fp32"``: no quantization.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from quantsr.artifacts.atomic import atomic_write
from quantsr.artifacts.cards import DEFAULT_MIN_SIDE, ArtifactError, card_path
from quantsr.runtime.pte import PteModule, register_quantized_kernels
from quantsr.runtime.upscale import min_side_of

__all__ = ["PteExport", "calibrate_and_convert", "convert_calibrated", "export_pte", "lower_to_pte", "output_psnr",
           "pt2e_graph"]

QUANT_KINDS = ("learned", "int8", "fp32")


class ExportMismatchError(ArtifactError, RuntimeError):
    """The saved program does not compute what the eager model does (it is removed); a failure to report, with
    the agreement measured, not a crash."""


@dataclass
class PteExport:
    """What :func:`export_pte` produced: the file, how much of the graph XNNPACK took, and the parity check."""

    path: Path
    quant: str
    bytes: int
    delegated_nodes: int
    non_delegated_nodes: int
    input_shape: list[int]
    dynamic: bool
    max_abs_diff: float = float("nan")  # saved artifact vs the eager model, on the check input
    agreement_psnr: float = float("nan")  # PSNR (dB, outputs clamped to [0, 1]) of the artifact vs eager
    non_delegated_ops: dict[str, int] = field(default_factory=dict)

    @property
    def delegated_fraction(self) -> float:
        total = self.delegated_nodes + self.non_delegated_nodes
        return self.delegated_nodes / total if total else 0.0


def _delegation(edge) -> tuple[int, int, dict[str, int]]:
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge.exported_program().graph_module)
    ops = {name: int(row.non_delegated) for name, row in info.delegation_by_operator.items()
           if int(row.non_delegated) > 0 and not name.startswith(("getitem", "alloc"))}
    return int(info.num_delegated_nodes), int(info.num_non_delegated_nodes), ops


def _dynamic_shapes(dynamic: bool, max_side: int, min_side: int):
    if not dynamic:
        return None
    h = torch.export.Dim("height", min=min_side, max=max_side)
    w = torch.export.Dim("width", min=min_side, max=max_side)
    return ({2: h, 3: w},)


def pt2e_graph(ep, *, split_concat: bool = False) -> torch.fx.GraphModule:
    """The graph PT2E prepares, from an exported program: concat slices folded, CARN-M's shared weights untied
    and, with ``split_concat``, every branch of a concat-then-conv given its own conv and scale
    (:func:`~quantsr.export.graph_passes.split_concat_convs`)."""
    from quantsr.export.graph_passes import fold_slices_of_cat, split_concat_convs, untie_shared_params

    module = ep.module()
    fold_slices_of_cat(module)  # per-branch steps (deploy.SegmentedFixedQuantConv2d): no shared-scale concat
    untie_shared_params(module)  # CARN-M's shared block: each use an int8 conv with its own bias
    if split_concat:
        split_concat_convs(module)
    return module


def convert_calibrated(module: torch.fx.GraphModule, quantizer, example: torch.Tensor,
                       calibration: Iterable[torch.Tensor]) -> torch.fx.GraphModule:
    """PT2E on :func:`pt2e_graph`'s graph: prepare with ``quantizer``, run every image of the ``calibration``
    batches (one at a time: the program takes one image), convert. ``example`` is observed only when there is
    no calibration data (a quantizer whose qparams are all fixed): a random input has ranges several times wider
    than real images', and observing it cost the int8 PTQ of IMDN x4 0.6 dB on Set5."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(module, quantizer)
    images = [x for batch in calibration for x in batch.split(1)] or [example]
    with torch.no_grad():
        for x in images:
            prepared(x)
    return convert_pt2e(prepared)


def calibrate_and_convert(ep, quantizer, example: torch.Tensor, calibration: Iterable[torch.Tensor], *,
                          split_concat: bool = False):
    """:func:`convert_calibrated` of :func:`pt2e_graph`: the converted graph of an exported program."""
    return convert_calibrated(pt2e_graph(ep, split_concat=split_concat), quantizer, example, calibration)


def lower_to_pte(model: nn.Module, example: torch.Tensor, *, quant: str = "fp32", quantizer=None,
                 calibration: Iterable[torch.Tensor] = (), dynamic: bool = False, max_side: int = 1024,
                 min_side: int = DEFAULT_MIN_SIDE, stage: Callable[[str], None] = lambda s: None):
    """torch.export → (PT2E prepare, calibrate, convert) → to_edge_transform_and_lower(XNNPACK) →
    ExecuTorch program. Returns ``(executorch_program_manager, edge_manager)``."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
        XnnpackPartitioner,
    )
    from executorch.exir import to_edge_transform_and_lower

    dyn = _dynamic_shapes(dynamic, max_side, min_side)
    stage("torch.export")
    ep = torch.export.export(model, (example,), dynamic_shapes=dyn)
    if quant != "fp32":
        stage("PT2E prepare + calibrate + convert")
        ep = torch.export.export(calibrate_and_convert(ep, quantizer, example, calibration), (example,),
                                 dynamic_shapes=dyn)
    stage("lower to XNNPACK")
    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    register_quantized_kernels()  # q/dq ops left outside the delegate need their out-variants
    stage("to_executorch")
    return edge.to_executorch(), edge


def export_pte(model: nn.Module, path: str | Path, *, quant: str = "learned", rest: str = "fp32",
               activations: str = "dynamic",
               input_size: Sequence[int] = (3, 64, 64), dynamic: bool = True, max_side: int = 1024,
               calibration: Iterable[torch.Tensor] = (), check_input: torch.Tensor | None = None,
               atol: float = 2e-3, min_psnr: float = 30.0,
               stage: Callable[[str], None] = lambda s: None) -> PteExport:
    """Export ``model`` to an XNNPACK ``.pte`` at ``path``, then load the written file with the ExecuTorch
    runtime and compare it with the eager ``model`` on ``check_input`` (default: a random input of
    ``input_size``). On a mismatch the file is removed and ``RuntimeError`` raised: fp32 exports must agree
    within ``atol`` (max |difference|); quantized ones within ``min_psnr`` dB of output agreement (a b-bit
    model is not bit-exact across backends: one float ulp at a rounding boundary moves a value by a whole step,
    so the meaningful parity check is the benchmark PSNR, which :func:`quantsr.export.export_checkpoint` puts
    in the model card).

    ``quant``: ``"learned"`` (a QAT model with its trained qparams), ``"int8"`` (calibrated PTQ, needs
    ``calibration`` batches of model inputs), ``"fp32"``. ``dynamic``: H and W are export-time ``Dim``s (from the
    architecture's minimum side to ``max_side``); otherwise the model only accepts ``input_size``.
    """
    from quantsr.export.deploy import split_output_convs, to_deploy_model
    from quantsr.export.pt2e_quantizer import LearnedQParamsQuantizer, int8_quantizer

    if quant not in QUANT_KINDS:
        raise ValueError(f"quant must be one of {QUANT_KINDS}, got {quant!r}")
    model = model.cpu().eval()
    calibration = list(calibration)
    if quant == "int8" and not calibration:
        raise ValueError("int8 export needs calibration batches (e.g. quantsr.quant.ptq.calibration_batches)")
    example = torch.rand(1, *input_size, generator=torch.Generator().manual_seed(0))
    quantizer = None
    if quant == "learned":
        stage("fold learned quantizers")
        graph_model, qparams = to_deploy_model(model, activations)  # a copy
        split_output_convs(graph_model, qparams)
        quantizer = LearnedQParamsQuantizer(qparams, rest=rest, activations=activations)
    else:
        graph_model = split_output_convs(copy.deepcopy(model))
        if quant == "int8":
            quantizer = int8_quantizer()
    start = time.perf_counter()
    program, edge = lower_to_pte(graph_model, example, quant=quant, quantizer=quantizer, calibration=calibration,
                                 dynamic=dynamic, max_side=max_side, min_side=min_side_of(model), stage=stage)
    delegated, non_delegated, ops = _delegation(edge)
    stage("save")
    path = Path(path)
    card_path(path).unlink(missing_ok=True)  # the card of the file replaced here; the new one comes after checks
    with atomic_write(path, "wb") as f:
        f.write(program.buffer)
    stage("verify the saved file against eager")
    check = example if check_input is None else check_input
    with torch.no_grad():
        expected = model(check)
    got = PteModule(path)(check)
    if got.shape != expected.shape:
        path.unlink(missing_ok=True)
        raise ExportMismatchError(f"the exported .pte returns shape {tuple(got.shape)}, eager {tuple(expected.shape)}")
    diff = float((got - expected).abs().max())
    agreement = output_psnr(got, expected)
    result = PteExport(path, quant, path.stat().st_size, delegated, non_delegated, list(check.shape[1:]), dynamic,
                       diff, agreement, ops)
    failed = not diff <= atol if quant == "fp32" else not agreement >= min_psnr
    if failed:
        path.unlink(missing_ok=True)
        raise ExportMismatchError(f"the exported .pte disagrees with the eager model (max |diff| {diff:.3g}, "
                                  f"{agreement:.1f} dB); removed ({time.perf_counter() - start:.0f} s)")
    return result


def output_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB between two images in [0, 1] (clamped), ``inf`` if equal."""
    mse = float((a.clamp(0, 1) - b.clamp(0, 1)).double().square().mean())
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)
