"""The numpy backend: IR graph -> generated Python source calling numpy."""
import numpy as np

from ..base import Backend as _Protocol
from .codegen import CompiledGraph, compile_graph, evaluate, generate, py_name


class Backend(_Protocol):
    """The reference backend: generated straight-line numpy code; device arrays are numpy arrays."""

    name = "numpy"
    host_feeds = True      # numpy arrays are this backend's device arrays: batches need no upload

    def compile(self, graph, donate=()):
        return compile_graph(graph, donate=donate, precision=self.precision)

    def positional(self, compiled, arg_names):
        # the generated function itself: it takes the graph's arguments in the graph's order
        if tuple(arg_names) == compiled.arg_names:
            return compiled.fn
        return super().positional(compiled, arg_names)

    def emit(self, graph) -> str:
        return generate(graph, precision=self.precision)

    def to_device(self, array):
        return array

    def to_numpy(self, value):
        return np.asarray(value)

    def copy(self, value, into=None):
        value = np.asarray(value)
        if into is not None and into is not value and into.shape == value.shape and into.dtype == value.dtype:
            np.copyto(into, value)
            return into
        return value.copy()


__all__ = ["Backend", "CompiledGraph", "compile_graph", "evaluate", "generate", "py_name"]
