"""scan_accumulate: carried sums become one reduction after the loop, with the same values
(checked against a float64 numpy loop) and nothing else changed."""
from pathlib import Path

import numpy as np
import pytest

from nncompiler.backends.numpy.codegen import compile_graph
from nncompiler.ir import Builder, TensorType, parse_graph
from nncompiler.passes.pipeline import optimize
from nncompiler.passes.scan_accumulate import scan_accumulate

CASE = Path(__file__).parent / "cases" / "scan_accumulate_sums_after_the_loop.ir"


def _case_graph():
    text = "\n".join(line for line in CASE.read_text().splitlines() if not line.startswith("#"))
    return parse_graph(text, str(CASE))


def _oracle(a):
    """The case's loop in float64: acc += h_t^T tanh(x_t w), tot += sum_b tanh(x_t w), t = 4 .. 0."""
    acc, tot = a["a0"].astype(np.float64), a["t0"].astype(np.float64)
    ds = np.zeros(a["xs"].shape[:2] + (4,))
    for t in reversed(range(5)):
        d = np.tanh(a["xs"][:, t].astype(np.float64) @ a["w"])
        acc = acc + a["hs"][:, t].T @ d
        tot = d.sum(0) + tot
        ds[:, t] = d
    return {"acc": acc, "tot": tot, "d": ds}


def test_the_hoisted_sums_equal_the_carried_ones():
    g = _case_graph()
    out, record = scan_accumulate(g)
    assert len(record.changes) == 2
    scan = [n for n in out.nodes if n.op == "scan"][0]
    assert scan.attr["n_carry"] == 0
    rng = np.random.default_rng(0)
    a = {"hs": rng.standard_normal((3, 5, 3)), "xs": rng.standard_normal((3, 5, 2)), "w": rng.standard_normal((2, 4)),
         "a0": rng.standard_normal((3, 4)), "t0": rng.standard_normal(4)}
    a = {k: v.astype(np.float32) for k, v in a.items()}
    want = _oracle(a)
    for graph in (g, out, optimize(out)[0]):
        got = compile_graph(graph)(a)
        for k in want:
            assert got[k].dtype == np.float32
            np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5)


def _loop_graph(read_acc_in_body=False, scalar=False):
    s = Builder("step")
    shape = () if scalar else (2,)
    acc = s.argument("acc", "carry", TensorType("f32", shape))
    x = s.argument("x", "input", TensorType("f32", ("B", 2)))
    term = s.sum(s.exp(x), axes=(0, 1) if scalar else (0,))
    outs = {"acc": s.add(acc, term)}
    if read_acc_in_body:
        outs["y"] = s.mul(s.broadcast_to(acc, shape=("B", 2)) if scalar else acc, x)
    else:
        outs["y"] = s.exp(x)
    b = Builder("g")
    xs = b.argument("xs", "input", TensorType("f32", ("B", 3, 2)))
    a0 = b.argument("a0", "param", TensorType("f32", shape))
    final, ys = b.loop(s.build(outs), [a0], [xs], axis=1)
    return b.build({"acc": final, "ys": ys})


@pytest.mark.parametrize("kind", ["read in the body", "scalar term stacked on axis 1"])
def test_accumulators_it_cannot_hoist_stay_carried(kind):
    g = _loop_graph(read_acc_in_body=kind == "read in the body", scalar=kind != "read in the body")
    out, record = scan_accumulate(g)
    assert out is g and not record.changed


def test_a_sum_of_per_step_reductions_matches_the_loop():
    g = _loop_graph()
    out, record = scan_accumulate(g)
    assert record.changes == ["%0 scan: carry 0 (acc) accumulated per step, now one sum after the loop"]
    rng = np.random.default_rng(1)
    a = {"xs": rng.standard_normal((4, 3, 2)).astype(np.float32), "a0": rng.standard_normal(2).astype(np.float32)}
    want = a["a0"].astype(np.float64) + np.exp(a["xs"].astype(np.float64)).sum((0, 1))
    for graph in (g, out):
        got = compile_graph(graph)(a)
        np.testing.assert_allclose(got["acc"], want, rtol=1e-5)
        np.testing.assert_allclose(got["ys"], np.exp(a["xs"]), rtol=1e-6)
