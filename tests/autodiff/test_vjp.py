"""Every VJP rule against torch.autograd (float32) and central differences (float64).

Each row builds `loss = sum(op(x0, x1, ...) * r)` with a fixed random weight r,
differentiates it with `grad`, runs it on the numpy backend and checks
(a) the forward output and (b) every input gradient against torch, and
(c) the float64 gradients against finite differences. The table is checked
against `VJP` itself, so a new primitive without rows here fails.
"""
import numpy as np
import pytest

from nncompiler.autodiff import VJP, unbroadcast
from nncompiler.ir import PRIMITIVES, Builder
from nncompiler.ir.shapes import TensorType

try:
    from tests.oracle import S, OpCase, check_op, op_graph, ours, torch_ref
except ImportError:  # tests/ itself is on sys.path
    from oracle import S, OpCase, check_op, op_graph, ours, torch_ref

C = OpCase
CASES: list[OpCase] = []


def add(*cases):
    CASES.extend(cases)


# ---- unary -------------------------------------------------------------------------
UNARY_SHAPES = [(), (1,), (5,), (2, 3), (1, 3, 1)]
UNARY_KINDS = {
    "neg": "normal", "exp": "normal", "log": "pos", "log1p": "gt-1", "sqrt": "pos",
    "tanh": "normal", "sigmoid": "normal", "abs": "away0", "sign": "away0", "stop_gradient": "normal",
}
for _op, _kind in UNARY_KINDS.items():
    for _shape in UNARY_SHAPES:
        # stop_gradient's forward is the identity: finite differences would see slope 1
        add(C(f"{_op}-{list(_shape)}", _op, (S(*_shape, kind=_kind),), fd=_op != "stop_gradient"))
add(
    C("tanh-large", "tanh", (S(3, 4, kind="large"),)),
    C("sigmoid-large", "sigmoid", (S(3, 4, kind="large"),)),
    C("exp-f64", "exp", (S(2, 3, dtype="f64"),)),
    C("cast-f32-f64", "cast", (S(2, 3),), {"dtype": "f64"}),
    C("cast-f64-f32", "cast", (S(2, 3, dtype="f64"),), {"dtype": "f32"}),
    C("cast-f32-f32", "cast", (S(4),), {"dtype": "f32"}),
    C("cast-scalar-f32-f64", "cast", (S(),), {"dtype": "f64"}),
)

# ---- binary with broadcasting ---------------------------------------------------------
BINARY_SHAPES = [
    ((2, 3), (2, 3)),
    ((3, 1), (1, 4)),          # both sides broadcast
    ((1, 4), (3, 1)),
    ((4,), (2, 3, 4)),         # rank promotion on the left
    ((2, 3, 4), (4,)),         # ... and on the right
    ((2, 1, 4), (3, 1)),
    ((), (2, 3)),              # scalar operands
    ((2, 3), ()),
    ((), ()),
    ((1,), (1, 1)),
]
BINARY_KINDS = {
    "add": ("normal", "normal"), "sub": ("normal", "normal"), "mul": ("normal", "normal"),
    "div": ("normal", "away0"), "pow": ("pos", "normal"),   # non-integer exponents, positive base
    "maximum": ("normal", "normal"), "minimum": ("normal", "normal"),
}
for _op, (_ka, _kb) in BINARY_KINDS.items():
    for _sa, _sb in BINARY_SHAPES:
        add(C(f"{_op}-{list(_sa)}-{list(_sb)}", _op, (S(*_sa, kind=_ka), S(*_sb, kind=_kb))))
add(C("mul-f64", "mul", (S(2, 3, dtype="f64"), S(3, dtype="f64"))),
    C("pow-fractional", "pow", (S(6, kind="pos"), S(kind="pos"))))
# ties: torch.maximum/minimum give half the gradient to each side; no finite differences there
for _op in ("maximum", "minimum"):
    add(C(f"{_op}-ties", _op, (S(4, 5, kind="ties"), S(4, 5, kind="ties")), fd=False),
        C(f"{_op}-ties-bcast", _op, (S(3, 1, kind="ties"), S(1, 4, kind="ties")), fd=False),
        C(f"{_op}-all-tied", _op, (S(2, 3, kind="const"), S(3, kind="const")), fd=False),
        C(f"{_op}-tie-scalar", _op, (S(3, kind="ties"), S(kind="const")), fd=False))

# ---- where ----------------------------------------------------------------------------
add(
    C("where-same", "where", (S(2, 3, kind="bool"), S(2, 3), S(2, 3))),
    C("where-cond-bcast", "where", (S(3, 1, kind="bool"), S(3, 4), S(3, 4))),
    C("where-all-bcast", "where", (S(3, 1, kind="bool"), S(1, 4), S(4))),
    C("where-branches-bcast", "where", (S(2, 3, 4, kind="bool"), S(3, 4), S())),
    C("where-scalar-cond", "where", (S(kind="bool"), S(2, 3), S(2, 3))),
    C("where-cond-widest", "where", (S(2, 3, kind="bool"), S(), S(1, 3))),
)

# ---- reductions -----------------------------------------------------------------------
REDUCE_AXES = [(0,), (1,), (-1,), (0, 2), (1, 2), (0, 1, 2), ()]
for _op in ("sum", "max"):
    for _axes in REDUCE_AXES:
        for _kd in (False, True):
            add(C(f"{_op}-{list(_axes)}-kd{int(_kd)}", _op, (S(2, 3, 4),), {"axes": _axes, "keepdims": _kd}))
    add(C(f"{_op}-scalar", _op, (S(),), {"axes": ()}),
        C(f"{_op}-size1", _op, (S(1, 3, 1),), {"axes": (0, 2)}),
        C(f"{_op}-int-axis", _op, (S(3, 4),), {"axes": 1}),
        C(f"{_op}-no-keepdims-attr", _op, (S(3, 4),), {"axes": (0,)}))
add(C("max-ties", "max", (S(4, 6, kind="ties"),), {"axes": (1,)}, fd=False),
    C("max-ties-2axes", "max", (S(3, 4, 5, kind="ties"),), {"axes": (0, 2), "keepdims": True}, fd=False),
    C("max-all-tied", "max", (S(2, 3, kind="const"),), {"axes": (0, 1)}, fd=False))

# ---- matmul ---------------------------------------------------------------------------
for _sa, _sb in [((3, 4), (4, 5)), ((1, 1), (1, 1)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)),
                 ((2, 1, 3, 4), (5, 4, 2)), ((2, 3, 4), (2, 4, 1)), ((1, 3, 2), (4, 2, 3))]:
    add(C(f"matmul-{list(_sa)}-{list(_sb)}", "matmul", (S(*_sa), S(*_sb))))

# ---- movement -------------------------------------------------------------------------
add(
    C("reshape-merge", "reshape", (S(2, 3, 4),), {"shape": (6, 4)}),
    C("reshape-split", "reshape", (S(6),), {"shape": (1, 2, 3, 1)}),
    C("reshape-to-scalar", "reshape", (S(1, 1),), {"shape": ()}),
    C("reshape-from-scalar", "reshape", (S(),), {"shape": (1, 1)}),
    C("transpose-2d", "transpose", (S(3, 4),), {"perm": (1, 0)}),
    C("transpose-201", "transpose", (S(2, 3, 4),), {"perm": (2, 0, 1)}),
    C("transpose-120", "transpose", (S(2, 3, 4),), {"perm": (1, 2, 0)}),
    C("transpose-4d", "transpose", (S(2, 1, 3, 4),), {"perm": (3, 1, 0, 2)}),
    C("transpose-identity", "transpose", (S(2, 3),), {"perm": (0, 1)}),
    C("broadcast_to-both", "broadcast_to", (S(3, 1),), {"shape": (2, 3, 4)}),
    C("broadcast_to-scalar", "broadcast_to", (S(),), {"shape": (2, 3)}),
    C("broadcast_to-size1", "broadcast_to", (S(1),), {"shape": (5,)}),
    C("broadcast_to-lead", "broadcast_to", (S(4),), {"shape": (3, 4)}),
    C("broadcast_to-same", "broadcast_to", (S(2, 3),), {"shape": (2, 3)}),
    C("slice-step", "slice", (S(7),), {"start": (1,), "stop": (6,), "step": (2,)}),
    C("slice-step-uneven", "slice", (S(8),), {"start": (2,), "stop": (8,), "step": (3,)}),
    C("slice-2d", "slice", (S(5, 6),), {"start": (1, 0), "stop": (5, 6), "step": (3, 2)}),
    C("slice-open-stop", "slice", (S(4, 5),), {"start": (1, 2), "stop": (None, None), "step": (1, 2)}),
    C("slice-stop-past-end", "slice", (S(7),), {"start": (3,), "stop": (10,), "step": (2,)}),
    C("slice-one-element", "slice", (S(6, 2),), {"start": (4, 0), "stop": (6, 2), "step": (3, 1)}),
    C("slice-empty", "slice", (S(5, 2),), {"start": (2, 0), "stop": (2, 2), "step": (1, 1)}),
    C("slice-offset-3d", "slice", (S(3, 4, 5),), {"start": (1, 1, 0), "stop": (3, 4, 5), "step": (1, 2, 4)}),
    C("pad-interior", "pad", (S(3),), {"lo": (1,), "hi": (2,), "interior": (1,)}),
    C("pad-2d", "pad", (S(2, 3),), {"lo": (0, 2), "hi": (1, 0), "interior": (2, 0)}),
    C("pad-size1-interior", "pad", (S(1, 4),), {"lo": (1, 0), "hi": (0, 0), "interior": (3, 1)}),
    C("pad-none", "pad", (S(2, 2),), {"lo": (0, 0), "hi": (0, 0), "interior": (0, 0)}),
    C("pad-scalar", "pad", (S(),), {"lo": (), "hi": (), "interior": ()}),
    C("concat-3-axis0", "concat", (S(2, 3), S(1, 3), S(4, 3)), {"axis": 0}),
    C("concat-3-axis1", "concat", (S(2, 1), S(2, 3), S(2, 2)), {"axis": 1}),
    C("concat-neg-axis", "concat", (S(2, 2, 1), S(2, 2, 3), S(2, 2, 1)), {"axis": -1}),
    C("concat-one", "concat", (S(3, 2),), {"axis": 1}),
    C("concat-two", "concat", (S(1,), S(4,)), {"axis": 0}),
)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_vjp(case):
    check_op(case)


def test_case_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def test_every_vjp_rule_is_tested():
    # gather and scatter_add (each the other's VJP) have their rows in test_vjp_gather.py,
    # sparse_xent (integer labels) in test_vjp_xent.py, the window ops (NHWC layouts against
    # torch's NCHW ones) in test_vjp_conv.py, scan (and scan_out, through which its cotangents
    # arrive) in test_scan.py
    untested = sorted(set(VJP) - {c.op for c in CASES} - {"gather", "scatter_add", "sparse_xent",
                                                       "sparse_xent_grad", "conv", "reduce_window",
                                                       "select_scatter", "scan", "scan_out"})
    assert not untested, f"VJP rules without a test row in test_vjp.py: {untested}"


def test_vjp_table_matches_primitive_table():
    # every differentiable non-source primitive has a rule, and every rule is for such a primitive
    want = {name for name, p in PRIMITIVES.items() if p.differentiable and p.kind != "source"}
    assert set(VJP) == want
    for name, p in PRIMITIVES.items():
        if not p.differentiable:
            assert name not in VJP, name


# ---- ties: pin torch's convention explicitly, not only through the oracle ---------------------

@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_minmax_tie_splits_gradient_in_half(op):
    x = np.array([1.0, 2.0, 3.0], np.float32)
    y = np.array([1.0, 0.0, 5.0], np.float32)
    r = np.array([2.0, 4.0, 8.0], np.float32)
    _, (gx, gy) = ours(op, [x, y], {}, r)
    if op == "maximum":
        np.testing.assert_array_equal(gx, [1.0, 4.0, 0.0])
        np.testing.assert_array_equal(gy, [1.0, 0.0, 8.0])
    else:
        np.testing.assert_array_equal(gx, [1.0, 0.0, 8.0])
        np.testing.assert_array_equal(gy, [1.0, 4.0, 0.0])
    _, (tx, ty) = torch_ref(op, [x, y], {}, r)
    np.testing.assert_array_equal(gx, tx)
    np.testing.assert_array_equal(gy, ty)


def test_max_reduce_spreads_gradient_over_ties():
    x = np.array([[1.0, 3.0, 3.0, 3.0], [2.0, 0.0, 2.0, -1.0]], np.float32)
    r = np.array([6.0, 4.0], np.float32)
    _, (gx,) = ours("max", [x], {"axes": (1,)}, r)
    np.testing.assert_allclose(gx, [[0, 2, 2, 2], [2, 0, 2, 0]])
    _, (tx,) = torch_ref("max", [x], {"axes": (1,)}, r)
    np.testing.assert_allclose(gx, tx)


def test_where_sends_gradient_to_chosen_branch_only():
    c = np.array([True, False, True])
    x = np.array([1.0, 2.0, 3.0], np.float32)
    y = np.array([4.0, 5.0, 6.0], np.float32)
    r = np.array([1.0, 2.0, 3.0], np.float32)
    _, (gc, gx, gy) = ours("where", [c, x, y], {}, r)
    assert gc is None
    np.testing.assert_array_equal(gx, [1, 0, 3])
    np.testing.assert_array_equal(gy, [0, 2, 0])


# ---- unbroadcast ---------------------------------------------------------------------

@pytest.mark.parametrize("gshape,shape,axes", [
    ((2, 3), (2, 3), None),
    ((2, 3), (3,), (0,)),
    ((2, 3), (1, 3), (0,)),
    ((2, 3, 4), (3, 1), (0, 2)),
    ((2, 3), (), (0, 1)),
    ((4, 1), (1,), (0,)),
])
def test_unbroadcast(gshape, shape, axes):
    from nncompiler.backends.numpy import evaluate
    b = Builder()
    g = b.argument("g", "input", TensorType("f32", gshape))
    out = unbroadcast(b, g, shape)
    assert tuple(b.shape(out)) == tuple(shape)
    if axes is None:
        assert out == g   # nothing emitted
    a = np.arange(np.prod(gshape), dtype=np.float32).reshape(gshape)
    res = evaluate(b.build({"o": out}), {"g": a})["o"]
    want = a.sum(axis=axes, keepdims=True).reshape(shape) if axes else a
    np.testing.assert_array_equal(res, want)
    assert res.dtype == np.float32


# ---- agreement with torch at special points ----

def test_pow_at_zero_base_matches_torch():
    x = np.array([0.0, 0.0, 2.0, 0.0], np.float32)
    y = np.array([2.0, 0.0, 0.5, 1.5], np.float32)
    r = np.ones(4, np.float32)
    with np.errstate(all="ignore"):
        _, (gx, gy) = ours("pow", [x, y], {}, r)
    _, (tx, ty) = torch_ref("pow", [x, y], {}, r)
    np.testing.assert_allclose(gx, tx)
    np.testing.assert_allclose(gy, ty)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_minmax_nan_matches_torch(op):
    x = np.array([np.nan, 1.0, 2.0], np.float32)
    y = np.array([1.0, np.nan, 0.0], np.float32)
    r = np.ones(3, np.float32)
    _, (gx, gy) = ours(op, [x, y], {}, r)
    _, (tx, ty) = torch_ref(op, [x, y], {}, r)
    np.testing.assert_array_equal(gx, tx)
    np.testing.assert_array_equal(gy, ty)


@pytest.mark.parametrize("op,x,y", [
    ("sqrt", [0.0, 4.0], None), ("abs", [0.0, -0.0, -2.0], None), ("div", [1.0, -1.0], [0.0, 0.0]),
    ("log", [0.0, 1.0], None),
])
def test_special_points_match_torch(op, x, y):
    inputs = [np.array(x, np.float32)] + ([np.array(y, np.float32)] if y is not None else [])
    r = np.ones(len(x), np.float32)
    with np.errstate(all="ignore"):
        out, grads = ours(op, inputs, {}, r)
    t_out, t_grads = torch_ref(op, inputs, {}, r)
    np.testing.assert_array_equal(out, t_out)
    for g, t in zip(grads, t_grads):
        np.testing.assert_array_equal(g, t)


@pytest.mark.parametrize("start,normalized", [(-3, 2), (None, 0)])
def test_slice_starts_outside_the_contract_are_rejected_and_their_normal_form_matches_torch(start, normalized):
    # The IR's slice takes only 0 <= start (the front end normalises Python's negative and
    # omitted starts): the type rule must refuse the raw form with a clear message, and the
    # normalised form must give torch's gradient of the raw Python slice x[start:].
    from nncompiler.errors import ShapeError
    with pytest.raises(ShapeError, match="0 <= start"):
        op_graph("slice", [TensorType("f32", (5,))], {"start": (start,), "stop": (None,), "step": (1,)}, weight=False)
    x = np.arange(5, dtype=np.float32)
    r = np.linspace(1, 2, 5 - normalized).astype(np.float32)
    out, (gx,) = ours("slice", [x], {"start": (normalized,), "stop": (None,), "step": (1,)}, r)
    t_out, (tx,) = torch_ref("slice", [x], {"start": (start,), "stop": (None,), "step": (1,)}, r)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(gx, tx)
    assert np.count_nonzero(gx) == 5 - normalized


# ---- the harness itself catches broken rules ---------------------------------------------

def test_harness_catches_a_wrong_rule(monkeypatch):
    monkeypatch.setitem(VJP, "exp", lambda b, n, g, x: (g,))           # forgets the exp(x) factor
    with pytest.raises(AssertionError, match="vs torch"):
        check_op(OpCase("exp-broken", "exp", (S(2, 3),)))


def test_harness_catches_a_wrong_tie_rule(monkeypatch):
    # winner-takes-all on ties (what a naive `x >= y` mask does) must not pass as torch's split
    def naive(b, n, g, x, y):
        m = b.cast(b.ge(x.id, y.id), dtype=x.dtype)
        return (unbroadcast(b, b.mul(g, m), x.shape),
                unbroadcast(b, b.mul(g, b.sub(b.scalar(1.0, x.dtype), m)), y.shape))
    monkeypatch.setitem(VJP, "maximum", naive)
    with pytest.raises(AssertionError, match="vs torch"):
        check_op(OpCase("maximum-ties-broken", "maximum", (S(4, 5, kind="ties"), S(4, 5, kind="ties")), fd=False))
    check_op(OpCase("maximum-no-ties", "maximum", (S(4, 5), S(4, 5))))  # distinct values: still right


def test_harness_catches_a_wrong_f64_rule(monkeypatch):
    # a rule that is right in float32 but wrong in float64 is caught by the finite differences
    original = VJP["tanh"]

    def f32_only(b, n, g, x):
        (gx,) = original(b, n, g, x)
        return (b.mul(gx, b.scalar(1.001, "f64")) if x.dtype == "f64" else gx,)
    monkeypatch.setitem(VJP, "tanh", f32_only)
    with pytest.raises(AssertionError, match="finite differences"):
        check_op(OpCase("tanh-f64-broken", "tanh", (S(3),)))
