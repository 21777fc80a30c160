"""Export trained models to device artifacts: ExecuTorch ``.pte`` (XNNPACK) and Core ML ``.mlpackage``.

Heavy backends (executorch, torchao, coremltools) are imported inside the functions that need them.
"""
from quantsr.export.deploy import LayerQParams, to_deploy_model
from quantsr.export.pte import PteExport, PteModule, export_pte

__all__ = ["LayerQParams", "PteExport", "PteModule", "export_pte", "to_deploy_model"]
