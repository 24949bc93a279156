"""Constant folding: IR text in, expected IR text out, and values equal to unfolded evaluation."""
from textwrap import dedent

import numpy as np
import pytest

from nncompiler.backends.numpy import evaluate
from nncompiler.ir import Builder, TensorType, parse_graph, print_graph, verify
from nncompiler.passes import dce, fold


def run(text: str):
    out, record = fold(parse_graph(dedent(text)))
    verify(out)
    out, _ = dce(out)  # drop the constants the folded nodes used
    return print_graph(out, with_locs=False), record


def test_values_are_float32_and_ints_and_bools_stay_typed():
    text, _ = run("""
        graph g() {
          %0 = const() {value=0.1} : f32[]
          %1 = const() {value=3.0} : f32[]
          %2 = div(%0, %1) : f32[]
          %3 = const() {value=[7, -7]} : i32[2]
          %4 = const() {value=2} : i32[]
          %5 = mul(%3, %4) : i32[2]
          %6 = gt(%3, %4) : bool[2]
          %7 = cast(%3) {dtype=f32} : f32[2]
          return a=%2, b=%5, c=%6, d=%7
        }""")
    q = float(np.float32(0.1) / np.float32(3.0))  # computed in float32, stored exactly
    assert text == dedent(f"""\
        graph g() {{
          %0 = const() {{value={q!r}}} : f32[]
          %1 = const() {{value=[14, -14]}} : i32[2]
          %2 = const() {{value=[true, false]}} : bool[2]
          %3 = const() {{value=[7.0, -7.0]}} : f32[2]
          return a=%0, b=%1, c=%2, d=%3
        }}""")


def test_folds_movement_reductions_matmul_and_static_iota():
    text, _ = run("""
        graph g() {
          %0 = iota() {axis=1} : i32[2,3]
          %1 = transpose(%0) {perm=[1, 0]} : i32[3,2]
          %2 = sum(%1) {axes=[1]} : i32[3]
          %3 = cast(%1) {dtype=f32} : f32[3,2]
          %4 = cast(%0) {dtype=f32} : f32[2,3]
          %5 = matmul(%3, %4) : f32[3,3]
          return a=%2, b=%5
        }""")
    assert text == dedent("""\
        graph g() {
          %0 = const() {value=[0, 2, 4]} : i32[3]
          %1 = const() {value=[[0.0, 0.0, 0.0], [0.0, 2.0, 4.0], [0.0, 4.0, 8.0]]} : f32[3,3]
          return a=%0, b=%1
        }""")


def test_size_of_static_dims_folds_even_on_a_non_constant():
    text, record = run("""
        graph g(%x: f32[B,4,5] input) {
          %0 = size(%x) {axes=[1, 2], dtype=f32} : f32[]
          %1 = size(%x) {axes=[0], dtype=f32} : f32[]
          %2 = div(%0, %1) : f32[]
          return a=%0, b=%2
        }""")
    assert text == dedent("""\
        graph g(%x: f32[B,4,5] input) {
          %0 = const() {value=20.0} : f32[]
          %1 = size(%x) {axes=[0], dtype=f32} : f32[]
          %2 = div(%0, %1) : f32[]
          return a=%0, b=%2
        }""")
    assert record.changes == ["folded %0 size of static dims"]


@pytest.mark.parametrize("why, text", [
    ("big broadcast stays lazy", """
        graph g() {
          %0 = const() {value=1.0} : f32[]
          %1 = broadcast_to(%0) {shape=[64, 64]} : f32[64,64]
          return out=%1
        }"""),
    ("symbolic iota", """
        graph g(%x: f32[B] input) {
          %0 = iota() {axis=0} : i32[B]
          return out=%0
        }"""),
    ("random is never folded", """
        graph g() {
          %0 = random_uniform() {low=0.0, high=1.0, seed=3} : f32[4]
          %1 = exp(%0) : f32[4]
          return out=%1
        }"""),
    ("a counter-based draw from a constant key is not folded either", """
        graph g() {
          %0 = const() {value=7} : i32[]
          %1 = rng_uniform(%0) {seed=3} : f32[4]
          return out=%1
        }"""),
    ("args are not constants", """
        graph g(%x: f32[4] input) {
          %0 = const() {value=1.0} : f32[]
          %1 = add(%x, %0) : f32[4]
          return out=%1
        }"""),
    ("non-finite results are not emitted (numpy codegen cannot print nan/inf)", """
        graph g() {
          %0 = const() {value=-1.0} : f32[]
          %1 = log(%0) : f32[]
          return out=%1
        }"""),
])
def test_not_folded(why, text):
    out, record = run(text)
    assert out == dedent(text).strip(), why
    assert not record.changed


def test_exactly_1024_elements_fold():
    _, record = run("""
        graph g() {
          %0 = const() {value=1} : i32[]
          %1 = broadcast_to(%0) {shape=[32, 32]} : i32[32,32]
          return out=%1
        }""")
    assert record.changes == ["folded %1 broadcast_to of constants"]


def _random_const_graph(seed: int):
    """Float32 ops on random constants, including layout-sensitive ones (sums over views)."""
    rng = np.random.default_rng(seed)
    b = Builder("consts")
    vals = lambda *s: b.constant(  # noqa: E731
        np.asarray(rng.standard_normal(s), np.float32).tolist(), "f32", s)
    a, c, v = vals(4, 5), vals(5, 4), vals(5)
    outs = {}
    t = b.transpose(c, perm=[1, 0])
    outs["sum_t"] = b.sum(b.exp(t), axes=[0])
    outs["mm"] = b.matmul(a, c)
    outs["sig"] = b.sigmoid(b.add(a, v))
    outs["pow"] = b.pow(b.abs(a), b.scalar(1.7))
    outs["div"] = b.div(b.tanh(a), b.add(b.abs(a), b.scalar(0.5)))
    outs["mean"] = b.div(b.sum(a, axes=[0, 1]), b.size(a, axes=[0, 1], dtype="f32"))
    outs["sqrtlog"] = b.sqrt(b.log1p(b.abs(v)))
    outs["max"] = b.max(b.maximum(a, t), axes=[1], keepdims=True)
    outs["bcast"] = b.sum(b.broadcast_to(v, shape=[3, 5]), axes=[0])
    return b.build(outs)


@pytest.mark.parametrize("seed", range(5))
def test_folded_values_are_bit_identical_to_unfolded_evaluation(seed):
    g = _random_const_graph(seed)
    folded, record = fold(g)
    folded, _ = dce(folded)
    assert all(n.op == "const" for n in folded.nodes)
    assert len(record.changes) > 10
    want, got = evaluate(g), evaluate(folded)
    for k in want:
        assert want[k].dtype == got[k].dtype == np.float32
        assert want[k].tobytes() == got[k].tobytes(), k


def test_folded_graph_prints_and_parses_back_exactly():
    folded, _ = fold(_random_const_graph(7))
    text = print_graph(folded)
    again = parse_graph(text)
    assert print_graph(again) == text
    for k, v in evaluate(folded).items():
        assert v.tobytes() == evaluate(again)[k].tobytes()


def test_unchanged_graph_is_returned_as_is():
    b = Builder("g")
    x = b.argument("x", "input", TensorType("f32", (4,)))
    g = b.build({"out": b.exp(x)})
    out, record = fold(g)
    assert out is g and not record.changed
