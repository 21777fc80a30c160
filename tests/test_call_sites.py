"""One activation quantizer per call of a shared block (quantsr.quant.call_sites, QuantRecipe.call_site_steps)."""
import pytest
import torch

from quantsr import create_model
from quantsr.bench.pareto import model_ideal_bytes
from quantsr.checkpoints.load import load_model_and_info
from quantsr.eval.opcount import profile
from quantsr.qat.config import TrainRecipe
from quantsr.qat.pipeline import quantize_checkpoint
from quantsr.quant.call_sites import has_call_site_steps, tied_copy, untie_call_sites_
from quantsr.quant.quantize import calibrate_
from quantsr.quant.quantizers import ActQuantizer
from quantsr.quant.recipe import QuantRecipe, build_quantized_

RECIPE = QuantRecipe(w_bits=4, a_bits=4, weight_granularity="per_channel", concat_steps=True)


def _carn(recipe: QuantRecipe = RECIPE) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_quantized_(create_model("carn_m", scale=2, num_feat=8), recipe)
    calibrate_(model, torch.rand(2, 3, 12, 12))
    return model.eval()


def _acts(model: torch.nn.Module) -> list[ActQuantizer]:
    return [m for m in model.modules() if isinstance(m, ActQuantizer)]


def test_a_tied_copy_shares_weights_and_weight_quantizers_but_not_activation_quantizers():
    block = _carn().body.b1.b1
    copy = tied_copy(block)
    for original, twin in zip(block.body, copy.body, strict=True):
        if isinstance(original, torch.nn.Conv2d):
            assert twin is not original
            assert twin.weight is original.weight and twin.bias is original.bias
            assert twin.weight_quantizer is original.weight_quantizer
            assert twin.act_quantizer is not original.act_quantizer
            assert torch.equal(twin.act_quantizer.step, original.act_quantizer.step)
            assert twin.act_quantizer.is_initialized
    with torch.no_grad():
        copy.body[0].act_quantizer.step.mul_(2)
        copy.body[0].weight.add_(1.0)  # one tensor: the original sees it
    assert not torch.equal(copy.body[0].act_quantizer.step, block.body[0].act_quantizer.step)
    assert torch.equal(copy.body[0].weight, block.body[0].weight)
    with pytest.raises(ValueError, match="no activation quantizer"):  # an FP block would be returned, not copied
        tied_copy(create_model("carn_m", scale=2, num_feat=8).body.b1.b1)


def test_untying_keeps_the_function_and_the_stored_weights_and_adds_a_quantizer_per_call():
    model = _carn()
    x = torch.rand(1, 3, 10, 10)
    before, acts, ideal = model(x), len(_acts(model)), model_ideal_bytes(model)
    storage = profile(model, (3, 10, 10)).storage_bits
    assert not has_call_site_steps(model)
    assert untie_call_sites_(model) == ["body.b1", "body.b2", "body.b3"]
    assert untie_call_sites_(model) == []  # already untied
    assert has_call_site_steps(model)
    assert torch.equal(model(x), before)  # the copies start from the shared values
    # 3 cascading blocks x 2 extra calls x 3 convs of the shared block: one more quantizer each (tau + step)
    assert len(_acts(model)) == acts + 18
    extra = 18 * (8 + 1) * 4
    assert model_ideal_bytes(model) == ideal + extra  # the shared weights are counted once
    assert profile(model, (3, 10, 10)).storage_bits == storage + 8 * extra


def test_each_call_learns_its_own_step():
    model = build_quantized_(create_model("carn_m", scale=2, num_feat=8),
                             QuantRecipe(**{**RECIPE.to_dict(), "call_site_steps": True}))
    calibrate_(model, torch.rand(2, 3, 12, 12))
    first, second = model.body.b1.b1.body[0], model.body.b1.b1_calls[0].body[0]
    assert second.weight is first.weight
    # calibrated on its own call's input (the block's input, then the first fusion conv's output)
    assert not torch.equal(first.act_quantizer.step, second.act_quantizer.step)
    model(torch.rand(1, 3, 12, 12)).abs().mean().backward()
    assert first.act_quantizer.step.grad is not None and second.act_quantizer.step.grad is not None


def test_a_model_without_a_shared_block_refuses_call_site_steps():
    with pytest.raises(ValueError, match="calls no shared block"):
        build_quantized_(create_model("edsr", scale=2, num_feat=8, num_block=2), QuantRecipe(call_site_steps=True))


def test_an_untied_model_exports_with_one_copy_of_each_weight():
    model = _carn(QuantRecipe(**{**RECIPE.to_dict(), "call_site_steps": True}))
    x = torch.rand(1, 3, 10, 10)
    program = torch.export.export(model, (x,))
    assert torch.equal(program.module()(x), model(x))
    shared = model.body.b1.b1.body[0].weight
    assert sum(t is shared for t in program.state_dict.values()) >= 1
    assert len({id(t) for t in program.state_dict.values()}) < len(program.state_dict)  # tied: fewer tensors


def test_a_run_with_shared_quantizers_continues_with_one_per_call(rgb_folder, tmp_path):
    torch.manual_seed(0)
    teacher = create_model("carn_m", scale=2, num_feat=8)
    common = dict(batch_size=2, lr_patch=8, val_every=0, distill_target="output", train_dirs=[str(rgb_folder)],
                  val_sets=[str(rgb_folder)])
    kwargs = dict(model_kwargs={"num_feat": 8}, progress=False, eval_sets=(str(rgb_folder),))
    quantize_checkpoint(teacher, "carn_m", 2, RECIPE, TrainRecipe(iterations=1, **common), tmp_path / "a", **kwargs)
    first = tmp_path / "a" / "model.pt"
    untied = QuantRecipe(**{**RECIPE.to_dict(), "call_site_steps": True})
    # lr 0: the run's end is its start, the first run's model with each call's quantizers copied from it
    again = TrainRecipe(iterations=1, lr=0.0, init="checkpoint", init_from=str(first), **common)
    quantize_checkpoint(teacher, "carn_m", 2, untied, again, tmp_path / "b", **kwargs)
    start, _ = load_model_and_info(first)
    end, info = load_model_and_info(tmp_path / "b" / "model.pt")
    assert info.recipe.call_site_steps and has_call_site_steps(end)
    x = torch.rand(1, 3, 10, 10)
    assert torch.equal(end.eval()(x), start.eval()(x))
    # the way back (one quantizer for all calls) would drop what each call learnt: refused
    back = TrainRecipe(iterations=1, init="checkpoint", init_from=str(tmp_path / "b" / "model.pt"), **common)
    with pytest.raises(ValueError, match="--call-site-steps True \\(this run: False\\)"):
        quantize_checkpoint(teacher, "carn_m", 2, RECIPE, back, tmp_path / "c", **kwargs)


def test_a_deployable_model_with_one_quantizer_per_call_becomes_a_static_int8_pte(tmp_path):
    from quantsr.export.int8_program import export_int8_program, static_int8_graph
    from quantsr.quant.int8_graph import LEARNED_SCALE_KEY

    torch.manual_seed(0)
    recipe = QuantRecipe(w_bits=4, a_bits=8, weight_granularity="per_channel", head_tail_bits=8,
                         call_site_steps=True)
    net = build_quantized_(create_model("carn_m", scale=2, num_feat=16), recipe)
    calibrate_(net, torch.rand(2, 3, 24, 24))
    g = torch.Generator().manual_seed(1)
    inputs = [torch.rand(1, 3, h, w, generator=g) for h, w in ((16, 16), (12, 20))]
    converted = static_int8_graph(net.eval(), inputs, max_side=32, min_side=8)
    learned = {round(float(n.args[1]), 9) for n in converted.graph.nodes
               if "quantize_per_tensor" in str(n.target) and n.meta.get(LEARNED_SCALE_KEY)}
    calls = [net.body.b1.b1.body[0], *(copy.body[0] for copy in net.body.b1.b1_calls)]
    steps = {round(float(c.act_quantizer.step), 9) for c in calls}
    assert len(steps) == 3 and steps <= learned  # each call's input on its own learned grid
    result = export_int8_program(converted, tmp_path / "sites.pte", max_side=32, check_inputs=inputs)
    assert result["identical_fraction"] == 1.0
