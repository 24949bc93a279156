"""The primitive table: every type rule and its error cases."""
import numpy as np
import pytest

from nncompiler.errors import ShapeError
from nncompiler.ir import PRIMITIVES, Builder, norm_axes, verify
from nncompiler.ir.primitives import ELEMENTWISE_KINDS, infer_type, slice_len
from nncompiler.ir.shapes import TensorType


def T(*shape, dtype="f32"):
    return TensorType(dtype, tuple(shape))


F = T  # readability in the tables below
I32 = lambda *s: T(*s, dtype="i32")      # noqa: E731
F64 = lambda *s: T(*s, dtype="f64")      # noqa: E731
BOOL = lambda *s: T(*s, dtype="bool")    # noqa: E731

def _cell():
    """A scan body: (carry f32[B,3], step f32[B,3], invariant f32[3,3]) -> (carry, per-step out)."""
    b = Builder("cell")
    c = b.argument("c", "carry", F("B", 3))
    x = b.argument("x", "input", F("B", 3))
    w = b.argument("w", "param", F(3, 3))
    h = b.tanh(b.add(b.matmul(c, w), x))
    return b.build({"c": h, "y": b.sum(h, axes=(1,))})


SCAN = {"body": _cell(), "n_carry": 1, "n_seq": 1, "axis": 1, "length": 7, "reverse": False}

# (op, operand types, attrs, result type)
OK = [
    ("scan", [F("B", 3), F("B", 7, 3), F(3, 3)], SCAN, F("B", 3)),   # result 0: the final carry
    ("scan_out", [F("B", 3)], {"index": 1, "dtype": "f32", "shape": ("B", 7)}, F("B", 7)),
    ("gather", [F(5, 3), T(2, 4, dtype="i32")], {"axis": 0}, F(2, 4, 3)),
    ("scatter_add", [F(2, 4, 3), T(2, 4, dtype="i32")], {"axis": 0, "shape": (5, 3)}, F(5, 3)),
    ("sparse_xent", [F("B", 3), T("B", dtype="i32")], {}, F("B")),
    # windows: out = (in + lo + hi - ((k - 1) * dilation + 1)) // stride + 1 per spatial axis
    ("conv", [F("B", 9, 8, 4), F(3, 2, 2, 6)], {"stride": (2, 1), "padding": ((1, 1), (0, 1)),
                                                "dilation": (1, 2), "groups": 2}, F("B", 5, 7, 6)),
    ("conv", [F(4, 9, "B"), F(3, "B", 5)], {"stride": (2,), "padding": ((0, 0),), "dilation": (3,),
                                           "groups": 1}, F(4, 2, 5)),     # the kernel gradient's form
    ("reduce_window", [F(2, 7, 5, 3)], {"kind": "max", "window": (2, 3), "stride": (2, 2),
                                        "padding": ((0, 1), (1, 1))}, F(2, 4, 3, 3)),
    ("select_scatter", [F(2, 7, 5, 3), F(2, 4, 3, 3)], {"window": (2, 3), "stride": (2, 2),
                                                        "padding": ((0, 1), (1, 1))}, F(2, 7, 5, 3)),
    ("sparse_xent_grad", [F(2, 4, 3), T(2, 4, dtype="i64")], {}, F(2, 4, 3)),
    # sources
    ("arg", [], {"name": "x", "role": "input", "dtype": "f32", "shape": ("B", 3)}, F("B", 3)),
    ("const", [], {"value": 1.0, "dtype": "f64", "shape": ()}, F64()),
    ("iota", [], {"axis": 0, "dtype": "i32", "shape": (4, 2)}, I32(4, 2)),
    ("random_uniform", [], {"low": 0.0, "high": 1.0, "seed": 1, "dtype": "f32", "shape": (3,)}, F(3)),
    ("random_normal", [], {"mean": 0.0, "stddev": 1.0, "seed": 1, "dtype": "f64", "shape": (2, 2)}, F64(2, 2)),
    ("rng_uniform", [I32()], {"seed": 5, "dtype": "f32", "shape": ("B", 3)}, F("B", 3)),
    # unary
    *[(op, [F(2, "B")], {}, F(2, "B")) for op in ("exp", "log", "log1p", "sqrt", "tanh", "sigmoid")],
    ("exp", [F64()], {}, F64()),
    *[(op, [I32(3)], {}, I32(3)) for op in ("neg", "abs", "sign", "stop_gradient")],
    ("neg", [F(3)], {}, F(3)),
    # binary, broadcasting
    *[(op, [F(3, 1), F(1, 4)], {}, F(3, 4)) for op in ("add", "sub", "mul", "div", "pow", "maximum", "minimum")],
    ("add", [I32(4), I32(2, 3, 4)], {}, I32(2, 3, 4)),
    ("mul", [F("B", 4), F(4)], {}, F("B", 4)),
    ("maximum", [F(), F(2)], {}, F(2)),
    ("div", [F64(2), F64()], {}, F64(2)),
    # compare -> bool
    *[(op, [F(3, 1), F(4)], {}, BOOL(3, 4)) for op in ("lt", "le", "gt", "ge", "eq", "ne")],
    ("eq", [I32(2), I32(2)], {}, BOOL(2)),
    ("eq", [BOOL(2), BOOL()], {}, BOOL(2)),
    # where
    ("where", [BOOL(3, 1), F(1, 4), F(4)], {}, F(3, 4)),
    ("where", [BOOL(2, 3, 4), F(3, 4), F()], {}, F(2, 3, 4)),
    ("where", [BOOL(), I32(2), I32(2)], {}, I32(2)),
    ("where", [BOOL("B", 1), F(1, 5), F("B", 5)], {}, F("B", 5)),
    # cast
    ("cast", [F(2, 3)], {"dtype": "f64"}, F64(2, 3)),
    ("cast", [BOOL("B")], {"dtype": "f32"}, F("B")),
    ("cast", [F(2)], {"dtype": "i32"}, I32(2)),
    # reductions
    ("sum", [F(2, 3, 4)], {"axes": (1,)}, F(2, 4)),
    ("sum", [F(2, 3, 4)], {"axes": (1,), "keepdims": True}, F(2, 1, 4)),
    ("sum", [F(2, 3, 4)], {"axes": (0, 2), "keepdims": False}, F(3)),
    ("sum", [F(2, 3, 4)], {"axes": (-1, 0)}, F(3)),
    ("sum", [F(2, 3, 4)], {"axes": (0, 1, 2)}, F()),
    ("sum", [F(2, 3, 4)], {"axes": (0, 1, 2), "keepdims": True}, F(1, 1, 1)),
    ("sum", [F(2, 3)], {"axes": ()}, F(2, 3)),
    ("sum", [F(2, 3)], {"axes": -1}, F(2)),
    ("sum", [I32(2, 3)], {"axes": (0,)}, I32(3)),
    ("sum", [F()], {"axes": ()}, F()),
    ("sum", [F("B", 3)], {"axes": (0,)}, F(3)),
    ("max", [F("B", 3)], {"axes": (1,), "keepdims": True}, F("B", 1)),
    ("argmax", [F(2, 5)], {"axis": 1}, I32(2)),
    ("argmax", [F(2, 5)], {"axis": -1, "keepdims": True}, I32(2, 1)),
    ("argmax", [F64(2, 5, 3)], {"axis": 0}, I32(5, 3)),
    ("size", [F("B", 4)], {"axes": (0,), "dtype": "f32"}, F()),
    ("size", [F("B", 4)], {"axes": (0, 1), "dtype": "i32"}, I32()),
    # matmul
    ("matmul", [F(3, 4), F(4, 5)], {}, F(3, 5)),
    ("matmul", [F(2, 3, 4), F(4, 5)], {}, F(2, 3, 5)),
    ("matmul", [F(3, 4), F(2, 4, 5)], {}, F(2, 3, 5)),
    ("matmul", [F(2, 1, 3, 4), F(5, 4, 6)], {}, F(2, 5, 3, 6)),
    ("matmul", [F("B", 3, 4), F(4, 2)], {}, F("B", 3, 2)),
    ("matmul", [F("B", 4), F(4, "T")], {}, F("B", "T")),
    ("matmul", [I32(1, 1), I32(1, 1)], {}, I32(1, 1)),
    # movement
    ("reshape", [F(2, 3, 4)], {"shape": (6, 4)}, F(6, 4)),
    ("reshape", [F(6)], {"shape": (1, 6, 1)}, F(1, 6, 1)),
    ("reshape", [F(1, 1)], {"shape": ()}, F()),
    ("reshape", [F("B", 2, 2)], {"shape": ("B", 4)}, F("B", 4)),
    ("reshape", [F("B", 8, 8)], {"shape": ("64*B",)}, F("64*B")),
    ("reshape", [F("64*B")], {"shape": ("B", 8, 8)}, F("B", 8, 8)),
    ("reshape", [F("B", "T", 4)], {"shape": ("T*B", 4)}, F("B*T", 4)),
    ("transpose", [F(2, 3, 4)], {"perm": (2, 0, 1)}, F(4, 2, 3)),
    ("transpose", [F("B", 3)], {"perm": (1, 0)}, F(3, "B")),
    ("transpose", [F()], {"perm": ()}, F()),
    ("broadcast_to", [F(3, 1)], {"shape": (2, 3, 4)}, F(2, 3, 4)),
    ("broadcast_to", [F()], {"shape": ("B", 3)}, F("B", 3)),
    ("broadcast_to", [F(1, 3)], {"shape": ("B", 3)}, F("B", 3)),
    ("broadcast_to", [F("B", 1)], {"shape": ("B", 3)}, F("B", 3)),
    ("slice", [F(7)], {"start": (1,), "stop": (6,), "step": (2,)}, F(3)),
    ("slice", [F(8)], {"start": (2,), "stop": (8,), "step": (3,)}, F(2)),
    ("slice", [F(7)], {"start": (3,), "stop": (100,), "step": (1,)}, F(4)),
    ("slice", [F(5, 6)], {"start": (1, 0), "stop": (None, 6), "step": (3, 2)}, F(2, 3)),
    ("slice", [F(5)], {"start": (2,), "stop": (2,), "step": (1,)}, F(0)),
    ("slice", [F("B", 6)], {"start": (0, 1), "stop": (None, 4), "step": (1, 1)}, F("B", 3)),
    ("slice", [F()], {"start": (), "stop": (), "step": ()}, F()),
    ("pad", [F(3)], {"lo": (1,), "hi": (2,), "interior": (1,)}, F(8)),
    ("pad", [F(2, 3)], {"lo": (0, 2), "hi": (1, 0), "interior": (2, 0)}, F(5, 5)),
    ("pad", [F(1)], {"lo": (0,), "hi": (0,), "interior": (5,)}, F(1)),
    ("pad", [F(0)], {"lo": (1,), "hi": (1,), "interior": (3,)}, F(2)),
    ("pad", [F("B", 3)], {"lo": (0, 1), "hi": (0, 1), "interior": (0, 0)}, F("B", 5)),
    ("concat", [F(2, 3), F(1, 3), F(4, 3)], {"axis": 0}, F(7, 3)),
    ("concat", [F(2, 1), F(2, 3)], {"axis": -1}, F(2, 4)),
    ("concat", [F(5)], {"axis": 0}, F(5)),
    ("concat", [F("B", 3), F("B", 3)], {"axis": 0}, F("2*B", 3)),
    ("concat", [F("B", 3), F("2*B", 3)], {"axis": 0}, F("3*B", 3)),
    ("concat", [F("B", 3), F("B", 2)], {"axis": 1}, F("B", 5)),
]


@pytest.mark.parametrize("op,ins,attrs,out", OK, ids=[f"{c[0]}-{i}" for i, c in enumerate(OK)])
def test_type_rule(op, ins, attrs, out):
    assert infer_type(op, ins, attrs) == out


# (op, operand types, attrs, message pattern)
ERRORS = [
    ("scan", [F("B", 3), F("B", 6, 3), F(3, 3)], SCAN, "no axis 1 of length 7"),
    ("scan", [F("B", 3), F("B", 7, 4), F(3, 3)], SCAN, "scan body takes"),
    ("scan", [F("B", 3), F("B", 7, 3), F(3, 3)], {**SCAN, "length": 0}, "positive integer"),
    *[(op, [I32(3)], {}, "expects a float tensor, got i32")
      for op in ("exp", "log", "log1p", "sqrt", "tanh", "sigmoid")],
    ("exp", [BOOL(3)], {}, "expects a float tensor"),
    *[(op, [F(3), F64(3)], {}, r"dtype mismatch: f32 and f64") for op in
      ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "lt", "eq")],
    ("div", [I32(3), I32(3)], {}, "expects float tensors, got i32"),
    ("pow", [I32(3), I32(3)], {}, "expects float tensors"),
    ("add", [F(2), F(3)], {}, r"shapes \[2\] and \[3\] cannot be broadcast together"),
    ("add", [F("B"), F("T")], {}, r"cannot be broadcast"),
    ("gt", [F(2, 3), F(3, 2)], {}, r"cannot be broadcast"),
    ("where", [F(3), F(3), F(3)], {}, "condition must be bool, got f32"),
    ("where", [I32(3), F(3), F(3)], {}, "condition must be bool, got i32"),
    ("where", [BOOL(3), F(3), F64(3)], {}, "dtype mismatch: f32 and f64"),
    ("where", [BOOL(2), F(3), F(3)], {}, "cannot be broadcast"),
    ("where", [BOOL(3), F(2), F(3)], {}, "cannot be broadcast"),
    ("sum", [F(2, 3)], {"axes": (2,)}, "axis 2 is out of range for a tensor of rank 2"),
    ("sum", [F(2, 3)], {"axes": (-3,)}, "axis -3 is out of range"),
    ("sum", [F()], {"axes": (0,)}, "out of range for a tensor of rank 0"),
    ("sum", [F(2, 3)], {"axes": (0, -2)}, "repeated axis"),
    ("max", [F(2, 3)], {"axes": (5,), "keepdims": True}, "out of range"),
    ("argmax", [F(2, 3)], {"axis": 2}, "out of range"),
    ("size", [F(2, 3)], {"axes": (3,), "dtype": "f32"}, "out of range"),
    ("matmul", [F(3, 4), F(5, 6)], {}, r"matmul inner dimensions differ: \[3, 4\] @ \[5, 6\]"),
    ("matmul", [F("B", 4), F("T", 2)], {}, "inner dimensions differ"),
    ("matmul", [F(4), F(4, 2)], {}, "rank >= 2"),
    ("matmul", [F(3, 4), F(4)], {}, "rank >= 2"),
    ("matmul", [F(3, 4), F64(4, 2)], {}, "matmul dtype mismatch"),
    ("matmul", [F(2, 3, 4), F(5, 4, 2)], {}, "cannot be broadcast"),
    ("reshape", [F(2, 3)], {"shape": (4, 2)}, r"cannot reshape \[2, 3\] \(6 elements\) to \[4, 2\] \(8 elements\)"),
    ("reshape", [F("B", 4)], {"shape": ("B", 3)}, r"\(4\*B elements\) to \[B, 3\] \(3\*B elements\)"),
    ("reshape", [F("B", 4)], {"shape": (16,)}, r"cannot reshape"),
    ("reshape", [F("B", 4)], {"shape": ("T", 4)}, r"cannot reshape"),
    ("reshape", [F(4)], {"shape": ("B",)}, r"cannot reshape"),
    ("transpose", [F(2, 3)], {"perm": (0, 0)}, r"bad permutation \[0, 0\] for rank 2"),
    ("transpose", [F(2, 3)], {"perm": (0,)}, "bad permutation"),
    ("transpose", [F(2, 3)], {"perm": (0, 1, 2)}, "bad permutation"),
    ("transpose", [F(2, 3)], {"perm": (1, 2)}, "bad permutation"),
    ("transpose", [F(2, 3)], {"perm": (-1, 0)}, "bad permutation"),
    ("broadcast_to", [F(3)], {"shape": (4,)}, r"cannot (be )?broadcast"),
    ("broadcast_to", [F(2, 3)], {"shape": (3,)}, r"cannot broadcast \[2, 3\] to \[3\]"),
    ("broadcast_to", [F("B")], {"shape": (4,)}, r"cannot (be )?broadcast"),
    ("slice", [F(7)], {"start": (1,), "stop": (6,), "step": (0,)}, "steps must be positive"),
    ("slice", [F(7)], {"start": (6,), "stop": (1,), "step": (-1,)}, "steps must be positive"),
    ("slice", [F(7, 2)], {"start": (1,), "stop": (6,), "step": (1,)}, "start, stop and step for every axis"),
    ("slice", [F("B")], {"start": (1,), "stop": (None,), "step": (1,)}, "cannot slice symbolic dimension B"),
    ("slice", [F("B")], {"start": (0,), "stop": (None,), "step": (2,)}, "cannot slice symbolic"),
    ("pad", [F("B")], {"lo": (1,), "hi": (0,), "interior": (0,)}, "cannot pad symbolic dimension B"),
    ("pad", [F("B")], {"lo": (0,), "hi": (0,), "interior": (1,)}, "cannot pad symbolic"),
    ("concat", [], {"axis": 0}, "at least one tensor"),
    ("concat", [F(2, 3), F(2, 4)], {"axis": 0}, "differ off axis 0"),
    ("concat", [F(2, 3), F64(2, 3)], {"axis": 0}, "concat operands differ"),
    ("concat", [F(2, 3), F(2)], {"axis": 0}, "concat operands differ"),
    ("concat", [F(2, 3), F(2, 3)], {"axis": 2}, "out of range"),
    ("concat", [F("B", 3), F("T", 3)], {"axis": 0}, "cannot add dimensions"),
    ("concat", [F("B", 3), F(2, 3)], {"axis": 0}, "cannot add dimensions"),
    ("sparse_xent", [F(2, 3), F(2)], {}, "indices must be i32 or i64"),
    ("sparse_xent", [F(2, 3), T(3, dtype="i32")], {}, r"labels \[3\] do not match logits \[2, 3\]"),
    ("sparse_xent_grad", [T(2, 3, dtype="i32"), T(2, dtype="i32")], {}, "logits must be floats"),
    # the table's own checks
    ("softmax", [F(3)], {}, "unknown primitive 'softmax'"),
    ("exp", [F(3), F(3)], {}, "exp takes 1 operands, got 2"),
    ("add", [F(3)], {}, "add takes 2 operands, got 1"),
    ("where", [BOOL(3), F(3)], {}, "takes 3 operands"),
    ("sum", [F(3)], {}, "sum is missing attribute"),
    ("reshape", [F(3)], {}, "missing attribute.*shape"),
    ("slice", [F(3)], {"start": (0,), "stop": (3,)}, "missing attribute.*step"),
    ("exp", [F(3)], {"axes": (0,)}, "unknown attribute.*axes"),
    ("sum", [F(3)], {"axes": (0,), "keepdim": True}, "unknown attribute.*keepdim"),
    ("arg", [], {"name": "x", "role": "input", "dtype": "f16", "shape": (3,)}, "unknown dtype"),
    ("cast", [F(3)], {"dtype": "f16"}, "unknown dtype"),
    ("reduce_window", [F(2, 5, 5, 3)], {"kind": "min", "window": (2, 2), "stride": (1, 1),
                                        "padding": ((0, 0), (0, 0))}, "kind must be sum or max"),
    ("reduce_window", [F(2, 5, 5, 3)], {"kind": "sum", "window": (2,), "stride": (1, 1),
                                        "padding": ((0, 0), (0, 0))}, "window size for each"),
    ("select_scatter", [F(2, 5, 5, 3), F(2, 3, 3, 3)], {"window": (2, 2), "stride": (2, 2),
                                                        "padding": ((0, 0), (0, 0))}, "g must be"),
]


@pytest.mark.parametrize("op,ins,attrs,pattern", ERRORS, ids=[f"{c[0]}-{i}" for i, c in enumerate(ERRORS)])
def test_type_rule_error(op, ins, attrs, pattern):
    with pytest.raises(ShapeError, match=pattern):
        infer_type(op, ins, attrs)


def test_every_primitive_has_a_type_rule_test():
    tested = {c[0] for c in OK}
    assert tested == set(PRIMITIVES), sorted(set(PRIMITIVES) - tested)


def test_table_shape():
    for name, p in PRIMITIVES.items():
        assert p.name == name
        assert p.kind in ("source", "random", "unary", "binary", "compare", "select", "reduce", "movement",
                          "matmul", "window", "control")
        assert len(set(p.attrs)) == len(p.attrs)
        if p.kind == "source":
            assert p.arity == 0
        if p.kind in ("source", "random"):
            assert "dtype" in p.attrs and "shape" in p.attrs
        # only values a loss can be smoothly differentiated through are marked differentiable
        nondiff = (p.kind in ("compare", "random") or name in ("argmax", "size")
                   or (p.kind == "source" and name not in ("arg", "const")))
        assert p.differentiable == (not nondiff), name
    assert PRIMITIVES["concat"].arity is None
    assert set(ELEMENTWISE_KINDS) == {"unary", "binary", "compare", "select"}


@pytest.mark.parametrize("axes,rank,out", [
    (None, 3, (0, 1, 2)), (1, 3, (1,)), (-1, 3, (2,)), ((2, 0), 3, (0, 2)), ((), 2, ()), ([-1, -2], 2, (0, 1)),
])
def test_norm_axes(axes, rank, out):
    assert norm_axes(axes, rank) == out


@pytest.mark.parametrize("n,start,stop,step,length", [
    (7, 1, 6, 2, 3), (7, 0, None, 1, 7), (7, 5, 100, 1, 2), (4, 4, None, 1, 0), ("B", 0, None, 1, "B"),
    ("B", 0, 3, 1, 3), ("B", 1, 7, 2, 3),
])
def test_slice_len(n, start, stop, step, length):
    assert slice_len(n, start, stop, step) == length


# ---- through the Builder ---------------------------------------------------------------

def test_builder_infers_and_records_types():
    b = Builder("g")
    x = b.argument("x", "input", F("B", 4))
    w = b.argument("w", "param", F(4, 3))
    h = b.matmul(x, w)
    assert b.type_of(h) == F("B", 3)
    s = b.sum(h, axes=(1,), keepdims=True)
    assert b.shape(s) == ("B", 1) and b.dtype(s) == "f32"
    g = b.build({"s": s})
    verify(g)
    # attributes are stored in the table's order, lists frozen to tuples
    b2 = Builder()
    y = b2.argument("y", "input", F(2, 3))
    sl = b2.slice(y, step=[1, 1], stop=[2, 3], start=[0, 0])
    assert [k for k, _ in b2.nodes[-1].attrs] == ["start", "stop", "step"]
    assert b2.nodes[-1].attr["start"] == (0, 0)
    assert b2.type_of(sl) == F(2, 3)


def test_builder_errors():
    b = Builder()
    x = b.argument("x", "input", F(3))
    with pytest.raises(ShapeError, match="not defined"):
        b.add(x, 99)
    with pytest.raises(AttributeError):
        b.softmax(x)
    with pytest.raises(ShapeError, match="condition must be bool"):
        b.where(x, x, x)
    with pytest.raises(ShapeError, match="dtype mismatch"):
        b.add(x, b.scalar(1.0, "f64"))


def test_scalar_rounds_to_the_dtype():
    b = Builder()
    c32 = b.scalar(0.1, "f32")
    c64 = b.scalar(0.1, "f64")
    ci = b.scalar(3.7, "i32")
    cb = b.scalar(1, "bool")
    assert b.nodes[c32].attr["value"] == float(np.float32(0.1))
    assert b.nodes[c64].attr["value"] == 0.1
    assert b.nodes[ci].attr["value"] == 3 and b.type_of(ci) == I32()
    assert b.nodes[cb].attr["value"] is True and b.type_of(cb) == BOOL()
