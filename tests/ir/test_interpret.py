"""The reference interpreter agrees with the numpy backend on every primitive, bit for bit.

Each primitive in the table gets a small graph with random operands (symbolic batch
dimensions where the primitive reads shapes); the interpreter and the numpy backend's
generated code run it on the same arrays and must give equal values, dtypes and shapes.
A primitive added to the table without a case here fails `test_every_primitive_has_a_case`.
"""
import numpy as np
import pytest

from nncompiler.backends.numpy import evaluate
from nncompiler.ir.graph import Builder
from nncompiler.ir.interpret import RULES, interpret
from nncompiler.ir.primitives import PRIMITIVES
from nncompiler.ir.shapes import TensorType

F = "f32"


def _rand(rng, dtype, shape):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype in ("i32", "i64"):
        return rng.integers(-3, 6, size=shape).astype(np.int32 if dtype == "i32" else np.int64)
    a = rng.standard_normal(shape) * 3
    return a.astype(np.float32 if dtype == "f32" else np.float64)


# op -> (operands: [(dtype, declared shape, concrete shape)], attrs); "B" is bound to 5
_B = 5
CASES = {
    "const": ([], {"value": ((1.5, -2.0, 3.25),), "dtype": F, "shape": (1, 3)}),
    "iota": ([], {"axis": 1, "dtype": "i32", "shape": ("B", 3)}),
    "random_uniform": ([], {"low": -2.0, "high": 3.0, "seed": 7, "dtype": F, "shape": (4, 3)}),
    "random_normal": ([], {"mean": 1.0, "stddev": 0.5, "seed": 9, "dtype": F, "shape": (2, 6)}),
    "rng_uniform": ([("i32", (), ())], {"seed": 11, "dtype": F, "shape": (3, 4)}),
    "sigmoid": ([("f32", ("B", 4), (_B, 4))], {}),
    "stop_gradient": ([("f32", (3,), (3,))], {}),
    "log": ([("f32", (4, 3), (4, 3))], {}),          # negative operands: nan, like the backend
    "sqrt": ([("f32", (4, 3), (4, 3))], {}),
    "div": ([("f32", (4, 3), (4, 3)), ("f32", (3,), (3,))], {}),
    "pow": ([("f32", (4, 3), (4, 3)), ("f32", (4, 3), (4, 3))], {}),
    "where": ([("bool", (4, 3), (4, 3)), ("f32", (4, 3), (4, 3)), ("f32", (3,), (3,))], {}),
    "cast": ([("f32", (4, 3), (4, 3))], {"dtype": "i32"}),
    "sum": ([("f32", ("B", 3, 2), (_B, 3, 2))], {"axes": (0, 2), "keepdims": True}),
    # many rows, few kept values: ir/reductions.py folds it (1600 rows of 16: 6 folded rows and 64 left)
    "sum__folded": ([("f32", ("B", 40, 8, 16), (_B, 40, 8, 16))], {"axes": (0, 1, 2)}),
    "max": ([("f32", (4, 3), (4, 3))], {"axes": (-1,)}),
    "argmax": ([("f32", ("B", 7), (_B, 7))], {"axis": 1}),
    "size": ([("f32", ("B", 3), (_B, 3))], {"axes": (0, 1), "dtype": F}),
    "matmul": ([("f32", ("B", 4), (_B, 4)), ("f32", (4, 3), (4, 3))], {}),
    "reshape": ([("f32", ("B", 2, 3), (_B, 2, 3))], {"shape": ("B", 6)}),
    "transpose": ([("f32", (2, 3, 4), (2, 3, 4))], {"perm": (2, 0, 1)}),
    "broadcast_to": ([("f32", (1, 3), (1, 3))], {"shape": ("B", 3)}),
    "slice": ([("f32", (6, 5), (6, 5))], {"start": (1, 0), "stop": (None, 5), "step": (2, 2)}),
    "pad": ([("f32", (2, 3), (2, 3))], {"lo": (1, 0), "hi": (0, 2), "interior": (1, 0)}),
    "concat": ([("f32", (2, 3), (2, 3)), ("f32", (4, 3), (4, 3))], {"axis": 0}),
    "gather": ([("f32", (5, 3), (5, 3)), ("i32", ("B",), (_B,))], {"axis": 0}),   # -3..5: clipped
    "scatter_add": ([("f32", ("B", 3), (_B, 3)), ("i32", ("B",), (_B,))], {"axis": 0, "shape": (4, 3)}),
    # labels -3..5 against 4 classes: the out-of-range ones must give 0 in both
    "sparse_xent": ([("f32", ("B", 4), (_B, 4)), ("i32", ("B",), (_B,))], {}),
    "sparse_xent_grad": ([("f32", ("B", 4), (_B, 4)), ("i32", ("B",), (_B,))], {}),
    "conv": ([("f32", ("B", 7, 6, 4), (_B, 7, 6, 4)), ("f32", (3, 2, 2, 6), (3, 2, 2, 6))],
             {"stride": (2, 1), "padding": ((1, 1), (0, 1)), "dilation": (1, 2), "groups": 2}),
    "conv__bigwindow": ([("f32", (3, 6, 5, 4), (3, 6, 5, 4)), ("f32", (5, 4, 4, 2), (5, 4, 4, 2))],
                       {"stride": (1, 1), "padding": ((1, 0), (0, 0)), "dilation": (1, 1), "groups": 1}),
    "reduce_window": ([("f32", ("B", 5, 7, 3), (_B, 5, 7, 3))],
                      {"kind": "sum", "window": (3, 2), "stride": (1, 2), "padding": ((1, 1), (0, 1))}),
    "reduce_window__max": ([("f32", ("B", 5, 7, 3), (_B, 5, 7, 3))],
                          {"kind": "max", "window": (2, 3), "stride": (2, 1), "padding": ((0, 1), (1, 1))}),
    "select_scatter": ([("f32", ("B", 5, 6, 2), (_B, 5, 6, 2)), ("f32", ("B", 3, 3, 2), (_B, 3, 3, 2))],
                       {"window": (2, 2), "stride": (2, 2), "padding": ((0, 1), (0, 0))}),
    "select_scatter__overlap": ([("f32", ("B", 5, 6, 2), (_B, 5, 6, 2)), ("f32", ("B", 4, 5, 2), (_B, 4, 5, 2))],
                               {"window": (2, 2), "stride": (1, 1), "padding": ((0, 0), (0, 0))}),
}
for _op in ("exp", "log1p", "tanh", "neg", "abs", "sign"):
    CASES[_op] = ([("f32", ("B", 3), (_B, 3))], {})
for _op in ("add", "sub", "mul", "maximum", "minimum", "lt", "le", "gt", "ge", "eq", "ne"):
    CASES[_op] = ([("f32", ("B", 3), (_B, 3)), ("f32", (3,), (3,))], {})
CASES["abs_i32"] = ([("i32", (4,), (4,))], {})
CASES["sum_i32"] = ([("i32", (4, 3), (4, 3))], {"axes": (0,)})


def _op(case: str) -> str:
    """A case's primitive: "sum_i32" and "conv__bigwindow" are variants of sum and conv."""
    op = case.split("__")[0]
    return op[:-4] if op.endswith("_i32") else op


def _graph(case: str):
    op = _op(case)
    operands, attrs = CASES[case]
    b = Builder(f"one_{case}")
    b.argument("bind", "input", TensorType(F, ("B",)))   # binds B for outputs no operand has
    ids = [b.argument(f"x{i}", "input", TensorType(dt, shape)) for i, (dt, shape, _) in enumerate(operands)]
    return b.build({"y": b.emit(op, () if op == "iota" else ids, **attrs)}), operands


def test_every_primitive_has_a_case_and_a_rule():
    ops = set(PRIMITIVES) - {"arg"}
    assert ops == set(RULES), "the interpreter's table and the primitive table differ"
    # a scan's value is its tuple of results: test_scan_matches_the_numpy_backend checks it
    ops -= {"scan", "scan_out"}
    assert ops <= {_op(c) for c in CASES}, \
        f"no interpreter case for {sorted(ops - set(CASES))}"


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_matches_the_numpy_backend(reverse):
    step = Builder("step")   # carry: a running sum; per step: the carry times the slice
    c = step.argument("c", "carry", TensorType(F, ("B",)))
    x = step.argument("x", "input", TensorType(F, ("B",)))
    s = step.add(c, x)
    b = Builder("g")
    c0 = b.argument("c0", "input", TensorType(F, ("B",)))
    xs = b.argument("xs", "input", TensorType(F, ("B", 4)))
    final, ys = b.loop(step.build({"c": s, "y": step.mul(s, x)}), [c0], [xs], axis=1, reverse=reverse)
    graph = b.build({"final": final, "ys": ys})
    rng = np.random.default_rng(0)
    args = {"c0": _rand(rng, F, (_B,)), "xs": _rand(rng, F, (_B, 4))}
    want, got = evaluate(graph, args), interpret(graph, args)
    for name in want:
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_interpreter_matches_the_numpy_backend(case, seed):
    graph, operands = _graph(case)
    rng = np.random.default_rng(seed)
    args = {f"x{i}": _rand(rng, dt, concrete) for i, (dt, _, concrete) in enumerate(operands)}
    args["bind"] = np.zeros(_B, np.float32)
    with np.errstate(all="ignore"):
        want = evaluate(graph, args)
        got = interpret(graph, args)
    assert set(got) == set(want)
    for name in want:
        w, g = np.asarray(want[name]), got[name]
        assert g.dtype == w.dtype, (name, g.dtype, w.dtype)
        assert g.shape == w.shape, (name, g.shape, w.shape)
        np.testing.assert_array_equal(g, w)   # equal_nan: nan positions must match too


def test_values_against_numpy_formulas():
    """Independent of the backend: a few rules against formulas written out here."""
    b = Builder("g")
    x = b.argument("x", "input", TensorType(F, ("B", 2)))
    g = b.build({"s": b.sigmoid(x), "n": b.size(x, axes=(0,), dtype="i32"),
                 "t": b.gather(x, b.constant((0, 9), "i32", (2,)), axis=0)})
    xv = np.array([[-100.0, 0.0], [2.0, 100.0], [1.0, -1.0]], np.float32)
    out = interpret(g, {"x": xv})
    np.testing.assert_allclose(out["s"], 1 / (1 + np.exp(-xv.astype(np.float64))), rtol=1e-6, atol=1e-30)
    assert out["s"].dtype == np.float32 and 0 < out["s"][0, 0] < 1e-40   # no overflow, no flush to 0
    assert out["n"] == 3 and out["n"].dtype == np.int32
    np.testing.assert_array_equal(out["t"], xv[[0, 2]])    # index 9 clips to the last row


def test_a_missing_argument_is_named():
    b = Builder("g")
    x = b.argument("x", "input", TensorType(F, (2,)))
    with pytest.raises(KeyError, match="missing argument 'x'"):
        interpret(b.build({"y": b.neg(x)}))
