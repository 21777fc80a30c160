"""Core ML export on tiny models: palettized learned weights decompress to the trained ones bit for bit, and the
compacted program (shared consts, short names, split ops, small tensors inline) computes the deploy model."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from test_export_pte import tiny_qat

from quantsr.export.coreml import INLINE_MAX_BYTES, _decompressed_consts, _grid_lut, export_coreml
from quantsr.models.registry import create_model


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



def test_exact_int8_codes_shift_a_channel_that_reaches_128():
    from quantsr.export.coreml import _exact_int8

    scales = (0.013, 0.021, 0.0071)
    levels = np.stack([np.arange(-127, 129), np.arange(-128, 128), np.arange(-100, 156) % 50]).astype(np.float32)
    weight = (levels * np.asarray(scales, dtype=np.float32)[:, None]).reshape(3, 256, 1, 1)
    codes, zero_point, scale = _exact_int8(weight, scales)
    assert codes.dtype == np.int8 and list(zero_point) == [-1, 0, 0]
    assert np.array_equal((codes.astype(np.float32) - zero_point[:, None, None, None]) * scale[:, None, None, None],
                          weight)
    with pytest.raises(ValueError, match="256 codes"):
        _exact_int8(weight, (scales[0] / 2,) + scales[1:])  # channel 0 at half its step: 511 levels
    positive = (np.arange(1, 129, dtype=np.float32) * np.float32(0.5)).reshape(1, 128, 1, 1)
    codes, zero_point, _ = _exact_int8(positive, (0.5,))  # levels [1, 128]: the smallest shift, -1
    assert list(zero_point) == [-1] and codes.min() == 0 and codes.max() == 127

def test_coreml_export_palettizes_learned_weights_exactly(tmp_path):
    sizes = {}
    for bits in (2, 4):
        net = tiny_qat(bits=bits)
        out = export_coreml(net, tmp_path / f"w{bits}.mlpackage", input_size=(3, 24, 24))
        assert out.weights_exact and out.path.is_dir() and out.int8_layers
        consts = _decompressed_consts(out.path)
        learned = {name: module for name, module in net.named_modules() if hasattr(module, "act_quantizer")}
        assert set(out.mil_names) == set(learned)
        for name, module in learned.items():
            weight = consts[out.mil_names[name]]  # the decompressed palettized weight, renamed short
            assert len(np.unique(weight)) <= 2**bits and weight.shape == tuple(module.weight.shape)
        sizes[bits] = out.bytes
    fp = export_coreml(create_model("imdn", scale=2, num_feat=32, num_blocks=1), tmp_path / "fp.mlpackage",
                       input_size=(3, 24, 24), quantize_rest=False)
    assert not fp.weights_exact and not fp.palettized
    assert sizes[2] < sizes[4] < fp.bytes
    assert not list(tmp_path.glob(".*"))  # no temp dirs left behind



def test_per_channel_weight_steps_palettize_one_table_per_channel(tmp_path):
    from coremltools.models.utils import load_spec

    from quantsr.export.deploy import to_deploy_model
    from quantsr.quant.layers import QConv2d

    net = tiny_qat(bits=4, granularity="per_channel")
    layer = next(m for m in net.modules() if isinstance(m, QConv2d))
    with torch.no_grad():  # a negative step flips its channel's levels to [-8, 7]: its table starts lower
        layer.weight_quantizer.step[0] *= -1
        top = 100 * layer.weight.abs().max()  # clips to the top level, 8, in channel 0 (flipped: -8) and 1
        layer.weight[0, 0], layer.weight[1, 0] = -top, top
    levels, _ = layer.integer_weight()
    assert int(levels[0].max()) == int(levels[1].max()) == 8
    out = export_coreml(net, tmp_path / "pc.mlpackage", input_size=(3, 24, 24))
    assert out.weights_exact  # the saved package's decompressed weights == the trained ones, bit for bit
    assert load_spec(str(out.path)).specificationVersion == 9  # iOS 18: per-channel lookup tables
    consts = _decompressed_consts(out.path)
    deploy, _ = to_deploy_model(net, "dynamic")
    widest = 0
    for name in out.mil_names:
        weight = consts[out.mil_names[name]]
        assert np.array_equal(weight, deploy.get_submodule(name).weight.detach().numpy())
        assert all(len(np.unique(channel)) <= 16 for channel in weight)  # each channel: its own 16-entry table
        widest = max(widest, len(np.unique(weight)))
    assert widest > 16  # more values than one per-tensor table could hold
    assert out.bytes < export_coreml(create_model("imdn", scale=2, num_feat=32, num_blocks=1), tmp_path /
                                     "fp.mlpackage", input_size=(3, 24, 24), quantize_rest=False).bytes


def test_per_channel_int8_head_and_tail_are_exact_int8_codes(tmp_path):
    """W4A8 with an int8 head/tail, all per channel: the 4-bit body palettized per channel, the 8-bit layers as
    int8 codes with their trained scales (a 256-entry table per channel would cost 1 KiB each)."""
    from coremltools.models.utils import load_spec

    from quantsr.quant import calibrate_
    from quantsr.quant.recipe import QuantRecipe, build_quantized_

    torch.manual_seed(0)
    net = build_quantized_(create_model("imdn", scale=2, num_feat=32, num_blocks=1),
                           QuantRecipe(w_bits=4, a_bits=8, weight_granularity="per_channel", head_tail_bits=8))
    calibrate_(net, torch.rand(2, 3, 24, 24))
    out = export_coreml(net.eval(), tmp_path / "w4a8.mlpackage", input_size=(3, 24, 24))
    assert out.weights_exact
    eight_bit = {name for name, m in net.named_modules() if getattr(m, "w_bits", None) == 8}
    assert eight_bit and {f"p_{n.replace('.', '_')}_weight" for n in eight_bit} <= set(out.int8_layers)
    fn = load_spec(str(out.path)).mlProgram.functions["main"]
    ops = [op.type for op in fn.block_specializations[fn.opset].operations]
    assert ops.count("constexpr_affine_dequantize") >= len(eight_bit) and "constexpr_lut_to_dense" in ops

def test_export_cli_writes_verified_artifacts_and_cards(tmp_path):
    import json

    from quantsr.cli import main
    from quantsr.train.checkpoint import save_atomic

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
    pte_card = json.loads((out / "tiny.pte.json").read_text())
    assert 0.5 < pte_card["delegated_fraction"] <= 1 and isinstance(pte_card["non_delegated_ops"], dict)
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(out)]) == 1  # a failure, not usage


def _run_mil(path, x: np.ndarray) -> np.ndarray:
    """A small fp32 interpreter (torch ops) for the MIL ops of an exported IMDN (int8 activations included), to
    run a package on Linux."""
    import coremltools as ct
    import coremltools.optimize as cto
    import torch.nn.functional as F
    from coremltools.converters.mil.frontend.milproto.load import load

    mlmodel = cto.coreml.decompress_weights(ct.models.MLModel(str(path), skip_model_load=True))
    spec = mlmodel.get_spec()
    fn = load(spec, specification_version=spec.specificationVersion, file_weights_dir=mlmodel.weights_dir
              ).functions["main"]
    env = {v: torch.from_numpy(x) for v in fn.inputs.values()}
    binary = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "maximum": torch.maximum, "pow": torch.pow}
    unary = {"floor": torch.floor, "sqrt": torch.sqrt, "sigmoid": torch.sigmoid, "relu": torch.relu}
    for op in fn.operations:
        if op.op_type == "const":
            continue
        c = {k: v.val for k, v in op.inputs.items() if not isinstance(v, (list, tuple))}
        t = {k: env[v] if v in env else torch.from_numpy(np.array(v.val, dtype=np.float32))
             for k, v in op.inputs.items() if k in ("x", "y", "weight", "bias")}
        if op.op_type == "conv":
            pad = [int(p) for p in c["pad"]] if c["pad_type"] == "custom" else [0, 0, 0, 0]
            assert c["pad_type"] in ("custom", "valid") and pad[0] == pad[1] and pad[2] == pad[3]
            out = F.conv2d(t["x"], t["weight"], t.get("bias"), stride=tuple(int(s) for s in c["strides"]),
                           padding=(pad[0], pad[2]), dilation=tuple(int(d) for d in c["dilations"]),
                           groups=int(c["groups"]))
        elif op.op_type in binary:
            out = binary[op.op_type](t["x"], t["y"])
        elif op.op_type in unary:
            out = unary[op.op_type](t["x"])
        elif op.op_type == "clip":
            out = torch.clamp(t["x"], float(c["alpha"]), float(c["beta"]))
        elif op.op_type == "leaky_relu":
            out = F.leaky_relu(t["x"], float(c["alpha"]))
        elif op.op_type == "reduce_mean":
            out = t["x"].mean(dim=tuple(int(a) for a in c["axes"]), keepdim=bool(c["keep_dims"]))
        elif op.op_type == "concat":
            out = torch.cat([env[v] for v in op.inputs["values"]], dim=int(c["axis"]))
        elif op.op_type == "pixel_shuffle":
            out = F.pixel_shuffle(t["x"], int(c["upscale_factor"]))
        elif op.op_type == "quantize":  # round half to even, as torch and Core ML do
            zero = 0 if op.zero_point is None else int(np.asarray(op.zero_point.val))
            lo, hi = (-128, 127) if op.output_dtype.val == "int8" else (0, 255)
            out = torch.clamp(torch.round(env[op.input] / float(op.scale.val)) + zero, lo, hi)
        elif op.op_type == "dequantize":
            zero = 0 if op.zero_point is None else int(np.asarray(op.zero_point.val))
            out = (env[op.input] - zero) * float(op.scale.val)
        elif op.op_type == "cast":  # fp32 I/O around the fp16 program: interpreted in fp32 throughout
            out = t["x"]
        elif op.op_type == "split":
            for v, o in zip(op.outputs, torch.split(t["x"], [int(s) for s in c["split_sizes"]], int(c["axis"]))):
                env[v] = o
            continue
        else:
            raise NotImplementedError(op.op_type)
        env[op.outputs[0]] = out
    return env[fn.outputs[0]].numpy()


@pytest.mark.parametrize("bits", [2, 4])
def test_coreml_program_is_compact_and_computes_the_deploy_model(tmp_path, bits):
    from coremltools.models.utils import load_spec
    from coremltools.proto import MIL_pb2

    from quantsr.export.deploy import to_deploy_model

    net = tiny_qat(bits=bits)
    out = export_coreml(net, tmp_path / "m.mlpackage", input_size=(3, 24, 24), quantize_rest=False)
    assert out.weights_exact
    assert not (out.path / "executorch_debug_handle_mapping.json").exists()
    spec = load_spec(str(out.path))
    fn = spec.mlProgram.functions["main"]
    ops = fn.block_specializations[fn.opset].operations
    assert spec.specificationVersion == 8  # iOS 17
    assert [i.name for i in spec.description.input] == ["lr"] and [o.name for o in spec.description.output] == ["sr"]
    assert not [op for op in ops if op.type == "slice_by_index"]  # the IMDB channel slices are split ops
    assert len([op for op in ops if op.type == "conv"]) == len([m for m in net.modules() if isinstance(m, nn.Conv2d)])
    consts = [op.attributes["val"] for op in ops if op.type == "const"]
    assert len({c.SerializeToString() for c in consts}) == len(consts)  # every constant stored once
    itemsize = {MIL_pb2.FLOAT32: 4, MIL_pb2.FLOAT16: 2, MIL_pb2.INT8: 1, MIL_pb2.UINT8: 1}
    blobs = [v for op in ops for v in op.attributes.values() if v.HasField("blobFileValue")]
    assert blobs and all(np.prod([d.constant.size for d in v.type.tensorType.dimensions])
                         * itemsize[v.type.tensorType.dataType] > INLINE_MAX_BYTES for v in blobs)
    names = [o.name for op in ops for o in op.outputs]
    assert len(set(names)) == len(names) and max(len(n) for n in names) <= 3
    # the compacted program computes what the deploy model computes (prescale as a multiply-add included)
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = to_deploy_model(net, "dynamic")[0](x).numpy()
    np.testing.assert_allclose(_run_mil(out.path, x.numpy()), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("target", ["iOS17", "iOS18"])
def test_int8_activation_package_holds_and_computes_the_static_int8_program(tmp_path, target):
    """W8A8 Core ML: the program's codes and qparams, 4-bit low-bit weights on iOS 18, and (interpreted) what the
    integer-faithful model of the program computes, to within float rounding of the scales."""
    from coremltools.models.utils import load_spec

    from quantsr.export.coreml_int8 import export_coreml_int8
    from quantsr.export.int8_program import static_int8_graph
    from quantsr.quant.int8_graph import integer_faithful

    net = tiny_qat(bits=4)
    g = torch.Generator().manual_seed(1)
    converted = static_int8_graph(net, [torch.rand(1, 3, 24, 24, generator=g) for _ in range(3)], max_side=64)
    out = export_coreml_int8(converted, tmp_path / "m.mlpackage", input_size=(3, 24, 24), target=target)
    assert out.codes_exact and out.qparams_exact and out.activation_quantizers > 20
    learned = len([m for m in net.modules() if type(m).__name__ == "QConv2d"])
    # IMDN's split output convs make more 4-bit tensors than learned layers
    assert (out.weight_bits.get("4", 0) >= learned) if target == "iOS18" else "4" not in out.weight_bits
    assert load_spec(str(out.path)).specificationVersion == (8 if target == "iOS17" else 9)
    x = torch.rand(1, 3, 24, 24, generator=g)
    with torch.no_grad():
        want = integer_faithful(converted).eval()(x).numpy()
    got = _run_mil(out.path, x.numpy())
    assert np.mean(np.abs(got - want) < 1.5 / 255) > 0.95 and np.abs(got - want).max() < 0.1
