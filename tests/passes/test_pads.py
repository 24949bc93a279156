"""pads_to_concat: IR text in, expected text out; values unchanged; slice gradients in O(T) memory."""
from textwrap import dedent

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.backends.numpy import evaluate
from nncompiler.ir import parse_graph, print_graph, verify
from nncompiler.passes import dce, pads_to_concat


def run(text: str):
    g = parse_graph(dedent(text))
    out, record = pads_to_concat(g)
    verify(out)
    out, _ = dce(out)
    return g, out, record


def body(g) -> list[str]:
    return print_graph(g, with_locs=False).strip().splitlines()[1:-1]


def same_values(before, after, shape):
    rng = np.random.default_rng(0)
    feeds = {a.attr["name"]: rng.normal(size=a.shape).astype(np.float32) for a in before.args}
    want, got = evaluate(before, feeds), evaluate(after, feeds)
    for k in want:
        assert got[k].dtype == np.float32 and got[k].shape == shape
        np.testing.assert_array_equal(got[k], want[k])


def test_pads_covering_an_axis_become_one_concat():
    g, out, record = run("""
        graph g(%a: f32[2,1,3] input, %b: f32[2,2,3] input, %c: f32[2,1,3] input) {
          %0 = pad(%a) {lo=[0, 0, 0], hi=[0, 3, 0], interior=[0, 0, 0]} : f32[2,4,3]
          %1 = pad(%c) {lo=[0, 3, 0], hi=[0, 0, 0], interior=[0, 0, 0]} : f32[2,4,3]
          %2 = add(%0, %1) : f32[2,4,3]
          %3 = pad(%b) {lo=[0, 1, 0], hi=[0, 1, 0], interior=[0, 0, 0]} : f32[2,4,3]
          %4 = add(%2, %3) : f32[2,4,3]
          return out=%4
        }""")
    assert body(out) == ["  %0 = concat(%a, %b, %c) {axis=1} : f32[2,4,3]", "  return out=%0"]
    assert record.changes == ["%4: sum of 3 pads along axis 1 -> one concat"]
    same_values(g, out, (2, 4, 3))


def test_gaps_are_padded_onto_the_next_piece_and_other_terms_are_added():
    g, out, record = run("""
        graph g(%a: f32[3,1] input, %b: f32[3,2] input, %y: f32[3,7] input) {
          %0 = pad(%b) {lo=[0, 3], hi=[0, 2], interior=[0, 0]} : f32[3,7]
          %1 = add(%0, %y) : f32[3,7]
          %2 = pad(%a) {lo=[0, 1], hi=[0, 5], interior=[0, 0]} : f32[3,7]
          %3 = add(%1, %2) : f32[3,7]
          return out=%3
        }""")
    assert body(out) == [
        "  %0 = pad(%a) {lo=[0, 1], hi=[0, 0], interior=[0, 0]} : f32[3,2]",
        "  %1 = pad(%b) {lo=[0, 1], hi=[0, 2], interior=[0, 0]} : f32[3,5]",
        "  %2 = concat(%0, %1) {axis=1} : f32[3,7]",
        "  %3 = add(%y, %2) : f32[3,7]",
        "  return out=%3"]
    same_values(g, out, (3, 7))


def test_overlapping_strided_and_multi_axis_pads_stay():
    src = """
        graph g(%a: f32[2,2] input, %b: f32[2,2] input, %c: f32[2,2] input, %d: f32[1,2] input) {
          %0 = pad(%a) {lo=[0, 0], hi=[0, 2], interior=[0, 0]} : f32[2,4]
          %1 = pad(%b) {lo=[0, 1], hi=[0, 1], interior=[0, 0]} : f32[2,4]
          %2 = add(%0, %1) : f32[2,4]
          %3 = pad(%c) {lo=[0, 0], hi=[0, 1], interior=[0, 1]} : f32[2,4]
          %4 = add(%2, %3) : f32[2,4]
          %5 = pad(%d) {lo=[1, 0], hi=[0, 2], interior=[0, 0]} : f32[2,4]
          %6 = add(%4, %5) : f32[2,4]
          return out=%6
        }"""
    g, out, record = run(src)
    # a and b overlap (one region taken), c is strided, d pads two axes: nothing to merge
    assert not record.changes and out is not None
    assert body(out) == body(parse_graph(dedent(src)))


def test_a_partial_sum_with_another_user_is_not_flattened():
    g, out, record = run("""
        graph g(%a: f32[2,1] input, %b: f32[2,1] input, %c: f32[2,1] input) {
          %0 = pad(%a) {lo=[0, 0], hi=[0, 2], interior=[0, 0]} : f32[2,3]
          %1 = pad(%b) {lo=[0, 1], hi=[0, 1], interior=[0, 0]} : f32[2,3]
          %2 = add(%0, %1) : f32[2,3]
          %3 = pad(%c) {lo=[0, 2], hi=[0, 0], interior=[0, 0]} : f32[2,3]
          %4 = add(%2, %3) : f32[2,3]
          return out=%4, partial=%2
        }""")
    # %2 is an output: it is its own sum (a, b), and %4 adds c to it
    assert record.changes == ["%2: sum of 2 pads along axis 1 -> one concat"]
    same_values(g, out, (2, 3))


def _lstm(steps: int):
    return nnc.compile(f"""
model M {{
    input  x: f32[32, {steps}, 8]
    target y: f32[32, 1]
    param  dx: f32[32, {steps}, 8] = 0.0
    h = lstm(x + dx, 16)
    out = dense(h, 1)
    output out
    loss mse(out, y)
    optimizer adam()
}}""")


def _fresh_bytes(graph) -> int:
    """Bytes of every value the graph computes (an upper bound on its fresh allocations)."""
    total = 0
    for n in graph.nodes:
        if n.op not in ("arg", "const", "reshape", "broadcast_to"):
            total += 4 * int(np.prod(n.shape, dtype=np.int64))
    return total


def test_backward_of_t_slices_allocates_linear_memory():
    small, big = _lstm(20).graph("train_step"), _lstm(80).graph("train_step")
    # no full-size pad per step is left: the time-step slices' cotangents are one concat
    assert small.op_counts().get("pad", 0) == big.op_counts().get("pad", 0)
    ratio = _fresh_bytes(big) / _fresh_bytes(small)
    assert ratio < 5.0, ratio  # linear: 4 (plus constant terms); quadratic would approach 16


@pytest.mark.parametrize("steps", [9])
def test_lstm_gradients_with_the_pass_match_finite_differences(steps):
    m = _lstm(steps)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, steps, 8)).astype(np.float32)
    y = rng.normal(size=(32, 1)).astype(np.float32)
    _, grads = m.loss_and_grads(x=x, y=y)
    # directional derivative along a random direction of dx, in float64 central differences
    # of the float32 loss: compare to <grad, v>
    v = rng.normal(size=x.shape).astype(np.float32)
    eps = 1e-2
    m.set_params({"dx": eps * v})
    up, _ = m.loss_and_grads(x=x, y=y)
    m.set_params({"dx": -eps * v})
    down, _ = m.loss_and_grads(x=x, y=y)
    fd = (float(up) - float(down)) / (2 * eps)
    assert fd == pytest.approx(float(np.sum(grads["dx"].astype(np.float64) * v)), rel=2e-2, abs=1e-4)
