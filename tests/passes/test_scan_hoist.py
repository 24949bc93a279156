"""scan_hoist: carry-free elementwise work leaves the loop with the values unchanged
(checked against a float64 numpy loop); ops that read a carry or an invariant stay."""
from pathlib import Path

import numpy as np

from nncompiler.backends.numpy.codegen import compile_graph
from nncompiler.ir import Builder, TensorType, parse_graph
from nncompiler.passes.pipeline import optimize
from nncompiler.passes.scan_hoist import scan_hoist

CASE = Path(__file__).parent / "cases" / "scan_hoist_moves_carry_free_ops_out_of_the_loop.ir"


def _case_graph():
    text = "\n".join(line for line in CASE.read_text().splitlines() if not line.startswith("#"))
    return parse_graph(text, str(CASE))


def test_hoisted_ops_give_the_same_values_as_the_loop():
    g = _case_graph()
    out, record = scan_hoist(g)
    assert record.changed
    body = [n for n in out.nodes if n.op == "scan"][0].attr["body"]
    assert set(body.op_counts()) == {"const", "matmul", "mul", "add"}      # no sub, no tanh per step
    rng = np.random.default_rng(0)
    a = {"c0": rng.standard_normal((3, 2)), "xs": rng.standard_normal((3, 4, 2)), "w": rng.standard_normal((2, 2))}
    a = {k: v.astype(np.float32) for k, v in a.items()}
    c, ys, ds = a["c0"].astype(np.float64), np.zeros((3, 4, 2)), np.zeros((3, 4, 2))
    for t in reversed(range(4)):
        x = a["xs"][:, t].astype(np.float64)
        d = x * (1 - x)
        new = (c @ a["w"]) * d + np.tanh(x)
        ys[:, t], ds[:, t], c = new * c, d, new
    for graph in (g, out, optimize(out)[0]):
        got = compile_graph(graph)(a)
        np.testing.assert_allclose(got["c"], c, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["y"], ys, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["d"], ds, rtol=1e-6, atol=1e-7)


def test_ops_reading_a_carry_or_an_invariant_stay_in_the_loop():
    s = Builder("step")
    c = s.argument("c", "carry", TensorType("f32", ("B", 2)))
    x = s.argument("x", "input", TensorType("f32", (2,)))
    w = s.argument("w", "param", TensorType("f32", ("B", 2)))
    body = s.build({"c": s.mul(s.add(c, x), s.tanh(s.mul(x, w)))})   # x * w reads an invariant
    b = Builder("g")
    c0 = b.argument("c0", "input", TensorType("f32", ("B", 2)))
    xs = b.argument("xs", "input", TensorType("f32", (5, 2)))
    wv = b.argument("w", "param", TensorType("f32", ("B", 2)))
    (final,) = b.loop(body, [c0], [xs], [wv])
    g = b.build({"c": final})
    out, record = scan_hoist(g)
    assert out is g and not record.changed
