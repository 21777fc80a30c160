"""Activation equalization (quantsr.quant.equalize, quantsr.quant.scale_classes): it finds exactly the channels it
may rescale (through activations, residual adds, concatenations, gates and contrast statistics, never through a
sigmoid or to the output), leaves the FP function unchanged, equalizes the channel ranges at alpha = 1, and an
int8 PTQ program of a net with badly spread channels (a chain, a residual stream) gets closer to FP with it."""
import pytest
import torch
from torch import nn

from quantsr import create_model, list_models
from quantsr.export.int8_program import static_int8_graph
from quantsr.export.pt2e_quantizer import Int8PTQConfig
from quantsr.models.registry import model_scales
from quantsr.quant.equalize import equalize_activations_, node_channel_ranges
from quantsr.quant.scale_classes import scale_classes


class Patterns(nn.Module):
    """a: ReLU into a grouped conv; b: PReLU into two convs, concatenated; d: a residual add; e: sigmoid (never
    rescaled); shared: a weight-shared pair called twice; c: LeakyReLU into a deconv that writes the output."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.a_next = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.b_act = nn.PReLU(8)
        self.b_left = nn.Conv2d(8, 4, 1)
        self.b_right = nn.Conv2d(8, 4, 3, padding=1)
        self.d = nn.Conv2d(8, 8, 3, padding=1)
        self.d_next = nn.Conv2d(8, 8, 3, padding=1)
        self.e = nn.Conv2d(8, 8, 1)
        self.e_next = nn.Conv2d(8, 8, 1)
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.shared_next = nn.Conv2d(8, 8, 1)
        self.c = nn.Conv2d(8, 8, 1)
        self.c_next = nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a_next(torch.relu(self.a(x)))
        p = self.b_act(h)
        h = torch.cat([self.b_left(p), self.b_right(p)], 1)
        d = self.d(h)
        h = self.d_next(torch.relu(d)) + d
        h = self.e_next(torch.sigmoid(self.e(h)))
        for _ in range(2):
            h = self.shared_next(torch.relu(self.shared(h)))
        return self.c_next(nn.functional.leaky_relu(self.c(h), 0.1))


def _classes(model: nn.Module, x: torch.Tensor):
    graph = torch.export.export(model, (x,)).module().graph
    return scale_classes(graph, dict(model.named_modules()))


def test_it_finds_exactly_the_rescalable_channels():
    classes = _classes(Patterns().eval(), torch.rand(1, 3, 12, 12))
    writer_sets = {frozenset(layer for layer, _ in cls.writers) for cls in classes}
    assert writer_sets == {
        frozenset({"a"}), frozenset({"a_next"}), frozenset({"b_left"}), frozenset({"b_right"}),
        frozenset({"d", "d_next"}),  # the residual add: one factor for both convs' row i
        frozenset({"shared"}), frozenset({"c"}),
        frozenset({"e_next", "shared_next"}),  # both feed the weight-shared conv's input column i
    }  # e is read by a sigmoid; c_next writes the output
    assert all(len(cls.writers) == len({layer for layer, _ in cls.writers}) for cls in classes)  # one row each
    by_writer = {cls.writers[0]: cls for cls in classes}
    # b_right's row 1 is channel 5 of the concat d reads
    assert by_writer[("b_right", 1)].readers == (("d", 5, 1.0),)
    # the PReLU output is read by both convs at the same column
    assert {r[0] for r in by_writer[("a_next", 3)].readers} == {"b_left", "b_right"}


class Contrast(nn.Module):
    """IMDN's channel attention: a gate from the channels' std + mean, multiplying the features."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.squeeze = nn.Conv2d(8, 2, 1)
        self.excite = nn.Conv2d(2, 8, 1)
        self.tail = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        mean = h.mean(dim=(2, 3), keepdim=True)
        std = (h - mean).pow(2).mean(dim=(2, 3), keepdim=True).clamp_min(1e-12).sqrt()
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(std + mean))))
        return self.tail(h * gate)


def test_contrast_statistics_carry_the_factor():
    classes = _classes(Contrast().eval(), torch.rand(1, 3, 12, 12))
    head = [cls for cls in classes if cls.writers[0][0] == "head"]
    assert len(head) == 8  # each channel of the features: read by the squeeze (through std + mean) and the tail
    assert all({r[0] for r in cls.readers} == {"squeeze", "tail"} for cls in head)
    assert all(k == 1.0 for cls in head for *_, k in cls.readers)


def _spread_(convs_out: list[nn.Conv2d], convs_in: list[nn.Conv2d], spread: torch.Tensor) -> None:
    """The same function, channels ``spread`` apart in range: writers' rows up, readers' columns down."""
    with torch.no_grad():
        for conv in convs_out:
            conv.weight.mul_(spread.view(-1, 1, 1, 1))
            conv.bias.mul_(spread)
        for conv in convs_in:
            conv.weight.div_(spread.view(1, -1, 1, 1))


def test_the_fp_function_is_unchanged_and_alpha_one_equalizes_ranges():
    torch.manual_seed(0)
    model = Patterns().eval()
    with torch.no_grad():  # spread a's channels 100x apart, as a trained net may
        model.a.weight.mul_(torch.logspace(-1, 1, 8).view(-1, 1, 1, 1))
    x = torch.rand(3, 3, 12, 12)
    reference = model(x)
    relu = "relu"  # the export's name of a's ReLU, the one int8 tensor of a's class
    before = node_channel_ranges(model, {relu}, [x])[relu]
    rows = equalize_activations_(model, [x], alpha=1.0)
    torch.testing.assert_close(model(x), reference, rtol=1e-4, atol=1e-4)
    after = node_channel_ranges(model, {relu}, [x])[relu]
    live = before > 0  # a channel ReLU keeps at zero stays there
    assert before[live].max() / before[live].min() > 10
    assert after[live].max() / after[live].min() < 1.01  # every live channel at one range
    assert rows["a"][live].log().mean().abs() < 1e-5  # normalised: geometric mean 1


def test_alpha_is_checked():
    with pytest.raises(ValueError, match="alpha must be in"):
        equalize_activations_(Patterns(), [torch.rand(1, 3, 8, 8)], alpha=1.5)
    with pytest.raises(ValueError, match="act_equalization must be None or in"):
        Int8PTQConfig(act_equalization=-0.1)


class Spread(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 16, 3, padding=1)
        self.tail = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(torch.relu(self.head(x)))


class Residual(nn.Module):
    """A residual stream: head, two blocks adding conv(relu(conv(h))) to it, tail."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 16, 3, padding=1)
        self.inner = nn.ModuleList(nn.Conv2d(16, 16, 3, padding=1) for _ in range(2))
        self.outer = nn.ModuleList(nn.Conv2d(16, 16, 3, padding=1) for _ in range(2))
        self.tail = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        for inner, outer in zip(self.inner, self.outer):
            h = h + outer(torch.relu(inner(h)))
        return self.tail(h)


def _int8_error(model: nn.Module, alpha: float | None) -> float:
    calib = [torch.rand(1, 3, 16, 16) for _ in range(6)]
    held_out = [torch.rand(1, 3, 16, 16) for _ in range(4)]
    converted = static_int8_graph(model, calib, max_side=32, ptq=Int8PTQConfig(act_equalization=alpha))
    with torch.no_grad():
        return sum(float((converted(x) - model(x)).pow(2).mean()) for x in held_out)


def test_the_int8_program_of_a_spread_chain_gets_closer_to_fp():
    torch.manual_seed(0)
    model = Spread().eval()
    # channels 10^4 apart in range: one int8 step cannot serve both
    _spread_([model.head], [model.tail], torch.logspace(-2, 2, 16))
    plain, equalized = _int8_error(model, None), _int8_error(model, 1.0)
    assert equalized < plain / 4, (plain, equalized)  # the rest: the tail's weight columns now spread


def test_the_int8_program_of_a_spread_residual_stream_gets_closer_to_fp():
    torch.manual_seed(0)
    model = Residual().eval()
    # the stream's channels 10^3 apart: every writer of the stream up, every reader down, the same function
    _spread_([model.head, *model.outer], [*model.inner, model.tail], torch.logspace(-1.5, 1.5, 16))
    classes = _classes(model, torch.rand(1, 3, 16, 16))
    assert {frozenset(layer for layer, _ in cls.writers) for cls in classes} >= {
        frozenset({"head", "outer.0", "outer.1"})}
    plain, equalized = _int8_error(model, None), _int8_error(model, 1.0)
    assert equalized < plain / 4, (plain, equalized)


class EdgeCases(nn.Module):
    """Ops that look rescalable and are not (or only partly): a concat with a buffer, a negative slice start
    past the first channel, a mean over the batch to a vector, floor division, a weight tied across two modules
    with their own biases, a conv module called with another bias."""

    def __init__(self, case: str) -> None:
        super().__init__()
        self.case = case
        self.a, self.p = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)
        self.b, self.c = nn.Conv2d(4, 3, 1), nn.Conv2d(8, 3, 1)
        self.t = nn.Conv2d(4, 4, 3, padding=1)
        self.register_buffer("buf", torch.rand(1, 4, 8, 8))
        if case == "tied":
            self.t.weight = self.p.weight = nn.Parameter(torch.randn(4, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if self.case == "cat_buffer":
            return self.c(torch.cat([self.buf, h], 1)) + self.b(h)
        if self.case == "negative_slice":
            return self.b(h[:, -10:]) + self.c(torch.cat([self.p(x), h], 1))
        if self.case == "batch_mean":
            return self.b(h) + h.mean(dim=(0, 2, 3)).sum()
        if self.case == "floor_div":
            return self.b(torch.div(h * 10, 3, rounding_mode="floor"))
        if self.case == "tied":
            return self.b(torch.relu(self.p(x)) + nn.functional.conv2d(x, self.t.weight, self.t.bias))
        return self.b(nn.functional.conv2d(x, self.a.weight, self.p.bias) + h)  # another module's bias


@pytest.mark.parametrize("case", ["cat_buffer", "negative_slice", "batch_mean", "floor_div", "tied", "other_bias"])
def test_ops_that_do_not_carry_a_factor_keep_the_function(case):
    torch.manual_seed(0)
    model = EdgeCases(case).eval()
    with torch.no_grad():  # spread the writers' rows so that any rescaling is far from 1
        for conv in (model.a, model.p):
            conv.weight.mul_(torch.logspace(-2, 2, 4).view(-1, 1, 1, 1))
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        reference = model(x)
        equalize_activations_(model, [x], alpha=1.0)
        torch.testing.assert_close(model(x), reference, rtol=1e-4, atol=1e-4 * float(reference.abs().max()))


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_keeps_its_function(name):
    torch.manual_seed(0)
    scale = model_scales(name)[-1]
    model = create_model(name, scale=scale).eval()
    (x,) = model.example_inputs()
    with torch.no_grad():
        reference = model(x)
        equalize_activations_(model, [x], alpha=1.0)
        torch.testing.assert_close(model(x), reference, rtol=1e-4, atol=1e-4)
