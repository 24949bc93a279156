"""Tests of the .nn parser: AST shapes and positions, precedence, and syntax diagnostics."""
from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from nncompiler.errors import CompileError, Loc
from nncompiler.frontend import ast
from nncompiler.frontend.parse import MAX_NESTING, RESERVED_WORDS, parse

BROKEN = Path(__file__).resolve().parent / "broken"

LINEFIT = """\
# examples/linefit.nn - fit a line to three points by gradient descent
model LineFit {
    input  x: f32[N]
    target y: f32[N]
    param  intercept: f32[] = 0.0
    param  slope: f32[] = 1.0
    pred = intercept + slope * x
    output pred
    loss sum((y - pred) ** 2)        # sum of squared residuals
    optimizer sgd(lr=0.01)
}
train LineFit {
    data x=[0.5, 2.3, 2.9], y=[1.4, 1.9, 3.2]
    epochs 1000
    batch all
}
"""

IRIS = """\
# examples/iris.nn - classify iris flowers
model Iris {
    input  x: f32[B, 4]
    target y: i32[B]
    h   = dense(x, 16, activation=relu)
    out = dense(h, 3, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.01)
}
train Iris {
    data "data/iris.csv" (label="species")
    epochs 100
    batch 16
    validate 0.2
    metrics accuracy
    seed 0
}
"""

GRAPHS = """\
graph Softmax {
    z = [1.8, 0.9, 0.68]
    output softmax(z)
}
graph Basics {
    input x: f32[2, 2]
    a = [[1.0, 2.0], [3.0, 4.0]]
    b = ones([2, 2])
    c = a @ b + x
    d = reshape(c, [4])
    output c, d[1:3]
}
"""


def where(loc: Loc) -> tuple[int, int]:
    return (loc.line, loc.col)


def expr_of(text: str):
    """The value of the single binding in `graph G { v = TEXT }`."""
    program = parse(f"graph G {{\n    v = {text}\n}}\n", "e.nn")
    (binding,) = program.blocks[0].stmts
    assert isinstance(binding, ast.Binding)
    return binding.value


def shape(e) -> str:
    """A compact, position-free rendering of an expression (fully parenthesised)."""
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.Number):
        return repr(e.value)
    if isinstance(e, ast.String):
        return repr(e.value)
    if isinstance(e, ast.Bool):
        return str(e.value).lower()
    if isinstance(e, ast.ListLit):
        return "[" + ", ".join(shape(i) for i in e.items) + "]"
    if isinstance(e, ast.BinOp):
        return f"({shape(e.left)} {e.op} {shape(e.right)})"
    if isinstance(e, ast.UnaryOp):
        return f"({e.op}{shape(e.operand)})"
    if isinstance(e, ast.Attribute):
        return f"{shape(e.value)}.{e.attr}"
    if isinstance(e, ast.Call):
        args = [shape(a) for a in e.args] + [f"{k.name}={shape(k.value)}" for k in e.kwargs]
        return f"{e.func}({', '.join(args)})"
    if isinstance(e, ast.Index):
        return f"{shape(e.value)}[{', '.join(shape(i) for i in e.items)}]"
    if isinstance(e, ast.SliceItem):
        return ":".join("" if p is None else shape(p) for p in (e.start, e.stop, e.step))
    if isinstance(e, ast.EllipsisItem):
        return "..."
    raise AssertionError(e)


# --------------------------------------------------------------------------- the examples


def test_linefit_example():
    program = parse(LINEFIT, "linefit.nn")
    model, train = program.blocks
    assert isinstance(model, ast.ModelBlock) and model.kind == "model" and model.name == "LineFit"
    assert where(model.loc) == (2, 1) and where(model.name_loc) == (2, 7)
    x, y, intercept, slope, pred, out, loss, opt = model.stmts

    assert x == ast.InputDecl("input", "x", x.name_loc, x.type, x.loc)
    assert where(x.loc) == (3, 5) and where(x.name_loc) == (3, 12)
    assert x.type.dtype == "f32" and x.type.dims == ("N",)
    assert where(x.type.dtype_loc) == (3, 15) and [where(l) for l in x.type.dim_locs] == [(3, 19)]
    assert y.role == "target" and y.name == "y"

    assert isinstance(intercept, ast.ParamDecl) and intercept.name == "intercept"
    assert intercept.type.dims == () and intercept.init == ast.Number(0.0, False, intercept.init.loc)
    assert where(intercept.init.loc) == (5, 31)
    assert slope.init.value == 1.0

    assert isinstance(pred, ast.Binding) and pred.name == "pred" and where(pred.loc) == (7, 5)
    assert shape(pred.value) == "(intercept + (slope * x))"
    assert where(pred.value.loc) == (7, 22)  # a BinOp's loc is its operator
    assert where(ast.start_loc(pred.value)) == (7, 12)

    assert out.items == ((None, ast.Name("pred", Loc("linefit.nn", 8, 12, 16))),)
    assert isinstance(loss, ast.Loss) and shape(loss.expr) == "sum(((y - pred) ** 2))"
    assert where(loss.loc) == (9, 5) and where(loss.expr.loc) == (9, 10)
    assert isinstance(opt, ast.OptimizerStmt) and shape(opt.call) == "sgd(lr=0.01)"

    assert isinstance(train, ast.TrainBlock) and train.name == "LineFit"
    data, epochs, batch = train.stmts
    assert data.path is None and data.options == ()
    assert [k.name for k in data.arrays] == ["x", "y"]
    assert shape(data.arrays[0].value) == "[0.5, 2.3, 2.9]"
    assert where(data.arrays[1].loc) == (13, 29)
    assert epochs == ast.Setting("epochs", 1000, epochs.value_loc, epochs.loc)
    assert batch.key == "batch" and batch.value == "all" and where(batch.value_loc) == (15, 11)


def test_iris_example():
    model, train = parse(IRIS, "iris.nn").blocks
    x, y, h, out, output, loss, opt = model.stmts
    assert x.type.dims == ("B", 4) and y.type.dtype == "i32"
    dense = h.value
    assert isinstance(dense, ast.Call) and dense.func == "dense"
    assert where(dense.func_loc) == (5, 11) and dense.func_loc.end_col == 16
    assert where(dense.loc) == (5, 11)
    assert [shape(a) for a in dense.args] == ["x", "16"]
    assert dense.args[1] == ast.Number(16, True, Loc("iris.nn", 5, 20, 22))
    (activation,) = dense.kwargs
    assert activation.name == "activation" and shape(activation.value) == "relu"
    assert where(activation.loc) == (5, 24)
    assert shape(loss.expr) == "sparse_categorical_crossentropy(out, y)"
    assert shape(opt.call) == "adam(lr=0.01)"

    data, epochs, batch, validate, metrics, seed = train.stmts
    assert data.path == "data/iris.csv" and where(data.path_loc) == (12, 10)
    assert [(k.name, shape(k.value)) for k in data.options] == [("label", "'species'")]
    assert data.arrays == ()
    assert (epochs.value, batch.value, validate.value, seed.value) == (100, 16, 0.2, 0)
    assert isinstance(validate.value, float) and isinstance(batch.value, int)
    assert isinstance(metrics, ast.MetricsStmt) and metrics.names == ("accuracy",)
    assert where(metrics.name_locs[0]) == (16, 13)


def test_graph_examples():
    softmax, basics = parse(GRAPHS, "g.nn").blocks
    assert softmax.kind == "graph" and basics.kind == "graph"
    z, out = softmax.stmts
    assert shape(z.value) == "[1.8, 0.9, 0.68]"
    assert shape(out.items[0][1]) == "softmax(z)"

    x, a, b, c, d, out = basics.stmts
    assert x.type.dims == (2, 2)
    assert shape(a.value) == "[[1.0, 2.0], [3.0, 4.0]]"
    assert where(a.value.loc) == (7, 9) and where(a.value.items[1].loc) == (7, 22)
    assert shape(b.value) == "ones([2, 2])"
    assert shape(c.value) == "((a @ b) + x)"
    assert shape(d.value) == "reshape(c, [4])"
    assert [shape(e) for _, e in out.items] == ["c", "d[1:3:]"]
    index = out.items[1][1]
    assert isinstance(index, ast.Index) and where(index.loc) == (11, 15)
    assert index.items == (ast.SliceItem(index.items[0].start, index.items[0].stop, None, index.items[0].loc),)


# --------------------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    "text, expected",
    [
        ("-x**2", "(-(x ** 2))"),
        ("a + b * c @ d", "(a + ((b * c) @ d))"),
        ("2 ** 3 ** 2", "(2 ** (3 ** 2))"),
        ("2 ** -1", "(2 ** (-1))"),
        ("-2 ** -x ** 2", "(-(2 ** (-(x ** 2))))"),
        ("a - b - c", "((a - b) - c)"),
        ("a / b * c", "((a / b) * c)"),
        ("a @ b @ c", "((a @ b) @ c)"),
        ("a + b < c * d", "((a + b) < (c * d))"),
        ("a == b", "(a == b)"),
        ("x != -y", "(x != (-y))"),
        ("+x - -y", "((+x) - (-y))"),
        ("(a + b) * c", "((a + b) * c)"),
        ("-h.kernel ** 2", "(-(h.kernel ** 2))"),
        ("f(x)[0] ** 2", "(f(x)[0] ** 2)"),
        ("a.b.c", "a.b.c"),
        ("dense(x, 16)[..., 1:, ::2, :, :-1, 0]", "dense(x, 16)[..., 1::, ::2, ::, :(-1):, 0]"),
        ("x[i][j]", "x[i][j]"),
        ("[]", "[]"),
        ("[[1, 2], [x, -3]]", "[[1, 2], [x, (-3)]]"),
        ("[1, 2,]", "[1, 2]"),
        ("f(a, b,)", "f(a, b)"),
        ("f()", "f()"),
        ("normal(stddev=0.1, seed=3)", "normal(stddev=0.1, seed=3)"),
        ("true", "true"),
        ("false", "false"),
        ("'single' + \"double\"", "('single' + 'double')"),
    ],
)
def test_expression_shapes(text, expected):
    assert shape(expr_of(text)) == expected


def test_operator_positions():
    e = expr_of("a + b * c")  # line 2, `a` at col 9
    assert where(e.loc) == (2, 11) and where(e.right.loc) == (2, 15)
    assert e.loc.end_col == 12
    assert where(ast.start_loc(e.right)) == (2, 13)
    u = expr_of("-x ** 2")
    assert isinstance(u, ast.UnaryOp) and where(u.loc) == (2, 9) and where(u.operand.loc) == (2, 12)
    assert where(ast.start_loc(expr_of("(a + b) * c"))) == (2, 10)  # start of the left operand


def test_numbers():
    assert expr_of("42") == ast.Number(42, True, Loc("e.nn", 2, 9, 11))
    for text, value in [("1e-3", 1e-3), ("2.5", 2.5), (".5", 0.5), ("3.", 3.0), ("1E+2", 100.0), ("0.68", 0.68)]:
        n = expr_of(text)
        assert n.value == value and n.is_int is False and isinstance(n.value, float), text


def test_strings_and_escapes():
    assert expr_of(r'"a\"b\n"').value == 'a"b\n'
    assert expr_of(r"'it\'s'").value == "it's"
    assert expr_of(r'"C:\data\iris.csv"').value == r"C:\data\iris.csv"  # unknown escapes stay as written


def test_call_callee_and_keywords():
    call = expr_of("f(x, 1, axis=0, keepdims=true)")
    assert call.func == "f" and len(call.args) == 2
    assert [k.name for k in call.kwargs] == ["axis", "keepdims"]
    assert call.kwargs[1].value == ast.Bool(True, call.kwargs[1].value.loc)


def test_number_arrays_match_the_general_list_rule():
    # A comment inside a list forces the general grammar path; without it the
    # list lexes as one NUMBER_ARRAY token.  Both must give the same nodes.
    fast = "graph G {\n    v = [[1, -2.5, +3],\n         [.5, 1e-3, 7]  \n    ]\n}\n"
    slow = "graph G {\n    v = [[1, -2.5, +3],\n         [.5, 1e-3, 7] #\n    ]\n}\n"
    assert parse(fast, "a.nn") == parse(slow, "a.nn")
    flat_fast = "graph G {\n    v = [1, -2, 3.5]\n}\n"
    flat_slow = "graph G {\n    v = [1, -2, (3.5)]\n}\n"
    a, b = (parse(t, "a.nn").blocks[0].stmts[0].value for t in (flat_fast, flat_slow))
    assert a.items[:2] == b.items[:2] and where(a.loc) == where(b.loc)


# --------------------------------------------------------------------------- statements and layout


def test_statement_forms():
    src = """\
model M
{
    input x: f32[B, T, 8]
    param w: f32[8, 4] = glorot_uniform()
    param b: f32[4] = zeros()
    param s: f32
    param k: f32[3] = normal(stddev=0.1, seed=3)
    h = x @ w +
        b
    output probs = softmax(h), h,
           raw = h
    metrics accuracy, auc
    optimizer sgd
}
train M {
    data x="x.npy", y="y.npy"
    shuffle false
    lr 1e-3
    validate 1
    metrics accuracy
}
"""
    model, train = parse(src, "s.nn").blocks
    x, w, b, s, k, h, out, metrics, opt = model.stmts
    assert x.type.dims == ("B", "T", 8)
    assert shape(w.init) == "glorot_uniform()" and shape(b.init) == "zeros()"
    assert s.init is None and s.type.dims == () and s.type.dtype == "f32"
    assert shape(k.init) == "normal(stddev=0.1, seed=3)"
    assert shape(h.value) == "((x @ w) + b)"
    assert [(n, shape(e)) for n, e in out.items] == [("probs", "softmax(h)"), (None, "h"), ("raw", "h")]
    assert metrics.names == ("accuracy", "auc")
    assert opt.call.func == "sgd" and opt.call.args == () and opt.call.kwargs == ()

    data, shuffle, lr, validate, tmetrics = train.stmts
    assert data.path is None and [(k.name, k.value.value) for k in data.arrays] == [("x", "x.npy"), ("y", "y.npy")]
    assert shuffle.value is False and lr.value == 1e-3 and validate.value == 1.0
    assert isinstance(validate.value, float)
    assert tmetrics.names == ("accuracy",)


def test_multiline_calls_lists_and_blank_lines():
    src = """\

# leading comment

graph G {   # trailing comment

    h = dense(x,
              16,     # units
              activation=relu)

    v = [
        1, 2,
        3,
    ]
    output h


}

"""
    (g,) = parse(src, "m.nn").blocks
    h, v, out = g.stmts
    assert shape(h.value) == "dense(x, 16, activation=relu)" and where(h.value.args[1].loc) == (7, 15)
    assert shape(v.value) == "[1, 2, 3]"
    assert where(out.loc) == (14, 5)


def test_one_line_blocks_crlf_and_bom():
    program = parse("\ufeffgraph A { output 1 }\r\ngraph B {\r\n    output [2]\r\n}\r\n", "c.nn")
    a, b = program.blocks
    assert shape(a.stmts[0].items[0][1]) == "1"
    assert shape(b.stmts[0].items[0][1]) == "[2]" and where(b.stmts[0].loc) == (3, 5)
    assert parse("graph E {}", "e.nn").blocks[0].stmts == ()


def test_tabs_count_as_one_column():
    (g,) = parse("graph G {\n\tv = 1\n}\n", "t.nn").blocks
    assert where(g.stmts[0].loc) == (2, 2) and where(g.stmts[0].value.loc) == (2, 6)


def test_empty_and_comment_only_files():
    assert parse("", "e.nn") == ast.Program((), Loc("e.nn", 1, 1))
    assert parse("# nothing here\n\n   \n", "e.nn").blocks == ()


def test_keywords_are_names_outside_statement_starts():
    src = """\
model M {
    input loss: f32[N]
    param data: f32[] = 0.0
    data = loss + data * epochs
    batch = all(input, seed=1)
    output model, train = data
    optimizer adam(lr=0.01)
}
train M {
    data x=[1.0], loss=[2.0]
    lr 0.1
}
"""
    model, train = parse(src, "k.nn").blocks
    assert model.stmts[0].name == "loss" and model.stmts[1].name == "data"
    assert shape(model.stmts[2].value) == "(loss + (data * epochs))"
    assert model.stmts[3].name == "batch" and shape(model.stmts[3].value) == "all(input, seed=1)"
    assert [(n, shape(e)) for n, e in model.stmts[4].items] == [(None, "model"), ("train", "data")]
    assert [k.name for k in train.stmts[0].arrays] == ["x", "loss"]
    assert {"model", "graph", "train", "loss", "data", "batch", "all", "true", "false", "lr"} <= set(RESERVED_WORDS)


def test_walk_visits_every_node():
    (model, _) = parse(LINEFIT, "linefit.nn").blocks
    names = [n.id for n in ast.walk(model) if isinstance(n, ast.Name)]
    assert names == ["intercept", "slope", "x", "pred", "y", "pred"]


# --------------------------------------------------------------------------- the broken corpus

BROKEN_FILES = sorted(BROKEN.glob("*.nn"))


def test_broken_corpus_is_big_enough():
    assert len(BROKEN_FILES) >= 12


@pytest.mark.parametrize("path", BROKEN_FILES, ids=lambda p: p.stem)
def test_broken_file(path: Path):
    source = path.read_text(encoding="utf-8")
    m = re.match(r"# expect: (\d+):(\d+): (.+)\n", source)
    assert m, f"{path.name}: the first line must be '# expect: LINE:COL: message'"
    line, col, expected = int(m.group(1)), int(m.group(2)), m.group(3).strip()
    filename = str(path)

    with pytest.raises(CompileError) as info:
        parse(source, filename)
    rendered = info.value.render()
    first, source_line, caret, *_ = rendered.splitlines()

    assert first.startswith(f"{filename}:{line}:{col}: error:"), rendered
    assert expected in first, rendered
    assert source_line == "    " + source.splitlines()[line - 1].expandtabs(1)
    assert caret.strip().startswith("^") and caret.index("^") == 4 + col - 1
    assert len(info.value.diagnostics) == 1


# --------------------------------------------------------------------------- robustness


def error_of(source: str, filename: str = "x.nn") -> CompileError:
    with pytest.raises(CompileError) as info:
        parse(source, filename)
    return info.value


def test_unclosed_bracket_gets_a_note():
    err = error_of("model M {\n    h = dense(x, 16\n    out = dense(h, 3)\n}\n")
    assert err.diagnostics[0].notes == ["'(' at 2:14 is not closed"]


def test_unclosed_block_note_names_the_block():
    err = error_of("model Iris {\n    output x\n")
    d = err.diagnostics[0]
    assert d.message == "unexpected end of file: expected '}'"
    assert d.notes == ["the '{' of block 'Iris' at 1:12 is not closed"]
    assert (d.loc.line, d.loc.col) == (2, 13)


@pytest.mark.parametrize(
    "source, message",
    [
        ("graph G {\n    v = \"abc\n}\n", "unterminated string"),
        ("graph G {\n    v = 1.2.3\n}\n", "invalid number '1.2.3'"),
        ("graph G {\n    v = 16x\n}\n", "invalid number '16x'"),
        ("graph G {\n    v = 1e999\n}\n", "number '1e999' is too large"),
        ("graph G {\n    v = [1, 1e999]\n}\n", "number '1e999' is too large"),
        ("graph G {\n    v = a \u2212 b\n}\n", "did you mean '-'?"),
        ("graph G {\n    v = a\x00\n}\n", "unexpected character '\\x00'"),
        ("graph G {\n    true = 1\n}\n", "'true' is a reserved word"),
        ("graph G {\n    v = f(true=1)\n}\n", "'true' is a reserved word"),
        ("graph G {\n    output = 1\n}\n", "'output' is a reserved word"),
        ("graph G {\n    v = x[]\n}\n", "expected an expression, '...' or ':', found ']'"),
        ("graph G {\n    v = 9dense(x)\n}\n", "invalid number '9dense'"),
        ("graph G {\n    v = \"f\"(x)\n}\n", "cannot call this expression"),
        ("train T {\n    data x=[1], x=[2]\n}\n", "duplicate array 'x'"),
        ("train T {\n    seed 1e3\n}\n", "'seed' expects a whole number"),
        ("train T {\n    shuffle yes\n}\n", "expected 'false' or 'true', found 'yes'"),
        ("train T {\n    epochs 3\nmodel M {\n}\n", "expected '}' before 'model'"),
        ("graph G {\n    output 1\n}\n}", "expected a block"),
        ("graph G {\n    v = [1, 2\n", "unexpected end of file: expected ',' or ']'"),
        ("graph", "unexpected end of file: expected a name"),
    ],
)
def test_specific_messages(source, message):
    err = error_of(source)
    assert message in err.diagnostics[0].message, err.render()
    assert err.diagnostics[0].loc is not None


def test_deep_nesting_is_a_diagnostic():
    for depth in (MAX_NESTING + 5, 5_000):
        for text in ("-" * depth + "1", "[" * depth + "1" + "]" * depth, "f(" * depth + "1" + ")" * depth):
            err = error_of(f"graph G {{\n    v = {text}\n}}\n")
            assert "nested too deeply" in err.diagnostics[0].message
            assert err.diagnostics[0].loc.line == 2
    # Parentheses alone add no depth to the tree.
    assert shape(expr_of("(" * 5000 + "x" + ")" * 5000)) == "x"
    # Long flat chains are fine up to the limit.
    assert isinstance(expr_of(" + ".join(["x"] * (MAX_NESTING - 10))), ast.BinOp)


def test_ten_megabyte_files_give_a_positioned_diagnostic():
    size = 10 * 1024 * 1024
    for source in (
        "graph G {\n" + "    a = b + c * d\n" * (size // 18) + "}\n",
        "graph G {\n    v = " + "(" * size + "\n",
        "graph G {\n    v = " + "@" * size + "\n}\n",
    ):
        err = error_of(source, "big.nn")
        d = err.diagnostics[0]
        assert d.loc is not None and d.loc.line >= 1
        assert len(err.render().splitlines()[1]) < 300  # the huge line is clipped when rendered


def test_large_inline_numeric_data_parses():
    rows = ",\n".join("[0.5, -2.3, 2.9, 1e-3]" for _ in range(50_000))  # ~1.3 MB
    program = parse(f"train T {{\n    data x=[\n{rows}\n]\n}}\n", "data.nn")
    (data,) = program.blocks[0].stmts
    value = data.arrays[0].value
    assert len(value.items) == 50_000 and shape(value.items[-1]) == "[0.5, (-2.3), 2.9, 0.001]"
    assert where(value.items[-1].loc) == (50_002, 1) and where(value.items[-1].items[1].loc) == (50_002, 7)


INTERNAL_NAMES = re.compile(r"__ANON|\b(LPAR|RPAR|LSQB|RSQB|LBRACE|RBRACE|COMMA|EQUAL|NUMBER_ARRAY)\b|_NL|\$END|a token")


def test_mutated_examples_never_crash():
    rnd = random.Random(1234)
    pieces = list("()[]{}=,:.+-*/@<>!#\"'\n\t $0123456789xyz_\u00d7") + ["model", "loss", "data", "...", "**", "1e-3", "all"]
    base = LINEFIT + IRIS + GRAPHS
    for _ in range(400):
        chars = list(base)
        for _ in range(rnd.randint(1, 3)):
            pos = rnd.randrange(len(chars))
            if rnd.random() < 0.5:
                del chars[pos]
            else:
                chars.insert(pos, rnd.choice(pieces))
        text = "".join(chars)
        try:
            parse(text, "fuzz.nn")
        except CompileError as e:
            first = e.render().splitlines()[0]
            assert re.match(r"fuzz\.nn:\d+:\d+: error: ", first), first
            assert not INTERNAL_NAMES.search(first), first
