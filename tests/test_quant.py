"""QuantSR+ quantizers and quantize_ (docs/method.md, "RBD weight quantizer" and "Which layers are
quantized")."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from quantsr.models.archs.swinir import WindowAttention
from quantsr.models.registry import create_model
from quantsr.quant import (
    ActQuantizer,
    LSQWeightQuantizer,
    MixedConfig,
    QConv2d,
    QLinear,
    QuantSRConfig,
    RBDWeightQuantizer,
    W8A8Config,
    calibrate_,
    disabled,
    is_quantized_attention,
    quantize_,
    quantize_attention_,
    quantized_layers,
    round_soft,
    round_ste,
    shift_only,
    soft_round_grad,
)


def _reference(w: torch.Tensor, a: torch.Tensor, b: int) -> torch.Tensor:
    return a * torch.clamp(torch.round(w / a), -(2 ** (b - 1) - 1), 2 ** (b - 1))


# ------------------------------------------------------------------------------------------- (1) RBD identity
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rbd_identity_with_unit_s_zero_beta(bits, dtype):
    g = torch.Generator().manual_seed(bits)
    w = torch.randn(32, 8, 3, 3, generator=g, dtype=dtype)
    for scale in (1.0, 0.3):  # also a step that makes many weights clip at both ends
        q = RBDWeightQuantizer(bits, w).to(dtype)
        with torch.no_grad():
            q.step.mul_(scale * 3.0 if bits == 8 else scale)
        a = q.step.detach()
        out = q(w)
        assert torch.equal(out, _reference(w, a, bits))
        levels, step = q.integer_weight(w)
        assert levels.dtype == torch.int32
        assert torch.equal(step * levels, out.detach())
        assert levels.min() >= -(2 ** (bits - 1) - 1) and levels.max() <= 2 ** (bits - 1)
        # plain LSQ with the same level set agrees at init
        lsq = LSQWeightQuantizer(bits, w).to(dtype)
        lsq.step.data.copy_(q.step.data)
        assert torch.equal(lsq(w), out)


def test_rbd_levels_cover_skewed_grid():
    q = RBDWeightQuantizer(2)
    q.step.data.fill_(1.0)
    w = torch.tensor([-5.0, -1.2, -0.2, 0.3, 0.8, 1.7, 9.0])
    assert q(w).tolist() == [-1.0, -1.0, 0.0, 0.0, 1.0, 2.0, 2.0]


# ------------------------------------------------------------------------------------------- (2) <= 2^b values
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_rbd_at_most_2b_values_after_training(bits):
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(16, 8, 3, 3))
    q = RBDWeightQuantizer(bits, w)
    target = torch.randn_like(w) * 0.5
    opt = torch.optim.Adam([w, *q.parameters()], lr=0.05)
    s0, beta0 = q.s.detach().clone(), q.beta.detach().clone()
    for _ in range(5):
        opt.zero_grad()
        loss = (q(w) - target).pow(2).mean()
        loss.backward()
        opt.step()
        out = q(w)
        assert out.unique().numel() <= 2**bits
        levels, step = q.integer_weight(w)
        assert torch.equal(step * levels, out.detach())
        assert levels.min() >= -(2 ** (bits - 1) - 1) and levels.max() <= 2 ** (bits - 1)
    assert not torch.equal(q.s.detach(), s0) and not torch.equal(q.beta.detach(), beta0)


# ------------------------------------------------------------------------------------------- (3) gradients
def _finite_nonzero(t: torch.Tensor | None) -> bool:
    return t is not None and bool(torch.isfinite(t).all()) and bool((t != 0).any())


def test_gradients_reach_rbd_and_act_parameters():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(8, 4, 3, 3))
    q = RBDWeightQuantizer(3, w)
    (q(w) * torch.randn_like(w)).sum().backward()
    for t in (w.grad, q.step.grad, q.s.grad, q.beta.grad):
        assert _finite_nonzero(t)
    assert (q.s.grad != 0).all() and (q.beta.grad != 0).all()

    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    act = ActQuantizer(4, 4, channel_dim=-3).train()
    (act(x) * torch.randn_like(x)).sum().backward()
    for t in (x.grad, act.tau.grad, act.step.grad):
        assert _finite_nonzero(t)
    assert act.tau.grad.shape == (4,) and (act.tau.grad != 0).all()


def test_act_out_of_range_gradients_go_to_step_only():
    act = ActQuantizer(2, 1, channel_dim=-1).train()
    act(torch.tensor([[-1.0, 1.0]]))  # init: signed, Qn=-2, Qp=1
    act.step.data.fill_(1.0)
    x = torch.tensor([[-5.0, 0.3, 4.0]], requires_grad=True)
    y = act(x)
    assert y.tolist() == [[-2.0, 0.0, 1.0]]
    y.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0]]
    g = 1.0 / math.sqrt(3 * 1)
    # LSQ: d/da = Qn + (round(v) - v) + Qp for the three entries, times g
    assert act.step.grad.item() == pytest.approx(g * (-2.0 + (0.0 - 0.3) + 1.0), rel=1e-5)


def test_weight_step_gradient_is_lsq_scaled():
    w = torch.tensor([0.2, 0.9, 5.0])
    q = LSQWeightQuantizer(2, w)  # levels [-1, 2]
    q.step.data.fill_(1.0)
    q(w).sum().backward()
    g = 1.0 / math.sqrt(3 * 1)
    assert q.step.grad.item() == pytest.approx(g * ((0 - 0.2) + (1 - 0.9) + 2.0), rel=1e-5)


# ------------------------------------------------------------------------------------------- (4) signed decision
def test_act_range_decided_at_first_batch_and_kept():
    pos = ActQuantizer(3, 2, channel_dim=-3).train()
    pos(torch.rand(2, 2, 4, 4))
    assert pos.initialized.item() and not pos.signed.item() and pos.qrange() == (0, 7)
    step = pos.step.item()
    assert step == pytest.approx(2 * 0.5 / math.sqrt(7), rel=0.3)
    y = pos(-torch.rand(2, 2, 4, 4) - 0.1)  # negative later: stays unsigned, clipped at 0
    assert not pos.signed.item() and (y == 0).all() and pos.step.item() == step

    neg = ActQuantizer(3, 2, channel_dim=-3).train()
    neg(torch.randn(2, 2, 4, 4))
    assert neg.signed.item() and neg.qrange() == (-4, 3)
    neg(torch.rand(2, 2, 4, 4))
    assert neg.signed.item()

    # the decision survives a state-dict round trip (python-side cache is refreshed on load)
    fresh = ActQuantizer(3, 2, channel_dim=-3).eval()
    fresh.load_state_dict(neg.state_dict())
    assert fresh.qrange() == (-4, 3)
    fresh(torch.randn(1, 2, 3, 3))


def test_act_uninitialized_eval_raises_and_calibrate():
    act = ActQuantizer(4, 3).eval()
    with pytest.raises(RuntimeError, match="not initialised"):
        act(torch.rand(1, 3, 2, 2))
    model = nn.Sequential(QConv2d(3, 4, 3, padding=1, w_bits=2, a_bits=2)).eval()
    calibrate_(model, torch.rand(1, 3, 6, 6))
    assert not model.training and not model[0].act_quantizer.training
    assert model[0].act_quantizer.is_initialized
    model(torch.rand(1, 3, 6, 6))


def test_set_range_set_step_and_disabled():
    act = ActQuantizer(3, 2, channel_dim=-3).eval()
    act.set_range(0.5, signed=True)
    assert act.is_initialized and act.initialized.item() and act.signed.item() and act.qrange() == (-4, 3)
    assert act.step.item() == 0.5
    x = torch.tensor([-3.0, -0.3, 0.2, 0.8, 9.0]).reshape(1, 1, 1, 5).expand(1, 2, 1, 5)
    assert act(x)[0, 0, 0].tolist() == [-2.0, -0.5, 0.0, 1.0, 1.5]
    act.set_range(torch.tensor(0.25), signed=False)  # re-deciding is allowed; the python cache follows
    assert act.qrange() == (0, 7) and not act.signed.item() and act.step.item() == 0.25
    fresh = ActQuantizer(3, 2, channel_dim=-3).eval()
    fresh.load_state_dict(act.state_dict())
    assert fresh.is_initialized and fresh.qrange() == (0, 7)

    w = torch.tensor([0.2, -0.9, 5.0])
    wq = LSQWeightQuantizer(2, w)  # levels [-1, 2]
    wq.set_step(0.5)
    assert wq.step.item() == 0.5 and wq(w).tolist() == [0.0, -0.5, 1.0]

    layer = QConv2d(2, 2, 1, w_bits=2, a_bits=2).eval()
    model = nn.Sequential(layer, ActQuantizer(4, 2)).eval()  # the bare ActQuantizer stays uninitialised
    assert layer.act_quantizer.enabled and layer.weight_quantizer.enabled
    layer.act_quantizer.enabled = False  # a per-quantizer switch is kept across a disabled() block
    with disabled(model) as m:
        assert m is model and not any(q.enabled for q in (layer.act_quantizer, layer.weight_quantizer, model[1]))
        x = torch.randn(1, 2, 3, 3)
        torch.testing.assert_close(model(x), nn.functional.conv2d(x, layer.weight, layer.bias))
    assert not layer.act_quantizer.enabled and layer.weight_quantizer.enabled and model[1].enabled
    with pytest.raises(KeyError), disabled(model):
        raise KeyError  # restored on error too
    assert layer.weight_quantizer.enabled and model[1].enabled
    with pytest.raises(RuntimeError, match="not initialised"):
        model(x)


def test_shift_only_keeps_tau_and_drops_the_rounding():
    act = ActQuantizer(2, 2, channel_dim=-3).eval()
    act.set_range(0.5, signed=False)
    with torch.no_grad():
        act.tau.copy_(torch.tensor([0.1, -0.2]))
    x = torch.tensor([0.03, 0.4, 9.0]).reshape(1, 1, 1, 3).expand(1, 2, 1, 3)
    quantized = act(x)
    with shift_only([act]):
        # x + tau per channel, neither rounded nor clipped at the top level (1.5)
        torch.testing.assert_close(act(x), x + act.tau.view(1, 2, 1, 1))
    torch.testing.assert_close(act(x), quantized)
    with pytest.raises(KeyError), shift_only([act]):
        raise KeyError  # restored on error too
    assert not act.shift_only and act(x)[0, 0, 0].tolist() == [0.0, 0.5, 1.5]


def test_tau_broadcasts_per_channel():
    conv_act = ActQuantizer(8, 3, channel_dim=-3).train()
    conv_act(torch.rand(2, 3, 4, 4))
    conv_act.tau.data.copy_(torch.tensor([0.0, 10.0, 0.0]))
    y = conv_act(torch.zeros(2, 3, 4, 4))
    assert (y[:, 1] > 0).all() and (y[:, 0] == 0).all()
    lin_act = ActQuantizer(8, 5, channel_dim=-1).train()
    lin_act(torch.rand(2, 7, 5))
    lin_act.tau.data[2] = 10.0
    y = lin_act(torch.zeros(2, 7, 5))
    assert (y[..., 2] > 0).all() and (y[..., 0] == 0).all()


# ------------------------------------------------------------------------------------------- (5) quantize_
def _fwd_bwd(model: nn.Module, x: torch.Tensor, scale: int, may_be_dead: tuple[str, ...] = ()) -> None:
    """Forward + backward; every quantized layer gets finite gradients, nonzero except under ``may_be_dead``
    (IMDN's CCA squeeze: one channel after a ReLU on a 1x1 pooled input can be dead for a whole batch)."""
    model.train()
    y = model(x)
    assert y.shape == (x.shape[0], 3, x.shape[2] * scale, x.shape[3] * scale)
    y.mean().backward()
    for name, m in model.named_modules():
        if isinstance(m, (QConv2d, QLinear)):
            if any(d in name for d in may_be_dead):
                assert torch.isfinite(m.weight.grad).all() and torch.isfinite(m.weight_quantizer.step.grad).all()
                continue
            assert _finite_nonzero(m.weight.grad) and _finite_nonzero(m.weight_quantizer.step.grad)
            assert _finite_nonzero(m.act_quantizer.step.grad)
            assert m.act_quantizer.tau.grad is not None and torch.isfinite(m.act_quantizer.tau.grad).all()


def test_quantize_edsr_body_only():
    torch.manual_seed(0)
    model = create_model("edsr", scale=2, num_block=2, num_feat=16)
    x = torch.rand(1, 3, 8, 8)
    ref = model(x)
    w_ref = model.body[0].conv1.weight.detach().clone()
    assert quantize_(model, QuantSRConfig(w_bits=2, a_bits=2)) is model
    expected = {f"body.{i}.conv{j}" for i in range(2) for j in (1, 2)}
    assert set(quantized_layers(model)) == expected
    assert all(type(m) is nn.Conv2d for n, m in model.named_modules() if n in {"conv_first", "conv_after_body",
                                                                              "conv_last", "upsample.0"})
    assert torch.equal(model.body[0].conv1.weight, w_ref)  # weight copied
    _fwd_bwd(model, x, 2)
    assert model(x).shape == ref.shape


def test_quantize_imdn_body_only():
    torch.manual_seed(0)
    model = create_model("imdn", scale=2, num_feat=16, num_blocks=2)
    quantize_(model, QuantSRConfig(w_bits=3, a_bits=3, rounding="soft"))
    names = {f"body.{i}.{c}" for i in range(2) for c in
             ("conv1", "conv2", "conv3", "conv4", "conv_fuse", "cca.conv_squeeze", "cca.conv_excite")}
    assert set(quantized_layers(model)) == names
    assert type(model.conv_fuse) is nn.Conv2d and type(model.upsample[0]) is nn.Conv2d
    _fwd_bwd(model, torch.rand(1, 3, 8, 8), 2, may_be_dead=(".cca.",))


def _small_swinir():
    return create_model("swinir_s", scale=2, embed_dim=12, depths=[2, 2], num_heads=[2, 2], window_size=4)


def test_quantize_swinir_groups_and_attention():
    torch.manual_seed(0)
    model = _small_swinir()
    quantize_(model, QuantSRConfig(w_bits=2, a_bits=4))
    expected = {f"layers.{i}.conv" for i in range(2)}
    for i in range(2):
        for j in range(2):
            p = f"layers.{i}.residual_group.blocks.{j}"
            expected |= {f"{p}.attn.qkv", f"{p}.attn.proj", f"{p}.mlp.fc1", f"{p}.mlp.fc2"}
    assert set(quantized_layers(model)) == expected
    attns = [m for m in model.modules() if isinstance(m, WindowAttention)]
    assert len(attns) == 4 and all(is_quantized_attention(m) for m in attns)
    assert all(isinstance(getattr(m, h), ActQuantizer) for m in attns for h in WindowAttention.ACT_HOOKS)
    assert all(m.attn_act.tau is None and m.q_act.tau.shape == (6,) for m in attns)
    for name in ("conv_first", "conv_after_body", "upsample.0"):
        assert type(model.get_submodule(name)) is nn.Conv2d
    _fwd_bwd(model, torch.rand(1, 3, 8, 8), 2)
    a = attns[1]
    assert not a.attn_act.signed.item() and a.q_act.signed.item()
    for m in (a.q_act, a.k_act, a.v_act, a.attn_act):
        assert _finite_nonzero(m.step.grad)
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)


def test_attention_quantizers_sit_at_the_matmul_inputs():
    torch.manual_seed(0)
    attn = WindowAttention(12, 4, 2)
    nn.init.normal_(attn.relative_position_bias_table, std=0.5)
    x = torch.randn(4, 16, 12)
    mask = torch.where(torch.rand(2, 16, 16) > 0.5, 0.0, -100.0)
    ref = [attn(x, m) for m in (None, mask)]
    qattn = quantize_attention_(copy.deepcopy(attn), a_bits=4)
    assert set(qattn.state_dict()) - set(attn.state_dict()) == {
        f"{h}.{p}" for h in ("q_act", "k_act", "v_act") for p in ("tau", "step", "initialized", "signed")
    } | {"attn_act.step", "attn_act.initialized", "attn_act.signed"}
    # What each hook sees, against the operands computed by hand (q after the 1/sqrt(d) scale).
    seen = {}
    for h in WindowAttention.ACT_HOOKS:
        getattr(qattn, h).register_forward_pre_hook(lambda mod, inp, h=h: seen.__setitem__(h, inp[0].clone()))
    with disabled(qattn):  # bypassed quantizers: the float forward, bit for bit
        for m, r in zip((None, mask), ref):
            assert torch.equal(qattn(x, m), r)
    qkv = attn.qkv(x).reshape(4, 16, 3, 2, 6).permute(2, 0, 3, 1, 4).reshape(3, 8, 16, 6)
    torch.testing.assert_close(seen["q_act"], qkv[0] * 6**-0.5)
    torch.testing.assert_close(seen["k_act"], qkv[1])
    torch.testing.assert_close(seen["v_act"], qkv[2])
    probs = seen["attn_act"]
    assert probs.shape == (8, 16, 16) and (probs >= 0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(8, 16))
    # Quantized: each hook's output is what goes into the matmuls.
    calibrate_(qattn, x, mask)
    assert all(getattr(qattn, h).is_initialized for h in WindowAttention.ACT_HOOKS)
    assert not torch.equal(qattn(x, mask), ref[1])


# ------------------------------------------------------------------------------------------- (6) configs
def test_w8a8_and_mixed_bits_per_layer():
    model = create_model("edsr", scale=2, num_block=2, num_feat=16)
    quantize_(model, W8A8Config())
    bits = quantized_layers(model)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert set(bits) == set(convs) and set(bits.values()) == {(8, 8)}
    assert isinstance(model.conv_first.weight_quantizer, LSQWeightQuantizer)
    assert model.conv_first.weight_quantizer.level_range == (-127, 127)

    model = create_model("edsr", scale=2, num_block=2, num_feat=16)
    quantize_(model, MixedConfig(body_bits=(2, 3)))
    bits = quantized_layers(model)
    assert set(bits) == set(convs)
    for name, b in bits.items():
        assert b == ((2, 3) if name.startswith("body.") else (8, 8)), name
    assert isinstance(model.body[0].conv1.weight_quantizer, RBDWeightQuantizer)
    assert isinstance(model.conv_last.weight_quantizer, LSQWeightQuantizer)
    _fwd_bwd(model, torch.rand(1, 3, 8, 8), 2)

    model = _small_swinir()
    quantize_(model, MixedConfig(body_bits=(2, 2)))
    bits = quantized_layers(model)
    assert bits["conv_first"] == (8, 8) and bits["layers.0.conv"] == (2, 2)
    attn = model.layers[0].residual_group.blocks[0].attn
    assert {getattr(attn, h).bits for h in WindowAttention.ACT_HOOKS} == {2}

    model = create_model("edsr", scale=2, num_block=2, num_feat=16)
    quantize_(model, QuantSRConfig(weight_quantizer="lsq"), filter_fn=lambda m, n: n == "conv_last")
    assert quantized_layers(model) == {"conv_last": (4, 4)}
    with pytest.raises(ValueError):
        QuantSRConfig(w_bits=1)
    with pytest.raises(ValueError):
        QuantSRConfig(rounding="nearest")


def test_from_float_copies_layer():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    q = QConv2d.from_float(conv, QuantSRConfig(w_bits=8, a_bits=8))
    assert torch.equal(q.weight, conv.weight) and torch.equal(q.bias, conv.bias) and q.groups == 2
    assert q.weight is not conv.weight
    lin = nn.Linear(5, 3, bias=False)
    ql = QLinear.from_float(lin, QuantSRConfig())
    assert ql.bias is None and torch.equal(ql.weight, lin.weight)
    x = torch.randn(2, 7, 5)
    ql.train()(x)
    assert ql.act_quantizer.tau.shape == (5,)


# ------------------------------------------------------------------------------------------- (7) rounding grads
def test_soft_round_gradient_formula():
    u = torch.tensor([-1.3, -0.5, 0.0, 0.25, 0.5, 0.9, 2.7], requires_grad=True)
    y = round_soft(u)
    assert torch.equal(y, torch.round(u.detach()))
    y.sum().backward()
    k = 1.0
    for ui, gi in zip(u.detach().tolist(), u.grad.tolist()):
        frac = ui - math.floor(ui)
        expected = k * (1 - math.tanh(k * (frac - 0.5)) ** 2) / (2 * math.tanh(k / 2))
        assert gi == pytest.approx(expected, rel=1e-6)
    assert soft_round_grad(torch.tensor(0.5)).item() == pytest.approx(1 / (2 * math.tanh(0.5)))
    # mean slope over one period is 1, like the STE
    grid = torch.linspace(0, 1, 10001)[:-1]
    assert soft_round_grad(grid).mean().item() == pytest.approx(1.0, rel=1e-3)

    v = torch.tensor([0.3, 1.6], requires_grad=True)
    round_ste(v).sum().backward()
    assert v.grad.tolist() == [1.0, 1.0]


def test_soft_rounding_in_act_quantizer():
    act = ActQuantizer(4, 1, channel_dim=-1, rounding="soft").train()
    act(torch.tensor([[0.0, 1.0]]))
    act.step.data.fill_(0.5)
    x = torch.tensor([[0.1, 0.6, 1.3, 3.0]], requires_grad=True)
    act(x).sum().backward()
    expected = soft_round_grad(x.detach() / 0.5)
    torch.testing.assert_close(x.grad, expected)


def test_quantizer_math_stays_fp32_under_bf16_autocast():
    from quantsr.quant import ActQuantizer, RBDWeightQuantizer

    torch.manual_seed(0)
    w = torch.randn(8, 4, 3, 3)
    wq = RBDWeightQuantizer(4, w)
    act = ActQuantizer(4)
    x = torch.randn(2, 4, 5, 5)
    act.train()
    ref_w = wq(w)
    act(x)  # the first training forward fixes the activation range and step
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_w, out_x = wq(w), act(x.bfloat16())
    assert out_w.dtype == torch.float32 and torch.equal(out_w, ref_w)
    assert out_x.dtype == torch.float32
    torch.testing.assert_close(out_x, act(x.bfloat16().float()))


@pytest.mark.parametrize("kind", ["rbd", "lsq", "lsq_sym"])
def test_per_channel_weight_steps(kind):
    from quantsr.quant.quantizers import make_weight_quantizer

    torch.manual_seed(0)
    weight = torch.randn(6, 4, 3, 3) * torch.tensor([1, 10, 1, 100, 1, 1.0]).reshape(6, 1, 1, 1)
    wq = make_weight_quantizer(kind, 4, weight, "per_channel")
    assert wq.step.shape == (6, 1, 1, 1)
    per_tensor = make_weight_quantizer(kind, 4, weight)
    # each channel's step follows its own magnitude: the 100x channel's step is ~100x the 1x channels'
    assert float(wq.step.detach()[3] / wq.step.detach()[0]) > 30
    levels, step = wq.integer_weight(weight)
    torch.testing.assert_close(wq(weight), step * levels.float())
    lo, hi = wq.level_range
    assert int(levels.min()) >= lo and int(levels.max()) <= hi
    # the small channels keep their detail instead of rounding to zero on the big channel's grid
    error = lambda q: float((q(weight) - weight)[0].abs().mean())  # noqa: E731
    assert error(wq) < 0.5 * error(per_tensor)
    wq(weight).sum().backward()
    assert wq.step.grad is not None and wq.step.grad.shape == (6, 1, 1, 1)
    wq.set_step(0.5)
    assert torch.all(wq.step == 0.5)
    wq.set_step(torch.arange(1, 7.0))
    assert float(wq.step[5]) == 6.0


@pytest.mark.parametrize("kind", ["rbd", "lsq"])
def test_oriented_grid_mirrors_the_channels_whose_largest_weights_are_negative(kind):
    from quantsr.quant.quantizers import make_weight_quantizer

    torch.manual_seed(0)
    base = torch.randn(1, 8, 3, 3) * 0.1
    base[0, 0, 0, 0] = 1.0  # one large positive weight
    weight = torch.cat([base, -base])  # channel 1 is channel 0 mirrored: its large weight is negative
    plain = make_weight_quantizer(kind, 2, weight, "per_channel")
    oriented = make_weight_quantizer(kind, 2, weight, "per_channel_oriented")
    step = oriented.step.detach().flatten()
    assert float(step[0]) > 0 and float(step[1]) == -float(step[0])
    error = lambda q: (q(weight) - weight).square().flatten(1).sum(1)  # noqa: E731
    # the skewed grid {-1, 0, 1, 2} a clips the mirrored channel's large weight; mirrored, it fits as channel 0
    assert float(error(plain)[1]) > float(error(plain)[0])
    torch.testing.assert_close(error(oriented)[1], error(oriented)[0])
    levels, steps = oriented.integer_weight(weight)
    torch.testing.assert_close(oriented(weight), steps * levels.float())
    mirrored = torch.round(oriented(weight)[1] / step[1].abs()).detach()
    assert float(mirrored.min()) == -2 and float(mirrored.max()) <= 1  # the mirrored grid {-2, -1, 0, 1} |a|
    assert "per_channel_oriented" in oriented.extra_repr()
    with pytest.raises(ValueError, match="needs per-channel steps"):
        type(oriented)(2, weight, per_channel=False, oriented=True)


def test_the_cli_offers_every_weight_granularity_and_the_recipe_keeps_oriented_signs():
    from quantsr.cli.parser import build_parser
    from quantsr.quant.quantizers import WEIGHT_GRANULARITIES
    from quantsr.quant.recipe import QuantRecipe, build_quantized_

    for granularity in WEIGHT_GRANULARITIES:
        args = build_parser().parse_args(["quantize", "--model", "edsr", "--out", "x",
                                          "--weight-granularity", granularity])
        assert args.weight_granularity == granularity
    recipe = QuantRecipe(w_bits=2, head_tail_bits=8, weight_granularity="per_channel_oriented")
    model = build_quantized_(create_model("edsr", scale=2, num_feat=8, num_block=2), recipe)
    x = torch.rand(1, 3, 8, 8)
    calibrate_(model, x)
    layer = next(m for m in model.modules() if isinstance(m, QConv2d) and m.w_bits == 2)
    with torch.no_grad():
        layer.weight_quantizer.step[1] *= -1
    again = build_quantized_(create_model("edsr", scale=2, num_feat=8, num_block=2),
                             QuantRecipe.from_dict(recipe.to_dict()))
    again.load_state_dict(model.state_dict())  # a mirrored channel is a negative step: nothing else to restore
    assert all(m.weight_quantizer.oriented for m in again.modules() if isinstance(m, QConv2d))
    model.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_per_channel_granularity_through_configs_and_recipe():
    from quantsr.quant.recipe import QuantRecipe, build_quantized_

    with pytest.raises(ValueError, match="weight_granularity must be one of"):
        QuantSRConfig(weight_granularity="per_group")
    model = build_quantized_(create_model("edsr", scale=2, num_feat=8, num_block=2),
                             QuantRecipe(head_tail_bits=8, weight_granularity="per_channel"))
    layers = [m for m in model.modules() if isinstance(m, QConv2d)]
    assert layers and all(m.weight_quantizer.step.shape[0] == m.out_channels for m in layers)
    # a state dict written per channel loads into the same recipe's model (the step shapes match)
    again = build_quantized_(create_model("edsr", scale=2, num_feat=8, num_block=2),
                             QuantRecipe(head_tail_bits=8, weight_granularity="per_channel"))
    again.load_state_dict(model.state_dict())
