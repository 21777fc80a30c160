"""Core ML export on tiny models: palettized learned weights decompress to the trained ones bit for bit."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_export_pte import tiny_qat

from quantsr.export.coreml import _decompressed_consts, _grid_lut, export_coreml
from quantsr.registry import create_model


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_grid_lut_is_exact_and_sized_for_ios17(bits):
    scale, lo = 0.0371, -(2 ** (bits - 1) - 1)
    levels = torch.randint(lo, lo + 2**bits, (8, 4, 3, 3)).float()
    weight = (levels * scale).numpy()
    lut, index = _grid_lut(scale, lo, bits)(weight)
    assert lut.size in (2, 4, 16, 64, 256) and lut.size >= 2**bits
    assert np.array_equal(lut[index].reshape(weight.shape), weight)
    with pytest.raises(ValueError, match="grid"):
        _grid_lut(scale, lo, bits)(weight + scale * 2**bits)


def test_coreml_export_palettizes_learned_weights_exactly(tmp_path):
    sizes = {}
    for bits in (2, 4):
        net = tiny_qat(bits=bits)
        out = export_coreml(net, tmp_path / f"w{bits}.mlpackage", input_size=(3, 24, 24))
        assert out.weights_exact and out.path.is_dir() and out.int8_layers
        consts = _decompressed_consts(out.path)
        for name, module in net.named_modules():
            if hasattr(module, "act_quantizer"):
                key = "p_" + name.replace(".", "_") + "_weight_palettized"
                levels = torch.unique(torch.from_numpy(consts[key]))
                assert len(levels) <= 2**bits
        sizes[bits] = out.bytes
    fp = export_coreml(create_model("imdn", scale=2, num_feat=32, num_blocks=1), tmp_path / "fp.mlpackage",
                       input_size=(3, 24, 24), quantize_rest=False)
    assert not fp.weights_exact and not fp.palettized
    assert sizes[2] < sizes[4] < fp.bytes
    assert not list(tmp_path.glob(".*"))  # no temp dirs left behind


def test_export_cli_writes_verified_artifacts_and_cards(tmp_path):
    import json

    from quantsr.checkpoint import save_atomic
    from quantsr.cli import main

    net = tiny_qat(bits=2)
    meta = {"model": "imdn", "scale": 2, "model_kwargs": {"num_feat": 32, "num_blocks": 1},
            "qat": {"w_bits": 2, "a_bits": 2}}
    save_atomic({"model": net.state_dict(), "metadata": meta}, tmp_path / "tiny.pt")
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "tiny.pt"), "--format", "all", "--out", str(out), "--no-eval",
                 "--tile", "24"]) == 0
    for name, backend in (("tiny.pte", "executorch-xnnpack"), ("tiny.mlpackage", "coreml")):
        card = json.loads((out / f"{name}.json").read_text())
        assert card["backend"] == backend and card["bits"]["weights"] == 2 and card["scale"] == 2
        assert card["input"]["shape"] == [1, 3, 24, 24] and card["output"]["shape"] == [1, 3, 48, 48]
        assert card["bytes"] > 0 and len(card["sha256"]) == 64 and card["gzip_bytes"] < card["bytes"]
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
