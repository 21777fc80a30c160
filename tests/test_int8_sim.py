"""quantsr.quant.int8_sim against the ExecuTorch runtime: a one-conv static int8 .pte and the emulation agree in
every output code (PT2E's own reference graph does not: it rounds the bias and the requantization differently)."""
import pytest
import torch

from quantsr.artifacts.atomic import atomic_write
from quantsr.export.pt2e_quantizer import int8_quantizer
from quantsr.export.pte import lower_to_pte
from quantsr.quant.int8_sim import conv2d_requantized, dequantize, quantize
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
    with torch.no_grad():  # the same calibration as lower_to_pte: the same qparams
        for x in [example, *calibration]:
            prepared(x)
    (sx, zx), (sy, zy), (w_codes, w_scales) = _qparams(convert_pt2e(prepared))
    for seed in range(3):
        x = torch.randn(1, channels, 12, 12, generator=torch.Generator().manual_seed(seed))
        codes = conv2d_requantized(quantize(x, sx, zx), sx, zx, w_codes, w_scales, model[0].bias.detach(), sy, zy,
                                   padding=padding)
        got = quantize(device(x), sy, zy)
        assert torch.equal(codes, got), float((codes != got).float().mean())
        assert torch.allclose(dequantize(codes, sy, zy), device(x), atol=1e-6)
