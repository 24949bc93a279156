"""Every ```nn snippet in the language reference (dsl/**/*.md) compiles, and runs where it can.

A graph block without inputs is evaluated; a model block has its training step
derived and optimised; a block with inputs is compiled and its graphs derived.
"""
from __future__ import annotations

import pathlib
import re

import pytest

import nncompiler as nnc

ROOT = pathlib.Path(__file__).resolve().parents[1] / "dsl"
FENCE = re.compile(r"^```nn\n(.*?)^```", re.S | re.M)


def _snippets():
    for path in sorted(ROOT.rglob("*.md")):
        for i, m in enumerate(FENCE.finditer(path.read_text())):
            line = path.read_text()[: m.start()].count("\n") + 2
            yield pytest.param(m.group(1), id=f"{path.relative_to(ROOT)}:{line}")


SNIPPETS = list(_snippets())


def test_the_reference_has_snippets():
    assert len(SNIPPETS) >= 10


@pytest.mark.parametrize("source", SNIPPETS)
def test_snippet(source):
    for m in nnc.compile_all(source):
        low = m.lowered
        m.graph("predict")
        if low.kind == "model":
            m.graph("train_step")
        elif not low.inputs:
            out = m.forward()
            assert out is not None


def test_every_function_has_a_runnable_snippet():
    from nncompiler.library import (ACTIVATIONS, INITIALIZERS, LAYERS, LOSSES, METRICS, OPTIMIZERS,
                                    REGULARIZERS)
    from nncompiler.library.tensor_ops import TENSOR_OPS
    text = "\n".join(p.values[0] for p in SNIPPETS)
    missing = [name for table in (LAYERS, ACTIVATIONS, TENSOR_OPS, LOSSES, METRICS, OPTIMIZERS, INITIALIZERS,
                                  REGULARIZERS)
               for name in table if not re.search(rf"\b{name}\b", text)]
    assert not missing, f"functions without a snippet in dsl/: {missing}"
