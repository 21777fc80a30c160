"""Data-parallel training under torchrun (quantsr.train.distributed): 2 gloo ranks on CPU train exactly as one
process on the same global batch, write each checkpoint once, and resume exactly after a SIGKILL."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quantsr.cli import main
from quantsr.train.distributed import DistContext, RankShard, check_divisible
from tests.conftest import tiny_fp_checkpoint

WORKER = Path(__file__).with_name("ddp_worker.py")


def _teacher(tmp_path: Path) -> Path:
    return tiny_fp_checkpoint(tmp_path / "fp.pt", scale=2, num_block=2)


def _quantize_args(fp: Path, out: Path, rgb_folder: Path, iterations: int) -> list[str]:
    # SFD on (its batch-wide Frobenius norm is the term that needs the all-reduce), QSA on (rank 0 prunes, the
    # others receive it), LSQ steps (their gradient scale counts the whole batch).
    return ["quantize", "--weights", str(fp), "--scale", "2", "--out", str(out), "--w-bits", "4", "--a-bits", "4",
            "--qsa-keep", "1", "--iterations", str(iterations), "--batch-size", "4", "--lr-patch", "8",
            "--val-every", "2", "--checkpoint-every", "2", "--train-dirs", str(rgb_folder), "--no-progress"]


def _torchrun(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(WORKER), *args]
    return subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1", **env}, capture_output=True,
                          text=True, timeout=600)


def _losses(out: Path) -> list[float]:
    return torch.load(out / "last.pt", weights_only=True)["history"]["losses"]


def test_two_gloo_ranks_train_as_one_process_write_once_and_resume_after_a_kill(rgb_folder, tmp_path, capsys):
    fp = _teacher(tmp_path)
    single = tmp_path / "single"
    assert main(_quantize_args(fp, single, rgb_folder, 8)) == 0
    reference = _losses(single)

    ddp, log = tmp_path / "ddp", tmp_path / "saves.log"
    done = _torchrun(_quantize_args(fp, ddp, rgb_folder, 8), {"QUANTSR_TEST_SAVE_LOG": str(log)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert _losses(ddp) == pytest.approx(reference, rel=1e-4)
    ckpt = torch.load(ddp / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and ckpt["iteration"] == 8
    writers = {line.split()[0] for line in log.read_text().splitlines()}
    assert writers == {"0"}  # rank 1 never writes
    assert (ddp / "model_card.json").is_file()

    killed = tmp_path / "killed"
    crash = _torchrun(_quantize_args(fp, killed, rgb_folder, 8), {"QUANTSR_TEST_KILL_AT": "4"})
    assert crash.returncode != 0 and torch.load(killed / "last.pt", weights_only=True)["iteration"] == 4
    resumed = _torchrun(_quantize_args(fp, killed, rgb_folder, 8) + ["--resume"], {})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _losses(killed) == pytest.approx(reference, rel=1e-4)

    # One process cannot continue a 2-rank run: the error names both world sizes.
    assert main(_quantize_args(fp, killed, rgb_folder, 10) + ["--resume"]) != 0
    assert "trained on 2 rank(s) and this run has 1" in capsys.readouterr().err


def test_the_global_batch_splits_into_rank_shards_or_says_why_not():
    class Source:
        def batch(self, iteration):
            return torch.arange(6).view(6, 1) + 100 * iteration, torch.zeros(6, 1)

    rows = [RankShard(Source(), DistContext(rank, 3), 6).batch(2)[0].flatten().tolist() for rank in range(3)]
    assert rows == [[200, 201], [202, 203], [204, 205]]
    assert check_divisible(8, 2) == 4
    with pytest.raises(ValueError, match="--batch-size 6 is the global batch and must divide by the 4 ranks"):
        check_divisible(6, 4)


def test_quantsr_train_under_torchrun_matches_one_process(rgb_folder, tmp_path):
    def args(out: Path) -> list[str]:
        return ["train", "--model", "edsr", "--scale", "2", "--model-kw", "num_feat=8", "num_block=1",
                "--train-dirs", str(rgb_folder), "--val-sets", "--lr-patch", "8", "--batch-size", "4",
                "--iterations", "4", "--checkpoint-every", "2", "--out", str(out), "--no-progress"]

    assert main(args(tmp_path / "single")) == 0
    done = _torchrun(args(tmp_path / "ddp"), {})
    assert done.returncode == 0, done.stderr[-3000:]
    assert _losses(tmp_path / "ddp") == pytest.approx(_losses(tmp_path / "single"), rel=1e-4)
    with pytest.raises(AssertionError):  # and the check is not vacuous: another seed trains differently
        assert main(args(tmp_path / "other") + ["--seed", "1"]) == 0
        assert _losses(tmp_path / "other") == pytest.approx(_losses(tmp_path / "single"), rel=1e-4)
