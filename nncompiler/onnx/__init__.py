"""ONNX in and out: import a ModelProto into nnc's IR, export a model's inference graph."""
from __future__ import annotations

from .importer import OnnxImportError

__all__ = ["OnnxImportError", "import_onnx", "export_onnx"]


def import_onnx(source, trainable: bool = False, loss: str | None = None, input_shapes=None):
    """(LoweredModel, initial weights by parameter/buffer name); `nncompiler.from_onnx` makes the Model."""
    from .model import lowered_from_onnx
    return lowered_from_onnx(source, trainable=trainable, loss=loss, input_shapes=input_shapes)


def export_onnx(model, path, opset: int = 17):
    from .export import export_onnx as _export
    return _export(model, path, opset=opset)
