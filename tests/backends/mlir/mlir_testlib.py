"""Shared helpers for the MLIR backend's tests (a uniquely named module: tests/ has
several conftest.py files, so `from conftest import ...` would be ambiguous).

IREE compiles take seconds, so every example is compiled once per session, as the
single module `nnc compile --emit mlir` prints (predict, train_step, evaluate and
gradients together; `Backend.compile` then reuses its functions), and the tests share
it. Compiled modules are also cached on disk (tests/conftest.py: one directory per test session).
Tests that run code skip, with the install hint, when IREE is not importable.
"""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.backends.mlir.runtime import iree_available
from nncompiler.ir.shapes import NUMPY_DTYPE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
EXAMPLES = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(ROOT, "examples", "*.nn")))

requires_iree = pytest.mark.skipif(
    not iree_available(), reason="IREE is not installed (pip install 'nncompiler[mlir]')")


def example_path(name: str) -> str:
    return os.path.join(ROOT, "examples", f"{name}.nn")


class Pair:
    """An example compiled by both backends, plus a few batches of its data."""

    def __init__(self, name: str):
        self.name = name
        path = example_path(name)
        cwd = os.getcwd()
        os.chdir(ROOT)  # train blocks name their data relative to the repository
        try:
            self.np = nnc.compile(path, backend="numpy")
            self.mlir = nnc.compile(path, backend="mlir")
            self.data = self._data()
        finally:
            os.chdir(cwd)
        self.functions = self.mlir.backend.compile_model(self.mlir)

    def _data(self) -> dict:
        low = self.np.lowered
        if low.kind == "model":
            from nncompiler.train.dataset import training_data
            data = training_data(low, low.train, None)
            return {k: np.asarray(v)[:48] for k, v in data.items()}
        rng = np.random.default_rng(0)
        feeds = {}
        for name, ty in low.inputs.items():
            shape = [d if isinstance(d, int) else 3 for d in ty.shape]
            if ty.dtype == "bool":
                feeds[name] = rng.random(shape) < 0.5
            elif ty.dtype in ("i32", "i64"):
                feeds[name] = rng.integers(0, 3, shape).astype(NUMPY_DTYPE[ty.dtype])
            else:
                feeds[name] = rng.standard_normal(shape).astype(NUMPY_DTYPE[ty.dtype])
        return feeds


_PAIRS: dict[str, Pair] = {}


def get_pair(name: str) -> Pair:
    """An example's Pair, compiled once per session."""
    if name not in _PAIRS:
        _PAIRS[name] = Pair(name)
    return _PAIRS[name]
