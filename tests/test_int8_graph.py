"""The integer-faithful model of a static int8 program against the ExecuTorch runtime: every output code equal
(conv, fused ReLU, LeakyReLU and sigmoid tables, fixed-point add, mean, mul, concatenate, pixel shuffle outside
the delegate), before and after training it, and its program files restore the arithmetic they were trained as
(refusing a graph of other ops)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from quantsr.artifacts.cards import ArtifactError
from quantsr.export.int8_program import (
    codes_agreement,
    export_int8_program,
    load_program,
    save_program,
    static_int8_graph,
)
from quantsr.quant.int8_graph import MIN_SCALE_FACTOR, integer_faithful, write_back
from quantsr.runtime.pte import PteModule


class Mini(nn.Module):
    """The op kinds of the shipped IMDN, small."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 1)
        self.gate = nn.Conv2d(c, c, 1)
        self.tail = nn.Conv2d(2 * c, 12, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        s = F.leaky_relu(self.a(f), 0.05) + torch.relu(self.b(f))
        g = torch.sigmoid(self.gate(s.mean((2, 3), keepdim=True)))
        return F.pixel_shuffle(self.tail(torch.cat([s * g, f], 1)), 2)


class MiniNoGate(Mini):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        s = F.leaky_relu(self.a(f), 0.05) + torch.relu(self.b(f))
        return F.pixel_shuffle(self.tail(torch.cat([s, f], 1)), 2)


def _inputs(seed: int, sides=((16, 16), (12, 20), (24, 9))):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, h, w, generator=g) for h, w in sides]


@pytest.fixture(scope="module")
def converted():
    torch.manual_seed(0)
    return static_int8_graph(Mini().eval(), _inputs(1), max_side=32, min_side=8)


def test_the_pte_computes_its_integer_faithful_model_code_for_code(converted, tmp_path):
    result = export_int8_program(converted, tmp_path / "mini.pte", max_side=32, check_inputs=_inputs(2))
    assert result["identical_fraction"] == 1.0 and result["max_levels"] == 0
    pte, model = PteModule(tmp_path / "mini.pte"), integer_faithful(converted).eval()
    with torch.no_grad():
        for x in _inputs(3):
            assert codes_agreement(pte(x), model(x)) == (1.0, 0)


def test_training_the_integer_faithful_model_trains_the_program(converted, tmp_path):
    model = integer_faithful(converted).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    target = F.interpolate(x, scale_factor=2, mode="nearest")
    before = float(F.l1_loss(model(x), target))
    for _ in range(3):
        loss = F.l1_loss(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        optimizer.step()
    with torch.no_grad():
        assert float(F.l1_loss(model(x), target)) < before
    trained = write_back(model, converted)
    result = export_int8_program(trained, tmp_path / "trained.pte", max_side=32, check_inputs=_inputs(5))
    assert result["identical_fraction"] == 1.0
    pte = PteModule(tmp_path / "trained.pte")
    with torch.no_grad():
        for probe in _inputs(6):
            assert codes_agreement(pte(probe), model.eval()(probe)) == (1.0, 0)
    # the program file: the trained constants, only loadable into the graph they were trained in
    save_program(model, converted, tmp_path / "mini_int8.pt", {"note": "test"})
    loaded = integer_faithful(load_program(tmp_path / "mini_int8.pt", converted)).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # another calibration (here: other weights and data; in practice another machine's last bits) is replaced by
    # the file's numbers, so the program is the trained one exactly
    recalibrated = static_int8_graph(Mini().eval(), _inputs(7), max_side=32, min_side=8)
    assert integer_faithful(recalibrated).eval()(x).ne(model(x)).any()
    loaded = integer_faithful(load_program(tmp_path / "mini_int8.pt", recalibrated)).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(ArtifactError, match="another int8 graph"):
        load_program(tmp_path / "mini_int8.pt", static_int8_graph(MiniNoGate().eval(), _inputs(7), max_side=32))
    payload = torch.load(tmp_path / "mini_int8.pt", weights_only=False)
    torch.save({**payload, "format": 1}, tmp_path / "old_int8.pt")
    with pytest.raises(ArtifactError, match="format 1.*--init-program"):
        load_program(tmp_path / "old_int8.pt", converted)


def test_learned_activation_scales_train_and_reach_the_pte(converted, tmp_path):
    """``learn_scales``: every int8 activation scale a parameter (a concat's inputs and output tied as one), the
    same codes as the fixed program before training; trained scales are written back into the graph, whose .pte
    computes the trained model code for code, and the program file restores them."""
    from quantsr.qat.int8_finetune import Int8FinetuneRecipe, finetune_int8

    model = integer_faithful(converted, learn_scales=True).train()
    qparams = {(float(n.args[1]), int(n.args[2])) for n in converted.graph.nodes
               if "quantize_per_tensor" in str(n.target)}
    assert 0 < len(model.trainable_scales) == len(qparams)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(model(x), integer_faithful(converted)(x))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    target = F.interpolate(x, scale_factor=2, mode="nearest")
    for _ in range(3):
        loss = F.l1_loss(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        assert all(getattr(model, name).grad is not None for name in model.trainable_scales)
        optimizer.step()
    trained = write_back(model, converted)
    scales = {(float(n.args[1]), int(n.args[2])) for n in trained.graph.nodes if "quantize_per_tensor" in str(n.target)}
    assert len(scales) == len(qparams) and not scales & qparams  # every scale moved, ties kept
    with torch.no_grad():
        assert torch.equal(integer_faithful(trained).eval()(x), model.eval()(x))
    result = export_int8_program(trained, tmp_path / "scales.pte", max_side=32, check_inputs=_inputs(5))
    assert result["identical_fraction"] == 1.0 and result["max_levels"] == 0
    save_program(model, converted, tmp_path / "scales_int8.pt", {"note": "test"})
    loaded = integer_faithful(load_program(tmp_path / "scales_int8.pt", converted)).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match="scale_lr"):  # a recipe that would leave the scales untrained
        finetune_int8(model, None, [], Int8FinetuneRecipe(iterations=1))
    name = next(iter(model.trainable_scales))  # a factor trained through zero: the scale stays positive
    with torch.no_grad():
        getattr(model, name).fill_(-3.0)
    node = next(n for n in model.graph.nodes if n.op == "get_attr" and n.target == name)
    calibrated = float(getattr(model, next(iter(node.users)).args[0].target))
    written = write_back(model, converted)
    nodes = set(model.trainable_scales[name])
    assert {float(n.args[1]) for n in written.graph.nodes if n.name in nodes} == {
        float(torch.tensor(calibrated) * torch.tensor(MIN_SCALE_FACTOR))}


class MiniShared(nn.Module):
    """CARN-M's pattern: one conv run twice (the export gives each use its own copy of the weights)."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.shared = nn.Conv2d(c, c, 3, padding=1)
        self.tail = nn.Conv2d(c, 12, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        f = torch.relu(self.shared(f)) + f
        f = torch.relu(self.shared(f)) + f
        return F.pixel_shuffle(self.tail(f), 2)


def test_a_weight_shared_layer_trains_as_one_and_stays_shared(tmp_path):
    from quantsr.quant.int8_graph import get_constant

    torch.manual_seed(0)
    converted = static_int8_graph(MiniShared().eval(), _inputs(1), max_side=32, min_side=8)
    model = integer_faithful(converted, learn_scales=True)
    shared = {name: targets for name, targets in model.trainable_targets.items() if len(targets) > 1}
    assert len(shared) == 2  # the shared conv's weight and bias, each one parameter for its two copies
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    for _ in range(2):
        loss = F.l1_loss(model(x), F.interpolate(x, scale_factor=2))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = write_back(model, converted)
    for targets in shared.values():
        first, second = (get_constant(trained, t) for t in targets)
        assert torch.equal(first, second) and not torch.equal(first, get_constant(converted, targets[0]))
    save_program(model, converted, tmp_path / "shared_int8.pt", {"note": "test"})
    loaded = integer_faithful(load_program(tmp_path / "shared_int8.pt", converted)).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    result = export_int8_program(trained, tmp_path / "shared.pte", max_side=32, check_inputs=_inputs(5))
    assert result["identical_fraction"] == 1.0 and result["max_levels"] == 0


class MiniDeconv(nn.Module):
    """FSRCNN's tail: a strided transposed conv (per-channel weights on axis 1) after PReLU features."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.act = nn.PReLU(c)
        self.tail = nn.ConvTranspose2d(c, 3, 5, stride=2, padding=2, output_padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.act(self.head(x)))


def test_a_transposed_conv_is_computed_code_for_code_and_trains(tmp_path):
    torch.manual_seed(0)
    converted = static_int8_graph(MiniDeconv().eval(), _inputs(1), max_side=32, min_side=8)
    axes = {int(n.args[3]) for n in converted.graph.nodes
            if n.target == torch.ops.quantized_decomposed.dequantize_per_channel.default}
    assert axes == {0, 1}  # the conv's weight on its axis 0, the transposed conv's on axis 1
    model = integer_faithful(converted)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    target = F.interpolate(x, scale_factor=2, mode="bilinear")
    for _ in range(2):
        loss = F.l1_loss(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = write_back(model, converted)
    result = export_int8_program(trained, tmp_path / "deconv.pte", max_side=32, check_inputs=_inputs(2))
    assert result["identical_fraction"] == 1.0 and result["max_levels"] == 0
    pte = PteModule(tmp_path / "deconv.pte")
    with torch.no_grad():
        for probe in _inputs(3):
            assert codes_agreement(pte(probe), model.eval()(probe)) == (1.0, 0)


def test_export_refuses_a_program_without_static_int8(tmp_path, capsys):
    from quantsr.cli import main

    rc = main(["export", str(tmp_path / "x.pt"), "--program", str(tmp_path / "p.pt"), "--quant", "learned",
               "--out", str(tmp_path / "out")])
    assert rc == 2 and "--quant static-int8" in capsys.readouterr().err
    rc = main(["export", str(tmp_path / "x.pt"), "--quant", "static-int8", "--out", str(tmp_path / "out")])
    assert rc == 1 and "no such checkpoint" in capsys.readouterr().err
    rc = main(["export", str(tmp_path / "x.pt"), "--max-side", "256", "--tile", "64", "--out", str(tmp_path)])
    assert rc == 2 and "give one of them" in capsys.readouterr().err
    (tmp_path / "x.pt").write_bytes(b"")
    for command in (["export", "--quant", "static-int8"], ["bench"]):  # a missing program fails before any work
        rc = main([command[0], str(tmp_path / "x.pt"), *command[1:], "--program", str(tmp_path / "p.pt"),
                   "--out", str(tmp_path / "out")])
        assert rc == 1 and "no such program file" in capsys.readouterr().err
    for flags in (["--format", "coreml"], ["--quant", "static-int8"]):  # int8 activations need both
        rc = main(["export", str(tmp_path / "x.pt"), "--coreml-target", "iOS17", *flags, "--out", str(tmp_path)])
        assert rc == 2 and "--quant static-int8 --format coreml" in capsys.readouterr().err


def test_a_qat_model_becomes_a_static_int8_program_that_keeps_its_bits(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_export_pte import tiny_qat

    from quantsr.quant.int8_sim import weight_codes

    net = tiny_qat(bits=4)  # IMDN: learned 4-bit convs with tau shifts, channel attention, int8 head and tail
    converted = static_int8_graph(net, _inputs(8), max_side=32, min_side=8)
    program = integer_faithful(converted)
    ranges = [(n.args[2], n.args[3]) for n in program.graph.nodes if n.target is weight_codes]
    learned = sum(1 for m in net.modules() if hasattr(m, "act_quantizer"))
    assert sum(r in ((-7, 8), (-8, 7)) for r in ranges) >= learned  # RBD 4-bit levels (sign-flipped or not)
    assert (-127, 127) in ranges  # head and tail: int8
    result = export_int8_program(converted, tmp_path / "qat.pte", max_side=32, check_inputs=_inputs(9))
    assert result["identical_fraction"] == 1.0 and result["max_levels"] == 0


def test_learning_a_qat_programs_scales_keeps_its_learned_steps():
    """On a QAT model's program ``learn_scales`` trains the calibrated qparams only: every learned activation
    step (a trained b-bit grid held by an fp32 clamp) stays as trained, through training and write-back."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_export_pte import tiny_qat

    net = tiny_qat(bits=4)
    converted = static_int8_graph(net, _inputs(8), max_side=32, min_side=8)
    steps = {float(torch.tensor(float(m.act_quantizer.step.detach().abs().flatten()[0])))
             for m in net.modules() if hasattr(m, "act_quantizer")}
    qparams = {(float(n.args[1]), int(n.args[2])) for n in converted.graph.nodes
               if "quantize_per_tensor" in str(n.target)}
    assert steps <= {s for s, _ in qparams}
    model = integer_faithful(converted, learn_scales=True)
    trained_nodes = {name for names in model.trainable_scales.values() for name in names}
    assert trained_nodes  # the conv outputs, adds and the int8 rest train
    by_name = {n.name: float(n.args[1]) for n in converted.graph.nodes if "quantize_per_tensor" in str(n.target)}
    assert not {by_name[name] for name in trained_nodes} & steps
    with torch.no_grad():
        for name in model.trainable_scales:
            getattr(model, name).mul_(1.25)
    written = {float(n.args[1]) for n in write_back(model, converted).graph.nodes
               if "quantize_per_tensor" in str(n.target)}
    assert steps <= written


@pytest.mark.parametrize("granularity, bits", [("per_channel", 4), ("per_channel_oriented", 2)])
def test_per_channel_weight_steps_reach_the_program_and_the_pte(tmp_path, granularity, bits):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_export_pte import tiny_qat

    from quantsr.export.deploy import to_deploy_model
    from quantsr.quant.layers import QConv2d

    net = tiny_qat(bits=bits, granularity=granularity)
    layer = next(m for m in net.modules() if isinstance(m, QConv2d))
    if granularity == "per_channel_oriented":  # a channel with one large negative weight starts mirrored
        with torch.no_grad():
            layer.weight[0].view(-1)[0] = -4 * float(layer.weight.abs().max())
        layer.reset_step()
        assert float(layer.weight_quantizer.step[0]) < 0 < float(layer.weight_quantizer.step[1:].min())
    else:
        with torch.no_grad():  # a negative step (LSQ steps can cross zero) must flip only its own channel
            layer.weight_quantizer.step[0] *= -1
    deploy, _ = to_deploy_model(net, "dynamic")
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert (deploy(x) - net(x)).abs().max() < 1e-4
    converted = static_int8_graph(net, _inputs(8), max_side=32, min_side=8)
    scales = [n for n in converted.graph.nodes if "dequantize_per_channel" in str(n.target)]
    learned_scales = {round(float(v), 8) for v in layer.weight_quantizer.step.detach().abs().flatten()}
    observed = set()
    for node in scales:
        observed |= {round(float(v), 8) for v in getattr(converted, node.args[1].target).flatten()}
    assert learned_scales <= observed  # the program holds every channel's own trained step
    result = export_int8_program(converted, tmp_path / "pc.pte", max_side=32, check_inputs=_inputs(9))
    assert result["identical_fraction"] == 1.0 and result["max_levels"] == 0


def test_unsigned_8_bit_activations_keep_all_their_levels_in_the_program():
    """A W4A8 model with int8 head: the image input's learned grid is unsigned [0, 255], which needs the int8
    zero point -128 (with zero point 0 the program clipped every input above 0.5)."""
    from quantsr.models.registry import create_model
    from quantsr.quant import calibrate_
    from quantsr.quant.int8_sim import int8_zero_point
    from quantsr.quant.recipe import QuantRecipe, build_quantized_

    assert (int8_zero_point(0, 255), int8_zero_point(-127, 128), int8_zero_point(-8, 7)) == (-128, -1, 0)
    with pytest.raises(ValueError, match="do not fit"):
        int8_zero_point(-200, 200)
    torch.manual_seed(0)
    net = create_model("imdn", scale=2, num_feat=32, num_blocks=1)
    net = build_quantized_(net, QuantRecipe(w_bits=4, a_bits=8, weight_granularity="per_channel",
                                            head_tail_bits=8, concat_steps=True))
    calibrate_(net, torch.rand(2, 3, 24, 24))
    net.eval()
    with torch.no_grad():  # the trained image grid: one level per 8-bit pixel value
        net.conv_first.act_quantizer.step.fill_(1 / 255)
    converted = static_int8_graph(net, _inputs(8), max_side=32, min_side=8)
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        error = (integer_faithful(converted)(x) - net(x)).abs().mean()
    assert error < 4 / 255  # 0.006 here; 0.048 with the input clipped at 0.5


def test_a_qat_programs_output_sits_on_the_8_bit_image_grid():
    """The output of a QAT model's program (int8 rest) is quantized on the grid of the 8-bit image it becomes
    (scale 1/255, zero point -128), not on a calibrated range, so its int8 rounding is the image's own: rounded to
    8 bits, the output equals that of the same program with the output's quantize left out. CARN-M ends in an add
    (its mean shift), whose calibrated range cost its x2 W4A8 program 0.056 dB on Set5."""
    from quantsr.export.pt2e_quantizer import IMAGE_GRID_SCALE
    from quantsr.models.registry import create_model
    from quantsr.quant import calibrate_
    from quantsr.quant.int8_graph import LEARNED_SCALE_KEY
    from quantsr.quant.recipe import QuantRecipe, build_quantized_

    torch.manual_seed(0)
    net = build_quantized_(create_model("carn_m", scale=2, num_feat=16),
                           QuantRecipe(w_bits=4, a_bits=8, weight_granularity="per_channel", head_tail_bits=8))
    calibrate_(net, torch.rand(2, 3, 24, 24))
    converted = static_int8_graph(net.eval(), _inputs(8), max_side=32, min_side=8)
    dequantize = next(n for n in converted.graph.nodes if n.op == "output").args[0][0]
    quantize = dequantize.args[0]
    assert "quantize_per_tensor" in str(quantize.target) and quantize.args[0].target == torch.ops.aten.add.Tensor
    assert float(quantize.args[1]) == pytest.approx(IMAGE_GRID_SCALE) and int(quantize.args[2]) == -128
    assert quantize.meta.get(LEARNED_SCALE_KEY)  # fixed: fine-tuning the program's scales leaves it
    _assert_output_rounding_is_the_images(converted, dequantize, clamps=False)  # a random CARN-M stays in [0, 1]


def _assert_output_rounding_is_the_images(converted, dequantize, side: int = 20, clamps: bool = True) -> None:
    """Rounded to an 8-bit image, the program's output equals that of the same program with the output's
    quantize -> ``dequantize`` pair left out; ``clamps``: on inputs whose outputs fall on both sides of [0, 1]."""
    import copy

    free = copy.deepcopy(converted)
    free_dequantize = next(n for n in free.graph.nodes if n.name == dequantize.name)
    source = dequantize.args[0].args[0]
    free_dequantize.replace_all_uses_with(next(n for n in free.graph.nodes if n.name == source.name))
    free.graph.eliminate_dead_code()
    free.recompile()
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(3)) * 3 - 1

    def image(t: torch.Tensor) -> torch.Tensor:
        return (t.clamp(0, 1) * 255).round()

    with torch.no_grad():
        pinned, unquantized = converted(x), free(x)
    assert not clamps or ((unquantized < 0).any() and (unquantized > 1).any())
    assert not torch.equal(pinned, unquantized)  # the output is quantized ...
    assert (image(pinned) != image(unquantized)).float().mean() < 1e-3  # ... at no cost to the image


@pytest.mark.parametrize(("arch", "output_image_grid", "grid_step"),
                         [("imdn", True, 1 / 255), ("imdn", False, None), ("rlfn", True, 1.0)])
def test_int8_ptq_can_put_the_output_on_the_image_grid_through_the_fp32_tail(arch, output_image_grid, grid_step):
    """``Int8PTQConfig(output_image_grid=True)``: the quantize of the conv before a final pixel shuffle (which only
    moves values; RLFN then divides by its img_range, 255, so its grid step there is 1) gets the image grid; off
    (the stock setting), it keeps its calibrated range."""
    from quantsr.export.pt2e_quantizer import Int8PTQConfig
    from quantsr.models.registry import create_model
    from quantsr.quant.int8_graph import LEARNED_SCALE_KEY
    from quantsr.runtime.upscale import min_side_of

    torch.manual_seed(0)
    net = create_model(arch, scale=2, **({"num_feat": 16, "num_blocks": 1} if arch == "imdn" else {})).eval()
    last = [m for m in net.modules() if isinstance(m, nn.Conv2d)][-1]  # the upsampler's conv
    with torch.no_grad():  # a random net's outputs sit near 0: spread them over both sides of [0, 1]
        last.weight.mul_(5)
        last.bias.add_(0.5 * float(getattr(net, "img_range", 1.0)))
    side = max(16, min_side_of(net))
    converted = static_int8_graph(net, [torch.rand(2, 3, side, side)], max_side=2 * side, min_side=min_side_of(net),
                                  ptq=Int8PTQConfig(output_image_grid=output_image_grid))
    dequantize = next(n for n in converted.graph.nodes if n.target == torch.ops.aten.pixel_shuffle.default).args[0]
    quantize = dequantize.args[0]
    assert "quantize_per_tensor" in str(quantize.target) and quantize.args[0].target == torch.ops.aten.conv2d.default
    pinned = grid_step is not None and float(quantize.args[1]) == pytest.approx(grid_step) and int(
        quantize.args[2]) == -128
    assert pinned == output_image_grid
    assert bool(quantize.meta.get(LEARNED_SCALE_KEY)) == output_image_grid  # a fitted program keeps the grid
    if output_image_grid:
        _assert_output_rounding_is_the_images(converted, dequantize, side)


def test_a_final_pixel_shuffle_pins_nothing_and_no_scale_is_fixed_by_its_value():
    """IMDN ends in conv -> pixel shuffle, which the quantizer leaves unannotated: nothing is pinned there, and a
    calibrated quantize that happens to land on scale 1/255 stays trainable (only a pinned node's is fixed)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_export_pte import tiny_qat

    from quantsr.export.int8_program import _mark_learned_scales
    from quantsr.export.pt2e_quantizer import IMAGE_GRID_KEY, IMAGE_GRID_SCALE
    from quantsr.quant.int8_graph import LEARNED_SCALE_KEY

    converted = static_int8_graph(tiny_qat(bits=4), _inputs(8), max_side=32, min_side=8)
    assert not [n for n in converted.graph.nodes if n.meta.get(IMAGE_GRID_KEY)]
    other = next(n for n in converted.graph.nodes if "quantize_per_tensor" in str(n.target)
                 and not n.meta.get(LEARNED_SCALE_KEY))
    other.args = (other.args[0], float(torch.tensor(IMAGE_GRID_SCALE)), *other.args[2:])
    _mark_learned_scales(converted, {})
    assert not other.meta.get(LEARNED_SCALE_KEY)
