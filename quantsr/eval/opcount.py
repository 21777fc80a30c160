"""Operation and storage accounting for (simulated) low-bit SR networks.

Conventions (those of the low-bit SR papers: BiBERT/BiSR/QuantSR/QuantSR+):

* A MAC is one multiply-accumulate of a conv / linear / matmul. ``flops_per_mac=1`` (default) counts one MAC as
  one FLOP, as those papers do; pass ``flops_per_mac=2`` for the "multiply and add are two FLOPs" convention. It
  scales the FLOPs of FP layers (and the FP32 reference) only, never BitOPs.
* A layer is *quantized* when ``b_w < 32`` or ``b_a < 32``; its ``BitOPs = MACs * b_w * b_a`` and it has no FLOPs.
  A layer at 32/32 is FP: ``FLOPs = flops_per_mac * MACs`` and no BitOPs.
* ``OPs = FLOPs + BitOPs / 64``.
* Storage: a quantized layer's weight at ``b_w`` bits, its bias at 32 bits (int32 at deployment); every other
  parameter (FP layers, norms, bias tables, PReLU slopes, shortcut weights, the quantizers' own step sizes and
  offsets) at 32 bits. Buffers are not counted. Parameters of modules that never ran in the profiled forward (e.g.
  blocks pruned by QSA, which "cost nothing") are excluded and reported as ``unused_params``.
* The FP32 reference is the same executed graph with every layer at 32/32.
* Only conv (``nn.Conv1d/2d/3d``, ``nn.ConvTranspose*``), ``nn.Linear``, any module exposing ``weight`` plus a
  ``weight_quantizer``/``act_quantizer`` attribute, and matrix products are counted. Element-wise ops (activations,
  residual adds, bias adds, softmax, norms, pixel shuffle, interpolation) are not, as in the papers.

Layer bits: ``bits_fn(fqn, module) -> (b_w, b_a) | None`` wins when it returns a pair; otherwise a module's
``weight_quantizer.bits`` / ``act_quantizer.bits`` (read with ``getattr``, so ``quantsr.quant`` is not imported;
a quantizer with ``enabled == False`` counts as 32 bits); otherwise 32/32.

Matrix products (attention's ``q @ k^T``, ``attn @ v``) are not modules, so forward hooks miss them. They are caught
by a ``TorchFunctionMode`` that intercepts ``torch.bmm``, ``torch.mm``, ``torch.matmul`` and ``Tensor.__matmul__``
(``@``) and their method forms, and attributed to the innermost running module (``<fqn>.matmul``, one row per owner,
MACs = ``out.numel() * K``). Products computed *inside* a counted layer (e.g. a linear written with ``@``) are not
counted twice. Operand bits: ``bits_fn("<owner fqn>.matmul", owner)``, else the owner's ``matmul_bits`` attribute
(``int`` or ``(b1, b2)``), else, when the owner has direct children that are activation quantizers with a ``bits``
attribute (any ``quantsr.quant.ActQuantizer``, e.g. SwinIR attention's ``q_act``/``k_act``/``v_act``/``attn_act``
after ``quantize_``, or any child named ``*_quantizer`` / ``*_quant``), the largest of those bits (disabled ones
excepted) for both operands; else FP. ``torch.einsum`` and
``F.scaled_dot_product_attention`` are not intercepted.
"""
from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

BitsFn = Callable[[str, nn.Module], tuple[int, int] | None]
FP_BITS = 32

_MATMUL_FUNCS = {
    torch.bmm, torch.mm, torch.matmul, torch.Tensor.bmm, torch.Tensor.mm, torch.Tensor.matmul,
    torch.Tensor.__matmul__, torch.Tensor.__rmatmul__,
}


@dataclass
class LayerProfile:
    name: str
    kind: str
    calls: int = 0
    macs: int = 0
    b_w: int = FP_BITS
    b_a: int = FP_BITS
    flops: int = 0
    bitops: int = 0
    params: int = 0
    storage_bits: int = 0

    @property
    def quantized(self) -> bool:
        return self.b_w < FP_BITS or self.b_a < FP_BITS

    @property
    def ops(self) -> float:
        return self.flops + self.bitops / 64


@dataclass
class ProfileReport:
    layers: list[LayerProfile]
    input_size: tuple[int, ...]
    flops_per_mac: int
    macs: int
    flops: int
    bitops: int
    ops: float
    params: int
    storage_bits: int
    unused_params: int
    fp32_ops: float
    fp32_storage_bits: int
    ops_reduction_pct: float = field(init=False)
    storage_reduction_pct: float = field(init=False)

    def __post_init__(self) -> None:
        self.ops_reduction_pct = 100.0 * (1 - self.ops / self.fp32_ops) if self.fp32_ops else 0.0
        self.storage_reduction_pct = (
            100.0 * (1 - self.storage_bits / self.fp32_storage_bits) if self.fp32_storage_bits else 0.0
        )

    def to_dict(self) -> dict:
        out = asdict(self)
        for row, layer in zip(out["layers"], self.layers):
            row.update(quantized=layer.quantized, ops=layer.ops)
        out["input_size"] = list(self.input_size)
        return out

    def table(self, top: int | None = None) -> str:
        """Aligned text table; ``top`` keeps the ``top`` layers with the most OPs (else all, in model order).
        MACs and OPs in M (1e6), storage in KB (1 KB = 1024 bytes)."""
        rows = self.layers if top is None else sorted(self.layers, key=lambda lp: -lp.ops)[:top]
        head = ("layer", "type", "bits", "calls", "MACs(M)", "OPs(M)", "params", "storage(KB)")
        body = [
            (lp.name, lp.kind, f"W{lp.b_w}A{lp.b_a}" if lp.macs else "-", str(lp.calls),
             f"{lp.macs / 1e6:.2f}", f"{lp.ops / 1e6:.2f}", str(lp.params), f"{lp.storage_bits / 8192:.2f}")
            for lp in rows
        ]
        body.append(("TOTAL", "", "", "", f"{self.macs / 1e6:.2f}", f"{self.ops / 1e6:.2f}", str(self.params),
                     f"{self.storage_bits / 8192:.2f}"))
        body.append(("FP32 reference", "", "W32A32", "", "", f"{self.fp32_ops / 1e6:.2f}", str(self.params),
                     f"{self.fp32_storage_bits / 8192:.2f}"))
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

        def fmt(r: tuple[str, ...]) -> str:
            return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

        lines = [fmt(head), "-" * len(fmt(head)), *map(fmt, body)]
        lines.append(f"reduction vs FP32: OPs {self.ops_reduction_pct:.1f}%, storage {self.storage_reduction_pct:.1f}%"
                     f"  (FLOPs {self.flops / 1e6:.2f}M, BitOPs {self.bitops / 1e9:.3f}G, 1 MAC = "
                     f"{self.flops_per_mac} FLOP)")
        return "\n".join(lines)


def _quantizer_bits(q: object) -> int:
    if q is None or not getattr(q, "enabled", True):
        return FP_BITS
    bits = getattr(q, "bits", None)
    return FP_BITS if bits is None else int(bits)


def _is_counted(m: nn.Module) -> bool:
    if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
        return True
    return isinstance(getattr(m, "weight", None), torch.Tensor) and (
        hasattr(m, "weight_quantizer") or hasattr(m, "act_quantizer")
    )


def _layer_macs(m: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    w = m.weight
    if isinstance(m, nn.modules.conv._ConvTransposeNd):  # weight (in, out/groups, *k): each input scatters
        return inp.numel() * w[0].numel()
    if isinstance(m, nn.modules.conv._ConvNd) or w.dim() > 2:  # weight (out, in/groups, *k)
        return out.numel() * w[0].numel()
    return out.numel() * w.shape[-1]  # linear: out_numel * in_features


def _module_bits(fqn: str, m: nn.Module, bits_fn: BitsFn | None) -> tuple[int, int]:
    if bits_fn is not None and (bits := bits_fn(fqn, m)) is not None:
        return int(bits[0]), int(bits[1])
    return _quantizer_bits(getattr(m, "weight_quantizer", None)), _quantizer_bits(getattr(m, "act_quantizer", None))


def _is_act_quantizer(m: nn.Module) -> bool:
    # Without importing quantsr.quant: if its quantizers module was never loaded, no ActQuantizer can exist.
    act_cls = getattr(sys.modules.get("quantsr.quant.quantizers"), "ActQuantizer", None)
    return act_cls is not None and isinstance(m, act_cls)


def _matmul_bits(fqn: str, owner: nn.Module, bits_fn: BitsFn | None) -> tuple[int, int]:
    if bits_fn is not None and (bits := bits_fn(fqn, owner)) is not None:
        return int(bits[0]), int(bits[1])
    mb = getattr(owner, "matmul_bits", None)
    if mb is not None:
        return (int(mb), int(mb)) if isinstance(mb, int) else (int(mb[0]), int(mb[1]))
    found = [
        _quantizer_bits(q)
        for n, q in owner.named_children()
        if hasattr(q, "bits") and (_is_act_quantizer(q) or n.endswith(("_quantizer", "_quant")))
    ]
    found = [b for b in found if b < FP_BITS]
    return (max(found), max(found)) if found else (FP_BITS, FP_BITS)


class _MatmulCounter(TorchFunctionMode):
    def __init__(self, on_matmul: Callable[[torch.Tensor, torch.Tensor], None]) -> None:
        super().__init__()
        self.on_matmul = on_matmul

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _MATMUL_FUNCS and isinstance(out, torch.Tensor):
            a = args[1] if func is torch.Tensor.__rmatmul__ else args[0]
            self.on_matmul(a, out)
        return out


def profile(
    model: nn.Module,
    input_size: tuple[int, int, int] | tuple[int, int, int, int],
    bits_fn: BitsFn | None = None,
    flops_per_mac: int = 1,
    on_meta: bool = False,
) -> ProfileReport:
    """Count MACs/FLOPs/BitOPs/OPs, params and storage of one forward pass at ``input_size`` ((C,H,W) = batch 1).

    Runs the model in eval mode under ``torch.no_grad`` (mode restored afterwards). ``on_meta=True`` profiles a
    deep copy on the meta device (shapes only, no arithmetic): fast for big inputs, for models whose forward does
    no data-dependent Python control flow. A model with ``quantsr.quant`` layers must have initialised quantizers
    (trained, loaded, or ``quantsr.quant.calibrate_``), as for any eval forward.
    """
    if len(input_size) == 3:
        input_size = (1, *input_size)
    if len(input_size) != 4:
        raise ValueError(f"input_size must be (C, H, W) or (N, C, H, W), got {input_size}")
    if on_meta:
        model = copy.deepcopy(model).to("meta")
    ref = next(iter(model.parameters()), None)
    x = torch.rand(input_size, device=ref.device if ref is not None else None,
                   dtype=ref.dtype if ref is not None and ref.is_floating_point() else None)

    names = {m: n for n, m in model.named_modules()}  # a module shared under several names: its first name
    rows: dict[str, LayerProfile] = {}
    stack: list[nn.Module] = []
    called: set[nn.Module] = set()
    counted_depth = [0]

    def pre_hook(m, args):
        stack.append(m)
        called.add(m)
        counted_depth[0] += _is_counted(m)

    def post_hook(m, args, out):
        stack.pop()
        counted_depth[0] -= _is_counted(m)
        if _is_counted(m) and args and isinstance(out, torch.Tensor):
            name = names[m]
            row = rows.get(name) or rows.setdefault(name, LayerProfile(name, type(m).__name__))
            row.b_w, row.b_a = _module_bits(name, m, bits_fn)
            row.calls += 1
            row.macs += _layer_macs(m, args[0], out)

    def on_matmul(a: torch.Tensor, out: torch.Tensor) -> None:
        if counted_depth[0] or not stack:
            return
        owner = stack[-1]
        name = f"{names[owner]}.matmul" if names[owner] else "matmul"
        row = rows.get(name) or rows.setdefault(name, LayerProfile(name, "matmul"))
        row.b_w, row.b_a = _matmul_bits(name, owner, bits_fn)
        row.calls += 1
        row.macs += out.numel() * (a.shape[-1] if a.dim() else 1)

    handles = []
    for m in set(names):
        handles.append(m.register_forward_pre_hook(pre_hook))
        handles.append(m.register_forward_hook(post_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _MatmulCounter(on_matmul):
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    # Parameters: each counted exactly once, attributed to the nearest counted layer (its weight at b_w bits, the
    # rest, e.g. bias and quantizer scales, at 32) or else to the module that owns them (32 bits).
    unused = 0
    seen: set[int] = set()  # a tensor held by several modules (tied copies of a shared block) is stored once
    for name, m in model.named_modules():
        own = [(n, p) for n, p in m.named_parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for _, p in own)
        if not own:
            continue
        layer = next((p for p in _ancestors(name) if p in rows and _is_counted(model.get_submodule(p))), None)
        if layer is None and m not in called:
            unused += sum(p.numel() for _, p in own)
            continue
        key = layer if layer is not None else (name or "<root>")
        row = rows.get(key) or rows.setdefault(key, LayerProfile(key, f"{type(m).__name__} (params)"))
        for pname, p in own:
            row.params += p.numel()
            row.storage_bits += p.numel() * (row.b_w if layer == name and pname == "weight" else FP_BITS)

    layers = list(rows.values())
    for lp in layers:
        lp.flops = 0 if lp.quantized else flops_per_mac * lp.macs
        lp.bitops = lp.macs * lp.b_w * lp.b_a if lp.quantized else 0
    macs = sum(lp.macs for lp in layers)
    flops, bitops = sum(lp.flops for lp in layers), sum(lp.bitops for lp in layers)
    params = sum(lp.params for lp in layers)
    return ProfileReport(
        layers=layers, input_size=tuple(input_size), flops_per_mac=flops_per_mac, macs=macs, flops=flops,
        bitops=bitops, ops=flops + bitops / 64, params=params, storage_bits=sum(lp.storage_bits for lp in layers),
        unused_params=unused, fp32_ops=float(flops_per_mac * macs), fp32_storage_bits=FP_BITS * params,
    )


def _ancestors(fqn: str) -> list[str]:
    """``"a.b.c"`` -> ``["a.b.c", "a.b", "a"]`` (innermost first)."""
    parts = fqn.split(".") if fqn else []
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
