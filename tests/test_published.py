"""The evaluation pipeline reproduces published numbers with the public checkpoints (Set5; the full
Set5/Set14/B100 table is benchmarks/eval_pretrained.py)."""
import json

import pytest

from quantsr import evaluate
from quantsr.checkpoints.load import load_model
from quantsr.cli import main
from quantsr.data.datasets import BenchmarkSet
from tests.conftest import BENCHMARK, WEIGHTS, require

# (model, scale): Set5 (PSNR, SSIM or None) from the IMDN paper / the weights' MANIFEST.
SET5 = {("imdn", 2): (38.00, 0.9605), ("imdn", 3): (34.36, 0.9270), ("imdn", 4): (32.21, 0.8948),
        ("rfdn", 4): (32.16, None), ("rlfn", 4): (32.10, None)}


@pytest.mark.parametrize("model, scale", list(SET5))
def test_set5_matches_published(model, scale):
    require(WEIGHTS)
    net = load_model(model=model, scale=scale)
    sets = [BenchmarkSet.from_name("Set5", scale)]
    if model == "imdn":
        sets.append(BenchmarkSet.from_name("Set5", scale, official_lr=True))
    result = evaluate(net, sets, scale, progress=False, ssim=model == "imdn")
    psnr, ssim = SET5[(model, scale)]
    for s in result.sets:
        assert s.psnr == pytest.approx(psnr, abs=0.02), s.name
        if ssim is not None:
            assert s.ssim == pytest.approx(ssim, abs=0.0005), s.name


def test_eval_cli_writes_json_and_table(tmp_path, capsys):
    require(BENCHMARK / "Set5")
    out = tmp_path / "r.json"
    assert main(["eval", "--model", "rlfn", "--scale", "4", "--datasets", "Set5", "--json", str(out),
                 "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "Set5" in table and "PSNR" in table
    data = json.loads(out.read_text())
    assert data["scale"] == 4 and data["sets"][0]["name"] == "Set5"
    assert [im["name"] for im in data["sets"][0]["images"]] == ["baby", "bird", "butterfly", "head", "woman"]
    assert data["sets"][0]["psnr"] == pytest.approx(32.10, abs=0.02)
