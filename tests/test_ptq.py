"""Post-training quantization baselines (quantsr.quant.ptq) on tiny random models."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from quantsr.data.datasets import PatchDataset
from quantsr.models.registry import create_model
from quantsr.quant import ActQuantizer, QuantSRConfig, calibrate_, quantize_
from quantsr.quant.layers import QUANT_LAYERS
from quantsr.quant.ptq import PTQ_METHODS, calibration_batches, ptq_, weight_quant_error


def _edsr(gaussian: bool = True) -> nn.Module:
    """Tiny EDSR; body weights re-drawn bell-shaped (as trained weights are) unless ``gaussian=False``."""
    torch.manual_seed(0)
    model = create_model("edsr", scale=2, num_feat=16, num_block=2).eval()
    if gaussian:
        with torch.no_grad():
            for block in model.body:
                for conv in (block.conv1, block.conv2):
                    conv.weight.normal_(0.0, 0.05)
    return model


def _calib(n: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(2, 3, 16, 16, generator=g) for _ in range(n)]


def _qlayers(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, QUANT_LAYERS)}


def _acts(model: nn.Module) -> dict[str, ActQuantizer]:
    return {n: m for n, m in model.named_modules() if isinstance(m, ActQuantizer)}


def _rel_err(model: nn.Module, fp: nn.Module, x: torch.Tensor) -> float:
    """Output error relative to the network's own contribution (the output minus its constant RGB-mean offset)."""
    with torch.no_grad():
        y, yq = fp(x), model(x)
    return float((yq - y).norm() / (y - fp.mean).norm())


@pytest.mark.parametrize("method", PTQ_METHODS)
def test_every_quantizer_initialised_and_levels(method):
    fp = _edsr()
    model = ptq_(copy.deepcopy(fp), QuantSRConfig(w_bits=2, a_bits=3), _calib(), method)
    assert not model.training
    assert set(_qlayers(model)) == {f"body.{i}.conv{j}" for i in range(2) for j in (1, 2)}
    acts = _acts(model)
    assert len(acts) == 4 and all(q.is_initialized and bool(q.initialized) for q in acts.values())
    assert all(q.step.item() > 0 and torch.all(q.tau == 0) for q in acts.values())
    # conv1 inputs are signed features, conv2 inputs are post-ReLU: unsigned
    assert bool(model.body[0].conv1.act_quantizer.signed) and not bool(model.body[0].conv2.act_quantizer.signed)
    for layer in _qlayers(model).values():
        assert torch.unique(layer.quantized_weight()).numel() <= 2**2
        assert "forward" not in vars(layer.weight_quantizer) and "forward" not in vars(layer.act_quantizer)
        assert not layer.act_quantizer._forward_pre_hooks
    out = model(_calib(1)[0])  # eval works directly (uninitialised quantizers would raise)
    assert torch.isfinite(out).all()


def test_minmax_steps_formula():
    fp = _edsr()
    calib = _calib()
    model = ptq_(copy.deepcopy(fp), QuantSRConfig(w_bits=4, a_bits=4), calib, "minmax")
    w = fp.body[1].conv2.weight
    wq = model.body[1].conv2.weight_quantizer
    assert wq.step.item() == pytest.approx(w.abs().max().item() / 2**3, rel=1e-6)
    assert torch.all(wq.s == 1) and torch.all(wq.beta == 0)
    # max|W| maps to the top level 2^(b-1) (or -(2^(b-1)-1) after clipping on the negative side)
    levels, _ = model.body[1].conv2.integer_weight()
    assert levels.abs().max().item() in (7, 8) and levels.max() <= 8 and levels.min() >= -7
    # activation steps from the FP inputs of each quantized conv
    seen = {}
    hooks = [fp.body[0].conv1.register_forward_pre_hook(lambda m, i: seen.setdefault("c1", []).append(i[0])),
             fp.body[0].conv2.register_forward_pre_hook(lambda m, i: seen.setdefault("c2", []).append(i[0]))]
    with torch.no_grad():
        for x in calib:
            fp(x)
    for h in hooks:
        h.remove()
    x1, x2 = torch.cat(seen["c1"]), torch.cat(seen["c2"])
    expect1 = max(x1.max().item() / 7, x1.min().item() / -8)  # signed 4-bit: [-8, 7]
    expect2 = x2.max().item() / 15  # unsigned 4-bit: [0, 15]
    assert model.body[0].conv1.act_quantizer.step.item() == pytest.approx(expect1, rel=1e-5)
    assert model.body[0].conv2.act_quantizer.step.item() == pytest.approx(expect2, rel=1e-5)


def test_percentile_steps_not_larger_than_minmax():
    fp = _edsr()
    cfg = QuantSRConfig(w_bits=4, a_bits=4)
    mm = ptq_(copy.deepcopy(fp), cfg, _calib(), "minmax")
    pc = ptq_(copy.deepcopy(fp), cfg, _calib(), "percentile", percentile=99.0)
    strict = 0
    for name, layer in _qlayers(mm).items():
        other = _qlayers(pc)[name]
        assert other.weight_quantizer.step <= layer.weight_quantizer.step
        assert other.act_quantizer.step <= layer.act_quantizer.step * (1 + 1e-6)
        assert bool(other.act_quantizer.signed) == bool(layer.act_quantizer.signed)
        strict += int(other.act_quantizer.step < layer.act_quantizer.step * 0.99)
    assert strict >= 2  # 99th percentile clips real tails
    full = ptq_(copy.deepcopy(fp), cfg, _calib(), "percentile", percentile=100.0)
    for name, layer in _qlayers(mm).items():  # the 100th percentile is the min/max (up to the histogram bin)
        assert _qlayers(full)[name].act_quantizer.step.item() == pytest.approx(layer.act_quantizer.step.item(),
                                                                               rel=1e-3)


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
def test_w8a8_close_to_fp_and_w2a2_worse(method):
    fp = _edsr()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    err8 = _rel_err(ptq_(copy.deepcopy(fp), QuantSRConfig(8, 8), _calib(), method), fp, x)
    err2 = _rel_err(ptq_(copy.deepcopy(fp), QuantSRConfig(2, 2), _calib(), method), fp, x)
    assert err8 < 0.02
    assert err2 > 3 * err8


def test_mse_lowers_weight_error_at_2_bits():
    fp = _edsr()
    cfg = QuantSRConfig(w_bits=2, a_bits=2)
    mm = ptq_(copy.deepcopy(fp), cfg, _calib(), "minmax")
    ms = ptq_(copy.deepcopy(fp), cfg, _calib(), "mse")
    assert weight_quant_error(ms) < 0.8 * weight_quant_error(mm)
    for name, layer in _qlayers(mm).items():  # mse includes the minmax candidate: never worse per layer
        other = _qlayers(ms)[name]
        assert (other.quantized_weight() - other.weight).square().sum() <= \
            (layer.quantized_weight() - layer.weight).square().sum() + 1e-12
        assert other.weight_quantizer.step <= layer.weight_quantizer.step


def test_lsq_matches_calibrate():
    fp = _edsr()
    calib = _calib()
    model = ptq_(copy.deepcopy(fp), QuantSRConfig(3, 3), iter(calib), "lsq")  # a one-shot iterator is fine
    ref = quantize_(copy.deepcopy(fp), QuantSRConfig(3, 3))
    calibrate_(ref, torch.cat(calib))
    for (name, q), (_, r) in zip(_acts(model).items(), _acts(ref).items()):
        assert q.step.item() == pytest.approx(r.step.item(), rel=1e-6), name
        assert bool(q.signed) == bool(r.signed)
    for layer in _qlayers(model).values():
        w = layer.weight
        assert layer.weight_quantizer.step.item() == pytest.approx(2 * w.abs().mean().item() / 3**0.5, rel=1e-6)


def test_swinir_attention_quantizers_calibrated():
    torch.manual_seed(0)
    fp = create_model("swinir_s", scale=2, embed_dim=12, depths=[2], num_heads=[2], window_size=4).eval()
    model = ptq_(fp, QuantSRConfig(4, 4), [torch.rand(1, 3, 8, 8)], "mse", bins=256, grid=20)
    acts = _acts(model)
    assert any(n.endswith("attn_act") for n in acts) and all(q.is_initialized for q in acts.values())
    attn = next(q for n, q in acts.items() if n.endswith("attn_act"))
    assert not bool(attn.signed)  # softmax output
    assert torch.isfinite(model(torch.rand(1, 3, 8, 8))).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        ptq_(_edsr(), QuantSRConfig(), _calib(), "kl")
    with pytest.raises(ValueError, match="percentile"):
        ptq_(_edsr(), QuantSRConfig(), _calib(), "percentile", percentile=0)
    with pytest.raises(ValueError, match="calibration batch"):
        ptq_(_edsr(), QuantSRConfig(), [], "minmax")


def test_calibration_batches(rgb_folder):
    data = PatchDataset([rgb_folder], scale=2, lr_patch=8, batch_size=3)
    batches = list(calibration_batches(data, 2))
    assert len(batches) == 2 and batches[0].shape == (3, 3, 8, 8)
    assert torch.equal(batches[1], data.batch(1)[0])
    assert 0.0 <= float(batches[0].min()) and float(batches[0].max()) <= 1.0


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse", "lsq"])
def test_oriented_steps_mirror_channels_with_large_negative_weights(method):
    model = _edsr()
    with torch.no_grad():
        model.body[0].conv1.weight[:4, 0, 0, 0] = -1.0  # four channels with one large negative weight
    oriented = ptq_(copy.deepcopy(model), QuantSRConfig(2, 8, weight_granularity="per_channel_oriented"),
                    _calib(), method=method)
    plain = ptq_(copy.deepcopy(model), QuantSRConfig(2, 8, weight_granularity="per_channel"), _calib(),
                 method=method)
    step = oriented.body[0].conv1.weight_quantizer.step.detach().flatten()
    assert bool((step[:4] < 0).all())  # mirrored: their extra level on the negative side
    assert weight_quant_error(oriented) < weight_quant_error(plain)


@pytest.mark.parametrize("method", ["minmax", "mse"])
def test_per_channel_steps_follow_each_channel(method):
    model = _edsr()
    with torch.no_grad():
        model.body[0].conv1.weight[0] *= 20  # one channel 20x wider than the rest
    per_channel = ptq_(copy.deepcopy(model), QuantSRConfig(4, 8, weight_granularity="per_channel"), _calib(),
                       method=method)
    per_tensor = ptq_(copy.deepcopy(model), QuantSRConfig(4, 8), _calib(), method=method)
    step = per_channel.body[0].conv1.weight_quantizer.step.detach().flatten()
    assert step.shape == (16,) and float(step[0]) > 5 * float(step[1:].max())
    assert weight_quant_error(per_channel) < weight_quant_error(per_tensor)
