import json

import pytest
import torch

from quantsr import create_model, evaluate
from quantsr.checkpoints.load import load_model
from quantsr.cli import main
from quantsr.qat.config import TrainRecipe
from quantsr.qat.pipeline import quantize_checkpoint
from quantsr.qat.student import make_student, param_groups
from quantsr.quant import quantized_layers
from quantsr.quant.recipe import QuantRecipe, build_quantized_
from quantsr.train.checkpoint import save_atomic


@pytest.mark.parametrize("qsa_keep", [None, 1])
def test_quantize_checkpoint_end_to_end(rgb_folder, tmp_path, qsa_keep):
    torch.manual_seed(0)
    teacher = create_model("edsr", scale=2, num_feat=8, num_block=2)
    recipe = QuantRecipe(w_bits=2, a_bits=2, qsa_keep=qsa_keep)
    train = TrainRecipe(iterations=4, batch_size=2, lr_patch=8, val_every=2, checkpoint_every=2,
                        train_dirs=[str(rgb_folder)], val_sets=[str(rgb_folder)])
    out = tmp_path / "run"
    card = quantize_checkpoint(teacher, "edsr", 2, recipe, train, out, model_kwargs={"num_feat": 8, "num_block": 2},
                               progress=False, eval_sets=(str(rgb_folder),))
    assert card["iterations"] == 4 and card["bits"]["weights"] == 2
    assert json.loads((out / "model_card.json").read_text())["results"] == card["results"]
    # The saved low-bit model reloads through the same path `quantsr eval --weights` uses, and scores the same.
    model = load_model(out / "model.pt")
    assert set(quantized_layers(model).values()) == {(2, 2)}
    again = evaluate(model, [str(rgb_folder)], 2, progress=False)
    assert again.sets[0].psnr == pytest.approx(card["results"][0]["psnr"], abs=1e-3)
    if qsa_keep is not None:
        assert len(card["qsa"]["events"]) == 1  # 2 blocks slimmed to 1
    # The shipped model.pt holds the architecture's recipe, not the training recipe; last.pt holds both.
    meta = torch.load(out / "model.pt", weights_only=True)["metadata"]
    assert meta["quant"] == recipe.to_dict() and "train_recipe" not in str(meta)
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["run_settings"]["train_recipe"]["iterations"] == 4 and last["metadata"] == meta


def test_quantize_cli_resumes_and_refuses_to_overwrite(rgb_folder, tmp_path):
    torch.manual_seed(0)
    teacher = create_model("edsr", scale=2, num_feat=8, num_block=1)
    fp = tmp_path / "fp.pt"
    save_atomic({"model": teacher.state_dict(),
                 "metadata": {"model": "edsr", "scale": 2, "model_kwargs": {"num_feat": 8, "num_block": 1}}}, fp)
    args = ["quantize", "--weights", str(fp), "--scale", "2", "--out", str(tmp_path / "q"), "--w-bits", "4",
            "--a-bits", "4", "--iterations", "2", "--batch-size", "2", "--lr-patch", "8", "--val-every", "1",
            "--train-dirs", str(rgb_folder), "--no-progress"]
    # Final evaluation uses the benchmark sets from ../shared (Set5/Set14/B100 on a 1-block net: seconds).
    assert main(args) == 0
    assert main(args) != 0
    assert main(args + ["--resume"]) == 0


def test_quantize_resume_refuses_other_bits_or_training_flags_and_extends_with_iterations(rgb_folder, tmp_path,
                                                                                         capsys, monkeypatch):
    import functools

    from quantsr.qat import pipeline

    # The final evaluation on the tiny folder instead of Set5/Set14/B100: this test is about the resume checks.
    monkeypatch.setattr(pipeline, "quantize_checkpoint",
                        functools.partial(pipeline.quantize_checkpoint, eval_sets=(str(rgb_folder),)))
    torch.manual_seed(0)
    teacher = create_model("edsr", scale=2, num_feat=8, num_block=1)
    fp = tmp_path / "fp.pt"
    save_atomic({"model": teacher.state_dict(),
                 "metadata": {"model": "edsr", "scale": 2, "model_kwargs": {"num_feat": 8, "num_block": 1}}}, fp)
    out = tmp_path / "q"
    args = ["quantize", "--weights", str(fp), "--scale", "2", "--out", str(out), "--w-bits", "4", "--a-bits", "4",
            "--iterations", "2", "--batch-size", "2", "--lr-patch", "8", "--val-every", "1", "--seed", "1",
            "--train-dirs", str(rgb_folder), "--no-progress"]
    assert main(args) == 0
    before = (out / "last.pt").read_bytes()
    other = tmp_path / "other.pt"
    other.write_bytes(fp.read_bytes())
    capsys.readouterr()
    # A W4A4 run resumed as W4A2 (or with another lr, seed, ...) would be mislabelled: refused, naming the flag.
    for extra, named in ((["--a-bits", "2"], "--a-bits 2 differs from the run's 4"),
                         (["--w-bits", "2"], "--w-bits 2 differs from the run's 4"),
                         (["--rest-int8"], "--rest-int8 (head/tail bits) 8 differs from the run's 32"),
                         (["--lr", "0.001"], "--lr 0.001 differs from the run's 0.0002"),
                         (["--seed", "3"], "--seed 3 differs from the run's 1"),
                         (["--preset", "cpu-2h"], "--preset cpu-2h (its --iterations) 2000 differs from the run's 2"),
                         (["--iterations", "1"], "--iterations 1 is not above iteration 2"),
                         (["--weights", str(other)], f"--weights {other} differs from the run's teacher {fp}")):
        assert main(["quantize", "--out", str(out), "--resume", "--no-progress", *extra]) != 0, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"quantsr: error: {named}"), err
    assert (out / "last.pt").read_bytes() == before
    # `--resume` with only a larger --iterations: everything else (teacher, bits, lr, seed, data) from the run.
    assert main(["quantize", "--out", str(out), "--resume", "--iterations", "3", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "--iterations 3 (was 2)" in printed and "edsr x2 W4A4, 3 iterations" in printed
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["iteration"] == 3 and last["run_settings"]["train_recipe"]["seed"] == 1
    meta = torch.load(out / "model.pt", weights_only=True)["metadata"]
    assert meta["quant"]["a_bits"] == 4 and meta["model_kwargs"] == {"num_feat": 8, "num_block": 1}


def test_quantizer_parameters_get_their_own_learning_rate():
    teacher = create_model("edsr", scale=2, num_block=2, num_feat=8)
    student = make_student(teacher, QuantRecipe(w_bits=2, a_bits=2))
    assert not quantized_layers(teacher)  # the teacher is copied, not changed
    net, quant = param_groups(student, TrainRecipe(lr=1e-4, quantizer_lr_scale=10.0))
    names = {id(p): n for n, p in student.named_parameters()}
    quant_names = {names[id(p)] for p in quant["params"]}
    assert quant["lr"] == pytest.approx(1e-3) and net["lr"] == pytest.approx(1e-4)
    assert "body.0.conv1.act_quantizer.tau" in quant_names and "body.0.conv1.weight_quantizer.beta" in quant_names
    assert all(not n.endswith(("conv1.weight", "conv1.bias")) for n in quant_names)
    assert len(quant["params"]) + len(net["params"]) == len(list(student.parameters()))


def test_skip_blocks_slims_statically_and_checks_the_index():
    from quantsr.models.slimmable import slimmable_blocks

    net = build_quantized_(create_model("edsr", scale=2, num_block=3, num_feat=8), QuantRecipe(skip_blocks=(1,)))
    assert [b.is_skipped for b in slimmable_blocks(net)] == [False, True, False]
    with pytest.raises(ValueError, match="block 5 does not exist"):
        build_quantized_(create_model("edsr", scale=2, num_block=3, num_feat=8), QuantRecipe(skip_blocks=(5,)))


@pytest.mark.parametrize(("hr_weight", "name"), [(1.0, "output L1"), (0.0, "output L1, HR weight 0")])
def test_output_distillation_trains_a_model_without_a_residual_body(rgb_folder, tmp_path, hr_weight, name):
    # CARN-M's body is a cascade, not a list of residual blocks: SFD has no features to take, L1 to the teacher's
    # output does.
    torch.manual_seed(0)
    teacher = create_model("carn_m", scale=2, num_feat=8)
    recipe = QuantRecipe(w_bits=4, a_bits=8, head_tail_bits=8, weight_granularity="per_channel")
    train = TrainRecipe(iterations=2, batch_size=2, lr_patch=8, val_every=0, distill_target="output",
                        hr_weight=hr_weight, train_dirs=[str(rgb_folder)], val_sets=[str(rgb_folder)])
    card = quantize_checkpoint(teacher, "carn_m", 2, recipe, train, tmp_path / "run", model_kwargs={"num_feat": 8},
                               progress=False, eval_sets=(str(rgb_folder),))
    assert card["iterations"] == 2 and card["distillation"] == name


def test_sfd_without_a_residual_body_is_refused_before_the_start(rgb_folder, tmp_path, monkeypatch):
    import quantsr.qat.pipeline as pipeline

    def no_start(*args, **kwargs):
        raise AssertionError("the student's start ran before the loss was checked")

    monkeypatch.setattr(pipeline, "initialize_student_", no_start)
    teacher = create_model("carn_m", scale=2, num_feat=8)
    train = TrainRecipe(iterations=2, batch_size=2, lr_patch=8, train_dirs=[str(rgb_folder)])
    with pytest.raises(ValueError, match="--distill-target output"):
        quantize_checkpoint(teacher, "carn_m", 2, QuantRecipe(), train, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="distill_target"):
        TrainRecipe(distill_target="logits")


def test_output_distill_loss_adds_the_distance_to_the_teachers_output():
    from quantsr.qat.output_distill import OutputDistillLoss

    teacher = torch.nn.Upsample(scale_factor=2)
    lr, hr = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 8, 8)
    sr = torch.rand(1, 3, 8, 8, requires_grad=True)
    loss = OutputDistillLoss(0.5)(sr, hr, lr=lr, teacher=teacher)
    expected = (sr - hr).abs().mean() + 0.5 * (sr - teacher(lr)).abs().mean()
    assert loss.item() == pytest.approx(expected.item())
    assert OutputDistillLoss(0.5)(sr, hr).item() == pytest.approx((sr - hr).abs().mean().item())
    # hr_weight 0: the teacher's output is the only target, so the HR patch cannot move the loss
    teacher_only = OutputDistillLoss(0.5, hr_weight=0.0)
    assert teacher_only(sr, hr, lr=lr, teacher=teacher).item() == pytest.approx(
        0.5 * (sr - teacher(lr)).abs().mean().item())
    assert teacher_only(sr, torch.rand(1, 3, 8, 8), lr=lr, teacher=teacher).item() == pytest.approx(
        teacher_only(sr, hr, lr=lr, teacher=teacher).item())


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(hr_weight=0.0), "--distill-target output"),
    (dict(hr_weight=0.0, distill=False, distill_target="output"), "--no-distill"),
    (dict(hr_weight=-1.0, distill_target="output"), "finite number >= 0"),
    (dict(hr_weight=float("nan"), distill_target="output"), "finite number >= 0"),
])
def test_hr_weight_is_refused_where_it_cannot_apply(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainRecipe(**kwargs)


@pytest.mark.parametrize(("setting", "other", "flag"), [("hr_weight", {"hr_weight": 0.0}, "--hr-weight 0.0"),
                                                     ("edge_candidates", {"edge_candidates": 4},
                                                      "--edge-candidates 4")])
def test_a_run_saved_before_a_setting_resumes_with_its_default_and_refuses_another(setting, other, flag):
    from dataclasses import asdict

    from quantsr.checkpoints.format import checkpoint_metadata
    from quantsr.qat.pipeline import check_resume

    recipe = QuantRecipe(w_bits=4, a_bits=4)
    saved = asdict(TrainRecipe(distill_target="output", iterations=4))
    del saved[setting]  # what a last.pt written before the setting existed holds
    ckpt = {"metadata": checkpoint_metadata("carn_m", 4, recipe=recipe), "iteration": 2,
            "run_settings": {"train_recipe": saved}}
    assert check_resume("last.pt", recipe, TrainRecipe(distill_target="output", iterations=4), ckpt=ckpt) == []
    with pytest.raises(ValueError, match=f"{flag} differs from the run's"):
        check_resume("last.pt", recipe, TrainRecipe(distill_target="output", iterations=4, **other), ckpt=ckpt)
