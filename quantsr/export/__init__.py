"""Export trained models to device artifacts: ExecuTorch ``.pte`` (XNNPACK) and Core ML ``.mlpackage``, each
verified and given a model card (docs/deploy.md). ``pipeline``: ``export_checkpoint`` (``quantsr export``);
``pte`` / ``coreml``: the two backends; ``deploy``: the fake-quant -> fixed-quant graph transforms;
``pt2e_quantizer``: the PT2E quantizers; ``model_card``: the card written beside each artifact.

Heavy backends (executorch, torchao, coremltools) are imported inside the functions that need them.
"""
from quantsr._lazy import lazy_exports

_EXPORTS = {
    "LayerQParams": "deploy",
    "to_deploy_model": "deploy",
    "PteExport": "pte",
    "export_pte": "pte",
    "export_coreml": "coreml",
    "export_checkpoint": "pipeline",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
