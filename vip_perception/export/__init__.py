"""ONNX export of (ViP) models with ViP's upsampling as Resize(linear, asymmetric)."""
from .onnx_export import DEFAULT_OPSET, ExportCheck, export_onnx, prepare_for_export, verify_onnx
from .resize import resize_vip

__all__ = ["DEFAULT_OPSET", "ExportCheck", "export_onnx", "prepare_for_export", "resize_vip", "verify_onnx"]
