"""mobile/runner: the C++ ExecuTorch runner (desktop stand-in for the on-device one) built against the executorch
wheel's headers and shared libraries. Builds it with make (cached: only rebuilt when its sources change), exports
tiny fp32 and int8 EDSR .pte files with quantsr's own API, and checks the runner against the ExecuTorch Python
runtime, its JSON statistics and its error handling."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
RUNNER_DIR = ROOT / "mobile" / "runner"
RUNNER = RUNNER_DIR / "build" / "quantsr_runner"
SHAPE = (1, 3, 16, 16)
LATENCY_FIELDS = ("min", "mean", "p50", "p90", "p99")


def _make(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-j1", "-C", str(RUNNER_DIR), f"PYTHON={sys.executable}", *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def runner() -> Path:
    """Build (or reuse) mobile/runner/build/quantsr_runner. A missing toolchain fails, it does not skip."""
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        pytest.fail(f"C++ compiler '{cxx}' not found: the runner test needs g++ (apt-get install g++) "
                    "to build mobile/runner")
    if shutil.which("make") is None:
        pytest.fail("'make' not found: the runner test needs it to build mobile/runner (apt-get install make)")
    build = _make()
    if build.returncode != 0:
        pytest.fail(f"building mobile/runner failed (rc {build.returncode}):\n{build.stdout}\n{build.stderr}")
    assert RUNNER.is_file() and os.access(RUNNER, os.X_OK), f"make succeeded but {RUNNER} is missing"
    return RUNNER


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A tiny static-shape 2x EDSR exported to .pte as fp32 and as calibrated int8 (both XNNPACK-delegated)."""
    from quantsr.export import export_pte
    from quantsr.models.registry import create_model

    folder = tmp_path_factory.mktemp("runner_models")
    torch.manual_seed(0)
    net = create_model("edsr", scale=2, num_feat=8, num_block=2).eval()
    out = {}
    fp32 = export_pte(net, folder / "edsr_fp32.pte", quant="fp32", input_size=SHAPE[1:], dynamic=False)
    int8 = export_pte(net, folder / "edsr_int8.pte", quant="int8", input_size=SHAPE[1:], dynamic=False,
                      calibration=[torch.rand(2, *SHAPE[1:])])
    for name, res in (("fp32", fp32), ("int8", int8)):
        assert res.delegated_nodes > 0, f"{name}: nothing was delegated to XNNPACK"
        out[name] = res.path
    return out


def run_runner(runner: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(runner), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_build_is_cached(runner):
    # `make -q` exits 0 only when the target is up to date: a second test run does not recompile
    assert _make("-q").returncode == 0, "mobile/runner rebuilds although nothing changed"


@pytest.mark.parametrize("quant", ["fp32", "int8"])
def test_runner_matches_python_runtime(runner, models, tmp_path, quant):
    from quantsr.runtime.pte import PteModule

    x = torch.rand(*SHAPE, generator=torch.Generator().manual_seed(1))
    x.numpy().astype("<f4").tofile(tmp_path / "in.bin")
    stats_path = tmp_path / "stats.json"
    proc = run_runner(runner, models[quant], "--input", tmp_path / "in.bin", "--output", tmp_path / "out.bin",
                      "--iterations", 5, "--warmup", 1, "--threads", 1, "--json", stats_path)
    assert proc.returncode == 0, f"runner failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"

    expected = PteModule(models[quant])(x)
    stats = json.loads(stats_path.read_text())
    assert stats["input_shape"] == list(SHAPE)
    assert stats["output_shape"] == list(expected.shape) == [1, 3, 32, 32]
    got = np.fromfile(tmp_path / "out.bin", dtype="<f4")
    assert got.size == expected.numel()
    got = torch.from_numpy(got.reshape(stats["output_shape"]))
    diff = float((got - expected).abs().max())
    assert diff <= 1e-5, f"{quant}: C++ runner and ExecuTorch Python runtime differ by {diff:.3g}"

    lat = stats["latency_ms"]
    for field in LATENCY_FIELDS:
        assert isinstance(lat[field], (int, float)) and lat[field] > 0, (field, lat)
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]
    assert len(stats["latencies_ms"]) == stats["iterations"] == 5
    assert stats["peak_rss_mb"] > 0 and stats["ru_maxrss_mb"] > 0
    assert stats["load_mode"] == "mmap" and stats["threads"] == 1
    assert "XnnpackBackend" in stats["backends"]
    assert "p50" in proc.stdout  # human-readable summary on stdout


def test_runner_wrong_input_size(runner, models, tmp_path):
    np.random.default_rng(0).random((1, 3, 15, 16), dtype=np.float32).tofile(tmp_path / "short.bin")
    proc = run_runner(runner, models["fp32"], "--input", tmp_path / "short.bin", "--output", tmp_path / "o.bin")
    assert proc.returncode != 0
    assert "wrong input size" in proc.stderr and "2880 bytes" in proc.stderr and "3072 bytes" in proc.stderr, \
        proc.stderr
    assert not (tmp_path / "o.bin").exists()

    # a consistent file and --shape, but not the static shape the model was exported with
    np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32).tofile(tmp_path / "small.bin")
    proc = run_runner(runner, models["fp32"], "--input", tmp_path / "small.bin", "--output", tmp_path / "o.bin",
                      "--shape", "1,3,8,8")
    assert proc.returncode != 0
    assert "rejected input shape 1x3x8x8" in proc.stderr and "1x3x16x16" in proc.stderr, proc.stderr


def test_runner_missing_and_bad_model(runner, models, tmp_path):
    np.zeros(SHAPE, dtype=np.float32).tofile(tmp_path / "in.bin")
    missing = tmp_path / "no_such_model.pte"
    proc = run_runner(runner, missing, "--input", tmp_path / "in.bin", "--output", tmp_path / "o.bin")
    assert proc.returncode != 0
    assert "not found" in proc.stderr and str(missing) in proc.stderr, proc.stderr

    proc = run_runner(runner, models["fp32"], "--input", tmp_path / "nope.bin", "--output", tmp_path / "o.bin")
    assert proc.returncode != 0 and "input" in proc.stderr and "not found" in proc.stderr, proc.stderr

    junk = tmp_path / "junk.pte"
    junk.write_bytes(models["fp32"].read_bytes()[:200])  # truncated program
    proc = run_runner(runner, junk, "--input", tmp_path / "in.bin", "--output", tmp_path / "o.bin")
    assert proc.returncode != 0
    assert "failed to load" in proc.stderr and str(junk) in proc.stderr, proc.stderr

    proc = run_runner(runner, models["fp32"], "--input", tmp_path / "in.bin")  # no --output
    assert proc.returncode != 0 and "--output" in proc.stderr, proc.stderr
