"""GPTQ on a converted int8 program, against its own quantized inputs (issue 14): each conv's int8 codes are
re-rounded so that, fed the program's *quantized* input ``x~``, it reproduces the FP layer's output ``W x`` on the
calibration images, and its bias absorbs the mean of what is left.

``min_Q E||Q x~ - W x||^2`` is, up to a constant, ``E||(Q - W*) x~||^2`` with ``W* = W E[x x~^T] E[x~ x~^T]^-1``:
plain GPTQ (:mod:`quantsr.quant.gptq`) of the target ``W*`` under ``H = E[x~ x~^T]``. So a layer also compensates
the rounding of its input activations, which weight-only GPTQ (FP inputs) cannot see. The program's steps and
activation qparams stay as calibrated; only weight codes and biases change. Layers go in graph order, each
measured on the program as the earlier layers left it. ``x`` comes from ``reference``, the FP graph the program
was converted from (same node names). GPTQ is greedy and clamps, so each output channel keeps whichever of the new
codes and the program's own has the smaller objective; through ``Int8PTQConfig(weight_rounding="gptq_program")``
the program's own are weight-only GPTQ's, so no layer ends worse on its calibration objective than with those.
The FP graph runs once per image (its conv inputs kept); the program runs once, all images in lockstep, node by
node, each layer re-rounded just before it runs.
"""
from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

import torch
from torch import fx, nn

from quantsr.quant.gptq import MAX_POSITIONS, GPTQConfig, conv_columns, gptq_codes, rows_to_weight, weight_rows

__all__ = ["gptq_program_"]

_CONV = torch.ops.aten.conv2d.default
_DECONV = torch.ops.aten.conv_transpose2d.input


class _Lockstep:
    """Runs one graph on several images node by node, keeping only the values later nodes still read, so a pass
    can change a layer's constants just before that layer runs (sequential, one forward in all)."""

    def __init__(self, gm: fx.GraphModule, images: Sequence[torch.Tensor]) -> None:
        self.runners = []
        for image in images:
            runner = fx.Interpreter(gm)
            runner.env, runner.args_iter = {}, iter([image])
            self.runners.append(runner)
        nodes = list(gm.graph.nodes)
        self.index = {n: i for i, n in enumerate(nodes)}
        self.last_use = {a: i for i, n in enumerate(nodes) for a in n.all_input_nodes}

    def run(self, node: fx.Node) -> None:
        i = self.index[node]
        with torch.no_grad():
            for runner in self.runners:
                runner.env[node] = runner.run_node(node)
                for a in node.all_input_nodes:  # constants stay: a re-run dequantize reads them again
                    if self.last_use[a] == i and a.op != "get_attr":
                        del runner.env[a]

    def values(self, node: fx.Node) -> list[torch.Tensor]:
        return [runner.env[node] for runner in self.runners]


class _ConvInputs(fx.Interpreter):
    """One forward of a graph, keeping the first input of each named conv node."""

    def __init__(self, gm: fx.GraphModule, names: set[str]) -> None:
        super().__init__(gm)
        self.names, self.inputs = names, {}

    def run_node(self, n: fx.Node):
        if n.name in self.names:
            self.inputs[n.name] = self.fetch_args_kwargs_from_env(n)[0][0].detach()
        return super().run_node(n)


def _conv_inputs(gm: fx.GraphModule, names: set[str], images: Sequence[torch.Tensor]) -> list[dict]:
    out = []
    for image in images:
        runner = _ConvInputs(gm, names)
        with torch.no_grad():
            runner.run(image)
        out.append(runner.inputs)
    return out


def _layer_of(node: fx.Node, weight: torch.Tensor) -> nn.Module:
    """A conv module with the node's geometry, for the im2col view of :mod:`quantsr.quant.gptq`."""
    args = list(node.args) + [None] * 8
    if node.target == _DECONV:
        stride, padding, output_padding, groups, dilation = (args[3] or 1, args[4] or 0, args[5] or 0,
                                                             args[6] or 1, args[7] or 1)
        layer = nn.ConvTranspose2d(weight.shape[0], weight.shape[1] * groups, weight.shape[2:], stride, padding,
                                   output_padding, groups, bias=False, dilation=dilation, device="meta")
    else:
        stride, padding, dilation, groups = args[3] or 1, args[4] or 0, args[5] or 1, args[6] or 1
        layer = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], weight.shape[2:], stride, padding, dilation,
                          groups, bias=False, device="meta")
    return layer


def _objective(q: torch.Tensor, w: torch.Tensor, h: torch.Tensor, cross: torch.Tensor, per: int) -> torch.Tensor:
    """Each row's ``E||q x~ - w x||^2`` less its ``E||w x||^2`` (the same for every ``q``)."""
    return torch.cat([((q[g * per:(g + 1) * per] @ h[g]) * q[g * per:(g + 1) * per]).sum(dim=1)
                      - 2 * ((w[g * per:(g + 1) * per] @ cross[g]) * q[g * per:(g + 1) * per]).sum(dim=1)
                      for g in range(len(h))])


def gptq_program_(converted: fx.GraphModule, reference: fx.GraphModule, images: Sequence[torch.Tensor],
                  config: GPTQConfig | None = None, damp: float = 0.01) -> list[str]:
    """Re-round, in place, the int8 weight codes (and correct the biases) of every per-channel int8 conv of
    ``converted`` against its quantized inputs; ``reference`` is the FP graph it was converted from and
    ``images`` single calibration images (1, 3, h, w). Returns the conv node names changed, in order."""
    config = config or GPTQConfig()
    dequant_channel = torch.ops.quantized_decomposed.dequantize_per_channel.default  # registered by convert_pt2e
    fp_nodes = {n.name: n for n in reference.graph.nodes}
    uses: dict[str, int] = {}
    for n in converted.graph.nodes:
        if n.op == "call_function" and n.target == dequant_channel:
            uses[n.args[0].target] = uses.get(n.args[0].target, 0) + 1
    targets = []
    for node in converted.graph.nodes:
        if node.op != "call_function" or node.target not in (_CONV, _DECONV) or node.name not in fp_nodes:
            continue
        dq = node.args[1]
        if not (isinstance(dq, fx.Node) and dq.target == dequant_channel) or uses[dq.args[0].target] != 1:
            continue
        fp_weight_node = fp_nodes[node.name].args[1]
        if isinstance(fp_weight_node, fx.Node) and fp_weight_node.op == "get_attr":
            targets.append(node)
    fp_inputs = _conv_inputs(reference, {n.name for n in targets}, images)  # the FP graph does not change
    program = _Lockstep(converted, images)
    wanted = set(targets)
    done = []
    generator = torch.Generator().manual_seed(0)
    for node in list(converted.graph.nodes):
        if node not in wanted:
            program.run(node)
            continue
        dq = node.args[1]
        fp_weight_node = fp_nodes[node.name].args[1]
        deconv = node.target == _DECONV
        codes = attrgetter(dq.args[0].target)(converted)
        scales = attrgetter(dq.args[1].target)(converted).double()
        fp_weight = attrgetter(fp_weight_node.target)(reference).detach().double()
        layer = _layer_of(node, codes)
        rows = weight_rows(fp_weight, deconv)
        groups = layer.groups
        h = cross = sum_q = sum_fp = None
        count = 0
        for quantized_input, fp_input in zip(program.values(node.args[0]), fp_inputs):
            x_q = conv_columns(layer, quantized_input)
            x_fp = conv_columns(layer, fp_input[node.name])
            if x_q.shape[-1] > MAX_POSITIONS:
                keep = torch.randperm(x_q.shape[-1], generator=generator)[:MAX_POSITIONS]
                x_q, x_fp = x_q[..., keep], x_fp[..., keep]
            # products in float32 (a 9x9 deconv's columns are 4536 long), sums over images in float64
            moment, corr = (x_q @ x_q.transpose(1, 2)).double(), (x_fp @ x_q.transpose(1, 2)).double()
            h = moment if h is None else h + moment
            cross = corr if cross is None else cross + corr
            sum_q = x_q.sum(-1).double() if sum_q is None else sum_q + x_q.sum(-1).double()
            sum_fp = x_fp.sum(-1).double() if sum_fp is None else sum_fp + x_fp.sum(-1).double()
            count += x_q.shape[-1]
        h, cross, mean_q, mean_fp = h / count, cross / count, sum_q / count, sum_fp / count
        per = rows.shape[0] // groups
        step = scales[:, None].expand_as(rows)
        new_codes = torch.empty_like(rows)
        for g in range(groups):
            w = rows[g * per:(g + 1) * per]
            ridge = h[g] + damp * torch.diag(h[g]).mean() * torch.eye(len(h[g]), dtype=h.dtype)
            target = torch.linalg.solve(ridge, (w @ cross[g]).T).T  # W E[x x~^T] E[x~ x~^T]^-1
            new_codes[g * per:(g + 1) * per] = gptq_codes(target, h[g], step[g * per:(g + 1) * per], config)
        quantized = new_codes * step
        # GPTQ is greedy and clamps: keep, per output channel, whichever of its codes and the program's own has
        # the smaller E||q x~ - W x||^2 (up to the same constant: q H q^T - 2 <W E[x x~^T], q>)
        old = weight_rows(codes.double(), deconv) * step
        new_codes = torch.where((_objective(quantized, rows, h, cross, per) <= _objective(old, rows, h, cross, per)
                                 )[:, None], new_codes, weight_rows(codes.double(), deconv))
        quantized = new_codes * step
        # the bias takes the mean of what the rounded layer still misses (linear: means of the inputs suffice)
        residual = torch.cat([rows[g * per:(g + 1) * per] @ mean_fp[g] - quantized[g * per:(g + 1) * per] @ mean_q[g]
                              for g in range(groups)])
        with torch.no_grad():
            codes.copy_(rows_to_weight(new_codes, codes, deconv).to(codes.dtype))
            bias_node = node.args[2] if len(node.args) > 2 else None
            if isinstance(bias_node, fx.Node) and bias_node.op == "get_attr":
                bias = attrgetter(bias_node.target)(converted)
                bias.add_(residual.to(bias.dtype))
        program.run(dq)  # the weight, dequantized before this layer was reached, from the new codes
        program.run(node)
        done.append(node.name)
    return done
