"""Split (two-stage) reductions, checked without a GPU: a looped reduction whose row blocks
alone would leave SMs idle (the loss mean over the batch: one row; a bias gradient
[B, 10] -> [10]: one row block) splits its reduced axis over SPLIT_R programs per row block,
each writing float32 partials to a workspace; the last program to arrive sums them in split
order (deterministic) and finishes. The plan (`--emit kernels`) reports the split and the CTA
count; the generated kernels match numpy under TRITON_INTERPRET=1 on odd batches."""
import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.backends import get_backend
from nncompiler.backends.numpy import compile_graph
from nncompiler.backends.triton import tuning
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType as T


def _mean_graph(n="B"):
    b = Builder("mean")
    x = b.argument("x", "input", T("f32", (n,)))
    return b.build({"m": b.div(b.sum(x, axes=(0,)), b.size(x, axes=(0,), dtype="f32"))})


def _colsum_graph(n="B", cols=10):
    """sum over the batch into [cols], and the max next to it (a sibling reduction: two
    accumulators share the workspace)."""
    b = Builder("colsum")
    x = b.argument("x", "input", T("f32", (n, cols)))
    e = b.exp(x)
    return b.build({"s": b.sum(e, axes=(0,)), "mx": b.max(x, axes=(0,))})


def _reductions(graph):
    _, _, kernels = get_backend("triton").generated(graph)
    return [k for k in kernels if k.kind == "reduction"]


@pytest.mark.parametrize("graph", [_mean_graph(), _mean_graph(4096), _colsum_graph(), _colsum_graph(4096)],
                         ids=["mean-B", "mean-4096", "colsum-B", "colsum-4096"])
def test_batch_reductions_fill_an_h100(graph):
    (ks,) = _reductions(graph)
    assert ks.info["split_ok"] and not ks.info["persistent"]
    (row,) = tuning.launch_table([ks], {"B": 4096}, arch=90)
    assert row["sms"] == 132 and row["ctas"] >= 132, row
    assert row["blocks"]["SPLIT_R"] > 1
    ws, locks = tuning.split_scratch(ks, {"B": 4096}, row["blocks"])
    assert locks == row["ctas"] // row["blocks"]["SPLIT_R"] and ws > 0


def test_a_reduction_with_enough_rows_does_not_split():
    (ks,) = _reductions(_colsum_graph(cols=4096))       # [B, 4096] -> [4096]: 64 row blocks of 64
    assert tuning.choose(ks, {"B": 64}, False, sms=132, arch=90)[0]["SPLIT_R"] == 3   # 64 * 3 >= 132
    (ks,) = _reductions(_colsum_graph(cols=65536))      # 1024 row blocks: no split
    assert tuning.choose(ks, {"B": 4096}, False, sms=132, arch=90)[0]["SPLIT_R"] == 1
    (ks,) = _reductions(_colsum_graph())                # a batch too short to split (< 32 rows, rounded up)
    assert tuning.choose(ks, {"B": 12}, False, sms=132, arch=90)[0]["SPLIT_R"] == 1


def test_an_argmax_never_splits():
    b = Builder("am")
    x = b.argument("x", "input", T("f32", ("B", 10)))
    g = b.build({"i": b.argmax(x, axis=0)})
    (ks,) = _reductions(g)
    assert not ks.info["split_ok"] and "ws_ptr" not in ks.text
    assert tuning.choose(ks, {"B": 4096}, False, sms=132, arch=90)[0]["SPLIT_R"] == 1


@pytest.mark.parametrize("graph,batch", [(_mean_graph(), 77), (_colsum_graph(), 77), (_colsum_graph(cols=3), 50)],
                         ids=["mean", "colsum", "colsum-narrow"])
@pytest.mark.parametrize("split", [1, 3, 7])
def test_split_reductions_match_numpy_through_generated_kernels(graph, batch, split):
    be = get_backend("triton")
    cg = be.compile(graph)
    (k,) = [k for k in cg.kernels.values() if k.kind == "reduction"]
    # rows of 8: a batch of 77 is 10 blocks, split 3 or 7 ways unevenly (77 is not a multiple of any)
    cg.pin(k.name, ({"XBLOCK": 4, "RBLOCK": 8, "SPLIT_R": split}, 4, None))
    rng = np.random.default_rng(split)
    shape = (batch,) + tuple(graph.arg("x").shape[1:])
    args = {"x": rng.standard_normal(shape).astype(np.float32)}
    want = compile_graph(graph)(args)
    first = None
    for _ in range(2):        # the second launch reuses the counters the first one reset
        got = {n: be.to_numpy(v) for n, v in cg(args).items()}
        for name, v in want.items():
            np.testing.assert_allclose(got[name], v, rtol=1e-5, atol=1e-6, err_msg=name)
        if first is not None:
            for name in want:
                np.testing.assert_array_equal(got[name], first[name])     # deterministic
        first = got


def test_the_plan_reports_the_split():
    m = nnc.compile("""
model M {
    input  x: f32[B, 10]
    target y: f32[B, 1]
    out = dense(x, 1)
    output out
    loss mse(out, y)
    optimizer sgd(lr=0.1)
}
""", backend="triton")
    text = m.backend.emit_stage(m, "kernels", target="sm_90")
    assert "two-stage" in text, text
