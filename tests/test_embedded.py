"""Which embedded model `quantsr upscale --scale/--bits` picks (quantsr.artifacts.embedded)."""
import json

import pytest

from quantsr import create_model
from quantsr.artifacts import embedded
from quantsr.cli.parser import build_parser
from quantsr.export.model_card import _bits
from quantsr.quant.recipe import QuantRecipe, build_quantized_


@pytest.fixture
def assets(tmp_path, monkeypatch):
    (tmp_path / "assets").mkdir()
    for name in ("imdn_x4_w4a4.pte", "span_x4_w4a8.pte", "imdn_x4_w2a2.pte", "imdn_x2_w4a8.pte", "notes.txt"):
        (tmp_path / "assets" / name).write_bytes(b"PTE")
    monkeypatch.setattr(embedded.resources, "files", lambda package: tmp_path)
    return tmp_path / "assets"


def test_bits_pick_the_narrowest_activations_or_the_exact_model(assets):
    assert set(embedded.embedded_models()) == {(4, 4, 4), (4, 4, 8), (4, 2, 2), (2, 4, 8)}
    assert embedded.default_model_path(4, 4).name == "imdn_x4_w4a4.pte"  # --bits 4 stays the W4A4 model
    assert embedded.default_model_path(4, "w4a8").name == "span_x4_w4a8.pte"
    assert embedded.default_model_path(4, "W2A2").name == "imdn_x4_w2a2.pte"
    assert embedded.default_model_path(2).name == "imdn_x2_w4a8.pte"  # the only 4-bit one at x2
    with pytest.raises(ValueError, match=r"no embedded model for x2 at W2A2 \(embedded: x2 W4A8, x4 W2A2"):
        embedded.default_model_path(2, "w2a2")
    with pytest.raises(ValueError, match="weight and activation bits"):
        embedded.parse_bits("4bit")


def test_the_cli_takes_both_spellings_of_bits(capsys):
    parser = build_parser()
    assert parser.parse_args(["upscale", "x.png", "--bits", "w4a8"]).bits == "w4a8"
    assert parser.parse_args(["upscale", "x.png", "--bits", "2"]).bits == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["upscale", "x.png", "--bits", "w4"])
    assert "weight and activation bits" in capsys.readouterr().err


def test_the_card_names_the_body_bits_and_the_wider_head_tail():
    model = build_quantized_(create_model("span", scale=2, num_feat=8, num_block=2),
                             QuantRecipe(w_bits=4, a_bits=8, head_tail_bits=8))
    bits = _bits(model)
    assert bits["weights"] == 4 and bits["activations"] == 8 and bits["head_tail"] == 8
    assert json.loads(json.dumps(bits)) == bits


def _shipped() -> list[tuple[int, int, int]]:
    return sorted(embedded.embedded_models())


@pytest.mark.parametrize("key", _shipped(), ids=lambda k: f"x{k[0]}_w{k[1]}a{k[2]}")
def test_every_shipped_model_beats_bicubic_on_the_sample_photo(key):
    """Each embedded .pte through the ExecuTorch runtime, selected as `--scale S --bits wXaY` selects it, on a
    bicubic-downscaled crop of the sample photo: sharper than bicubic upscaling (a broken program, such as one
    that clips its input, scores far below)."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from quantsr.data.imresize import imresize
    from quantsr.eval.metrics import calculate_psnr
    from quantsr.runtime.upscale import cpu_upscale

    scale, w, a = key
    with Image.open(Path(__file__).resolve().parents[1] / "examples" / "chelsea.png") as im:
        hr = np.asarray(im.convert("RGB"))[:96, 96:192]
    lr = imresize(hr, 1 / scale)
    sr = np.asarray(cpu_upscale(lr, scale=scale, bits=f"w{w}a{a}", threads=1))
    bicubic = np.clip(np.round(imresize(lr.astype(np.float64), scale)), 0, 255).astype(np.uint8)
    assert sr.shape == hr.shape
    assert calculate_psnr(sr, hr, scale) > calculate_psnr(bicubic, hr, scale) + 0.2  # +0.37 to +1.6 dB here


def test_scale_2_works_out_of_the_box():
    assert (2, 4, 8) in embedded.embedded_models()  # the shipped x2 model
    assert embedded.default_model_path(2).name.endswith("_x2_w4a8.pte")


@pytest.mark.parametrize("key", _shipped(), ids=lambda k: f"x{k[0]}_w{k[1]}a{k[2]}")
def test_every_shipped_model_beats_every_public_model_no_larger(key):
    """Issue 14's frontier bar, on the committed Pareto results (benchmarks/pareto.py): each embedded model's
    `.pte` scores higher on Set14 and on B100 than every public model, FP32 or int8, of equal or smaller ideal
    bytes at its scale. A dominated model must not be embedded (a user would ship the public one instead)."""
    from pathlib import Path

    results = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "pareto.json")
                         .read_text())
    pte = embedded.embedded_models()[key]
    stem = pte.stem
    shipped = next((p for p in results["points"] if p["key"] == f"{stem} low-bit"), None)
    assert shipped is not None, f"{stem} has no row in benchmarks/results/pareto.json: run benchmarks/pareto.py"
    # the row is this file's program: the same Set5 score as its card (the .pte in pareto.json allows larger sides)
    card = json.loads(pte.with_name(pte.name + ".json").read_text())
    assert abs(shipped["psnr"]["Set5"] - card["set5_psnr"]) < 0.002, "pareto.json scores another program: rerun it"
    assert not [k for k in results["failures"] if "low-bit" not in k]  # every public model was scored
    public = [p for p in results["points"] if p["kind"] != "low-bit" and p["scale"] == shipped["scale"]
              and p["ideal_bytes"] <= shipped["ideal_bytes"]]
    assert public  # FSRCNN int8 (13,844 B) is smaller than any shipped model
    for set_name in ("Set14", "B100"):
        beaten = [p["key"] for p in public if p["psnr"][set_name] >= shipped["psnr"][set_name]]
        assert not beaten, f"{stem} is not above {beaten} on {set_name}"
