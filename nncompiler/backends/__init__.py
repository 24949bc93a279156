"""Backends: each lowers optimised IR graphs to runnable code.

A backend is a module `nncompiler.backends.<name>` exporting a class `Backend` with

    compile(graph) -> callable(dict of argument name -> device array) -> dict of outputs
    emit(graph) -> str                 the generated source, for `--emit`
    to_device(np.ndarray) -> device array      (numpy: identity; triton: a CUDA tensor; ...)
    to_numpy(device array) -> np.ndarray

The `Model` keeps all state as device arrays between steps.
"""
from __future__ import annotations

import importlib

from ..errors import NNCError, did_you_mean

KNOWN = ("numpy", "triton", "mlir")


def resolve_auto() -> str:
    """`auto`: triton when a CUDA GPU and triton are present, else numpy."""
    try:
        import torch
        import triton  # noqa: F401
        if torch.cuda.is_available():
            return "triton"
    except ImportError:
        pass
    return "numpy"


def get_backend(name: str):
    if name == "auto":
        name = resolve_auto()
    if name not in KNOWN:
        raise NNCError(f"unknown backend '{name}'{did_you_mean(name, KNOWN)} (available: {', '.join(KNOWN)})")
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ImportError as e:
        raise NNCError(f"backend '{name}' is not available: {e}") from None
    if not hasattr(module, "Backend"):
        raise NNCError(f"backend '{name}' is not available in this version")
    return module.Backend()
