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
    assert main(args) == 2
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
    assert main(base + ["--model", "fsrcnn", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "edsr" in err[0] and "fsrcnn" in err[0]


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


def test_time_budget_stops_checkpoints_and_is_kept_across_resume(rgb_folder, tmp_path):
    from quantsr import create_model
    from quantsr.data.datasets import BenchmarkSet, PatchDataset
    from quantsr.train.trainer import TrainConfig, Trainer

    def make(budget):
        torch.manual_seed(0)
        model = create_model("edsr", scale=2, num_feat=8, num_block=2)
        data = PatchDataset([rgb_folder], scale=2, lr_patch=8, batch_size=2, seed=0)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        cfg = TrainConfig(iterations=10_000, val_every=0, checkpoint_every=0, out_dir=str(tmp_path),
                          progress=False, max_train_seconds=budget)
        return Trainer(model, data, torch.nn.L1Loss(), opt, val_sets=[BenchmarkSet(rgb_folder, 2)], config=cfg)

    trainer = make(0.3)
    history = trainer.fit()
    stopped_at = trainer.iteration
    assert 0 < stopped_at < 10_000 and history.data_seconds + history.step_seconds >= 0.3
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == stopped_at  # checkpointed at the stop
    again = make(0.3)
    again.resume()
    again.fit()
    assert again.iteration == stopped_at  # the budget is spent: a resume trains no further
    more = make(0.6)
    more.resume()
    more.fit()
    assert more.iteration > stopped_at
