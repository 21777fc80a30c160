"""ExecuTorch export on tiny models: the saved .pte runs in the ExecuTorch runtime and agrees with eager."""
import pytest
import torch

from quantsr.export import export_pte, to_deploy_model
from quantsr.export.deploy import ChannelSplitConv, split_output_convs
from quantsr.export.pt2e_quantizer import node_layer_name
from quantsr.models.registry import create_model
from quantsr.quant import QuantSRConfig, calibrate_, quantize_
from quantsr.runtime.pte import PteModule


def tiny_qat(model: str = "imdn", bits: int = 4, seed: int = 0, granularity: str = "per_tensor"):
    torch.manual_seed(seed)
    kwargs = dict(num_feat=32, num_blocks=1) if model == "imdn" else dict(num_feat=8, num_block=2)
    net = quantize_(create_model(model, scale=2, **kwargs), QuantSRConfig(bits, bits, weight_granularity=granularity))
    with torch.no_grad():  # a trained-looking shift, so tau is exercised
        for name, p in net.named_parameters():
            if name.endswith("tau"):
                p.uniform_(-0.05, 0.05)
    calibrate_(net, torch.rand(2, 3, 24, 24))
    return net.eval()


@pytest.mark.parametrize("activations", ["static", "dynamic"])
@pytest.mark.parametrize("bits", [2, 4])
def test_deploy_model_computes_the_fake_quant_model(activations, bits):
    net = tiny_qat(bits=bits)
    deploy, qparams = to_deploy_model(net, activations)
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        want = net(x)
        got = deploy(x)
    if activations == "dynamic":  # floor(u + 1/2) == round(u) off ties: equal up to float ulps
        assert (got - want).abs().max() < 1e-4
    else:  # the static form leaves the rounding to the int8 quantize: only the clamp is in the graph
        assert (got - want).abs().max() < 0.5
    assert set(qparams) == {n for n, m in net.named_modules() if hasattr(m, "act_quantizer")}
    for name, qp in qparams.items():
        layer = net.get_submodule(name)
        levels, _ = layer.integer_weight()
        w = deploy.get_submodule(name).weight
        assert torch.equal(torch.round(w / qp.weight_scale), levels.float())  # int8 container of b-bit levels
        assert levels.min() >= qp.weight_qmin and levels.max() <= qp.weight_qmax
        assert len(torch.unique(levels)) <= 2**bits


@pytest.mark.parametrize("activations", ["static", "dynamic", None])
def test_split_output_convs_compute_the_same_values(activations):
    net = tiny_qat(bits=4)
    if activations is None:  # a float model (fp32 and int8 PTQ exports)
        deploy, qparams = create_model("imdn", scale=2, num_feat=32, num_blocks=1).eval(), None
    else:
        deploy, qparams = to_deploy_model(net, activations)
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        want = deploy(x)
        split_output_convs(deploy, qparams)
        got = deploy(x)
    assert torch.equal(got, want)
    splits = [m for m in deploy.modules() if isinstance(m, ChannelSplitConv)]
    assert len(splits) == 3 and [p.out_channels for p in splits[0].parts] == [8, 24]
    if qparams is not None:  # the parts carry the layer's learned qparams under their own names
        assert "body.0.conv1" not in qparams and qparams["body.0.conv1.parts.0"] == qparams["body.0.conv1.parts.1"]


def test_learned_export_runs_and_agrees(tmp_path):
    net = tiny_qat(bits=4)
    x = torch.rand(1, 3, 24, 24)
    result = export_pte(net, tmp_path / "m.pte", quant="learned", input_size=(3, 24, 24), dynamic=True,
                        max_side=64, check_input=x, min_psnr=35.0)
    assert result.path.exists() and result.bytes == result.path.stat().st_size
    # IMDN's channel split is exported as split convs: with dynamic H/W only shape arithmetic, the pixel
    # shuffle's views (and here the one-input cat of a 1-block body) stay outside XNNPACK
    assert result.delegated_fraction > 0.85, result.non_delegated_ops
    assert not any("slice" in op or "convolution" in op for op in result.non_delegated_ops)
    other = torch.rand(1, 3, 40, 32)  # dynamic H and W
    with torch.no_grad():
        want = net(other)
    got = PteModule(result.path)(other)
    assert got.shape == (1, 3, 80, 64)
    assert (got - want).abs().mean() < 0.01


def test_fp32_and_int8_exports(tmp_path):
    torch.manual_seed(0)
    net = create_model("edsr", scale=2, num_feat=8, num_block=2).eval()
    x = torch.rand(1, 3, 16, 16)
    fp = export_pte(net, tmp_path / "fp.pte", quant="fp32", input_size=(3, 16, 16), dynamic=False, check_input=x)
    assert fp.max_abs_diff < 1e-4 and fp.delegated_fraction > 0.9
    q = export_pte(net, tmp_path / "q.pte", quant="int8", input_size=(3, 16, 16), dynamic=False,
                   calibration=[torch.rand(2, 3, 16, 16) for _ in range(2)], check_input=x)
    assert q.agreement_psnr > 30 and q.bytes < fp.bytes
    with pytest.raises(ValueError, match="calibration"):
        export_pte(net, tmp_path / "x.pte", quant="int8", input_size=(3, 16, 16))


def test_failed_verification_leaves_no_file(tmp_path):
    net = tiny_qat(bits=2)
    with pytest.raises(RuntimeError, match="disagrees"):
        export_pte(net, tmp_path / "m.pte", quant="learned", input_size=(3, 16, 16), dynamic=False,
                   min_psnr=float("inf"))
    assert not list(tmp_path.iterdir())


def test_fp_model_cannot_take_learned_export(tmp_path):
    net = create_model("edsr", scale=2, num_feat=8, num_block=2)
    with pytest.raises(ValueError, match="no quantized layers"):
        export_pte(net, tmp_path / "m.pte", quant="learned", input_size=(3, 16, 16))


def test_layer_names_come_from_weight_attributes():
    net = tiny_qat()
    deploy, qparams = to_deploy_model(net)
    gm = torch.export.export(deploy, (torch.rand(1, 3, 16, 16),)).module()
    names = {node_layer_name(n) for n in gm.graph.nodes if n.op == "call_function" and "conv" in str(n.target)}
    assert set(qparams) <= names


def test_negative_learned_steps_export_with_positive_scales():
    net = tiny_qat(bits=4)
    layer = net.body[0].conv2
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        layer.act_quantizer.step.neg_()  # LSQ steps can cross zero during training
        layer.weight_quantizer.step.neg_()
        want = net(x)
    for activations in ("dynamic", "static"):
        deploy, qparams = to_deploy_model(net, activations)
        assert all(qp.act_scale > 0 and qp.weight_scale > 0 for qp in qparams.values())
        if activations == "dynamic":
            with torch.no_grad():
                assert (deploy(x) - want).abs().max() < 1e-4
