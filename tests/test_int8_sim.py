"""quantsr.quant.int8_sim against the ExecuTorch runtime: a one-conv static int8 .pte and the emulation agree in
every output code (PT2E's own reference graph does not: it rounds the bias and the requantization differently)."""
import pytest
import torch

from quantsr.artifacts.atomic import atomic_write
from quantsr.export.pt2e_quantizer import int8_quantizer
from quantsr.export.pte import lower_to_pte
from quantsr.quant.int8_sim import add_codes, conv_codes, dequantize_codes, quantize_codes
from quantsr.runtime.pte import PteModule


def _qparams(converted):
    """(input, output) per-tensor qparams and the per-channel weight codes and scales of a one-conv graph."""
    qd = torch.ops.quantized_decomposed
    acts, weight = [], None
    for node in converted.graph.nodes:
        if node.op == "call_function" and node.target == qd.quantize_per_tensor.default:
            acts.append((float(node.args[1]), int(node.args[2])))
        if node.op == "call_function" and node.target == qd.dequantize_per_channel.default:
            weight = (getattr(converted, node.args[0].target), getattr(converted, node.args[1].target))
    return acts[0], acts[-1], weight


@pytest.mark.parametrize("channels, kernel, padding", [(8, 3, 1), (16, 1, 0)])
def test_a_static_int8_conv_is_emulated_code_for_code(tmp_path, channels, kernel, padding):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(channels, channels, kernel, padding=padding)).eval()
    example = torch.randn(1, channels, 12, 12)
    calibration = [torch.randn(1, channels, 12, 12) for _ in range(4)]
    program, _ = lower_to_pte(model, example, quant="int8", quantizer=int8_quantizer(), calibration=calibration)
    with atomic_write(tmp_path / "conv.pte", "wb") as fh:
        fh.write(program.buffer)
    device = PteModule(tmp_path / "conv.pte")
    prepared = prepare_pt2e(torch.export.export(model, (example,)).module(), int8_quantizer())
    with torch.no_grad():  # the same calibration as lower_to_pte (not the example): the same qparams
        for x in calibration:
            prepared(x)
    (sx, zx), (sy, zy), (w_codes, w_scales) = _qparams(convert_pt2e(prepared))
    for seed in range(3):
        x = torch.randn(1, channels, 12, 12, generator=torch.Generator().manual_seed(seed))
        codes = conv_codes(quantize_codes(x, sx, zx), sx, zx, w_codes, w_scales, model[0].bias.detach(), sy, zy,
                           padding=padding)
        got = quantize_codes(device(x), sy, zy)
        assert torch.equal(codes, got), float((codes != got).float().mean())
        assert torch.allclose(dequantize_codes(codes, sy, zy), device(x), atol=1e-6)


class TwoConvsAdded(torch.nn.Module):
    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.b = torch.nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


def test_a_static_int8_add_is_emulated_code_for_code(tmp_path):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(0)
    model = TwoConvsAdded().eval()
    example = torch.randn(1, 8, 12, 12)
    calibration = [torch.randn(1, 8, 12, 12) for _ in range(4)]
    program, _ = lower_to_pte(model, example, quant="int8", quantizer=int8_quantizer(), calibration=calibration)
    with atomic_write(tmp_path / "add.pte", "wb") as fh:
        fh.write(program.buffer)
    device = PteModule(tmp_path / "add.pte")
    prepared = prepare_pt2e(torch.export.export(model, (example,)).module(), int8_quantizer())
    with torch.no_grad():
        for x in calibration:
            prepared(x)
    converted = convert_pt2e(prepared)
    qd = torch.ops.quantized_decomposed
    quant = {}  # producer node name -> (scale, zero point) of its quantize
    weights = []
    for node in converted.graph.nodes:
        if node.op == "call_function" and node.target == qd.quantize_per_tensor.default:
            quant[node.args[0].name] = (float(node.args[1]), int(node.args[2]))
        if node.op == "call_function" and node.target == qd.dequantize_per_channel.default:
            weights.append((getattr(converted, node.args[0].target), getattr(converted, node.args[1].target)))
    convs = [n for n in converted.graph.nodes if n.op == "call_function" and "conv2d" in str(n.target)]
    adds = [n for n in converted.graph.nodes if n.op == "call_function" and "add" in str(n.target)]
    (sx, zx) = quant["x"]
    (sa, za), (sb, zb), (sy, zy) = quant[convs[0].name], quant[convs[1].name], quant[adds[0].name]
    for seed in range(3):
        x = torch.randn(1, 8, 12, 12, generator=torch.Generator().manual_seed(seed))
        xq = quantize_codes(x, sx, zx)
        a = conv_codes(xq, sx, zx, *weights[0], model.a.bias.detach(), sa, za, padding=1)
        b = conv_codes(xq, sx, zx, *weights[1], model.b.bias.detach(), sb, zb)
        codes = add_codes(a, sa, za, b, sb, zb, sy, zy)
        got = quantize_codes(device(x), sy, zy)
        assert torch.equal(codes, got), float((codes != got).float().mean())


def test_an_add_is_refused_only_when_its_larger_input_ratio_is_outside_xnnpack_range():
    # XNNPACK (as ExecuTorch ships it) bounds the larger input-to-output ratio: a tiny ratio beside a valid one
    # lowers and runs (test_concat_steps lowers such an add: 0.0002 beside 0.87)
    codes = torch.ones(1, 1, 2, 2)
    add_codes(codes, 2.0**-11, 0, codes, 1.0, 0, 1.0, 0)
    for a_scale, b_scale in ((2.0**-11, 2.0**-11), (300.0, 1.0), (1.0, 256.0)):
        with pytest.raises(ValueError, match="scale ratios"):
            add_codes(codes, a_scale, 0, codes, b_scale, 0, 1.0, 0)
