"""Per-branch activation steps at the input of convs over a concat (quantsr.quant.concat, QuantRecipe.concat_steps)."""
import pytest
import torch

from quantsr import create_model
from quantsr.quant.concat import concat_inputs
from quantsr.quant.ptq import ptq_
from quantsr.quant.quantizers import ActQuantizer
from quantsr.quant.recipe import QuantRecipe, build_quantized_


@pytest.mark.parametrize("name, conv, parts", [("span", "conv_cat", (8, 8, 8, 8)),
                                               ("imdn", "conv_fuse", (16, 16))])
def test_the_fusion_convs_over_a_concat_are_found_with_their_branches(name, conv, parts):
    kwargs = {"num_feat": 8, "num_block": 2} if name == "span" else {"num_feat": 16, "num_blocks": 2}
    model = create_model(name, scale=2, **kwargs)
    found = concat_inputs(model, torch.rand(1, 3, 12, 12))
    assert found[conv] == parts
    assert model.training  # the mode is restored


def test_a_segmented_quantizer_rounds_each_branch_on_its_own_grid():
    torch.manual_seed(0)
    small, wide = torch.randn(2, 3, 5, 5) * 0.01, torch.randn(2, 5, 5, 5) * 10
    joint = ActQuantizer(8, 8, segments=(3, 5), redistribute=False)
    joint.set_range(torch.tensor([0.0005, 0.1]), signed=True)
    alone = [ActQuantizer(8, c, redistribute=False) for c in (3, 5)]
    alone[0].set_range(0.0005, True)
    alone[1].set_range(0.1, True)
    joint.eval()
    out = joint(torch.cat([small, wide], dim=1))
    expected = torch.cat([alone[0].eval()(small), alone[1].eval()(wide)], dim=1)
    assert torch.equal(out, expected)
    assert (out[:, :3] - small).abs().max() <= 0.00026  # a shared step (0.1) would have zeroed the small branch
    with pytest.raises(ValueError, match="summing to 8"):
        ActQuantizer(8, 8, segments=(3, 4))


def _calibrated_span_with_branch_steps():
    torch.manual_seed(0)
    recipe = QuantRecipe(w_bits=4, a_bits=8, head_tail_bits=8, concat_steps=True)
    model = build_quantized_(create_model("span", scale=2, num_feat=8, num_block=2), recipe)
    ptq_(model, recipe.quant_config(), [torch.rand(4, 3, 12, 12)], method="mse")
    return recipe, model.eval()


def test_recipe_calibrates_per_branch_and_reloads():
    recipe, model = _calibrated_span_with_branch_steps()
    q = model.conv_cat.act_quantizer
    assert q.segments == (8, 8, 8, 8) and q.step.shape == (4,)
    assert len(set(q.step.tolist())) == 4  # each branch its own step
    again = build_quantized_(create_model("span", scale=2, num_feat=8, num_block=2),
                             QuantRecipe.from_dict(recipe.to_dict()))
    again.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 12, 12)
    assert torch.equal(again.eval()(x), model(x))


def test_the_deploy_model_gives_each_branch_its_own_conv_and_step():
    from quantsr.export.deploy import SegmentedFixedQuantConv2d, to_deploy_model

    _, model = _calibrated_span_with_branch_steps()
    deploy, qparams = to_deploy_model(model, "dynamic")
    assert isinstance(deploy.conv_cat, SegmentedFixedQuantConv2d) and "conv_cat" not in qparams
    steps = model.conv_cat.act_quantizer.step.abs().tolist()
    assert [qparams[f"conv_cat.parts.{i}"].act_scale for i in range(4)] == pytest.approx(steps)
    x = torch.rand(2, 3, 12, 12)
    with torch.no_grad():  # the dynamic form is the fake-quant arithmetic (floor(u + 1/2) = round(u))
        torch.testing.assert_close(deploy(x), model(x), rtol=1e-4, atol=1e-4)


def test_the_static_int8_graph_has_no_shared_scale_concat_and_lowers_to_a_checked_pte(tmp_path):
    from quantsr.export.int8_program import export_int8_program, static_int8_graph

    _, model = _calibrated_span_with_branch_steps()
    calibration = [torch.rand(2, 3, 16, 16)]
    converted = static_int8_graph(model, calibration, max_side=32)
    targets = [n.target for n in converted.graph.nodes]
    assert torch.ops.aten.cat.default not in targets
    quantize = torch.ops.quantized_decomposed.quantize_per_tensor.default
    scales = [float(n.args[1]) for n in converted.graph.nodes if n.target == quantize]
    for step in model.conv_cat.act_quantizer.step.abs().tolist():  # each branch enters at its learned step
        assert any(abs(s - step) <= 1e-6 * step for s in scales)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        err = float((converted(x) - expected).abs().mean())
    assert err < 0.05 * float(expected.abs().mean())  # the same function, to int8 rounding of a random net
    info = export_int8_program(converted, tmp_path / "m.pte", max_side=32, check_inputs=[x])
    assert info["identical_fraction"] >= 0.99 and (tmp_path / "m.pte").is_file()
