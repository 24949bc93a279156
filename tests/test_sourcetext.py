"""User text (file names, positions) reaches generated Python, Triton and MLIR only
through `sourcetext.quote`: whatever the name, the generated source parses to the same
AST as with a plain name, and running it runs nothing else (issue 13, finding 1)."""
import ast
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nncompiler.backends.mlir.emit import emit_module
from nncompiler.backends.numpy import generate as numpy_source
from nncompiler.backends.numpy.codegen import PRELUDE
from nncompiler.backends.triton.codegen import generate as triton_source
from nncompiler.backends.triton.plan import plan_graph
from nncompiler.errors import Loc
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType
from nncompiler.sourcetext import loc_text, quote

EVIL = ['m\r__import__("os").system("touch PWNED")\r#.nn', "a\nb", 'q"uote', "back\\slash\\", "{br}ace",
        "line\u2028sep", "para\u2029", "nel\x85", "bidi\u202eevil", "nul\x00", "tab\there", "'''", '"""',
        "\ud800lone", "\U0001F600.nn", "ü.nn", "*/ -- //"]

# names an attacker would try first, then anything at all
names = st.sampled_from(EVIL) | st.text(max_size=40) | st.text(
    alphabet=st.sampled_from(list("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\"'\\{}#;() ax")), max_size=30)


def tiny_graph(file: str, line: int = 3, col: int = 7):
    b = Builder("net")
    with b.at(Loc(file, line, col)):
        x = b.argument("x", "input", TensorType("f32", (4,)))
        y = b.emit("exp", (x,))
        z = b.emit("add", (y, x))
    return b.build({"out": z})


def shape(source: str) -> str:
    return ast.dump(ast.parse(source))


def numpy_shape(source: str) -> str:
    """The AST of what follows the fixed helper prelude (which holds no user text: checked
    as a prefix, not re-parsed 2000 times)."""
    assert source.startswith(PRELUDE)
    return shape(source[len(PRELUDE):])


BASE = tiny_graph("model.nn")
NUMPY_BASE = numpy_shape(numpy_source(BASE))
TRITON_BASE = shape(triton_source(plan_graph(BASE))[0])
MLIR_BASE = emit_module([BASE])[0]


def mlir_unquote(lit: str) -> str:
    """MLIR's string lexer: \\\\, \\", \\n, \\t and \\XX (a byte); anything else is an error."""
    assert lit[0] == lit[-1] == '"'
    out, i, body = bytearray(), 0, lit[1:-1]
    while i < len(body):
        c = body[i]
        assert c not in '"\n\r', repr(lit)
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in '\\"':
            out += nxt.encode()
            i += 2
        else:
            assert re.fullmatch(r"[0-9A-Fa-f]{2}", body[i + 1:i + 3]), repr(lit)
            out.append(int(body[i + 1:i + 3], 16))
            i += 3
    return out.decode("utf-8", "surrogatepass")


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(names)
def test_generated_python_has_the_same_shape_whatever_the_file_name(name):
    g = tiny_graph(name)
    assert numpy_shape(numpy_source(g)) == NUMPY_BASE
    text = quote(name)
    assert text.isprintable() and ast.literal_eval(text) == name  # names here are under the 200-character limit
    mlir = quote(name, "mlir")
    assert mlir.isprintable()
    assert mlir_unquote(mlir) == name


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(names)
def test_triton_and_mlir_source_keep_their_shape(name):
    g = tiny_graph(name)
    assert shape(triton_source(plan_graph(g))[0]) == TRITON_BASE
    mlir = emit_module([g])[0]
    # the same lines as with a plain name, differing only inside loc("...")
    got, want = mlir.split("\n"), MLIR_BASE.split("\n")
    assert len(got) == len(want)
    lit = quote(name, "mlir")
    for a, b in zip(got, want):
        assert a == b.replace('"model.nn"', lit)


def test_the_attack_file_name_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from nncompiler.backends.numpy import compile_graph
    import numpy as np
    cg = compile_graph(tiny_graph(EVIL[0]))
    np.testing.assert_allclose(cg({"x": np.zeros(4, np.float32)})["out"], np.ones(4))
    assert not (tmp_path / "PWNED").exists()
    assert "\r" not in cg.source and "\u2028" not in cg.source


def test_loc_text_is_one_printable_line():
    assert loc_text(Loc("a\rb.nn", 2, 5)) == '"a\\x0db.nn":2:5'
    assert loc_text(Loc("a\rb.nn", 2, 5), "mlir") == '"a\\0Db.nn":2:5'
    assert loc_text(None) == ""
    long = quote("x" * 10_000)
    assert len(long) < 260 and "..." in long


def test_property_cases_are_fast():
    """The 2000-case property test is for the default suite: one graph's source costs well under a millisecond."""
    t = time.perf_counter()
    for name in EVIL * 20:
        numpy_source(tiny_graph(name))
    assert time.perf_counter() - t < 2.0


def test_mlir_reads_back_the_very_file_name():
    """MLIR's own parser decodes the quoted name to the original text, in the loc of each op."""
    ir = pytest.importorskip("iree.compiler.ir")
    for name in EVIL[:12]:
        with ir.Context():
            module = ir.Module.parse(emit_module([tiny_graph(name)])[0])
            want = str(ir.Location.file(name, 3, 7))
            func = module.body.operations[0]
            locs = {str(op.location) for block in func.regions[0].blocks for op in block.operations}
            assert want in locs, (name, locs)
