"""scan_prune: unread per-step outputs and unread operands go, the values read stay equal
(checked against a numpy loop)."""
from pathlib import Path

import numpy as np

from nncompiler.backends.numpy.codegen import compile_graph
from nncompiler.ir import parse_graph
from nncompiler.passes.scan_prune import scan_prune

CASE = Path(__file__).parent / "cases" / "scan_prune_drops_unread_outputs_and_operands.ir"


def _case_graph():
    text = "\n".join(line for line in CASE.read_text().splitlines() if not line.startswith("#"))
    return parse_graph(text, str(CASE))


def test_pruned_scan_computes_the_same_values():
    g = _case_graph()
    out, record = scan_prune(g)
    assert record.changed
    scan = [n for n in out.nodes if n.op == "scan"][0]
    assert scan.attr["n_seq"] == 1 and len(scan.inputs) == 3 and len(scan.attr["body"].outputs) == 2
    rng = np.random.default_rng(0)
    a = {k: rng.standard_normal(s).astype(np.float32) for k, s in
         {"c0": (2,), "xs": (4, 2), "zs": (4, 2), "w": (2,), "v": (2,)}.items()}
    c, ys = a["c0"].astype(np.float64), []
    for t in range(4):
        y = c * a["w"] + a["xs"][t]
        ys.append(y)
        c = np.tanh(y)
    for graph in (g, out):
        got = compile_graph(graph)(a)
        np.testing.assert_allclose(got["c"], c, rtol=1e-5)
        np.testing.assert_allclose(got["y"], np.stack(ys), rtol=1e-5)


def test_a_scan_that_reads_everything_is_left_alone():
    g, _ = scan_prune(_case_graph())
    again, record = scan_prune(g)
    assert again is g and not record.changed
