"""Backends: each lowers optimised IR graphs to runnable code.

A backend is a module `nncompiler.backends.<name>` exporting a class `Backend` that
subclasses the protocol in `base.py` (compile a graph to a callable, place and fetch
arrays, run; optional `--emit` stages and summary lines). The runtime's `State`
keeps all state as device arrays between steps.
"""
from __future__ import annotations

import importlib

from ..errors import NNCError, did_you_mean

KNOWN = ("numpy", "triton", "mlir")


def resolve_auto(graph=None) -> str:
    """`auto`: triton when a CUDA GPU and triton are present; else, on the CPU, mlir when
    IREE is installed and the model is big enough to gain from it, numpy otherwise.

    `graph` is the model's forward graph (or its `LoweredModel`, whose train block's batch
    size is then used). Its work is the sum of its nodes' output elements (a matmul's
    multiply-adds, a reduction's input elements) at a batch of 32 rows; above 100,000
    elements the compiled step wins (1.2x to 3.7x on the examples above it), below it
    numpy's lower fixed cost per step wins or ties and IREE's one-time compile (seconds,
    cached on disk) is not worth paying. Without a graph there is nothing to measure: numpy.
    docs/mlir.md has the measurements."""
    try:
        import torch
        import triton  # noqa: F401
        if torch.cuda.is_available():
            return "triton"
    except ImportError:
        pass
    mlir_work, batch = 100_000, 32
    if graph is None:
        return "numpy"
    from .mlir.runtime import iree_available
    if not iree_available():
        return "numpy"
    from .mlir.plan import work, work_terms
    if hasattr(graph, "forward"):  # a LoweredModel
        train = getattr(graph, "train", None)
        if train is not None and isinstance(getattr(train, "batch", None), int):
            batch = train.batch
        graph = graph.forward
    return "mlir" if work(work_terms(graph), {None: batch}) > mlir_work else "numpy"


def get_backend(name: str, precision: str | None = None):
    """A fresh backend object, generating code for matmuls in `precision` (default fp32)."""
    from ..precision import check
    precision = check(precision)
    if name == "auto":
        name = resolve_auto()
    if name not in KNOWN:
        raise NNCError(f"unknown backend '{name}'{did_you_mean(name, KNOWN)} (available: {', '.join(KNOWN)})")
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ImportError as e:
        raise NNCError(f"backend '{name}' is not available: {e}") from None
    from .base import Backend
    make = getattr(module, "Backend", None)
    backend = make() if callable(make) else None
    if not isinstance(backend, Backend):
        raise NNCError(f"backend '{name}' is not available in this version")
    backend.precision = precision
    return backend
