"""Activation equalization (quantsr.quant.equalize): it finds exactly the conv -> homogeneous activation -> conv
patterns it may rescale, leaves the FP function unchanged, equalizes the channel ranges at alpha = 1, and an int8
PTQ program of a net with badly spread channels gets closer to FP with it."""
import pytest
import torch
from torch import nn

from quantsr import create_model, list_models
from quantsr.export.int8_program import static_int8_graph
from quantsr.export.pt2e_quantizer import Int8PTQConfig
from quantsr.models.registry import model_scales
from quantsr.quant.equalize import _channel_ranges, equalizable_pairs, equalize_activations_


class Patterns(nn.Module):
    """a: ReLU into a grouped conv; b: PReLU into two convs; c: LeakyReLU into a deconv; d: a residual (refused);
    e: sigmoid (refused); shared: called twice in the same pattern."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.a_next = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.b_act = nn.PReLU(8)
        self.b_left = nn.Conv2d(8, 4, 1)
        self.b_right = nn.Conv2d(8, 4, 3, padding=1)
        self.c = nn.Conv2d(8, 8, 1)
        self.c_next = nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1)
        self.d = nn.Conv2d(8, 8, 3, padding=1)
        self.d_next = nn.Conv2d(8, 8, 3, padding=1)
        self.e = nn.Conv2d(8, 8, 1)
        self.e_next = nn.Conv2d(8, 8, 1)
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.shared_next = nn.Conv2d(8, 8, 1)

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


def test_it_finds_exactly_the_exact_patterns():
    model = Patterns().eval()
    found = {p.producer: (p.activation, p.consumers) for p in equalizable_pairs(model, torch.rand(1, 3, 12, 12))}
    # a_next -> b_act has two consumers; d's output also feeds the residual; e's activation is not homogeneous
    assert found == {"a": ("relu", ("a_next",)), "a_next": ("prelu", ("b_left", "b_right")),
                     "shared": ("relu", ("shared_next",)), "c": ("leaky_relu", ("c_next",))}


def test_the_fp_function_is_unchanged_and_alpha_one_equalizes_ranges():
    torch.manual_seed(0)
    model = Patterns().eval()
    with torch.no_grad():  # spread the producers' channels 100x apart, as a trained net may
        for name in ("a", "a_next", "shared", "c"):
            getattr(model, name).weight.mul_(torch.logspace(-1, 1, 8).view(-1, 1, 1, 1))
    x = torch.rand(3, 3, 12, 12)
    reference = model(x)
    pairs = equalizable_pairs(model, x[:1])
    before = _channel_ranges(model, pairs, [x])
    scales = equalize_activations_(model, [x], alpha=1.0)
    torch.testing.assert_close(model(x), reference, rtol=1e-4, atol=1e-4)
    after = _channel_ranges(model, pairs, [x])
    for producer, ranges in after.items():
        live = before[producer] > 0  # a channel ReLU keeps at zero stays there
        assert before[producer][live].max() / before[producer][live].min() > 10
        assert ranges[live].max() / ranges[live].min() < 1.01, producer  # every live channel at one range
        assert scales[producer].log().mean().abs() < 1e-5  # normalised: geometric mean 1


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


def test_the_int8_program_gets_closer_to_fp():
    torch.manual_seed(0)
    model = Spread().eval()
    with torch.no_grad():  # same function family, channels 10^4 apart in range: one int8 step cannot serve both
        spread = torch.logspace(-2, 2, 16)
        model.head.weight.mul_(spread.view(-1, 1, 1, 1))
        model.head.bias.mul_(spread)
        model.tail.weight.div_(spread.view(1, -1, 1, 1))
    calib = [torch.rand(1, 3, 16, 16) for _ in range(6)]
    held_out = [torch.rand(1, 3, 16, 16) for _ in range(4)]

    def error(alpha):
        converted = static_int8_graph(model, calib, max_side=32, ptq=Int8PTQConfig(act_equalization=alpha))
        return sum(float((converted(x) - model(x)).pow(2).mean()) for x in held_out)

    plain, equalized = error(None), error(1.0)
    assert equalized < plain / 4, (plain, equalized)  # the rest: the tail's weight columns now spread


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
