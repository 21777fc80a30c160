import pytest
import torch
from torch import nn

from quantsr.eval.opcount import profile
from quantsr.models.registry import create_model


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.PReLU()  # one FP parameter outside any conv/linear
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.conv2(self.act(self.conv1(x))).mean(dim=(2, 3)))


def conv2_w2a2(fqn, module):
    return (2, 2) if fqn == "conv2" else None


def test_hand_calculation():
    r = profile(Tiny(), (3, 16, 16), bits_fn=conv2_w2a2)
    # conv1: out 8x16x16 = 2048 values, each 3*3*3 = 27 MACs; params 8*27 + 8 = 224
    conv1_macs, conv1_params = 2048 * 27, 8 * 27 + 8
    # conv2: 2048 values, each 8*3*3 = 72 MACs; params 8*72 + 8 = 584 (576 weights, 8 biases)
    conv2_macs, conv2_params = 2048 * 72, 8 * 72 + 8
    # fc: 4 outputs, each 8 MACs; params 4*8 + 4 = 36
    fc_macs, fc_params = 4 * 8, 36
    assert (conv1_macs, conv2_macs, fc_macs) == (55296, 147456, 32)
    rows = {lp.name: lp for lp in r.layers}
    assert [rows[n].macs for n in ("conv1", "conv2", "fc")] == [55296, 147456, 32]
    assert (rows["conv2"].b_w, rows["conv2"].b_a, rows["conv1"].b_w, rows["conv1"].b_a) == (2, 2, 32, 32)
    assert r.macs == 55296 + 147456 + 32 == 202784
    assert r.bitops == conv2_macs * 2 * 2 == 589824
    assert r.flops == conv1_macs + fc_macs == 55328  # 1 MAC = 1 FLOP
    assert r.ops == 55328 + 589824 / 64 == 64544
    assert r.fp32_ops == 202784
    # storage: conv1 224*32 + conv2 (576 weights * 2 bits + 8 biases * 32) + fc 36*32 + PReLU 1*32
    assert r.storage_bits == 224 * 32 + (576 * 2 + 8 * 32) + 36 * 32 + 32 == 9760
    assert r.params == conv1_params + conv2_params + fc_params + 1 == 845
    assert r.fp32_storage_bits == 845 * 32 == 27040
    assert abs(r.ops_reduction_pct - 100 * (1 - 64544 / 202784)) < 1e-9
    assert abs(r.storage_reduction_pct - 100 * (1 - 9760 / 27040)) < 1e-9
    assert rows["act"].kind == "PReLU (params)" and rows["act"].storage_bits == 32

    r2 = profile(Tiny(), (1, 3, 16, 16), bits_fn=conv2_w2a2, flops_per_mac=2)
    assert r2.flops == 2 * 55328 and r2.bitops == 589824 and r2.fp32_ops == 2 * 202784


def test_fp32_has_no_reduction_and_model_is_restored():
    model = Tiny().train()
    r = profile(model, (3, 16, 16))
    assert r.bitops == 0 and r.ops == r.fp32_ops == r.macs
    assert r.ops_reduction_pct == 0 and r.storage_reduction_pct == 0
    assert model.training and not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    d = r.to_dict()
    assert d["ops"] == r.ops and d["layers"][0]["name"] == "conv1" and d["layers"][0]["quantized"] is False
    lines = r.table().splitlines()
    assert len({len(lines[0]), *map(len, lines[2:-1])}) == 1  # aligned columns
    assert "TOTAL" in r.table() and len(r.table(top=1).splitlines()) == 2 + 1 + 2 + 1


class FakeQuantizer(nn.Module):
    def __init__(self, bits):
        super().__init__()
        self.bits = bits
        self.step = nn.Parameter(torch.ones(()))  # FP storage, attributed to the owning layer


class FakeQConv(nn.Conv2d):
    def __init__(self, *a, bits=4, **kw):
        super().__init__(*a, **kw)
        self.weight_quantizer, self.act_quantizer = FakeQuantizer(bits), FakeQuantizer(bits)


class Skippable(nn.Module):
    def __init__(self, skip):
        super().__init__()
        self.skip = skip
        self.conv = FakeQConv(4, 4, 1)

    def forward(self, x):
        return x if self.skip else self.conv(x)


def test_quantizer_attributes_and_pruned_blocks():
    net = nn.Sequential(Skippable(False), Skippable(True))
    r = profile(net, (4, 2, 2))
    (row,) = [lp for lp in r.layers if lp.macs]
    assert (row.name, row.b_w, row.b_a, row.macs) == ("0.conv", 4, 4, 16 * 4)
    assert row.bitops == 64 * 16 and row.flops == 0
    # 16 weights at 4 bits, 4 biases and 2 quantizer steps at 32 bits; the skipped block stores nothing
    assert row.params == 22 and row.storage_bits == 16 * 4 + 6 * 32
    assert r.unused_params == 22 and r.params == 22
    # bits_fn overrides the module's own quantizers
    r = profile(net, (4, 2, 2), bits_fn=lambda n, m: (32, 32) if n == "0.conv" else None)
    assert r.bitops == 0 and r.ops_reduction_pct == 0


class Attn(nn.Module):
    def __init__(self, matmul_bits=None):
        super().__init__()
        self.qkv = nn.Linear(4, 12)
        if matmul_bits is not None:
            self.matmul_bits = matmul_bits

    def forward(self, x):  # x: (1, B, N, 4)
        q, k, v = self.qkv(x[0]).chunk(3, dim=-1)
        attn = torch.bmm(q, k.transpose(1, 2)).softmax(-1)  # (B, N, N), K = 4
        return attn @ v  # (B, N, 4), K = N


def test_matmuls_are_counted():
    r = profile(Attn(), (1, 2, 5, 4))  # 4-D size: batch 1, then (B=2, N=5, C=4)
    rows = {lp.name: lp for lp in r.layers}
    qkv_macs = 2 * 5 * 12 * 4
    mm_macs = 2 * 5 * 5 * 4 + 2 * 5 * 4 * 5  # QK^T + AV
    assert rows["qkv"].macs == qkv_macs and rows["matmul"].macs == mm_macs and rows["matmul"].calls == 2
    assert r.flops == qkv_macs + mm_macs
    rq = profile(Attn(matmul_bits=4), (1, 2, 5, 4))
    assert rq.bitops == mm_macs * 16 and rq.flops == qkv_macs
    rb = profile(Attn(), (1, 2, 5, 4), bits_fn=lambda n, m: (2, 2) if n.endswith("matmul") else None)
    assert rb.bitops == mm_macs * 4


def test_srresnet_w2a2_body():
    """SRResNet x4, body convs W2A2, conv_first/upconv1/upconv2/conv_hr/conv_last FP32, 64x64 -> 256x256."""
    model = create_model("srresnet", scale=4)
    def body_w2a2(name, module):
        return (2, 2) if name.startswith("body.") and name.count(".") == 2 else None

    r = profile(model, (3, 64, 64), bits_fn=body_w2a2)
    lr, mid, hr = 64 * 64, 128 * 128, 256 * 256
    body = 32 * lr * 64 * 576  # 32 convs 64->64 3x3 at LR
    fp = lr * 64 * 27 + lr * 256 * 576 + mid * 256 * 576 + hr * 64 * 576 + hr * 3 * 576
    assert r.macs == body + fp and r.bitops == body * 4 and r.flops == fp
    assert r.params == sum(p.numel() for p in model.parameters()) == 1517571
    body_w = 32 * 64 * 576
    assert r.storage_bits == body_w * 2 + (1517571 - body_w) * 32
    print(f"\nSRResNet x4 W2A2 body, 3x64x64 -> 3x256x256: OPs {r.ops / 1e9:.3f}G vs FP32 {r.fp32_ops / 1e9:.3f}G "
          f"(-{r.ops_reduction_pct:.1f}%), storage {r.storage_bits / 8192:.0f}KB vs {r.fp32_storage_bits / 8192:.0f}KB "
          f"(-{r.storage_reduction_pct:.1f}%); paper: -87.9% / -89.4%")
    # The FP32 upsampler and conv_hr at 128x128/256x256 hold 53% of the MACs, so ops fall by only ~44%
    assert 40 < r.ops_reduction_pct < 48 and 70 < r.storage_reduction_pct < 76


def test_shared_module_counts_macs_per_call_and_params_once():
    conv = nn.Conv2d(2, 2, 1)
    r = profile(nn.Sequential(conv, conv), (2, 3, 3), bits_fn=lambda n, m: (4, 8))
    (row,) = r.layers
    assert (row.name, row.calls, row.macs, row.params) == ("0", 2, 2 * 18 * 2, 6)
    assert row.bitops == row.macs * 32 and row.storage_bits == 4 * 4 + 2 * 32


def test_quantized_swinir_attention_matmuls_at_activation_bits():
    from quantsr.quant import QuantSRConfig, calibrate_, disabled, quantize_

    torch.manual_seed(0)
    model = create_model("swinir_s", scale=2, embed_dim=12, depths=[2], num_heads=[2], window_size=4)
    fp_rows = {lp.name: lp for lp in profile(model, (3, 8, 8)).layers}
    quantize_(model, QuantSRConfig(w_bits=2, a_bits=3))
    calibrate_(model, torch.rand(1, 3, 8, 8))
    rows = {lp.name: lp for lp in profile(model, (3, 8, 8)).layers}
    mm = [n for n in rows if n.endswith("attn.matmul")]
    assert len(mm) == 2 and all(n in fp_rows and fp_rows[n].b_w == 32 for n in mm)
    for n in mm:  # q @ k^T and attn @ v of each block, at the attention quantizers' 3 bits
        assert (rows[n].b_w, rows[n].b_a, rows[n].macs, rows[n].bitops) == (3, 3, fp_rows[n].macs, fp_rows[n].macs * 9)
    assert (rows["layers.0.residual_group.blocks.0.attn.qkv"].b_w, rows["layers.0.conv"].b_a) == (2, 3)
    with disabled(model):  # bypassed quantizers count as FP
        assert profile(model, (3, 8, 8)).bitops == 0


def test_profile_cli_prints_reduction_and_writes_json(tmp_path, capsys):
    import json

    from quantsr.cli import main

    out = tmp_path / "p.json"
    assert main(["profile", "--model", "edsr", "--scale", "2", "--model-kw", "num_block=2", "num_feat=8",
                 "--input", "3x16x16", "--body-bits", "2", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "reduction vs FP32" in text and "W2A2" in text
    data = json.loads(out.read_text())
    assert 0 < data["ops_reduction_pct"] < 100
    with pytest.raises(SystemExit):  # argparse rejects a size that is not CxHxW
        main(["profile", "--model", "edsr", "--input", "64x64"])
