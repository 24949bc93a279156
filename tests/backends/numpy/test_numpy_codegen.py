"""The numpy backend: dtypes are kept exactly (no float64 upcast, int32 stays int32),
the generated module is readable Python with one commented line per IR node, symbolic
dimensions are bound from argument shapes, and non-differentiable primitives compute
what numpy says (the differentiable ones are checked against torch in tests/autodiff)."""
import ast
import re

import numpy as np
import pytest

from nncompiler.autodiff import grad
from nncompiler.backends.numpy import compile_graph, evaluate, generate, py_name
from nncompiler.backends.numpy.rules import PRELUDE
from nncompiler.errors import Loc
from nncompiler.ir import Builder, Graph, parse_graph, print_graph
from nncompiler.ir.shapes import NUMPY_DTYPE, TensorType

try:
    from tests.oracle import every_primitive_args, every_primitive_graph, missing_primitives
except ImportError:  # tests/ itself is on sys.path
    from oracle import every_primitive_args, every_primitive_graph, missing_primitives


def T(*shape, dtype="f32"):
    return TensorType(dtype, tuple(shape))


def every_node_an_output(g: Graph) -> Graph:
    """The same graph with every non-argument node also an output, so every value's dtype is visible."""
    extra = tuple((f"_n{n.id}", n.id) for n in g.nodes if n.op != "arg")
    return Graph(g.name, g.nodes, tuple(g.outputs) + extra)


def check_types(g: Graph, res: dict, sizes: dict | None = None):
    """Every output has exactly its IR dtype (and its IR shape, symbols bound from `sizes`)."""
    sizes = sizes or {}
    for name, i in g.outputs:
        v = res[name]
        want = np.dtype(NUMPY_DTYPE[g[i].dtype])
        got = np.asarray(v).dtype
        assert got == want, f"{name} ({g[i].op} %{i}): {got}, IR type {g[i].type}"
        shape = tuple(d if isinstance(d, int) else _eval_dim(d, sizes) for d in g[i].shape)
        assert np.shape(v) == shape, f"{name} ({g[i].op} %{i}): shape {np.shape(v)}, IR type {g[i].type}"


def _eval_dim(d: str, sizes: dict) -> int:
    out = 1
    for p in d.split("*"):
        out *= int(p) if p.isdigit() else sizes[p]
    return out


# ---- dtypes ------------------------------------------------------------------------

def test_every_primitive_keeps_its_dtype():
    g = every_primitive_graph()
    assert not missing_primitives(g)
    res = compile_graph(g)(every_primitive_args())
    check_types(g, res)
    # the float ops stay float32: nothing silently computed in float64
    for op in ("neg", "exp", "tanh", "sigmoid", "log", "log1p", "sqrt", "div", "pow", "size", "max",
               "matmul", "pad", "where", "random_uniform"):
        assert np.asarray(res[op]).dtype == np.float32, op
    assert np.asarray(res["sum"]).dtype == np.int32
    assert np.asarray(res["argmax"]).dtype == np.int32


def _scalar_graph(dtype):
    """Every elementwise/reduce primitive on rank-0 operands: numpy scalars are where upcasts hide."""
    b = Builder("scalars")
    x = b.argument("x", "input", T(dtype=dtype))
    p = b.argument("p", "input", T(dtype=dtype))
    c = b.argument("c", "input", T(dtype="bool"))
    outs = {}
    for op in ("neg", "exp", "tanh", "sigmoid", "abs", "sign", "stop_gradient"):
        outs[op] = b.emit(op, (x,))
    for op in ("log", "log1p", "sqrt"):
        outs[op] = b.emit(op, (p,))
    for op in ("add", "sub", "mul", "div", "pow", "maximum", "minimum"):
        outs[op] = b.emit(op, (p, x))
        outs[op + "_const"] = b.emit(op, (p, b.scalar(0.5, dtype)))
    outs["where"] = b.where(c, x, b.scalar(2.0, dtype))
    outs["sum"] = b.sum(x, axes=())
    outs["max"] = b.max(x, axes=(), keepdims=True)
    outs["reshape"] = b.reshape(x, shape=(1, 1))
    outs["broadcast_to"] = b.broadcast_to(x, shape=(2,))
    outs["transpose"] = b.transpose(x, perm=())
    outs["cast"] = b.cast(b.cast(x, dtype="i32"), dtype=dtype)
    outs["size"] = b.size(x, axes=(), dtype=dtype)
    return b.build(outs)


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_scalars_keep_their_dtype(dtype):
    g = _scalar_graph(dtype)
    f = np.dtype(NUMPY_DTYPE[dtype]).type
    res = compile_graph(g)({"x": f(-0.75), "p": f(1.5), "c": np.bool_(True)})
    check_types(g, res)


def test_f32_gradient_graph_has_no_float64_anywhere():
    # a backward pass emits its own constants (0.5, 1.0, ...): they must be float32 too
    b = Builder("net")
    x = b.argument("x", "input", T("B", 4))
    w = b.argument("w", "param", T(4, 3))
    v = b.argument("v", "param", T(3))
    h = b.add(b.matmul(x, w), v)
    parts = [b.sigmoid(h), b.tanh(h), b.sqrt(b.abs(h)), b.log1p(b.mul(h, h)),
             b.maximum(h, b.scalar(0.0)), b.minimum(h, b.scalar(0.1)), b.div(h, b.exp(h)),
             b.pow(b.add(b.abs(h), b.scalar(1.0)), b.broadcast_to(v, shape=("B", 3)))]
    acc = parts[0]
    for q in parts[1:]:
        acc = b.add(acc, q)
    m = b.max(acc, axes=(1,), keepdims=True)
    acc = b.sub(acc, m)
    sl = b.slice(b.pad(acc, lo=(0, 1), hi=(0, 1), interior=(0, 1)), start=(0, 1), stop=(None, 6), step=(1, 2))
    tr = b.reshape(b.transpose(b.reshape(acc, shape=("B", 3, 1)), perm=(0, 2, 1)), shape=("B", 3))
    cat = b.concat(sl, acc, tr, axis=1)
    loss = b.div(b.sum(cat, axes=(0, 1)), b.size(x, axes=(0,), dtype="f32"))
    gg = every_node_an_output(grad(b.build({"loss": loss}), wrt=["w", "v"]))
    assert {n.dtype for n in gg.nodes} <= {"f32", "bool"}
    rng = np.random.default_rng(0)
    res = compile_graph(gg)({"x": rng.standard_normal((5, 4)).astype(np.float32),
                              "w": rng.standard_normal((4, 3)).astype(np.float32),
                              "v": rng.standard_normal(3).astype(np.float32)})
    check_types(gg, res, {"B": 5})
    assert np.isfinite(res["grad.w"]).all()


def test_int32_stays_int32():
    b = Builder("ints")
    i = b.argument("i", "input", T(3, 4, dtype="i32"))
    j = b.argument("j", "input", T(4, dtype="i32"))
    outs = {
        "sum_all": b.sum(i, axes=(0, 1)),
        "sum_rows": b.sum(i, axes=(1,), keepdims=True),
        "add": b.add(i, j), "mul": b.mul(i, b.scalar(3, "i32")), "sub": b.sub(j, i),
        "neg": b.neg(i), "abs": b.abs(i), "sign": b.sign(i),
        "max": b.max(i, axes=(0,)), "maximum": b.maximum(i, j), "minimum": b.minimum(i, j),
        "where": b.where(b.gt(i, j), i, j),
        "matmul": b.matmul(i, b.reshape(j, shape=(4, 1))),
        "argmax": b.argmax(i, axis=0), "size": b.size(i, axes=(0, 1), dtype="i32"),
        "iota": b.iota(axis=0, dtype="i32", shape=(3,)),
        "cast": b.cast(b.cast(i, dtype="f32"), dtype="i32"),
        "concat": b.concat(i, i, axis=0), "pad": b.pad(j, lo=(1,), hi=(1,), interior=(1,)),
    }
    g = b.build(outs)
    iv = np.arange(12, dtype=np.int32).reshape(3, 4) - 6
    jv = np.array([2, -1, 0, 5], np.int32)
    res = compile_graph(g)({"i": iv, "j": jv})
    check_types(g, res)
    assert res["sum_all"] == iv.sum() and res["sum_all"].dtype == np.int32
    np.testing.assert_array_equal(res["sum_rows"], iv.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(res["matmul"], iv @ jv.reshape(4, 1))


def test_int32_sum_wraps_like_int32():
    # summing in int64 and casting back would hide the same overflow; the dtype is what we pin
    b = Builder("big")
    i = b.argument("i", "input", T(3, dtype="i32"))
    g = b.build({"s": b.sum(i, axes=(0,))})
    v = np.full(3, 2**30, np.int32)
    res = compile_graph(g)({"i": v})
    assert res["s"].dtype == np.int32
    assert int(res["s"]) == int(np.sum(v, dtype=np.int32))


def test_f64_stays_f64():
    b = Builder("f64")
    x = b.argument("x", "input", T(2, 3, dtype="f64"))
    y = b.sigmoid(b.add(b.mul(x, b.scalar(1 / 3, "f64")), b.exp(x)))
    z = b.sum(y, axes=(1,))
    g = every_node_an_output(b.build({"z": z}))
    res = compile_graph(g)({"x": np.arange(6.0).reshape(2, 3)})
    check_types(g, res)
    want = 1 / (1 + np.exp(-(np.arange(6.0).reshape(2, 3) / 3 + np.exp(np.arange(6.0).reshape(2, 3)))))
    np.testing.assert_allclose(res["z"], want.sum(axis=1), rtol=1e-15)


# ---- values of the primitives torch does not differentiate ------------------------------

def test_non_differentiable_primitives_match_numpy():
    g = every_primitive_graph()
    args = every_primitive_args(seed=1)
    args["y"][0, 0] = args["p"][0, 0]           # one exact tie for the comparisons
    res = evaluate(g, args)
    p, y, x = args["p"], args["y"], args["x"]
    for op, fn in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal),
                   ("eq", np.equal), ("ne", np.not_equal)]:
        np.testing.assert_array_equal(res[op], fn(p, y), err_msg=op)
        assert res[op].dtype == np.bool_
    np.testing.assert_array_equal(res["argmax"], np.argmax(x, axis=1))
    assert res["size"] == 2
    np.testing.assert_array_equal(res["iota"], np.broadcast_to(np.arange(5), (2, 5)))
    np.testing.assert_array_equal(res["sign"], np.sign(x))
    np.testing.assert_array_equal(res["sum"], args["i"].sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(res["where"], np.where(args["c"], x, y))
    np.testing.assert_array_equal(res["const"], [[1.0, -2.5], [3.0, 4.0]])
    want_pad = np.zeros((4, 7), np.float32)
    want_pad[1::2, 0:5:2] = x
    np.testing.assert_array_equal(res["pad"], want_pad)
    np.testing.assert_array_equal(res["slice"], x[0:2, 1::2])


def test_argmax_picks_the_first_maximum_and_keepdims():
    b = Builder("am")
    x = b.argument("x", "input", T(2, 4))
    g = b.build({"a": b.argmax(x, axis=-1, keepdims=True), "b": b.argmax(x, axis=0)})
    xv = np.array([[1, 3, 3, 0], [2, 2, 2, 2]], np.float32)
    res = evaluate(g, {"x": xv})
    np.testing.assert_array_equal(res["a"], [[1], [0]])
    np.testing.assert_array_equal(res["b"], [1, 0, 0, 1])


def test_random_sources_are_reproducible_and_in_range():
    b = Builder("rand")
    u = b.random_uniform(low=-2.0, high=3.0, seed=11, dtype="f32", shape=(1000,))
    u2 = b.random_uniform(low=-2.0, high=3.0, seed=12, dtype="f32", shape=(1000,))
    n = b.random_normal(mean=1.0, stddev=0.5, seed=11, dtype="f64", shape=(2000,))
    g = b.build({"u": u, "u2": u2, "n": n})
    r1, r2 = evaluate(g), evaluate(g)
    for k in r1:
        np.testing.assert_array_equal(r1[k], r2[k])
    assert r1["u"].dtype == np.float32 and r1["n"].dtype == np.float64
    assert r1["u"].min() >= -2.0 and r1["u"].max() < 3.0
    assert not np.array_equal(r1["u"], r1["u2"])
    assert abs(r1["n"].mean() - 1.0) < 0.05 and abs(r1["n"].std() - 0.5) < 0.05


def test_rng_uniform_depends_on_the_key():
    g = every_primitive_graph()
    if not any(n.op == "rng_uniform" for n in g.nodes):
        pytest.skip("no rng_uniform primitive")
    fn = compile_graph(g)
    args = every_primitive_args()
    a = fn({**args, "rng.key": np.int32(1)})["rng_uniform"]
    b = fn({**args, "rng.key": np.int32(1)})["rng_uniform"]
    c = fn({**args, "rng.key": np.int32(2)})["rng_uniform"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and ((a >= 0) & (a < 1)).all()


def test_sigmoid_is_stable_at_large_magnitudes():
    b = Builder("sig")
    x = b.argument("x", "input", T(6))
    g = b.build({"s": b.sigmoid(x), "t": b.tanh(x)})
    xv = np.array([-1e4, -100, -20, 20, 100, 1e4], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        res = evaluate(g, {"x": xv})
    want = np.exp(-np.logaddexp(0.0, -xv.astype(np.float64)))      # 1 / (1 + e^-x), without overflow
    np.testing.assert_allclose(res["s"], want, rtol=1e-6, atol=1e-38)
    assert res["s"].dtype == np.float32
    np.testing.assert_array_equal(res["t"], np.sign(xv))


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("rows", [10, 100])        # below and above the helper's small-block size
def test_sigmoid_helper_gives_the_tables_formula_bit_for_bit(inplace, rows):
    # the prelude's _sigmoid computes the formula in as few numpy calls as it can; it must
    # still give exactly what the formula gives, written out plainly in float32, including
    # when it overwrites its operand (the memory plan's in-place form)
    ns: dict = {}
    exec(PRELUDE, ns)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(rows * 101 - 13).astype(np.float32) * 30,
                        np.array([0.0, -0.0, 1e-45, -1e-45, 88.7, -88.7, 104, -104, 1e30, -1e30,
                                  np.inf, -np.inf, np.nan], np.float32)]).reshape(rows, 101)
    e = np.exp(-np.abs(x))
    want = np.where(x >= 0, np.float32(1), e) / (np.float32(1) + e)
    got = ns["_sigmoid"](x.copy()) if not inplace else None
    if inplace:
        buf = x.copy()
        got = ns["_sigmoid"](buf, buf)
        assert got is buf
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    s0 = ns["_sigmoid"](np.float32(-3.0))          # a numpy scalar takes no out=
    e0 = np.exp(np.float32(-3.0))
    assert s0.dtype == np.float32 and s0 == e0 / (np.float32(1) + e0)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), -0.0])
def test_special_float_constants(value):
    b = Builder("special")
    x = b.argument("x", "input", T(2))
    c = b.scalar(value)
    arr = b.constant((value, 1.0), "f32", (2,))
    g = b.build({"s": b.add(x, c), "a": b.add(x, arr)})
    res = evaluate(g, {"x": np.zeros(2, np.float32)})
    np.testing.assert_array_equal(res["s"], np.float32(value) + np.zeros(2, np.float32))
    np.testing.assert_array_equal(res["a"], np.array([value, 1.0], np.float32))
    assert res["s"].dtype == np.float32 and res["a"].dtype == np.float32


@pytest.mark.parametrize("dtype,value,shape", [
    ("f32", ((1.0, 2.0), (3.0, 4.0)), (2, 2)),
    ("i32", (((1, 2, 3),), ((4, 5, 6),)), (2, 1, 3)),
    ("bool", ((True, False),), (1, 2)),
    ("f64", 2.5, ()),
    ("i64", -3, ()),
])
def test_constants(dtype, value, shape):
    b = Builder("c")
    g = b.build({"c": b.constant(value, dtype, shape)})
    res = evaluate(g)
    assert res["c"].dtype == np.dtype(NUMPY_DTYPE[dtype]) and res["c"].shape == shape
    np.testing.assert_array_equal(res["c"], np.array(value, dtype=NUMPY_DTYPE[dtype]))


# ---- the generated source ------------------------------------------------------------

def test_generated_source_is_python_with_one_commented_line_per_node():
    g = every_primitive_graph()
    # put a location on some nodes: it is echoed in the comment
    b = Builder(g.name)
    for n in g.nodes:
        loc = Loc("model.nn", n.id + 1, 3) if n.id % 3 == 0 and n.op != "arg" else None
        b.add_node(type(n)(n.id, n.op, n.inputs, n.attrs, n.type, loc))
    g = b.build(g.outputs)
    src = generate(g)
    tree = ast.parse(src)
    fns = [d for d in tree.body if isinstance(d, ast.FunctionDef)]
    assert [f.name for f in fns if f.name == "every"] == ["every"]
    fn = next(f for f in fns if f.name == "every")
    assert [a.arg for a in fn.args.args] == [py_name(a.attr["name"]) for a in g.args] + ["_ws"]
    lines = src.splitlines()
    for n in g.nodes:
        if n.op in ("arg", "const"):  # constants are module-level names, built once
            continue
        if n.op.startswith("sparse_xent"):   # the loss and its gradient: one call, one line
            (line,) = [ln for ln in lines if re.search(rf"%{n.id} {n.op}\b", ln)]
            assert re.match(r"\s+t\d+, t\d+ = _sparse_xent_and_grad\(", line) and f"t{n.id}" in line, line
            continue
        tagged = [ln for ln in lines if re.search(rf"# %{n.id} {n.op}\b", ln)]
        assert len(tagged) == 1, (n, tagged)
        line = tagged[0]
        assert re.match(rf"\s+t{n.id} = ", line), line
        if n.loc is not None:
            assert line.endswith(f"# %{n.id} {n.op}  {n.loc}"), line
        else:
            assert line.endswith(f"# %{n.id} {n.op}"), line
    # every body statement but the symbol bindings and the return is a commented node
    body = [ln for ln in lines[fn.lineno:] if ln.strip()]
    for ln in body:
        assert ln.strip().startswith(("s_", "return")) or "  # %" in ln, ln


def test_generated_source_is_deterministic_and_named():
    g = every_primitive_graph()
    assert generate(g) == generate(g)
    assert "def my_fn(" in generate(g, "my_fn")
    assert compile_graph(g, "my_fn").fn.__name__ == "my_fn"


def test_parsed_graph_compiles_to_the_same_source():
    g = every_primitive_graph()
    assert generate(parse_graph(print_graph(g))) == generate(g)


@pytest.mark.parametrize("name,want", [("x", "a_x"), ("h.kernel", "a_h_kernel"), ("dense_1.bias", "a_dense_1_bias"),
                                       ("rng.key", "a_rng_key")])
def test_py_name(name, want):
    assert py_name(name) == want


# ---- symbolic dimensions -------------------------------------------------------------

def test_symbolic_dims_are_bound_from_argument_shapes():
    b = Builder("sym")
    x = b.argument("x", "input", T("B", 2, 2))
    t = b.argument("t", "input", T(3, "T"))
    flat = b.reshape(x, shape=("4*B",))
    back = b.reshape(flat, shape=("B", 4))
    ones = b.broadcast_to(b.scalar(1.0), shape=("B", "T"))
    n = b.size(x, axes=(0,), dtype="i32")
    rows = b.reshape(b.concat(back, back, axis=0), shape=("8*B",))
    g = b.build({"flat": flat, "back": back, "ones": ones, "n": n, "rows": rows, "tt": b.transpose(t, perm=(1, 0))})
    src = generate(g)
    assert "s_B = a_x.shape[0]" in src and "s_T = a_t.shape[1]" in src
    assert "(4*s_B,)" in src.replace(" ", "")
    fn = compile_graph(g)
    for B, Tn in [(1, 1), (3, 5), (7, 2)]:
        xv = np.arange(B * 4, dtype=np.float32).reshape(B, 2, 2)
        res = fn({"x": xv, "t": np.zeros((3, Tn), np.float32)})
        check_types(g, res, {"B": B, "T": Tn})
        np.testing.assert_array_equal(res["flat"], xv.reshape(-1))
        np.testing.assert_array_equal(res["back"], xv.reshape(B, 4))
        assert res["n"] == B and res["ones"].shape == (B, Tn)


def test_symbol_bound_from_a_later_axis_only_once():
    b = Builder("sym")
    x = b.argument("x", "input", T(2, "B"))
    y = b.argument("y", "input", T("B", "B"))
    g = b.build({"s": b.add(x, b.sum(y, axes=(0,), keepdims=True))})
    src = generate(g)
    assert src.count("s_B =") == 1 and "s_B = a_x.shape[1]" in src
    res = compile_graph(g)({"x": np.ones((2, 3), np.float32), "y": np.ones((3, 3), np.float32)})
    np.testing.assert_array_equal(res["s"], np.full((2, 3), 4.0))


def test_unbound_symbol_is_an_error():
    b = Builder("unbound")
    x = b.argument("x", "input", T("4*B"))        # B only appears inside a product
    g = b.build({"y": b.reshape(x, shape=("B", 4))})
    with pytest.raises(ValueError, match=r"\['B'\].*not bound"):
        generate(g)


def test_missing_argument_is_a_key_error():
    b = Builder("g")
    x = b.argument("x", "input", T(2))
    b.argument("y", "input", T(2))
    fn = compile_graph(b.build({"o": b.neg(x)}))
    with pytest.raises(KeyError, match="missing argument 'y'"):
        fn({"x": np.zeros(2, np.float32)})


# ---- regressions ----------

def test_rank0_slice():
    b = Builder("s")
    x = b.argument("x", "input", T())
    g = b.build({"o": b.slice(x, start=(), stop=(), step=())})
    assert compile_graph(g)({"x": np.float32(2)})["o"] == 2


def test_argument_names_that_differ_only_in_punctuation():
    b = Builder("f")
    x = b.argument("h.kernel", "param", T(3))
    y = b.argument("h_kernel", "param", T(3))
    fn = compile_graph(b.build({"o": b.sub(x, y)}))
    res = fn({"h.kernel": np.ones(3, np.float32), "h_kernel": np.zeros(3, np.float32)})
    np.testing.assert_array_equal(res["o"], np.ones(3))


def test_small_column_slices_read_elementwise_are_copied_contiguous():
    # an LSTM step's gates: column slices of one [B, 4u] value, read by elementwise ops and
    # returned; the generated code copies them once (fast contiguous readers) with the same bits
    from nncompiler.ir.interpret import interpret
    b = Builder("gates")
    z = b.argument("z", "input", T("B", 8))
    c = b.argument("c", "input", T("B", 2))
    s = b.sigmoid(z)
    i = b.slice(s, start=(0, 0), stop=(None, 2), step=(1, 1))
    f = b.slice(s, start=(0, 2), stop=(None, 4), step=(1, 1))
    g = b.tanh(b.slice(z, start=(0, 4), stop=(None, 6), step=(1, 1)))
    rows = b.slice(z, start=(0, 0), stop=(1, None), step=(1, 1))      # whole rows: a view already
    g_out = b.build({"c": b.add(b.mul(f, c), b.mul(i, g)), "i": i, "rows": b.exp(rows)})
    src = generate(g_out)
    assert src.count(".copy()") == 3, src
    rng = np.random.default_rng(1)
    args = {"z": rng.standard_normal((5, 8)).astype(np.float32), "c": rng.standard_normal((5, 2)).astype(np.float32)}
    got, want = compile_graph(g_out)(args), interpret(g_out, args)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    assert got["i"].flags.c_contiguous


def test_a_product_with_one_long_side_calls_the_blocked_matmul():
    """[B, 4096] @ [4096, 10] may be thin (ir/products.py blocks it); [3, 4] @ [4, 5] never is,
    and stays a plain `@`. Both equal the float64 product."""
    b = Builder("g")
    x = b.argument("x", "input", TensorType("f32", ("B", 4096)))
    w = b.argument("w", "param", TensorType("f32", (4096, 10)))
    u = b.argument("u", "input", TensorType("f32", (3, 4)))
    v = b.argument("v", "param", TensorType("f32", (4, 5)))
    g = b.build({"y": b.matmul(x, w), "z": b.matmul(u, v)})
    src = generate(g)
    assert "(_matmul(a_x, a_w) if (s_B * 10 <= 1024) else a_x @ a_w)" in src and "t5 = a_u @ a_v" in src
    rng = np.random.default_rng(0)
    args = {k: rng.standard_normal(s).astype(np.float32) for k, s in
            [("x", (64, 4096)), ("w", (4096, 10)), ("u", (3, 4)), ("v", (4, 5))]}
    out = compile_graph(g)(args)
    np.testing.assert_allclose(out["y"], args["x"].astype(np.float64) @ args["w"], rtol=1e-4, atol=1e-3)
    big = compile_graph(g)({**args, "x": np.repeat(args["x"], 20, axis=0)})     # B = 1280: plain @ again
    np.testing.assert_allclose(big["y"], np.repeat(args["x"].astype(np.float64) @ args["w"], 20, axis=0),
                               rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(out["z"], args["u"].astype(np.float64) @ args["v"], rtol=1e-5, atol=1e-6)
