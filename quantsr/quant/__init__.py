"""QuantSR+ low-bit quantization: the RBD weight quantizer and redistributed LSQ activation quantizer
(``quantizers``), quantized layers (``layers``), ``quantize_(model, config)`` (``quantize``) with its configs
(``configs``), the versioned recipe a low-bit checkpoint stores (``recipe``), one activation quantizer per call
of a shared block (``call_sites``), PTQ baselines (``ptq``) and the int8 PTQ passes on an FP net (``gptq``: GPTQ
weight rounding; ``equalize``: activation equalization over the channel classes of ``scale_classes``).
See docs/method.md, "RBD weight quantizer" and "Activation quantizer"."""
from quantsr._lazy import lazy_exports

_EXPORTS = {
    "ActQuantizer": "quantizers",
    "LSQWeightQuantizer": "quantizers",
    "RBDWeightQuantizer": "quantizers",
    "disabled": "quantizers",
    "shift_only": "quantizers",
    "round_soft": "quantizers",
    "round_ste": "quantizers",
    "sign_clip_ste": "quantizers",
    "soft_round_grad": "quantizers",
    "QConv2d": "layers",
    "QLinear": "layers",
    "is_quantized_attention": "layers",
    "quantize_attention_": "layers",
    "MixedConfig": "configs",
    "QuantSRConfig": "configs",
    "W8A8Config": "configs",
    "is_body_layer": "configs",
    "calibrate_": "quantize",
    "quantize_": "quantize",
    "quantized_layers": "quantize",
    "QuantRecipe": "recipe",
    "equalize_activations_": "equalize",
    "gptq_int8_weights_": "gptq",
    "build_quantized_": "recipe",
    "check_call_site_steps": "call_sites",
    "has_call_site_steps": "call_sites",
    "tied_copy": "call_sites",
    "untie_call_sites_": "call_sites",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
