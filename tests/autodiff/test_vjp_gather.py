"""The gather / scatter_add primitives (embedding lookups, integer-tensor indexing, flips):
type rules, numpy codegen, and both VJP rules against torch.autograd (float32) and central
differences (float64), as tests/autodiff/test_vjp.py does for the other primitives.

    gather(x, indices) {axis}            np.take(x, indices, axis, mode="clip")
    scatter_add(u, indices) {axis, shape}  zeros(shape); out[.., indices[j], ..] += u[.., j, ..]

Indices outside [0, n) are clamped (XLA's gather convention); each op's VJP is the other.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nncompiler.autodiff import VJP, grad
from nncompiler.backends.numpy import compile_graph
from nncompiler.errors import ShapeError
from nncompiler.ir import PRIMITIVES, Builder, parse_graph, print_graph, verify
from nncompiler.ir.primitives import infer_type
from nncompiler.ir.shapes import TensorType

try:
    from tests.oracle import (adjoint_check, draw_cotangent_weight, finite_differences, op_graph, ours,
                              ours_f64, type_of)
except ImportError:  # tests/ itself is on sys.path
    from oracle import adjoint_check, draw_cotangent_weight, finite_differences, op_graph, ours, ours_f64, type_of

RTOL, ATOL = 1e-4, 1e-5
FD_RTOL, FD_ATOL = 1e-6, 1e-8


def _clamped(idx, n):
    return torch.tensor(np.clip(np.asarray(idx), 0, n - 1), dtype=torch.int64)


def torch_gather(x, idx, axis):
    axis = axis % x.dim()
    flat = torch.index_select(x, axis, _clamped(idx, x.shape[axis]).reshape(-1))
    return flat.reshape(tuple(x.shape[:axis]) + np.shape(idx) + tuple(x.shape[axis + 1:]))


def torch_scatter_add(u, idx, axis, shape):
    axis = axis % len(shape)
    k = np.ndim(idx)
    updates = u.reshape(tuple(shape[:axis]) + (-1,) + tuple(u.shape[axis + k:]))
    return torch.zeros(tuple(shape), dtype=u.dtype).index_add(axis, _clamped(idx, shape[axis]).reshape(-1), updates)


def torch_op(op, ts, attrs, idx):
    if op == "gather":
        return torch_gather(ts[0], idx, attrs["axis"])
    return torch_scatter_add(ts[0], idx, attrs["axis"], attrs["shape"])


I = np.int32
rng = np.random.default_rng(7)

# (id, op, float operand shape, indices, attrs)
CASES = [
    ("gather-rows-repeated", "gather", (5, 3), I([0, 3, 3, 1]), {"axis": 0}),
    ("gather-2d-indices-axis1", "gather", (2, 5, 3), I([[4, 0], [4, 4]]), {"axis": 1}),
    ("gather-neg-axis", "gather", (2, 4), I([3, 0, 3]), {"axis": -1}),
    ("gather-scalar-index", "gather", (4, 2), I(2), {"axis": 0}),
    ("gather-rank1-scalar-out", "gather", (6,), I(5), {"axis": 0}),
    ("gather-size1-axis", "gather", (1, 3), I([0, 0, 0]), {"axis": 0}),
    ("gather-clamped", "gather", (4, 2), I([-3, 7, 1]), {"axis": 0}),
    ("gather-i64-indices", "gather", (3, 4), np.array([[2], [0]], np.int64), {"axis": 1}),
    ("scatter-rows-repeated", "scatter_add", (4, 3), I([0, 3, 3, 1]), {"axis": 0, "shape": (5, 3)}),
    ("scatter-2d-indices-axis1", "scatter_add", (2, 2, 2, 3), I([[4, 0], [4, 4]]), {"axis": 1, "shape": (2, 5, 3)}),
    ("scatter-neg-axis", "scatter_add", (2, 3), I([3, 0, 3]), {"axis": -1, "shape": (2, 4)}),
    ("scatter-scalar-index", "scatter_add", (2,), I(2), {"axis": 0, "shape": (4, 2)}),
    ("scatter-clamped", "scatter_add", (3, 2), I([-3, 7, 1]), {"axis": 0, "shape": (4, 2)}),
    ("scatter-size1", "scatter_add", (3,), I([0, 0, 0]), {"axis": 0, "shape": (1,)}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_forward_and_gradient_match_torch_and_finite_differences(case, dtype):
    _, op, shape, idx, attrs = case
    x = rng.standard_normal(shape).astype(np.float32 if dtype == "f32" else np.float64)
    g = op_graph(op, [type_of(x), type_of(idx)], attrs, weight=False)
    out_t = g.output("out").type
    assert out_t.dtype == dtype
    r = draw_cotangent_weight(tuple(out_t.shape), dtype)
    out, (gx, gi) = ours(op, [x, idx], attrs, r)
    assert gi is None                                       # indices get no gradient

    t = torch.from_numpy(x.copy()).requires_grad_(True)
    t_out = torch_op(op, [t], attrs, idx)
    (t_out * torch.from_numpy(np.asarray(r))).sum().backward()
    assert out.dtype == x.dtype and out.shape == tuple(t_out.shape)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg="forward vs torch")
    assert gx.dtype == x.dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, t.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg="gradient vs torch")

    g64 = ours_f64(op, [x, idx], attrs, r)[0]
    fd = finite_differences(op, [x, idx], attrs, r)[0]
    np.testing.assert_allclose(g64, fd, rtol=FD_RTOL, atol=FD_ATOL, err_msg="f64 gradient vs finite differences")


def test_repeated_indices_accumulate():
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    r = np.ones((4, 2), np.float32)
    _, (gx, _) = ours("gather", [x, I([2, 0, 2, 2])], {"axis": 0}, r)
    np.testing.assert_array_equal(gx, [[1, 1], [0, 0], [3, 3]])


def test_the_two_rules_are_each_others_transpose():
    # <J.u, v> = <u, J^T.v> through gather followed by scatter_add, in float64
    b = Builder("pair")
    x = b.argument("x", "input", TensorType("f64", (4, 3)))
    idx = b.argument("i", "input", TensorType("i32", (2, 2)))
    gath = b.gather(x, idx, axis=0)
    back = b.scatter_add(b.mul(gath, gath), idx, axis=0, shape=(4, 3))
    g = b.build({"out": back})
    args = {"x": rng.standard_normal((4, 3)), "i": I([[1, 3], [3, 0]])}
    lhs, rhs = adjoint_check(g, "out", ["x"], args)
    assert lhs == pytest.approx(rhs, rel=1e-6)


def test_rules_are_registered():
    for op in ("gather", "scatter_add"):
        assert op in PRIMITIVES and op in VJP
        assert PRIMITIVES[op].differentiable and PRIMITIVES[op].kind == "movement"


# ---- type rules ---------------------------------------------------------------------------

F = lambda *s: TensorType("f32", s)  # noqa: E731


@pytest.mark.parametrize("op,ins,attrs,shape", [
    ("gather", [F(5, 3), TensorType("i32", (2, 4))], {"axis": 0}, (2, 4, 3)),
    ("gather", [F(5, 3), TensorType("i64", ())], {"axis": -1}, (5,)),
    ("gather", [F("B", 7), TensorType("i32", ("B", "T"))], {"axis": 1}, ("B", "B", "T")),
    ("scatter_add", [F("B", 2, 3), TensorType("i32", ("B", 2))], {"axis": 0, "shape": (10, 3)}, (10, 3)),
    ("scatter_add", [F(4, "N"), TensorType("i32", ("N",))], {"axis": 1, "shape": (4, "M")}, (4, "M")),
])
def test_type_rule(op, ins, attrs, shape):
    assert infer_type(op, ins, attrs) == TensorType("f32", shape)


@pytest.mark.parametrize("op,ins,attrs,pattern", [
    ("gather", [F(5, 3), F(2)], {"axis": 0}, "indices must be i32 or i64, got f32"),
    ("gather", [F(5, 3), TensorType("bool", (2,))], {"axis": 0}, "indices must be i32 or i64"),
    ("gather", [F(5, 3), TensorType("i32", (2,))], {"axis": 2}, "axis 2 is out of range"),
    ("gather", [F(), TensorType("i32", (2,))], {"axis": 0}, "out of range for a tensor of rank 0"),
    ("scatter_add", [F(2, 3), TensorType("i32", (2,))], {"axis": 0, "shape": (5, 4)}, "expected \\[2, 4\\]"),
    ("scatter_add", [F(2, 3), TensorType("i32", (2,))], {"axis": 3, "shape": (5, 3)}, "out of range"),
    ("scatter_add", [F(2, 3), TensorType("i32", (2,))], {"axis": 0}, "missing attribute"),
])
def test_type_rule_errors(op, ins, attrs, pattern):
    with pytest.raises(ShapeError, match=pattern):
        infer_type(op, ins, attrs)


# ---- text form, codegen, symbolic shapes --------------------------------------------------------

def _pair_graph():
    b = Builder("embed")
    table = b.argument("table", "param", TensorType("f32", (10, 4)))
    ids = b.argument("ids", "input", TensorType("i32", ("B", "T")))
    rows = b.gather(table, ids, axis=0)
    loss = b.sum(rows, axes=(0, 1, 2))
    return grad(b.build({"rows": rows, "loss": loss}), "loss", ["table"])


def test_text_round_trip():
    g = _pair_graph()
    text = print_graph(g)
    assert "gather(" in text and "scatter_add(" in text and "shape=[10, 4]" in text
    back = parse_graph(text)
    assert print_graph(back) == text
    verify(back)


def test_symbolic_batch_codegen_and_dtypes():
    fn = compile_graph(_pair_graph())
    table = rng.standard_normal((10, 4)).astype(np.float32)
    for ids in (I([[1, 1, 9]]), I([[0], [3], [3], [12]])):
        res = fn({"table": table, "ids": ids})
        np.testing.assert_array_equal(res["rows"], table[np.clip(ids, 0, 9)])
        want = np.zeros_like(table)
        np.add.at(want, np.clip(ids, 0, 9), 1.0)
        np.testing.assert_array_equal(res["grad.table"], want)
        assert res["rows"].dtype == np.float32 and res["grad.table"].dtype == np.float32


def test_scatter_add_with_symbolic_output_shape():
    b = Builder("s")
    u = b.argument("u", "input", TensorType("f32", ("N", 2)))
    i = b.argument("i", "input", TensorType("i32", ("N",)))
    like = b.argument("like", "input", TensorType("f32", ("M", 2)))
    out = b.add(b.scatter_add(u, i, axis=0, shape=("M", 2)), like)
    res = compile_graph(b.build({"out": out}))(
        {"u": np.ones((3, 2), np.float32), "i": I([0, 2, 0]), "like": np.zeros((4, 2), np.float32)})
    np.testing.assert_array_equal(res["out"], [[2, 2], [0, 0], [1, 1], [0, 0]])


def test_integer_gather_is_not_differentiated():
    b = Builder("g")
    x = b.argument("x", "input", TensorType("i32", (4,)))
    out = b.gather(x, b.constant((3, 0), "i32", (2,)), axis=0)
    res = compile_graph(b.build({"out": out}))({"x": I([5, 6, 7, 8])})
    np.testing.assert_array_equal(res["out"], [8, 5])
    assert res["out"].dtype == np.int32
