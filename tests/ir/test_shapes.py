"""Tensor types, symbolic dimensions and broadcasting."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nncompiler.errors import ShapeError
from nncompiler.ir.shapes import (TensorType, broadcast_shapes, canon_dim, dim_add, dim_div, dim_mul,
                                  fmt_shape, is_static, numel, parse_type, symbols)


# ---- canonical form -----------------------------------------------------------------

@pytest.mark.parametrize("dim,canon", [
    (3, 3), (0, 0), ("B", "B"), ("4*B", "4*B"), ("B*4", "4*B"), ("1*B", "B"), ("0*B", 0),
    ("T*B", "B*T"), ("2*T*3*B", "6*B*T"), (" 2 * B ", "2*B"), ("2*3", 6), ("B*B", "B*B"),
    ("batch_size", "batch_size"), ("_n1", "_n1"),
])
def test_canon_dim(dim, canon):
    assert canon_dim(dim) == canon
    assert type(canon_dim(dim)) is type(canon)
    assert canon_dim(canon_dim(dim)) == canon_dim(dim)   # idempotent


@pytest.mark.parametrize("bad", ["B-1", "B+T", "", "2B", "B*", "*B", "B/2", "-B", "1.5*B"])
def test_bad_dim(bad):
    with pytest.raises(ShapeError, match="bad dimension"):
        canon_dim(bad)


# ---- arithmetic -----------------------------------------------------------------------

@pytest.mark.parametrize("a,b,prod", [
    (2, 3, 6), ("B", 4, "4*B"), (4, "B", "4*B"), ("2*B", "T", "2*B*T"), ("B", "B", "B*B"),
    ("B", 1, "B"), ("B", 0, 0), ("3*T", "2*B", "6*B*T"),
])
def test_dim_mul(a, b, prod):
    assert dim_mul(a, b) == prod
    assert dim_mul(b, a) == prod


@pytest.mark.parametrize("a,b,quot", [
    (12, 4, 3), (12, 5, None), ("4*B", 4, "B"), ("4*B", 2, "2*B"), ("4*B", "B", 4), ("4*B", 3, None),
    ("4*B", "T", None), (6, "B", None), ("B*T", "T", "B"), ("6*B*T", "2*B", "3*T"), ("B", "B", 1),
    ("B", 0, None), (0, 5, 0), ("B*B", "B", "B"),
])
def test_dim_div(a, b, quot):
    assert dim_div(a, b) == quot


@pytest.mark.parametrize("a,b,total", [
    (2, 3, 5), ("B", "B", "2*B"), ("B", "2*B", "3*B"), (0, "B", "B"), ("B", 0, "B"), ("2*B*T", "T*B", "3*B*T"),
])
def test_dim_add(a, b, total):
    assert dim_add(a, b) == total


@pytest.mark.parametrize("a,b", [("B", "T"), ("B", 1), (3, "B"), ("B", "B*B")])
def test_dim_add_unrelated(a, b):
    with pytest.raises(ShapeError, match="cannot add dimensions"):
        dim_add(a, b)


@pytest.mark.parametrize("shape,n", [
    ((), 1), ((3,), 3), ((2, 3, 4), 24), (("B", 2, 2), "4*B"), (("B", "T", 8), "8*B*T"),
    ((0, "B"), 0), ((1, "B", 1), "B"), (("4*B", 2), "8*B"),
])
def test_numel(shape, n):
    assert numel(shape) == n


@settings(max_examples=100, deadline=None)
@given(a=st.integers(1, 50), b=st.integers(1, 50), syms=st.lists(st.sampled_from("BTN"), max_size=3))
def test_mul_div_inverse(a, b, syms):
    d = "*".join([str(a)] + syms)
    assert dim_div(dim_mul(d, b), b) == canon_dim(d)
    assert dim_div(dim_mul(d, b), d) == b
    # with every symbol bound to a number, the algebra agrees with integers
    env = {"B": 3, "T": 5, "N": 7}
    assert _value(dim_mul(d, b), env) == _value(d, env) * b


def _value(d, env):
    if isinstance(d, int):
        return d
    out = 1
    for p in d.split("*"):
        out *= int(p) if p.isdigit() else env[p]
    return out


def test_symbols_and_is_static():
    assert symbols((2, "B", "4*B*T", "T")) == ["B", "T"]
    assert symbols((2, 3)) == []
    assert is_static((2, 3)) and is_static(())
    assert not is_static((2, "B"))


# ---- broadcasting ----------------------------------------------------------------------

@pytest.mark.parametrize("a,b,out", [
    ((2, 3), (2, 3), (2, 3)),
    ((3, 1), (1, 4), (3, 4)),
    ((4,), (2, 3, 4), (2, 3, 4)),
    ((2, 3, 4), (4,), (2, 3, 4)),
    ((), (2, 3), (2, 3)),
    ((2, 3), (), (2, 3)),
    ((), (), ()),
    ((1,), (5,), (5,)),
    ((5, 1, 3), (4, 1), (5, 4, 3)),
    ((1, 1), (1,), (1, 1)),
    ((0,), (1,), (0,)),
    (("B", 1), (1, 4), ("B", 4)),
    (("B", 4), (4,), ("B", 4)),
    (("B", 4), ("B", 1), ("B", 4)),
    ((1,), ("B",), ("B",)),
    (("4*B",), (1,), ("4*B",)),
])
def test_broadcast_shapes(a, b, out):
    assert broadcast_shapes(a, b) == out
    assert broadcast_shapes(b, a) == out
    if is_static(a) and is_static(b):
        assert out == np.broadcast_shapes(a, b)


@pytest.mark.parametrize("a,b", [
    ((2,), (3,)), ((2, 3), (3, 2)), ((4, 3), (2, 1, 2)), (("B",), ("T",)), (("B",), (3,)),
    (("B", 4), ("2*B", 4)), ((0,), (2,)),
])
def test_broadcast_failure(a, b):
    with pytest.raises(ShapeError) as info:
        broadcast_shapes(a, b)
    assert str(info.value) == f"shapes {fmt_shape(a)} and {fmt_shape(b)} cannot be broadcast together"


@settings(max_examples=100, deadline=None)
@given(a=st.lists(st.integers(0, 3), max_size=4), b=st.lists(st.integers(0, 3), max_size=4))
def test_broadcast_matches_numpy(a, b):
    try:
        want = np.broadcast_shapes(tuple(a), tuple(b))
    except ValueError:
        with pytest.raises(ShapeError):
            broadcast_shapes(tuple(a), tuple(b))
    else:
        assert broadcast_shapes(tuple(a), tuple(b)) == want


# ---- TensorType ---------------------------------------------------------------------

def test_tensor_type_canonicalises_and_prints():
    t = TensorType("f32", ("B*4", 3, "T*B"))
    assert t.shape == ("4*B", 3, "B*T")
    assert t == TensorType("f32", ("4*B", 3, "B*T"))
    assert hash(t) == hash(TensorType("f32", ("4*B", 3, "B*T")))
    assert t.rank == 3
    assert str(t) == "f32[4*B,3,B*T]"
    assert str(TensorType("bool", ())) == "bool[]"


@pytest.mark.parametrize("dtype", ["f16", "float32", "int", ""])
def test_unknown_dtype(dtype):
    with pytest.raises(ShapeError, match="unknown dtype"):
        TensorType(dtype, (2,))


def test_bad_dim_in_type():
    with pytest.raises(ShapeError, match="bad dimension"):
        TensorType("f32", ("B-1",))


@pytest.mark.parametrize("text", ["f32[]", "f64[3]", "i32[2,3]", "bool[B,4]", "i64[4*B,T]", "f32[ B , 2 ]",
                                  "f32[B*4]"])
def test_parse_type_roundtrip(text):
    t = parse_type(text)
    assert parse_type(str(t)) == t
    assert str(parse_type(str(t))) == str(t)


def test_parse_type_values():
    assert parse_type("f32[B*4, 3]") == TensorType("f32", ("4*B", 3))
    assert parse_type("i32[]") == TensorType("i32", ())


@pytest.mark.parametrize("text", ["f32", "f32(3)", "[3]", "f32[3", "f16[3]", "f32[3-B]"])
def test_parse_type_errors(text):
    with pytest.raises(ShapeError):
        parse_type(text)


# ---- Monomial: the one reader of dimension strings --------------------------------------

@pytest.mark.parametrize("dim,coef,syms", [
    (7, 7, ()), ("B", 1, ("B",)), ("4*B", 4, ("B",)), ("T*2*B*3", 6, ("B", "T")), ("B*B", 1, ("B", "B")),
])
def test_monomial_parse(dim, coef, syms):
    from nncompiler.ir.shapes import Monomial
    m = Monomial.parse(dim)
    assert (m.coef, m.syms) == (coef, syms)
    assert m.dim == canon_dim(dim) and str(m) == str(canon_dim(dim))


def test_monomial_evaluate_and_bind():
    from nncompiler.ir.shapes import Monomial, eval_dim, eval_shape
    m = Monomial.parse("3*B*T*B")
    assert m.evaluate({"B": 2, "T": 5}) == 3 * 2 * 5 * 2
    assert m.evaluate({"B": 2}, default=1) == 12
    with pytest.raises(KeyError, match="T"):
        m.evaluate({"B": 2})
    assert m.bind({"B": 2}) == "12*T" and m.bind({"B": 2, "T": 1}) == 12 and m.bind({}) == "3*B*B*T"
    assert eval_shape(("B", 4, "2*B"), {"B": 3}) == (3, 4, 6) and eval_dim(9, {}) == 9
    with pytest.raises(ShapeError, match="bad dimension"):
        Monomial.parse("B+1")
