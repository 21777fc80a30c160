"""Block-wise reconstruction (quantsr.qat.reconstruct) and the QAT starting points (TrainRecipe.init)."""
import json

import pytest
import torch

from quantsr import create_model
from quantsr.qat.config import TrainRecipe
from quantsr.qat.pipeline import quantize_checkpoint
from quantsr.qat.reconstruct import ReconstructionConfig, reconstruct_, reconstruction_units
from quantsr.qat.student import make_student
from quantsr.quant.ptq import ptq_
from quantsr.quant.recipe import QuantRecipe


def _student(name: str, recipe: QuantRecipe, **kwargs):
    torch.manual_seed(0)
    teacher = create_model(name, scale=2, **kwargs).eval()
    student = make_student(teacher, recipe)
    inputs = torch.rand(12, 3, 12, 12)
    ptq_(student, recipe.quant_config(), [inputs], method="mse")
    return teacher, student, inputs


@pytest.mark.parametrize("name, kwargs, expected", [
    ("span", {"num_feat": 8, "num_block": 2},
     ["conv_first", "body.0", "body.1", "conv_after_body", "conv_cat", "upsample.0"]),
    ("fsrcnn", {}, None),  # no residual body: every quantized layer is a unit
])
def test_units_follow_the_forward_order_and_match_the_teacher(name, kwargs, expected):
    recipe = QuantRecipe(w_bits=4, a_bits=8, head_tail_bits=8)
    teacher, student, inputs = _student(name, recipe, **kwargs)
    units = reconstruction_units(student, teacher, inputs)
    names = [n for n, _, _ in units]
    if expected is not None:
        assert names == expected
    else:
        assert names and all(type(s).__name__.startswith("Q") for _, s, _ in units)
    for unit_name, _, teacher_unit in units:
        assert teacher_unit is teacher.get_submodule(unit_name)


def test_slimmable_students_meet_the_teachers_plain_blocks_and_skip_pruned_ones():
    recipe = QuantRecipe(w_bits=4, a_bits=4, skip_blocks=(1,))
    teacher, student, inputs = _student("edsr", recipe, num_feat=8, num_block=3)
    units = {n: t for n, _, t in reconstruction_units(student, teacher, inputs)}
    assert "body.0" in units and "body.2" in units and "body.1" not in units
    assert units["body.2"] is teacher.body[2]


def test_reconstruction_lowers_each_units_error_and_the_whole_models():
    recipe = QuantRecipe(w_bits=2, a_bits=4, head_tail_bits=8, weight_granularity="per_channel")
    teacher, student, inputs = _student("span", recipe, num_feat=8, num_block=2)
    with torch.no_grad():
        before = torch.mean((student(inputs) - teacher(inputs)) ** 2)
    reports = reconstruct_(student, teacher, inputs, ReconstructionConfig(iterations=60, lr=1e-3), progress=False)
    assert [r.name for r in reports][:2] == ["conv_first", "body.0"]
    assert all(r.mse_after <= r.mse_before for r in reports) and any(r.kept for r in reports)
    with torch.no_grad():
        after = torch.mean((student(inputs) - teacher(inputs)) ** 2)
    assert after < before
    assert not student.training and not teacher.training


def test_a_fit_that_does_not_help_is_put_back():
    recipe = QuantRecipe(w_bits=4, a_bits=8, head_tail_bits=8)
    teacher, student, inputs = _student("span", recipe, num_feat=8, num_block=2)
    state = {k: v.clone() for k, v in student.state_dict().items()}
    reports = reconstruct_(student, teacher, inputs, ReconstructionConfig(iterations=5, lr=50.0), progress=False)
    for report in reports:
        assert report.kept or report.mse_after == report.mse_before
    dropped = [r.name for r in reports if not r.kept]
    assert dropped  # lr 50 wrecks at least one unit, which must come back bit for bit
    for key, value in student.state_dict().items():
        if any(key.startswith(name + ".") for name in dropped):
            assert torch.equal(value, state[key]), key


def test_bad_reconstruction_settings_are_clear_errors():
    with pytest.raises(ValueError, match="iterations >= 0"):
        ReconstructionConfig(iterations=-1)
    with pytest.raises(ValueError, match="init must be one of"):
        TrainRecipe(init="brecq")
    teacher, student, _ = _student("span", QuantRecipe(w_bits=4, a_bits=8, head_tail_bits=8), num_feat=8,
                                   num_block=2)
    with pytest.raises(ValueError, match="batch of LR patches"):
        reconstruct_(student, teacher, torch.rand(3, 8, 8), progress=False)


def test_quantize_from_a_reconstructed_start_records_it_and_a_resume_keeps_it(rgb_folder, tmp_path):
    torch.manual_seed(0)
    teacher = create_model("edsr", scale=2, num_feat=8, num_block=2)
    recipe = QuantRecipe(w_bits=2, a_bits=4)
    common = dict(batch_size=2, lr_patch=8, val_every=2, checkpoint_every=2, train_dirs=[str(rgb_folder)],
                  val_sets=[str(rgb_folder)], init="block", init_samples=4, init_iterations=3)
    out = tmp_path / "run"
    kwargs = dict(model_kwargs={"num_feat": 8, "num_block": 2}, progress=False, eval_sets=(str(rgb_folder),))
    card = quantize_checkpoint(teacher, "edsr", 2, recipe, TrainRecipe(iterations=2, **common), out, **kwargs)
    init = card["init"]
    assert init["method"] == "block" and init["samples"] == 4 and set(init["psnr"]) == {rgb_folder.name}
    # FP32 head and tail (the paper's setting): only the low-bit body blocks are units
    assert [u["name"] for u in init["reconstruction"]["units"]] == ["body.0", "body.1"]
    resumed = quantize_checkpoint(teacher, "edsr", 2, recipe, TrainRecipe(iterations=4, **common), out,
                                  resume=True, **kwargs)
    assert resumed["iterations"] == 4 and resumed["init"] == init
    assert json.loads((out / "model_card.json").read_text())["init"] == init


def test_a_run_can_start_from_a_finished_low_bit_checkpoint_of_its_recipe(rgb_folder, tmp_path):
    torch.manual_seed(0)
    teacher = create_model("edsr", scale=2, num_feat=8, num_block=2)
    recipe = QuantRecipe(w_bits=2, a_bits=4)
    common = dict(batch_size=2, lr_patch=8, val_every=2, checkpoint_every=2, train_dirs=[str(rgb_folder)],
                  val_sets=[str(rgb_folder)])
    kwargs = dict(model_kwargs={"num_feat": 8, "num_block": 2}, progress=False, eval_sets=(str(rgb_folder),))
    quantize_checkpoint(teacher, "edsr", 2, recipe, TrainRecipe(iterations=2, **common), tmp_path / "a", **kwargs)
    first = tmp_path / "a" / "model.pt"
    # lr 0: the second run's weights and steps are the first's, so the start is the checkpoint itself
    again = TrainRecipe(iterations=1, lr=0.0, init="checkpoint", init_from=str(first), **common)
    card = quantize_checkpoint(teacher, "edsr", 2, recipe, again, tmp_path / "b", **kwargs)
    assert card["init"]["method"] == "checkpoint" and card["init"]["from"] == str(first.resolve())
    before = torch.load(first, weights_only=True)["model"]
    after = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["model"]
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="--w-bits 2 \\(this run: 4\\)"):
        quantize_checkpoint(teacher, "edsr", 2, QuantRecipe(w_bits=4, a_bits=4), again, tmp_path / "c", **kwargs)
    with pytest.raises(ValueError, match="needs init_from"):
        TrainRecipe(init="checkpoint")
