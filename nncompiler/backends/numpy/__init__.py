"""The numpy backend: IR graph -> generated Python source calling numpy."""
from .codegen import CompiledGraph, compile_graph, evaluate, generate, py_name

__all__ = ["CompiledGraph", "compile_graph", "evaluate", "generate", "py_name"]
