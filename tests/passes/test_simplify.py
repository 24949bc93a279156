"""Algebraic simplification: IR text in, expected IR text out (after dce, to drop leftovers)."""
from textwrap import dedent

import numpy as np
import pytest

from nncompiler.backends.numpy import evaluate
from nncompiler.ir import parse_graph, print_graph, verify
from nncompiler.passes import dce, simplify


def run(text: str):
    out, record = simplify(parse_graph(dedent(text)))
    verify(out)
    out, _ = dce(out)
    return print_graph(out, with_locs=False), record


def graph(body: str, args: str = "%x: f32[3,4] input") -> str:
    """A graph `g(args)` whose body lines are given without indentation."""
    lines = "\n".join("  " + line.strip() for line in dedent(body).strip().splitlines())
    return f"graph g({args}) {{\n{lines}\n}}"


IDENTITY = "return out=%x"

# (name, input body, expected body); argument %x: f32[3,4] unless the case says otherwise
CASES = [
    ("add x 0", """
        %0 = const() {value=0.0} : f32[]
        %1 = add(%x, %0) : f32[3,4]
        return out=%1""", IDENTITY),
    ("add 0 x", """
        %0 = const() {value=0.0} : f32[]
        %1 = add(%0, %x) : f32[3,4]
        return out=%1""", IDENTITY),
    ("add x, array of zeros of the same shape", """
        %0 = const() {value=[0.0, 0.0, 0.0, 0.0]} : f32[4]
        %1 = add(%x, %0) : f32[3,4]
        return out=%1""", IDENTITY),
    ("sub x 0", """
        %0 = const() {value=0.0} : f32[]
        %1 = sub(%x, %0) : f32[3,4]
        return out=%1""", IDENTITY),
    ("mul x 1", """
        %0 = const() {value=1.0} : f32[]
        %1 = mul(%x, %0) : f32[3,4]
        return out=%1""", IDENTITY),
    ("mul 1 x", """
        %0 = const() {value=1.0} : f32[]
        %1 = mul(%0, %x) : f32[3,4]
        return out=%1""", IDENTITY),
    ("div x 1", """
        %0 = const() {value=1.0} : f32[]
        %1 = div(%x, %0) : f32[3,4]
        return out=%1""", IDENTITY),
    ("sub 0 x", """
        %0 = const() {value=0.0} : f32[]
        %1 = sub(%0, %x) : f32[3,4]
        return out=%1""", """
        %0 = neg(%x) : f32[3,4]
        return out=%0"""),
    ("mul x -1 and mul -1 x", """
        %0 = const() {value=-1.0} : f32[]
        %1 = mul(%x, %0) : f32[3,4]
        %2 = mul(%0, %x) : f32[3,4]
        return a=%1, b=%2""", """
        %0 = neg(%x) : f32[3,4]
        %1 = neg(%x) : f32[3,4]
        return a=%0, b=%1"""),
    ("neg neg", """
        %0 = neg(%x) : f32[3,4]
        %1 = neg(%0) : f32[3,4]
        return out=%1""", IDENTITY),
    ("neg neg neg", """
        %0 = neg(%x) : f32[3,4]
        %1 = neg(%0) : f32[3,4]
        %2 = neg(%1) : f32[3,4]
        return out=%2""", """
        %0 = neg(%x) : f32[3,4]
        return out=%0"""),
    ("reshape to the same shape", """
        %0 = reshape(%x) {shape=[3, 4]} : f32[3,4]
        return out=%0""", IDENTITY),
    ("reshape reshape", """
        %0 = reshape(%x) {shape=[12]} : f32[12]
        %1 = reshape(%0) {shape=[2, 6]} : f32[2,6]
        return out=%1""", """
        %0 = reshape(%x) {shape=[2, 6]} : f32[2,6]
        return out=%0"""),
    ("reshape reshape back to the start", """
        %0 = reshape(%x) {shape=[12]} : f32[12]
        %1 = reshape(%0) {shape=[3, 4]} : f32[3,4]
        return out=%1""", IDENTITY),
    ("transpose by the identity", """
        %0 = transpose(%x) {perm=[0, 1]} : f32[3,4]
        return out=%0""", IDENTITY),
    ("transpose transpose inverse", """
        %0 = transpose(%x) {perm=[1, 0]} : f32[4,3]
        %1 = transpose(%0) {perm=[1, 0]} : f32[3,4]
        return out=%1""", IDENTITY),
    ("transpose transpose composed", """
        %0 = transpose(%y) {perm=[1, 2, 0]} : f32[3,4,2]
        %1 = transpose(%0) {perm=[0, 2, 1]} : f32[3,2,4]
        return out=%1""", """
        %0 = transpose(%y) {perm=[1, 0, 2]} : f32[3,2,4]
        return out=%0"""),
    ("broadcast_to the same shape", """
        %0 = broadcast_to(%x) {shape=[3, 4]} : f32[3,4]
        return out=%0""", IDENTITY),
    ("broadcast_to broadcast_to", """
        %0 = broadcast_to(%x) {shape=[1, 3, 4]} : f32[1,3,4]
        %1 = broadcast_to(%0) {shape=[5, 3, 4]} : f32[5,3,4]
        return out=%1""", """
        %0 = broadcast_to(%x) {shape=[5, 3, 4]} : f32[5,3,4]
        return out=%0"""),
    ("cast to the same dtype", """
        %0 = cast(%x) {dtype=f32} : f32[3,4]
        return out=%0""", IDENTITY),
    ("stop_gradient", """
        %0 = stop_gradient(%x) : f32[3,4]
        return out=%0""", IDENTITY),
    ("slice of everything", """
        %0 = slice(%x) {start=[0, 0], stop=[3, none], step=[1, 1]} : f32[3,4]
        return out=%0""", IDENTITY),
    ("slice past the end is everything too", """
        %0 = slice(%x) {start=[0, 0], stop=[3, 99], step=[1, 1]} : f32[3,4]
        return out=%0""", IDENTITY),
    ("sum over no axes", """
        %0 = sum(%x) {axes=[]} : f32[3,4]
        %1 = sum(%x) {axes=[], keepdims=true} : f32[3,4]
        %2 = max(%x) {axes=[]} : f32[3,4]
        return a=%0, b=%1, c=%2""", """
        return a=%x, b=%x, c=%x"""),
    ("rewrites chain to a fixed point", """
        %0 = const() {value=1.0} : f32[]
        %1 = const() {value=0.0} : f32[]
        %2 = stop_gradient(%x) : f32[3,4]
        %3 = mul(%2, %0) : f32[3,4]
        %4 = transpose(%3) {perm=[1, 0]} : f32[4,3]
        %5 = transpose(%4) {perm=[1, 0]} : f32[3,4]
        %6 = add(%1, %5) : f32[3,4]
        %7 = neg(%6) : f32[3,4]
        %8 = sub(%1, %7) : f32[3,4]
        %9 = neg(%8) : f32[3,4]
        %10 = neg(%9) : f32[3,4]
        return out=%10""", IDENTITY),
]


@pytest.mark.parametrize("name, body, expected", CASES, ids=[c[0] for c in CASES])
def test_rewrite(name, body, expected):
    args = "%x: f32[3,4] input, %y: f32[2,3,4] input"
    text, record = run(graph(body, args))
    assert text == graph(expected, args)
    assert record.changed


def test_output_is_a_fixed_point():
    body = CASES[-1][1]
    args = "%x: f32[3,4] input, %y: f32[2,3,4] input"
    out, record = simplify(parse_graph(graph(body, args)))
    assert len(record.changes) == 7  # every rewrite in the chain, found in one pass call
    again, record2 = simplify(out)
    assert again is out and not record2.changed


# ---- broadcasting is never lost -------------------------------------------------------

def test_bigger_zero_constant_becomes_broadcast_to():
    text, record = run(graph("""
        %0 = const() {value=[[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]} : f32[2,4]
        %1 = add(%y, %0) : f32[2,4]
        return out=%1""", "%y: f32[4] input"))
    assert text == graph("""
        %0 = broadcast_to(%y) {shape=[2, 4]} : f32[2,4]
        return out=%0""", "%y: f32[4] input")
    assert record.changes == ["replaced %1 add(x, 0) by a new broadcast_to"]


def test_scalar_x_times_ones_array_broadcasts():
    text, _ = run(graph("""
        %0 = const() {value=[1.0, 1.0, 1.0]} : f32[3]
        %1 = mul(%s, %0) : f32[3]
        %2 = mul(%s, %s) : f32[]
        %3 = const() {value=[-1.0, -1.0, -1.0]} : f32[3]
        %4 = mul(%3, %2) : f32[3]
        return a=%1, b=%4""", "%s: f32[] input"))
    assert text == graph("""
        %0 = broadcast_to(%s) {shape=[3]} : f32[3]
        %1 = mul(%s, %s) : f32[]
        %2 = neg(%1) : f32[]
        %3 = broadcast_to(%2) {shape=[3]} : f32[3]
        return a=%0, b=%3""", "%s: f32[] input")


# ---- deliberately not simplified --------------------------------------------------------

@pytest.mark.parametrize("body", [
    # x*0 is not 0: inf*0 and nan*0 are nan
    """%0 = const() {value=0.0} : f32[]
       %1 = mul(%x, %0) : f32[3,4]
       return out=%1""",
    # x-x is not 0: inf-inf is nan
    """%0 = sub(%x, %x) : f32[3,4]
       return out=%0""",
    # pow by a constant is decompose's (it runs first in the pipeline; tests/passes/test_pipeline.py)
    """%0 = const() {value=1.0} : f32[]
       %1 = pow(%x, %0) : f32[3,4]
       %2 = const() {value=2.0} : f32[]
       %3 = pow(%x, %2) : f32[3,4]
       return a=%1, b=%3""",
    # not all-equal constants are not identities
    """%0 = const() {value=[0.0, 1.0, 0.0, 0.0]} : f32[4]
       %1 = add(%x, %0) : f32[3,4]
       return out=%1""",
    # reshape / slice / transpose that really move data
    """%0 = reshape(%x) {shape=[4, 3]} : f32[4,3]
       %1 = slice(%x) {start=[1, 0], stop=[3, 4], step=[1, 1]} : f32[2,4]
       %2 = slice(%x) {start=[0, 0], stop=[3, 4], step=[1, 2]} : f32[3,2]
       %3 = transpose(%x) {perm=[1, 0]} : f32[4,3]
       %4 = cast(%x) {dtype=f64} : f64[3,4]
       %5 = sum(%x) {axes=[0]} : f32[4]
       return a=%0, b=%1, c=%2, d=%3, e=%4, f=%5""",
])
def test_not_simplified(body):
    src = graph(body)
    text, record = run(src)
    assert text == src and not record.changed


def test_x_times_zero_keeps_nan_semantics():
    src = graph("""
        %0 = const() {value=0.0} : f32[]
        %1 = mul(%x, %0) : f32[3,4]
        return out=%1""")
    out, _ = simplify(parse_graph(src))
    x = np.full((3, 4), np.inf, np.float32)
    with np.errstate(invalid="ignore"):
        assert np.isnan(evaluate(out, {"x": x})["out"]).all()


def test_messages_name_values_of_the_input():
    _, record = run(graph("""
        %0 = const() {value=1.0} : f32[]
        %1 = mul(%x, %0) : f32[3,4]
        %2 = neg(%1) : f32[3,4]
        %3 = neg(%2) : f32[3,4]
        return out=%3"""))
    assert record.changes == ["replaced %1 mul(x, 1) by %x", "replaced %3 neg(neg(x)) by %x"]


def test_integer_and_bool_identities():
    text, _ = run(graph("""
        %0 = const() {value=1} : i32[]
        %1 = mul(%i, %0) : i32[4]
        %2 = const() {value=false} : bool[]
        %3 = add(%b, %2) : bool[4]
        return a=%1, b=%3""", "%i: i32[4] input, %b: bool[4] input"))
    assert text == graph("return a=%i, b=%b", "%i: i32[4] input, %b: bool[4] input")


def test_a_reduction_over_axes_of_size_one_is_a_reshape():
    args = "%u: f32[3,1,4] input"
    text, record = run(graph("""
        %0 = sum(%u) {axes=[1]} : f32[3,4]
        %1 = max(%u) {axes=[1], keepdims=true} : f32[3,1,4]
        %2 = sum(%u) {axes=[0, 1]} : f32[4]
        return a=%0, b=%1, c=%2""", args))
    assert text == graph("""
        %0 = reshape(%u) {shape=[3, 4]} : f32[3,4]
        %1 = sum(%u) {axes=[0, 1]} : f32[4]
        return a=%0, b=%u, c=%1""", args)                  # axis 0 has 3 elements: still a sum
    assert any("over axes of size 1" in c for c in record.changes), record.changes
    u = np.array([[[-0.0, 1.5, -2.0, 3.0]], [[4.0, -0.0, 6.0, 7.0]], [[8.0, 9.0, 10.0, -0.0]]], np.float32)
    got = evaluate(parse_graph(text), {"u": u})["a"]
    want = np.sum(u, axis=1)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)         # equal; -0.0 keeps its sign (the sum gave +0.0)
