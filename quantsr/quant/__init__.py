"""QuantSR+ low-bit quantization: RBD weight quantizer, redistributed LSQ activation quantizer, quantized
layers and ``quantize_(model, config)`` (see ``docs/METHOD.md``, "RBD")."""
from quantsr.quant.api import (
    MixedConfig,
    QuantSRConfig,
    W8A8Config,
    calibrate_,
    is_body_layer,
    quantize_,
    quantized_layers,
)
from quantsr.quant.layers import QConv2d, QLinear, is_quantized_attention, quantize_attention_
from quantsr.quant.quantizers import (
    ActQuantizer,
    LSQWeightQuantizer,
    RBDWeightQuantizer,
    disabled,
    round_soft,
    round_ste,
    sign_clip_ste,
    soft_round_grad,
)

__all__ = [
    "ActQuantizer",
    "LSQWeightQuantizer",
    "MixedConfig",
    "QConv2d",
    "QLinear",
    "QuantSRConfig",
    "RBDWeightQuantizer",
    "W8A8Config",
    "calibrate_",
    "disabled",
    "is_body_layer",
    "is_quantized_attention",
    "quantize_",
    "quantize_attention_",
    "quantized_layers",
    "round_soft",
    "round_ste",
    "sign_clip_ste",
    "soft_round_grad",
]
