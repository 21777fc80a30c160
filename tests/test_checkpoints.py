"""Checkpoint metadata: versioned quantization recipes, the legacy (format 1) checkpoints still load, one loader
for every kind of file that knows the scale from the file."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from quantsr import create_model, load_model
from quantsr.checkpoints.format import FORMAT_VERSION, checkpoint_metadata, parse_metadata
from quantsr.checkpoints.load import load_model_and_info
from quantsr.quant import calibrate_, quantized_layers
from quantsr.quant.recipe import RECIPE_VERSION, QuantRecipe, build_quantized_
from quantsr.train.checkpoint import save_atomic

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted(p for p in (ROOT / "checkpoints").glob("*.pt") if not p.stem.endswith("_int8"))
PROGRAMS = sorted((ROOT / "checkpoints").glob("*_int8.pt"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_checkpoints_still_load(path):
    """The shipped low-bit checkpoints load as their cards say: the IMDN ones in format 1 (the whole training
    config under "qat", FP32 head/tail), later ones in format 2 (a QuantRecipe; int8 head/tail)."""
    card = json.loads(path.with_suffix(".json").read_text())
    model, info = load_model_and_info(path)
    assert info.format_version in (1, 2) and info.model == card["architecture"] and info.scale == card["scale"]
    bits = card["bits"]
    body = (bits["weights"], bits["activations"])
    assert (info.recipe.w_bits, info.recipe.a_bits) == body
    if info.format_version == 1:
        assert info.recipe == QuantRecipe(w_bits=body[0], a_bits=body[1])
    head_tail = {(bits["head_tail"], bits["head_tail"])} if bits.get("head_tail", 32) < 32 else set()
    assert set(quantized_layers(model).values()) == {body} | head_tail
    with pytest.raises(ValueError, match=f"is a x{info.scale} model; use --scale {info.scale}"):
        load_model(path, scale=2 if info.scale == 4 else 4)


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_committed_int8_programs_load_into_their_base_graph(path):
    """Each fine-tuned program file rebuilds on its base checkpoint (same calibration, same arithmetic digest,
    codes in their trained ranges) and is a clear error where a model checkpoint is expected."""
    from quantsr.export.int8_program import load_program, static_int8_graph
    from quantsr.export.pipeline import calibration_inputs
    from quantsr.runtime.upscale import min_side_of

    base = path.with_name(path.stem.removesuffix("_int8") + ".pt")
    model, info = load_model_and_info(base)
    load_program(path, static_int8_graph(model, calibration_inputs(info.scale, 64), min_side=min_side_of(model)))
    with pytest.raises(ValueError, match="is a fine-tuned int8 program of .*--quant static-int8"):
        load_model(path)


def _tiny(tmp_path, meta, recipe=None):
    torch.manual_seed(0)
    net = create_model("edsr", scale=2, num_block=2, num_feat=8)
    if recipe is not None:
        calibrate_(build_quantized_(net, recipe), torch.rand(2, 3, 12, 12))
    path = tmp_path / "tiny.pt"
    save_atomic({"model": net.state_dict(), "metadata": meta}, path)
    return net, path


def test_recipe_round_trip_and_versions(tmp_path):
    recipe = QuantRecipe(w_bits=2, a_bits=3, head_tail_bits=8, skip_blocks=(1,))
    assert QuantRecipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    assert recipe.to_dict()["version"] == RECIPE_VERSION
    net, path = _tiny(tmp_path, checkpoint_metadata("edsr", 2, {"num_block": 2, "num_feat": 8}, recipe), recipe)
    model, info = load_model_and_info(path)
    assert info.format_version == FORMAT_VERSION and info.recipe == recipe and info.scale == 2
    assert set(quantized_layers(model).values()) == {(2, 3), (8, 8)}  # body low-bit, head/tail int8
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net.eval()(x))
    with pytest.raises(ValueError, match="recipe version 2 is not readable"):
        QuantRecipe.from_dict({**recipe.to_dict(), "version": 2})
    with pytest.raises(ValueError, match="unknown fields \\['new_knob'\\]"):
        QuantRecipe.from_dict({**recipe.to_dict(), "new_knob": 1})
    with pytest.raises(ValueError, match="checkpoint format 9"):
        parse_metadata({"format_version": 9, "model": "edsr", "scale": 2})


def test_legacy_training_config_maps_to_the_recipe():
    legacy = {"w_bits": 2, "a_bits": 2, "weight_quantizer": "lsq", "rounding": "soft", "rest_int8": True,
              "qsa_keep": 3, "skip_blocks": None, "iterations": 99, "lr": 1.0, "seed": 7, "removed_flag": 1}
    info = parse_metadata({"model": "imdn", "scale": 4, "model_kwargs": {}, "qat": legacy})
    assert info.recipe == QuantRecipe(w_bits=2, a_bits=2, weight_quantizer="lsq", rounding="soft",
                                      head_tail_bits=8, qsa_keep=3)
    training_fields = {"iterations", "lr", "batch_size", "seed", "distill"}
    assert not training_fields & {f.name for f in dataclasses.fields(QuantRecipe)}


def test_one_loader_for_public_fp_and_quantsr_files(tmp_path):
    net, path = _tiny(tmp_path, checkpoint_metadata("edsr", 2, {"num_block": 2, "num_feat": 8}))
    model, info = load_model_and_info(path)
    assert info.recipe is None and info.model == "edsr" and info.scale == 2 and not quantized_layers(model)
    with pytest.raises(ValueError, match="holds a edsr model, not imdn"):
        load_model(path, model="imdn")
    public = tmp_path / "IMDN_x3.pth"  # a known public file name says its architecture and scale
    torch.save(create_model("imdn", scale=3).state_dict(), public)
    model, info = load_model_and_info(public)
    assert (info.model, info.scale, info.format_version) == ("imdn", 3, None)
    with pytest.raises(ValueError, match="is a x3 checkpoint"):
        load_model(public, scale=4)
    anonymous = tmp_path / "weights.pth"
    torch.save(create_model("edsr", scale=2, num_block=2, num_feat=8).state_dict(), anonymous)
    with pytest.raises(ValueError, match="does not say which architecture"):
        load_model(anonymous)
    assert load_model(anonymous, model="edsr", scale=2, model_kwargs={"num_block": 2, "num_feat": 8}) is not None
