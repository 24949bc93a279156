"""passes/decompose.py: pow by a constant exponent in simpler primitives. IR text in, the
expected IR text out, and the values against numpy's power (the oracle) on special inputs."""
from textwrap import dedent

import numpy as np
import pytest

from nncompiler.backends.numpy import evaluate
from nncompiler.ir import parse_graph, print_graph, verify
from nncompiler.passes import dce, decompose

X = np.array([-3.0, -1.5, -1.0, -0.0, 0.0, 1e-30, 0.5, 1.0, 2.0, 7.25, 1e30, np.inf, np.nan], np.float32)


def graph(c: float, shape: str = "[]"):  # pow(x, c) over 13 special bases
    return parse_graph(dedent(f"""
        graph g(%x: f32[13] input) {{
          %0 = const() {{value={c!r}}} : f32{shape}
          %1 = pow(%x, %0) : f32[13]
          return y=%1
        }}"""))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # numpy's own overflow and sqrt(-1): expected
@pytest.mark.parametrize("c, op", [(0.0, "const"), (1.0, None), (2.0, "mul"), (3.0, "mul"),
                                   (0.5, "sqrt"), (-1.0, "div")])
def test_constant_exponents_become_simpler_ops_with_numpys_values(c, op):
    g = graph(c)
    out, record = decompose(g)
    verify(out)
    out, _ = dce(out)
    ops = [n.op for n in out.nodes if n.op != "arg"]
    assert "pow" not in ops and (op is None or op in ops or (op == "const" and "broadcast_to" in ops))
    assert record.changes and record.changes[0].startswith("replaced %1 pow(x, ")
    got = evaluate(out, {"x": X})["y"]
    with np.errstate(all="ignore"):
        want = np.power(X, np.float32(c))
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=0)   # nan where numpy says nan


def test_square_is_one_multiply():
    out, _ = dce(decompose(graph(2.0))[0])
    assert print_graph(out, with_locs=False) == dedent("""\
        graph g(%x: f32[13] input) {
          %0 = mul(%x, %x) : f32[13]
          return y=%0
        }""")


def test_other_exponents_and_array_exponents_stay_and_the_pass_is_idempotent():
    for g in (graph(2.5), graph(-2.0)):
        out, record = decompose(g)
        assert out is g and not record.changed
    g = parse_graph(dedent("""
        graph g(%x: f32[2] input) {
          %0 = const() {value=[2.0, 3.0]} : f32[2]
          %1 = pow(%x, %0) : f32[2]
          return y=%1
        }"""))
    assert decompose(g)[0] is g
    once, _ = decompose(graph(3.0))
    assert decompose(once)[0] is once


def test_a_bigger_constant_exponent_broadcasts_the_result():
    g = parse_graph(dedent("""
        graph g(%x: f32[3] input) {
          %0 = const() {value=[[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]} : f32[2, 3]
          %1 = pow(%x, %0) : f32[2, 3]
          return y=%1
        }"""))
    out, _ = decompose(g)
    verify(out)
    x = np.array([-2.0, 0.5, 3.0], np.float32)
    got = evaluate(out, {"x": x})["y"]
    np.testing.assert_array_equal(got, np.broadcast_to(x * x, (2, 3)))
