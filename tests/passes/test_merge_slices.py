"""merge_slices: one activation over neighbouring slices gives every element the value the
per-slice activations gave (checked against float64 numpy), and it leaves alone what it
should not merge."""
from pathlib import Path

import numpy as np
import pytest

from nncompiler.backends.numpy.codegen import compile_graph
from nncompiler.ir import Builder, TensorType, parse_graph
from nncompiler.passes.merge_slices import merge_slices

CASE = Path(__file__).parent / "cases" / "merge_slices_one_sigmoid_for_the_gates.ir"


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_merged_activations_equal_the_per_slice_ones():
    text = "\n".join(line for line in CASE.read_text().splitlines() if not line.startswith("#"))
    g = parse_graph(text, str(CASE))
    out, record = merge_slices(g)
    assert out.op_counts()["sigmoid"] == 1 and out.op_counts()["tanh"] == 1
    z = (np.random.default_rng(0).standard_normal((3, 8)) * 4).astype(np.float32)
    zd = z.astype(np.float64)
    want = {"a": _sigmoid(zd[:, 0:2]) * np.tanh(zd[:, 4:6]), "b": _sigmoid(zd[:, 2:4]) + _sigmoid(zd[:, 6:8])}
    before, after = compile_graph(g)({"z": z}), compile_graph(out)({"z": z})
    for k in want:
        np.testing.assert_array_equal(after[k], before[k])       # elementwise: the same bits
        np.testing.assert_allclose(after[k], want[k], rtol=1e-6)


def _two_slices(ranges, op="sigmoid", width=16, step=1):
    b = Builder("g")
    z = b.argument("z", "input", TensorType("f32", ("B", width)))
    outs = {}
    for k, (lo, hi) in enumerate(ranges):
        s = b.slice(z, start=(0, lo), stop=(None, hi), step=(1, step))
        outs[f"y{k}"] = b.emit(op, (s,))
    return b.build(outs)


@pytest.mark.parametrize("graph", [
    _two_slices([(0, 2), (0, 2)]),              # one range: nothing to merge
    _two_slices([(0, 2), (12, 14)]),             # 8 unread columns between 4 read ones
    _two_slices([(0, 4), (4, 8)], op="exp"),     # exp can overflow on columns no one reads
    _two_slices([(0, 4), (4, 8)], step=2),       # strided slices
])
def test_what_it_does_not_merge(graph):
    out, record = merge_slices(graph)
    assert out is graph and not record.changed
