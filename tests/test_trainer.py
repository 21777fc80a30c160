import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from quantsr.cli import main
from quantsr.train.checkpoint import load_checkpoint

# A training script run in a child process; with KILL_AT set, the child SIGKILLs itself right after that
# iteration, i.e. a few iterations after its last checkpoint, so resumed work must redo them identically.
SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    import torch
    torch.set_num_threads(1)
    from quantsr import create_model
    from quantsr.data.datasets import BenchmarkSet, PatchDataset
    from quantsr.train.trainer import TrainConfig, Trainer

    folder, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    model = create_model("edsr", scale=2, num_feat=8, num_block=2)
    data = PatchDataset([folder], scale=2, lr_patch=8, batch_size=4, seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[7, 15], gamma=0.5)
    val = [BenchmarkSet(folder, 2)]
    cfg = TrainConfig(iterations=20, val_every=5, checkpoint_every=5, out_dir=out, progress=False)

    def killer(trainer):
        if trainer.iteration == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    trainer = Trainer(model, data, torch.nn.L1Loss(), opt, sched, val_sets=val, config=cfg,
                      metadata={"model": "edsr", "scale": 2}, callbacks=[killer])
    trainer.resume()
    history = trainer.fit()
    print(json.dumps({"losses": history.losses, "validation": history.validation}))
    """
)


def _run(folder: Path, out: Path, kill_at: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", SCRIPT, str(folder), str(out), str(kill_at)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_sigkill_and_resume_reproduces_losses_exactly(rgb_folder, tmp_path):
    reference = _run(rgb_folder, tmp_path / "uninterrupted", kill_at=-1)
    assert reference.returncode == 0, reference.stderr
    expected = json.loads(reference.stdout.strip().splitlines()[-1])

    killed = _run(rgb_folder, tmp_path / "killed", kill_at=13)
    assert killed.returncode == -signal.SIGKILL
    ckpt = load_checkpoint(tmp_path / "killed" / "last.pt")
    assert ckpt["iteration"] == 10  # the checkpoint before the kill; iterations 11-13 are lost
    assert not list((tmp_path / "killed").glob("*.tmp"))  # nothing half-written left behind

    resumed = _run(rgb_folder, tmp_path / "killed", kill_at=-1)
    assert resumed.returncode == 0, resumed.stderr
    got = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert len(got["losses"]) == 20
    assert got["losses"] == expected["losses"]  # bit-exact, not approximately
    assert got["validation"] == expected["validation"]


def test_checkpoint_holds_everything_needed_to_resume(rgb_folder, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--model", "edsr", "--scale", "2", "--model-kw", "num_feat=8", "num_block=1",
            "--train-dirs", str(rgb_folder), "--val-sets", str(rgb_folder), "--lr-patch", "8", "--batch-size", "2",
            "--iterations", "4", "--val-every", "2", "--checkpoint-every", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert {"model", "optimizer", "scheduler", "iteration", "history", "rng", "config", "metadata"} <= set(ckpt)
    assert ckpt["iteration"] == 4 and len(ckpt["history"]["losses"]) == 4
    assert ckpt["metadata"] == {"format_version": 2, "model": "edsr", "scale": 2,
                                "model_kwargs": {"num_feat": 8, "num_block": 1}}
    assert (out / "best.pt").is_file()
    # Refuses to overwrite a run unless told to resume; resuming a finished run does nothing more.
    assert main(args) != 0
    assert main(args + ["--resume"]) == 0
    assert load_checkpoint(out / "last.pt")["iteration"] == 4
    # Continuing to more iterations extends the same history.
    longer = [a if a != "4" else "6" for a in args]
    assert main(longer + ["--resume"]) == 0
    assert len(load_checkpoint(out / "last.pt")["history"]["losses"]) == 6
    # The trained checkpoint evaluates through the CLI without naming the architecture again.
    assert main(["eval", "--weights", str(out / "best.pt"), "--scale", "2", "--datasets", str(rgb_folder),
                 "--no-progress"]) == 0


def test_resume_with_a_different_model_is_a_clear_error(rgb_folder, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "--scale", "2", "--train-dirs", str(rgb_folder), "--val-sets", "--lr-patch", "8",
            "--batch-size", "2", "--iterations", "2", "--out", str(out), "--no-progress"]
    assert main(base + ["--model", "edsr", "--model-kw", "num_feat=8", "num_block=1"]) == 0
    assert main(base + ["--model", "fsrcnn", "--resume"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "edsr" in err[0] and "fsrcnn" in err[0]


def test_merge_resume_settings_refuses_changes_names_the_flag_and_allows_extending():
    from quantsr.train.resume import merge_resume_settings

    saved = {"lr": 2e-4, "iterations": 10, "milestones": [5, 8], "bf16": False, "model_kwargs": {"num_feat": 8}}
    merged, changes = merge_resume_settings(saved, {}, source="runs/x/last.pt", reached=6)
    assert merged == saved and changes == []  # nothing given: the saved run, unchanged
    merged, changes = merge_resume_settings(saved, {"lr": 0.0002, "milestones": (5, 8), "iterations": 20},
                                            source="runs/x/last.pt", allowed={"iterations"}, reached=6)
    assert merged == {**saved, "iterations": 20} and changes == ["--iterations 20 (was 10)"]
    with pytest.raises(ValueError, match=r"^--lr 0.001 differs from the run's 0.0002 saved in runs/x/last.pt; "
                                         r"drop --lr to keep it, or start a new --out$"):
        merge_resume_settings(saved, {"lr": 1e-3}, source="runs/x/last.pt", reached=6)
    with pytest.raises(ValueError, match="^--bf16 on differs from the run's off"):
        merge_resume_settings(saved, {"bf16": True}, source="runs/x/last.pt", reached=6)
    with pytest.raises(ValueError, match="^--model-kw num_feat=16 differs from the run's num_feat=8 .*drop --model-kw"):
        merge_resume_settings(saved, {"model_kwargs": {"num_feat": 16}}, source="s",
                              flags={"model_kwargs": "--model-kw"})
    for too_few in (6, 3):  # an --iterations the run has already reached cannot be resumed to
        with pytest.raises(ValueError, match=f"^--iterations {too_few} is not above iteration 6, already reached"):
            merge_resume_settings(saved, {"iterations": too_few}, source="s", allowed={"iterations"}, reached=6)
    # A checkpoint from before settings were saved: the given ones are used, with a note that they are unchecked.
    merged, changes = merge_resume_settings(None, {"lr": 1e-3}, source="old/last.pt")
    assert merged == {"lr": 1e-3} and len(changes) == 1 and "cannot be checked" in changes[0]


def _train_args(folder: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", "edsr", "--scale", "2", "--model-kw", "num_feat=8", "num_block=1", "--train-dirs",
            str(folder), "--val-sets", "--lr-patch", "8", "--batch-size", "2", "--lr", "0.001", "--seed", "1",
            "--milestones", "3", "--checkpoint-every", "2", "--out", str(out), "--no-progress", *extra]


def test_train_resume_refuses_changed_flags_and_leaves_last_pt_unchanged(rgb_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train_args(rgb_folder, out, "--iterations", "4")) == 0
    saved = load_checkpoint(out / "last.pt")["run_settings"]
    assert saved["lr"] == 1e-3 and saved["seed"] == 1 and saved["batch_size"] == 2 and saved["iterations"] == 4
    assert saved["model_kwargs"] == {"num_feat": 8, "num_block": 1} and saved["milestones"] == [3]
    before = (out / "last.pt").read_bytes()
    capsys.readouterr()
    for flag, value, was in (("--lr", "0.002", "0.001"), ("--seed", "5", "1"), ("--batch-size", "4", "2"),
                             ("--lr-patch", "6", "8"), ("--milestones", "2", "3"), ("--bf16", None, "off")):
        extra = [flag] if value is None else [flag, value]
        assert main(_train_args(rgb_folder, out, "--iterations", "6", "--resume", *extra)) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"quantsr: error: {flag} ") and f"the run's {was} " in err[0]
        assert f"drop {flag} to keep it" in err[0]
    # An --iterations the run has already reached (4) is refused too, and none of these touched the run.
    assert main(["train", "--out", str(out), "--resume", "--iterations", "3", "--no-progress"]) != 0
    assert "--iterations 3 is not above iteration 4" in capsys.readouterr().err
    assert (out / "last.pt").read_bytes() == before


def test_train_resume_alone_continues_the_saved_run_and_iterations_extends_it(rgb_folder, tmp_path, capsys):
    reference = tmp_path / "reference"
    assert main(_train_args(rgb_folder, reference, "--iterations", "6")) == 0
    out = tmp_path / "run"
    assert main(_train_args(rgb_folder, out, "--iterations", "4")) == 0
    capsys.readouterr()
    # No --model, --lr, --seed, ...: all come from the run; a larger --iterations extends it, and says so.
    assert main(["train", "--out", str(out), "--resume", "--iterations", "6", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"resumed from {out / 'last.pt'} at iteration 4" in printed and "--iterations 6 (was 4)" in printed
    got, want = load_checkpoint(out / "last.pt"), load_checkpoint(reference / "last.pt")
    assert got["iteration"] == 6 and got["run_settings"] == want["run_settings"]
    assert got["history"]["losses"] == want["history"]["losses"]  # exactly the uninterrupted 6-iteration run
    # `--resume` alone on the finished run trains nothing more and changes nothing.
    before = (out / "last.pt").read_bytes()
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert (out / "last.pt").read_bytes() == before


def test_train_resume_of_a_checkpoint_without_saved_settings_notes_it(rgb_folder, tmp_path, capsys):
    from quantsr.train.checkpoint import save_atomic

    out = tmp_path / "run"
    assert main(_train_args(rgb_folder, out, "--iterations", "2")) == 0
    old = load_checkpoint(out / "last.pt")
    del old["run_settings"]  # as an older quantsr wrote it
    save_atomic(old, out / "last.pt")
    capsys.readouterr()
    assert main(_train_args(rgb_folder, out, "--iterations", "3", "--resume")) == 0
    assert "cannot be checked" in capsys.readouterr().out
    assert load_checkpoint(out / "last.pt")["iteration"] == 3


def test_refused_resume_is_one_error_line_from_the_command_line(rgb_folder, tmp_path):
    out = tmp_path / "run"
    assert main(_train_args(rgb_folder, out, "--iterations", "2")) == 0
    before = (out / "last.pt").read_bytes()
    done = subprocess.run([sys.executable, "-m", "quantsr", "train", "--out", str(out), "--resume", "--lr", "0.5",
                           "--no-progress"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("quantsr: error: --lr 0.5 differs from the run's 0.001"), lines
    assert (out / "last.pt").read_bytes() == before


def test_bf16_autocast_trains(rgb_folder, tmp_path):
    from quantsr import create_model
    from quantsr.data.datasets import PatchDataset
    from quantsr.train.trainer import TrainConfig, Trainer

    model = create_model("edsr", scale=2, num_feat=8, num_block=1)
    data = PatchDataset([rgb_folder], scale=2, lr_patch=8, batch_size=2)
    from quantsr.train.trainer import cpu_has_fast_bf16

    # Without native bf16 the trainer warns that autocast is emulated (slow) on this CPU.
    expect = contextlib.nullcontext() if cpu_has_fast_bf16() else pytest.warns(UserWarning, match="bf16")
    with expect:
        trainer = Trainer(model, data, torch.nn.L1Loss(), torch.optim.Adam(model.parameters(), 1e-3),
                          config=TrainConfig(iterations=3, progress=False, bf16=True, channels_last=True))
    history = trainer.fit()
    assert len(history.losses) == 3 and all(loss == loss for loss in history.losses)
    assert next(model.parameters()).dtype == torch.float32  # master weights stay fp32


def test_data_is_deterministic_per_seed_and_iteration(rgb_folder):
    from quantsr.data.datasets import PatchDataset

    a = PatchDataset([rgb_folder], scale=2, lr_patch=8, batch_size=4, seed=1)
    b = PatchDataset([rgb_folder], scale=2, lr_patch=8, batch_size=4, seed=1)
    c = PatchDataset([rgb_folder], scale=2, lr_patch=8, batch_size=4, seed=2)
    lr_a, hr_a = a.batch(5)
    lr_b, hr_b = b.batch(5)
    assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)
    assert not torch.equal(lr_a, a.batch(6)[0])
    assert not torch.equal(lr_a, c.batch(5)[0])
    assert lr_a.shape == (4, 3, 8, 8) and hr_a.shape == (4, 3, 16, 16)
    assert 0 <= float(lr_a.min()) and float(hr_a.max()) <= 1


class FakeClock:
    """A clock that advances ``tick`` seconds per reading: the trainer's timings no longer depend on the machine."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_time_budget_stops_checkpoints_and_is_kept_across_resume(rgb_folder, tmp_path):
    from quantsr import create_model
    from quantsr.data.datasets import BenchmarkSet, PatchDataset
    from quantsr.train.trainer import TrainConfig, Trainer

    def make(budget):
        torch.manual_seed(0)
        model = create_model("edsr", scale=2, num_feat=8, num_block=1)
        data = PatchDataset([rgb_folder], scale=2, lr_patch=8, batch_size=2, seed=0)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        cfg = TrainConfig(iterations=50, val_every=0, checkpoint_every=0, out_dir=str(tmp_path),
                          progress=False, max_train_seconds=budget)
        # Three readings per iteration (before the batch, after it, after the step): 0.125 s of data wait and
        # 0.125 s of step, exactly representable, so a budget of 1 s is spent after exactly 4 iterations.
        return Trainer(model, data, torch.nn.L1Loss(), opt, val_sets=[BenchmarkSet(rgb_folder, 2)], config=cfg,
                       clock=FakeClock(0.125))

    trainer = make(1.0)
    history = trainer.fit()
    assert trainer.iteration == 4 and history.data_seconds == 0.5 and history.step_seconds == 0.5
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 4  # checkpointed at the stop
    again = make(1.0)
    again.resume()
    again.fit()
    assert again.iteration == 4  # the budget is spent (summed across resumes): a resume trains no further
    more = make(2.0)
    more.resume()
    more.fit()
    assert more.iteration == 8 and more.history.data_seconds + more.history.step_seconds == 2.0
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 8


def test_edge_candidates_pick_the_most_edge_rich_crop_deterministically(tmp_path):
    import numpy as np
    from PIL import Image

    from quantsr.data.datasets import PatchDataset
    from quantsr.qat.config import TrainRecipe

    # one half flat, one half a checkerboard: a crop's edge energy is the share of it on the checkerboard
    img = np.full((64, 64, 3), 128, dtype=np.uint8)
    img[:, 32:] = ((np.indices((64, 32)).sum(0) // 2) % 2 * 255)[..., None]
    (tmp_path / "hr").mkdir()
    Image.fromarray(img).save(tmp_path / "hr" / "half.png")

    def mean_edges(data: PatchDataset) -> float:
        lr = torch.cat([data.batch(i)[0] for i in range(10)])
        return float((lr[..., 1:] - lr[..., :-1]).abs().mean())

    kwargs = dict(scale=2, lr_patch=8, batch_size=8, seed=0, augment=False)
    uniform = PatchDataset([tmp_path / "hr"], **kwargs)
    picked = PatchDataset([tmp_path / "hr"], edge_candidates=4, **kwargs)
    assert mean_edges(picked) > 1.3 * mean_edges(uniform)
    assert torch.equal(picked.batch(3)[0], PatchDataset([tmp_path / "hr"], edge_candidates=4, **kwargs).batch(3)[0])
    with pytest.raises(ValueError, match="edge_candidates must be >= 1"):
        PatchDataset([tmp_path / "hr"], edge_candidates=0, **kwargs)
    with pytest.raises(ValueError, match="edge_candidates must be >= 1"):
        TrainRecipe(edge_candidates=0)
