"""The IR's text form: print -> parse -> print is the identity, and parse errors point
at a line and column."""
import math
import re
from textwrap import dedent

import pytest

from nncompiler.errors import ShapeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nncompiler.autodiff import grad
from nncompiler.errors import CompileError, Loc
from nncompiler.ir import Builder, Graph, parse_graph, parse_graphs, print_graph, print_graphs, verify
from nncompiler.ir.shapes import TensorType, canon_dim

try:
    from tests.oracle import every_primitive_graph
except ImportError:  # tests/ itself is on sys.path
    from oracle import every_primitive_graph


def T(*shape, dtype="f32"):
    return TensorType(dtype, tuple(shape))


def roundtrip(g: Graph) -> Graph:
    text = print_graph(g)
    back = parse_graph(text)
    assert print_graph(back) == text
    verify(back)
    return back


def allsum(b, v):
    return b.sum(v, axes=tuple(range(len(b.shape(v)))), keepdims=False)


# ---- graphs to round-trip -------------------------------------------------------------

def g_docstring():
    b = Builder("forward")
    x = b.argument("x", "input", T("B", 4))
    k = b.argument("h.kernel", "param", T(4, 16))
    with b.at(Loc("iris.nn", 5, 11)):
        h = b.matmul(x, k)
    return b.build({"out": h, "loss": b.sum(h, axes=(0, 1), keepdims=False)})


def g_every_primitive():
    return every_primitive_graph()


def g_constants():
    b = Builder("consts")
    x = b.argument("x", "input", T(2, 2))
    vals = [0.0, -0.0, 1.5, -1.5, 1e-30, -3.4e38, 1e300, float("inf"), float("-inf"), float("nan"), 0.1, 1 / 3]
    acc = x
    for v in vals:                       # f64 scalars (exact repr), cast down
        acc = b.add(acc, b.cast(b.scalar(v, "f64"), dtype="f32"))
    for v in (0.1, -2.0, float("-inf"), float("nan")):   # f32 scalars: rounded to float32 on the way in
        acc = b.add(acc, b.scalar(v, "f32"))
    acc = b.add(acc, b.constant(((float("nan"), float("-inf")), (-7, 2.5e-8)), "f32", (2, 2)))
    k = b.constant((((1, 2, 3),), ((4, 5, 6),)), "i32", (2, 1, 3))       # nested three deep
    t = b.constant(((True, False),), "bool", (1, 2))
    s = b.scalar(-3, "i64")
    return b.build({"acc": acc, "k": k, "t": t, "s": s})


def g_symbolic():
    b = Builder("sym")
    x = b.argument("x", "input", T("B", 2, 2))
    t = b.argument("tokens", "input", T("B", "T", 8))
    flat = b.reshape(x, shape=("B", 4))
    flat2 = b.reshape(flat, shape=("4*B",))
    both = b.reshape(t, shape=("8*B*T",))
    cat = b.concat(flat, flat, axis=0)                                   # 2*B
    return b.build({"flat": flat2, "both": both, "cat": cat, "n": b.size(t, axes=(0, 1), dtype="i32")})


def g_names_and_locs():
    b = Builder("names")
    x = b.argument("layer1.dense.kernel", "param", T(3))
    y = b.argument("_private", "state", T(3))
    z = b.argument("x2", "target", T(3))
    with b.at(Loc("my model.nn", 12, 4)):
        u = b.add(x, y)
    with b.at(Loc('we"ird\\path/ünïcode.nn', 1, 1)):
        v = b.mul(u, z)
    w = b.exp(v, loc=Loc("other.nn", 99, 123))
    return b.build({"u": u, "result": w, "again": w})


def g_mlp():
    b = Builder("mlp")
    x = b.argument("x", "input", T("B", 4))
    y = b.argument("y", "target", T("B", 3))
    w1 = b.argument("dense.kernel", "param", T(4, 8))
    b1 = b.argument("dense.bias", "param", T(8))
    w2 = b.argument("out.kernel", "param", T(8, 3))
    h = b.maximum(b.add(b.matmul(x, w1), b1), b.scalar(0.0))
    logits = b.matmul(h, w2)
    m = b.max(logits, axes=(1,), keepdims=True)
    z = b.sub(logits, b.stop_gradient(m))
    lse = b.log(b.sum(b.exp(z), axes=(1,), keepdims=True))
    per = b.neg(b.sum(b.mul(b.sub(z, lse), y), axes=(-1,)))
    loss = b.div(b.sum(per, axes=(0,)), b.size(x, axes=(0,), dtype="f32"))
    return b.build({"loss": loss, "pred": b.argmax(logits, axis=1)})


def g_mlp_grad():
    return grad(g_mlp(), wrt=["dense.kernel", "dense.bias", "out.kernel"])


def g_movement_grad():
    b = Builder("moves")
    x = b.argument("x", "param", T(3, 5))
    s = b.slice(x, start=(1, 0), stop=(3, 5), step=(1, 2))
    p = b.pad(s, lo=(1, 1), hi=(0, 2), interior=(0, 1))
    c = b.concat(p, p, axis=1)
    t = b.transpose(c, perm=(1, 0))
    mx = b.max(t, axes=(0,))
    mm = b.minimum(b.maximum(mx, b.scalar(0.5)), b.scalar(2.0))
    w = b.where(b.gt(mm, b.scalar(1.0)), mm, b.pow(b.abs(mm), b.scalar(1.5)))
    return grad(b.build({"loss": allsum(b, w)}), wrt=["x"])


def g_no_args():
    b = Builder("noargs")
    return b.build({"c": b.scalar(2.0)})


GRAPHS = [g_docstring, g_every_primitive, g_constants, g_symbolic, g_names_and_locs, g_mlp,
          g_mlp_grad, g_movement_grad, g_no_args]


@pytest.mark.parametrize("make", GRAPHS, ids=[f.__name__ for f in GRAPHS])
def test_roundtrip(make):
    g = make()
    back = roundtrip(g)
    assert [n.type for n in back.nodes if n.op != "arg"] == [n.type for n in g.nodes if n.op != "arg"]
    assert [n.loc for n in back.nodes if n.op != "arg"] == [n.loc for n in g.nodes if n.op != "arg"]
    assert [name for name, _ in back.outputs] == [name for name, _ in g.outputs]
    # the text without locations round-trips too
    bare = print_graph(g, with_locs=False)
    assert "loc(" not in bare
    assert print_graph(parse_graph(bare), with_locs=False) == bare


@pytest.mark.parametrize("make", GRAPHS, ids=[f.__name__ for f in GRAPHS])
def test_roundtrip_preserves_attributes(make):
    g = make()
    back = parse_graph(print_graph(g))
    ours = [n for n in g.nodes if n.op != "arg"]
    theirs = [n for n in back.nodes if n.op != "arg"]
    for a, b in zip(ours, theirs, strict=True):
        assert a.op == b.op
        assert _same(dict(a.attrs), dict(b.attrs)), (a, b)


def _same(x, y) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return (math.isnan(x) and math.isnan(y)) or (x == y and math.copysign(1, x) == math.copysign(1, y))
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, (tuple, list)):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    return type(x) is type(y) and x == y


def test_constant_values_print_exactly():
    text = print_graph(g_constants())
    for token in ("-0.0", "1e-30", "1e+300", "inf", "-inf", "nan", "0.1", "0.3333333333333333",
                  "[[[1, 2, 3]], [[4, 5, 6]]]", "[[true, false]]", "value=-3"):
        assert token in text, token


def test_symbolic_types_print_canonically():
    text = print_graph(g_symbolic())
    assert "f32[4*B]" in text and "f32[8*B*T]" in text and "f32[2*B,4]" in text
    assert "shape=[4*B]" in text


def test_multiple_graphs():
    gs = [g_docstring(), g_mlp(), g_no_args()]
    text = print_graphs(gs)
    back = parse_graphs(text)
    assert [print_graph(g) for g in back] == [print_graph(g) for g in gs]
    assert print_graphs(back) == text


def test_parse_handwritten_text_with_comments():
    text = dedent("""\
        # a comment line
        graph forward(%x: f32[B,4] input, %h.kernel: f32[4,16] param) {
          %0 = matmul(%x, %h.kernel) : f32[B,16]  loc("iris.nn":5:11)   # trailing comment
          %1 = sum(%0) {axes=[0, 1], keepdims=false} : f32[]
          return out=%0, loss=%1
        }
        """)
    g = parse_graph(text, file="fwd.ir")
    assert print_graph(g) == print_graph(g_docstring())
    assert g.output("out").loc == Loc("iris.nn", 5, 11)


def test_values_may_be_renumbered_freely():
    # names in the text are labels: any unique spelling parses to the same graph
    text = dedent("""\
        graph g(%x: f32[3] input) {
          %a = exp(%x) : f32[3]
          %b.c = add(%a, %x) : f32[3]
          return r=%b.c
        }""")
    assert print_graph(parse_graph(text)) == dedent("""\
        graph g(%x: f32[3] input) {
          %0 = exp(%x) : f32[3]
          %1 = add(%0, %x) : f32[3]
          return r=%1
        }""")


# ---- known bugs (strict: a fix flips them to XPASS -> remove the marker) ------------------

def test_gradient_graph_output_names():
    b = Builder("f")
    x = b.argument("x", "param", T(3))
    back = roundtrip(grad(b.build({"loss": allsum(b, b.mul(x, x))}), wrt=["x"]))
    assert [name for name, _ in back.outputs] == ["loss", "grad.x"]


def test_dotted_graph_and_output_names():
    b = Builder("model.train_step")
    x = b.argument("x", "input", T(2))
    back = roundtrip(b.build({"update.bn.mean": b.neg(x), "metrics.acc": x}))
    assert back.name == "model.train_step"
    assert [name for name, _ in back.outputs] == ["update.bn.mean", "metrics.acc"]


def test_numeric_argument_name_is_rejected():
    # an argument named "0" would print as %0, the name of the first computed value
    with pytest.raises(ShapeError, match="must start with a letter"):
        Builder("f").argument("0", "input", T(3))


# ---- hypothesis: attribute values and names ----------------------------------------------

_names = st.from_regex(r"[A-Za-z_][A-Za-z_0-9]{0,6}(\.[A-Za-z_0-9]{1,4}){0,2}", fullmatch=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.tuples(st.just("f32"), st.lists(st.floats(width=32), min_size=1, max_size=6)),
    st.tuples(st.just("f64"), st.lists(st.floats(), min_size=1, max_size=6))))
def test_float_constants_roundtrip(drawn):
    width, vals = drawn                  # any float, nan and +-inf included, at the dtype's width
    b = Builder("f")
    ids = [b.scalar(v, width) for v in vals]
    arr = b.constant(tuple(vals), width, (len(vals),))
    g = b.build({f"c{i}": v for i, v in enumerate(ids)} | {"arr": arr})
    back = roundtrip(g)
    for (name, i), (_, j) in zip(g.outputs, back.outputs):
        assert _same(g[i].attr["value"], back[j].attr["value"]), name


@settings(max_examples=25, deadline=None)
@given(names=st.lists(_names, min_size=1, max_size=4, unique=True),
       file=st.text(min_size=1, max_size=12), line=st.integers(1, 10**6), col=st.integers(1, 500))
def test_names_and_locations_roundtrip(names, file, line, col):
    b = Builder("f")
    ids = [b.argument(n, "input", T(2)) for n in names]
    with b.at(Loc(file, line, col)):
        acc = ids[0]
        for i in ids[1:]:
            acc = b.add(acc, i)
        acc = b.neg(acc)
    out = f"out.{names[-1]}"
    back = roundtrip(b.build({out: acc}))
    assert back.output(out).loc == Loc(file, line, col)
    assert [a.attr["name"] for a in back.args] == names


@settings(max_examples=40, deadline=None)
@given(coef=st.integers(1, 64), sym=st.sampled_from(["B", "T", "batch", "B*T"]), n=st.integers(1, 4))
def test_symbolic_dims_roundtrip(coef, sym, n):
    b = Builder("f")
    x = b.argument("x", "input", T(sym, n))
    y = b.reshape(b.broadcast_to(b.reshape(x, shape=(f"{n}*{sym}",)), shape=(coef, f"{n}*{sym}")),
                  shape=(f"{coef * n}*{sym}",))
    g = roundtrip(b.build({"y": y}))
    assert g.output("y").type == T(canon_dim(f"{sym}*{coef * n}"))
    assert f"f32[{canon_dim(f'{coef * n}*{sym}')}]" in print_graph(g)


# ---- parse errors: a CompileError with file, line and column ------------------------------

def _where(text, needle, occurrence=0):
    """1-based (line, col) of the `occurrence`-th appearance of `needle` in `text`."""
    idx = -1
    for _ in range(occurrence + 1):
        idx = text.index(needle, idx + 1)
    line = text.count("\n", 0, idx) + 1
    col = idx - (text.rfind("\n", 0, idx) + 1) + 1
    return line, col


GOOD = dedent("""\
    graph g(%x: f32[2,3] input, %w: f32[3,4] param) {
      %0 = matmul(%x, %w) : f32[2,4]
      %1 = exp(%0) : f32[2,4]
      return out=%1
    }""")

ERRORS = [
    # (id, text, where the error points: (needle, occurrence), message pattern)
    ("undefined-value", GOOD.replace("exp(%0)", "exp(%7)"), ("%7", 0), r"undefined value %7"),
    ("undefined-output", GOOD.replace("out=%1", "out=%9"), ("%9", 0), r"undefined value %9"),
    ("undefined-before-def", GOOD.replace("matmul(%x, %w)", "matmul(%x, %1)"), ("%1", 0), r"undefined"),
    ("type-mismatch", GOOD.replace("exp(%0) : f32[2,4]", "exp(%0) : f32[4,2]"), ("f32[4,2]", 0),
     r"declared type f32\[4,2\] differs from inferred f32\[2,4\]"),
    ("dtype-mismatch", GOOD.replace("exp(%0) : f32[2,4]", "exp(%0) : f64[2,4]"), ("f64[2,4]", 0),
     r"differs from inferred"),
    ("unknown-op", GOOD.replace("exp(%0)", "expp(%0)"), ("expp", 0), r"unknown primitive 'expp'"),
    ("shape-error", GOOD.replace("%w: f32[3,4]", "%w: f32[5,4]").replace("%0 = matmul", "%0 = matmul"),
     ("matmul", 0), r"inner dimensions"),
    ("bad-attr", GOOD.replace("exp(%0)", "exp(%0) {axes=[0]}"), ("exp", 0), r"unknown attribute"),
    ("garbage-char", GOOD.replace("exp(%0)", "exp(%0) $"), ("$", 0), r"unexpected character '\$'"),
    ("garbage-line", GOOD.replace("  return", "  ??? nonsense\n  return"), ("?", 0), r"unexpected character"),
    ("missing-paren", GOOD.replace("exp(%0)", "exp(%0"), (": f32[2,4]", 1), r"expected"),
    ("missing-type", GOOD.replace("exp(%0) : f32[2,4]", "exp(%0)"), ("return", 0), r"expected ':'"),
    ("bad-type-token", GOOD.replace("exp(%0) : f32[2,4]", "exp(%0) : f16[2,4]"), ("f16", 0), r"expected type"),
    ("bad-arg-dtype", GOOD.replace("%x: f32[2,3]", "%x: float[2,3]"), ("float", 0), r"expected type"),
    ("bad-arg-dim", GOOD.replace("%x: f32[2,3]", "%x: f32[2,x-y]"), ("f32[2,x-y]", 0), r"bad dimension"),
    ("bad-attr-value", GOOD.replace("exp(%0)", "exp(%0) {axes=)}"), (")}", 0), r"attribute value"),
    ("truncated", GOOD[:GOOD.index("return")], None, r"end of input"),
    ("no-graph-keyword", GOOD.replace("graph g", "grph g"), ("grph", 0), r"expected 'graph'"),
]


@pytest.mark.parametrize("case_id,text,at,pattern", ERRORS, ids=[e[0] for e in ERRORS])
def test_parse_error_has_line_and_column(case_id, text, at, pattern):
    with pytest.raises(CompileError) as info:
        parse_graph(text, file="bad.ir")
    (diag,) = info.value.diagnostics
    assert re.search(pattern, diag.message), diag.message
    assert diag.loc is not None and diag.loc.file == "bad.ir"
    if at is not None:
        assert (diag.loc.line, diag.loc.col) == _where(text, *at), str(info.value)
    else:  # end of input: the last line
        assert diag.loc.line == text.count("\n") + 1
    rendered = str(info.value)
    assert rendered.startswith(f"bad.ir:{diag.loc.line}:{diag.loc.col}: error: ")


def test_bad_dimension_in_node_type_is_a_compile_error():
    text = GOOD.replace("exp(%0) : f32[2,4]", "exp(%0) : f32[2,x-y]")
    with pytest.raises(CompileError) as info:
        parse_graph(text, file="bad.ir")
    assert (info.value.diagnostics[0].loc.line, info.value.diagnostics[0].loc.col) == _where(text, "f32[2,x-y]")


def test_parse_graph_wants_exactly_one_graph():
    with pytest.raises(CompileError, match="expected one graph, found 2"):
        parse_graph(GOOD + "\n" + GOOD)
    with pytest.raises(CompileError, match="found 0"):
        parse_graph("  # nothing\n")


def test_every_primitive_graph_is_complete():
    try:
        from tests.oracle import missing_primitives
    except ImportError:
        from oracle import missing_primitives
    assert not missing_primitives(g_every_primitive()), "add the new primitive to oracle.every_primitive_graph"
