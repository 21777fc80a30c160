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
    assert recommended_int8_config("span", 4).split_concat_convs
    assert {recommended_int8_config(m, 4).weight_rounding for m in ("imdn", "fsrcnn", "carn_m")} == {"gptq"}
    assert {recommended_int8_config(m, 4).weight_rounding for m in ("span", "rlfn")} == {"gptq_program"}
    # per scale where the sweeps differed: IMDN x2 equalized, x4 not
    assert (recommended_int8_config("imdn", 2).act_equalization, recommended_int8_config("imdn", 4).act_equalization
            ) == (0.5, None)


class Fusion(nn.Module):
    """Two branches with ranges 100x apart, concatenated and fused by a 1x1 conv (SPAN's / IMDN's tail)."""

    def __init__(self) -> None:
        super().__init__()
        self.big = nn.Conv2d(3, 4, 3, padding=1)
        self.small = nn.Conv2d(3, 4, 3, padding=1)
        self.fuse = nn.Conv2d(8, 3, 1)
        with torch.no_grad():
            self.fuse.weight[:, :4] *= 0.01  # both branches then matter equally to the output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([100 * self.big(x), self.small(x)], dim=1))


def test_split_concat_convs_is_exact_and_removes_the_cat():
    from quantsr.export.graph_passes import split_concat_convs

    torch.manual_seed(0)
    model = Fusion().eval()
    x = torch.rand(1, 3, 12, 12)
    gm = torch.export.export(model, (x,)).module()
    assert split_concat_convs(gm) == 1
    targets = [n.target for n in gm.graph.nodes]
    assert torch.ops.aten.cat.default not in targets
    assert targets.count(torch.ops.aten.conv2d.default) == 4  # big, small, and the fuse conv in two parts
    torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-4)
    assert split_concat_convs(gm) == 0  # nothing left to split


def test_split_concat_gives_each_branch_its_own_int8_scale():
    torch.manual_seed(0)
    model = Fusion().eval()
    inputs = _dim_inputs(4)
    images = [x for batch in inputs for x in batch.split(1)]
    reference = torch.cat([model(x) for x in images])

    def error(split: bool) -> float:
        converted = static_int8_graph(model, inputs, max_side=32, ptq=Int8PTQConfig(split_concat_convs=split))
        return float((torch.cat([converted(x) for x in images]) - reference).abs().mean())

    # one shared scale rounds the small branch onto the big one's grid; split, it keeps its precision
    assert error(True) < 0.5 * error(False)


class SharedBlock(nn.Module):
    """CARN-M's pattern: one residual block, its weights shared, run twice."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.block = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.tail = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.head(x))
        y = y + torch.relu(self.block(y))
        y = y + torch.relu(self.block(y))
        return self.tail(y) + x


def test_untie_shared_params_is_exact_and_names_the_source_layer():
    from quantsr.export.graph_passes import SOURCE_PARAM, untie_shared_params
    from quantsr.export.pt2e_quantizer import node_layer_name

    torch.manual_seed(0)
    model = SharedBlock().eval()
    x = torch.rand(1, 3, 12, 12)
    gm = torch.export.export(model, (x,)).module()
    assert untie_shared_params(gm) == 2  # the second use's weight and bias
    convs = [n for n in gm.graph.nodes if n.target == torch.ops.aten.conv2d.default]
    weights = [n.args[1] for n in convs]
    assert len(set(weights)) == len(convs) and all(len(w.users) == 1 for w in weights)
    assert [node_layer_name(n) for n in convs] == ["head", "block", "block", "tail"]
    assert weights[2].meta[SOURCE_PARAM] == "block.weight"
    torch.testing.assert_close(gm(x), model(x), rtol=0, atol=0)
    assert untie_shared_params(gm) == 0


def test_a_shared_block_quantizes_every_use_and_lowers_to_a_checked_pte(tmp_path):
    from quantsr.export.int8_program import export_int8_program

    torch.manual_seed(0)
    model = SharedBlock().eval()
    converted = static_int8_graph(model, _dim_inputs(), max_side=32)
    convs = [n for n in converted.graph.nodes if n.target == torch.ops.aten.conv2d.default]
    # before the untie, the second use of the shared block stayed fp32 (and XNNPACK refused its int32 bias)
    assert len(convs) == 4 and all("dequantize" in str(n.args[1].target) for n in convs)
    x = 0.1 * torch.rand(1, 3, 16, 16)
    info = export_int8_program(converted, tmp_path / "m.pte", max_side=32, check_inputs=[x])
    assert info["identical_fraction"] >= 0.99
