"""Backends: each lowers optimised IR graphs to runnable code.

A backend is an object with `compile(graph) -> callable(dict of arrays) -> dict`
and `emit(graph) -> str` (the generated source, for `--emit`).
"""
from __future__ import annotations


class NumpyBackend:
    name = "numpy"

    def compile(self, graph):
        from .numpy import compile_graph
        return compile_graph(graph)

    def emit(self, graph) -> str:
        from .numpy import generate
        return generate(graph)


BACKENDS = {"numpy": NumpyBackend}


def get_backend(name: str):
    if name == "auto":
        name = "numpy"
    if name not in BACKENDS:
        from ..errors import NNCError, did_you_mean
        raise NNCError(f"unknown backend '{name}'{did_you_mean(name, BACKENDS)} "
                       f"(available: {', '.join(BACKENDS)})")
    return BACKENDS[name]()
