"""GPTQ rounding of int8 conv weights (quantsr.quant.gptq): the im2col view it optimises is the layer's own
arithmetic (plain, grouped, transposed convs), its codes stay on the grid the PT2E observer recomputes, it beats
round-to-nearest on the layer's output, and a PT2E program built with it holds exactly its codes."""
import pytest
import torch
from torch import nn

from quantsr.export.int8_program import static_int8_graph
from quantsr.export.pt2e_quantizer import Int8PTQConfig
from quantsr.quant.gptq import _weight_rows, conv_columns, gptq_int8_weights_, int8_weight_steps


@pytest.mark.parametrize("layer", [
    nn.Conv2d(4, 6, 3, padding=1),
    nn.Conv2d(4, 6, 3, padding=1, groups=2),
    nn.Conv2d(4, 6, 3, stride=2, padding=1, padding_mode="reflect"),
    nn.ConvTranspose2d(4, 2, 9, stride=2, padding=4, output_padding=1),
    nn.ConvTranspose2d(4, 2, 3, stride=3, padding=0),
], ids=["conv", "grouped", "strided-reflect", "deconv-fsrcnn", "deconv-3x"])
def test_the_im2col_view_is_the_layers_own_arithmetic(layer):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 7, 9)
    expected = layer(x) - layer.bias.view(1, -1, 1, 1)
    cols = conv_columns(layer, x)  # (groups, in/groups * taps, images * positions)
    rows = _weight_rows(layer)
    groups = cols.shape[0]
    per = rows.shape[0] // groups
    out = torch.cat([rows[g * per:(g + 1) * per] @ cols[g] for g in range(groups)])
    n, c, h, w = expected.shape
    got = out.reshape(c, n, h * w).transpose(0, 1).reshape(n, c, h, w)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


class Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 16, 3, padding=1)
        self.body = nn.Conv2d(16, 16, 3, padding=1)
        self.tail = nn.ConvTranspose2d(16, 3, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(torch.relu(self.body(torch.relu(self.head(x)))))


def _smooth_images(n: int, seed: int) -> list[torch.Tensor]:
    # neighbouring pixels correlate, as in images: the case where GPTQ's compensation pays
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 2, 3, 8, 8, generator=g)
    return list(nn.functional.interpolate(noise.flatten(0, 1), size=16, mode="bilinear").unflatten(0, (n, 2)))


def test_codes_stay_on_the_observer_grid_and_beat_nearest_on_the_output():
    torch.manual_seed(0)
    model = Chain().eval()
    calib, held_out = _smooth_images(4, 1), torch.cat(_smooth_images(4, 2))
    reference = model(held_out)
    before = {n: _weight_rows(m).clone() for n, m in model.named_modules() if n}
    nearest = Chain().eval()
    nearest.load_state_dict(model.state_dict())
    with torch.no_grad():
        for name, m in nearest.named_modules():
            if name:
                rows, step = before[name], int8_weight_steps(before[name])
                w = (torch.round(rows / step).clamp(-127, 127) * step).reshape(
                    m.weight.shape if isinstance(m, nn.Conv2d) else (m.weight.shape[1], m.weight.shape[0],
                                                                     *m.weight.shape[2:]))
                m.weight.copy_(w if isinstance(m, nn.Conv2d) else w.transpose(0, 1).flip(-1, -2))

    assert gptq_int8_weights_(model, calib) == ["head", "body", "tail"]  # the order the forward reaches them
    for name, m in model.named_modules():
        if name:
            rows, step = _weight_rows(m), int8_weight_steps(before[name])
            # the observer recomputes the same step from the rounded weights, and every weight is a code
            torch.testing.assert_close(int8_weight_steps(rows), step, rtol=1e-6, atol=0)
            codes = rows / step
            assert (codes - codes.round()).abs().max() < 1e-3 and codes.abs().max() <= 127 + 1e-3
            assert not torch.equal(rows, before[name])
    gptq_error = (model(held_out) - reference).pow(2).mean()
    nearest_error = (nearest(held_out) - reference).pow(2).mean()
    assert gptq_error < 0.8 * nearest_error


def test_a_split_conv_gets_one_grid_per_input_part():
    torch.manual_seed(0)
    fuse = nn.Conv2d(8, 3, 1)
    with torch.no_grad():
        fuse.weight[:, 4:] *= 30  # parts 30x apart (and above the observer's 2^-12 floor on steps)
    model = nn.Sequential(fuse).eval()
    gptq_int8_weights_(model, [torch.rand(2, 8, 8, 8)], split_inputs={"0": [4, 4]})
    rows = _weight_rows(fuse)
    for part in rows.split([4, 4], dim=1):  # each part's largest weight is its own top code
        step = part.abs().amax(dim=1, keepdim=True) / 127
        codes = part / step
        assert (codes - codes.round()).abs().max() < 1e-3
        assert torch.allclose(codes.abs().amax(dim=1), torch.full((3,), 127.0))


def test_the_pt2e_program_holds_gptqs_codes():
    torch.manual_seed(0)
    model = Chain().eval()
    calib = _smooth_images(2, 4)
    fp_weights = {k: v.clone() for k, v in model.state_dict().items()}
    converted = static_int8_graph(model, calib, max_side=32, ptq=Int8PTQConfig(weight_rounding="gptq"))
    for key, value in model.state_dict().items():  # the FP model itself is left as it was
        assert torch.equal(value, fp_weights[key])
    rounded = Chain().eval()
    rounded.load_state_dict(model.state_dict())
    gptq_int8_weights_(rounded, calib)
    programs = []
    for node in converted.graph.nodes:
        if node.op == "call_function" and "dequantize_per_channel" in str(node.target):
            codes, scales = getattr(converted, node.args[0].target), getattr(converted, node.args[1].target)
            axis = node.args[3]
            shape = [1] * codes.dim()
            shape[axis] = -1
            programs.append(codes.float() * scales.view(shape))
    expected = [rounded.head.weight, rounded.body.weight, rounded.tail.weight]
    assert len(programs) == 3
    for got, want in zip(programs, expected):
        torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-7)


def test_config_refuses_an_unknown_rounding():
    with pytest.raises(ValueError, match="weight_rounding must be one of"):
        Int8PTQConfig(weight_rounding="adaround")


class Shared(nn.Module):
    """CARN-M's pattern: one conv run twice per forward."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.block = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.head(x))
        return self.block(torch.relu(self.block(y)))


def test_a_shared_conv_is_fitted_to_every_input_it_sees(monkeypatch):
    import quantsr.quant.gptq as gptq

    torch.manual_seed(0)
    model = Shared().eval()
    batches = _smooth_images(2, 5)
    moments = {}
    real = gptq._round_layer

    def spy(layer, h, *args):
        moments[layer] = h.clone()
        real(layer, h, *args)

    monkeypatch.setattr(gptq, "_round_layer", spy)
    block_fp = model.block.weight.detach().clone()
    assert gptq_int8_weights_(model, batches) == ["head", "block"]
    # both calls of the block, on the inputs the rounded head gives (the block itself still unrounded)
    with torch.no_grad():
        model.block.weight.copy_(block_fp)
    inputs = []
    hook = model.block.register_forward_pre_hook(lambda m, i: inputs.append(i[0].detach()))
    with torch.no_grad():
        for batch in batches:
            model(batch)
    hook.remove()
    cols = torch.cat([conv_columns(model.block, x) for x in inputs], dim=-1).double()
    torch.testing.assert_close(moments[model.block], cols @ cols.transpose(1, 2) / cols.shape[-1], rtol=1e-4,
                               atol=1e-6)


@pytest.mark.parametrize("floor", [2**-12, 2**-24])
def test_small_weights_get_the_whole_int8_range_only_below_the_stock_floor(floor):
    torch.manual_seed(0)
    model = Chain().eval()
    with torch.no_grad():
        model.body.weight *= 0.01  # largest weight per channel ~0.001, under 127 * 2^-12 = 0.031
    converted = static_int8_graph(model, _smooth_images(2, 6), max_side=32,
                                  ptq=Int8PTQConfig(weight_rounding="gptq", min_weight_step=floor))
    steps = [getattr(converted, n.args[1].target) for n in converted.graph.nodes
             if n.op == "call_function" and "dequantize_per_channel" in str(n.target)]
    body = steps[1]
    expected = model.body.weight.detach().abs().amax(dim=(1, 2, 3)) / 127
    if floor == 2**-12:
        assert torch.all(body == 2**-12)
    else:
        torch.testing.assert_close(body, expected, rtol=1e-5, atol=0)


def test_program_gptq_fits_each_conv_to_its_quantized_inputs():
    torch.manual_seed(0)
    model = Chain().eval()
    calib, held_out = _smooth_images(4, 7), _smooth_images(2, 8)
    images = [x for batch in held_out for x in batch.split(1)]
    with torch.no_grad():
        reference = [model(x) for x in images]

    def error(rounding: str) -> float:
        converted = static_int8_graph(model, calib, max_side=32, ptq=Int8PTQConfig(weight_rounding=rounding))
        with torch.no_grad():
            return float(sum((converted(x) - r).pow(2).mean() for x, r in zip(images, reference)))

    nearest, fp_inputs, program = error("nearest"), error("gptq"), error("gptq_program")
    # on top of GPTQ with FP inputs, each conv keeps per channel the better of the two codes
    assert program < fp_inputs < 0.9 * nearest
