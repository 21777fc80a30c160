"""int8 PTQ of an FP net (PT2E, XNNPACK quantizer): calibrated on the calibration images only (not on the random
export example), the observer choice, and ops left fp32 by name."""
import pytest
import torch
from torch import nn

from quantsr.export.int8_program import static_int8_graph
from quantsr.export.pt2e_quantizer import Int8PTQConfig, recommended_int8_config


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(torch.relu(self.head(x))) + x


def _input_scale(converted: torch.fx.GraphModule) -> float:
    placeholder = next(n for n in converted.graph.nodes if n.op == "placeholder")
    quantize = next(u for u in placeholder.users if "quantize_per_tensor" in str(u.target))
    return float(quantize.args[1])


def _dim_inputs(n: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [0.1 * torch.rand(2, 3, 16, 16, generator=g) for _ in range(n)]


def test_ranges_come_from_the_calibration_images_not_the_random_example():
    torch.manual_seed(0)
    converted = static_int8_graph(Net().eval(), _dim_inputs(), max_side=32)
    # the inputs span [0, 0.1]; the export example is uniform in [0, 1): observing it would give ~1/255
    assert _input_scale(converted) < 0.15 / 255


@pytest.mark.parametrize("observer", ["histogram", "minmax"])
def test_minmax_observer_covers_the_whole_observed_range(observer):
    torch.manual_seed(0)
    inputs = _dim_inputs()
    converted = static_int8_graph(Net().eval(), inputs, max_side=32, ptq=Int8PTQConfig(observer))
    top = max(float(x.max()) for x in inputs)
    covered = _input_scale(converted) * 255  # int8 over an unsigned range: 256 levels from the zero point
    if observer == "minmax":
        assert covered >= top * 0.999
    else:
        assert covered <= top * 1.001  # the histogram search may clip, never widen


def test_float_nodes_stay_fp32():
    torch.manual_seed(0)
    base = static_int8_graph(Net().eval(), _dim_inputs(), max_side=32)
    convs = [n.name for n in base.graph.nodes if n.target == torch.ops.aten.conv2d.default]
    quantized = {n.name for n in base.graph.nodes if n.target == torch.ops.aten.conv2d.default
                 and "dequantize_per_channel" in str(n.args[1].target)}
    assert set(convs) == quantized and len(convs) == 2
    kept = static_int8_graph(Net().eval(), _dim_inputs(), max_side=32, ptq=Int8PTQConfig(float_nodes=(convs[1],)))
    weights = {n.name: n.args[1] for n in kept.graph.nodes if n.target == torch.ops.aten.conv2d.default}
    assert "dequantize_per_channel" in str(weights[convs[0]].target)
    assert weights[convs[1]].op == "get_attr"  # the fp32 weight itself


def test_config_validates_and_recommends():
    with pytest.raises(ValueError, match="act_observer must be one of"):
        Int8PTQConfig("percentile")
    assert Int8PTQConfig(float_nodes=["add_1"]).float_nodes == ("add_1",)
    assert isinstance(recommended_int8_config("imdn", 4), Int8PTQConfig)
