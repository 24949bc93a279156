"""The numpy backend: IR graph -> generated Python source calling numpy."""
from .codegen import CompiledGraph, compile_graph, evaluate, generate, py_name


class Backend:
    """The reference backend: generated straight-line numpy code; device arrays are numpy arrays."""

    name = "numpy"

    def compile(self, graph, donate=()):
        return compile_graph(graph, donate=donate)

    def emit(self, graph) -> str:
        return generate(graph)

    def to_device(self, array):
        return array

    def to_numpy(self, value):
        import numpy as np
        return np.asarray(value)


__all__ = ["Backend", "CompiledGraph", "compile_graph", "evaluate", "generate", "py_name"]
