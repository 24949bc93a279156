"""CSE: IR text in, expected IR text out."""
from textwrap import dedent

from nncompiler.ir import parse_graph, print_graph, verify
from nncompiler.passes import cse, dce


def run(text: str):
    out, record = cse(parse_graph(dedent(text)))
    verify(out)
    out, _ = dce(out)  # merged duplicates leave nothing behind, but keep the listing short
    return print_graph(out, with_locs=False), record


def test_merges_identical_nodes_and_their_users():
    text, record = run("""
        graph g(%x: f32[4] input) {
          %0 = exp(%x) : f32[4]
          %1 = exp(%x) : f32[4]
          %2 = tanh(%0) : f32[4]
          %3 = tanh(%1) : f32[4]
          %4 = sub(%2, %3) : f32[4]
          return out=%4
        }""")
    assert text == dedent("""\
        graph g(%x: f32[4] input) {
          %0 = exp(%x) : f32[4]
          %1 = tanh(%0) : f32[4]
          %2 = sub(%1, %1) : f32[4]
          return out=%2
        }""")
    assert record.changes == ["merged %1 into %0 (same op and operands)",
                              "merged %3 into %2 (same op and operands)"]


def test_commutative_operands_are_sorted():
    text, record = run("""
        graph g(%x: f32[4] input, %y: f32[4] input) {
          %0 = add(%x, %y) : f32[4]
          %1 = add(%y, %x) : f32[4]
          %2 = mul(%0, %1) : f32[4]
          %3 = mul(%1, %0) : f32[4]
          %4 = maximum(%y, %x) : f32[4]
          %5 = maximum(%x, %y) : f32[4]
          %6 = eq(%x, %y) : bool[4]
          %7 = eq(%y, %x) : bool[4]
          return a=%2, b=%3, c=%4, d=%5, e=%6, f=%7
        }""")
    assert text == dedent("""\
        graph g(%x: f32[4] input, %y: f32[4] input) {
          %0 = add(%x, %y) : f32[4]
          %1 = mul(%0, %0) : f32[4]
          %2 = maximum(%y, %x) : f32[4]
          %3 = eq(%x, %y) : bool[4]
          return a=%1, b=%1, c=%2, d=%2, e=%3, f=%3
        }""")
    assert len(record.changes) == 4


def test_non_commutative_operands_keep_their_order():
    src = """\
        graph g(%x: f32[4] input, %y: f32[4] input) {
          %0 = sub(%x, %y) : f32[4]
          %1 = sub(%y, %x) : f32[4]
          %2 = lt(%x, %y) : bool[4]
          %3 = lt(%y, %x) : bool[4]
          return a=%0, b=%1, c=%2, d=%3
        }"""
    text, record = run(src)
    assert text == dedent(src) and not record.changed


def test_args_never_merge():
    src = """\
        graph g(%x: f32[4] input, %y: f32[4] input) {
          %0 = add(%x, %y) : f32[4]
          return out=%0
        }"""
    text, record = run(src)
    assert text == dedent(src) and not record.changed


def test_attributes_must_match():
    text, record = run("""
        graph g(%x: f32[2,3] input) {
          %0 = sum(%x) {axes=[0]} : f32[3]
          %1 = sum(%x) {axes=[0]} : f32[3]
          %2 = sum(%x) {axes=[0], keepdims=true} : f32[1,3]
          %3 = const() {value=0.0} : f32[]
          %4 = const() {value=-0.0} : f32[]
          %5 = const() {value=0.0} : f32[]
          return a=%0, b=%1, c=%2, d=%3, e=%4, f=%5
        }""")
    # 0.0 and -0.0 are == in python but different constants: they must not merge
    assert text == dedent("""\
        graph g(%x: f32[2,3] input) {
          %0 = sum(%x) {axes=[0]} : f32[3]
          %1 = sum(%x) {axes=[0], keepdims=true} : f32[1,3]
          %2 = const() {value=0.0} : f32[]
          %3 = const() {value=-0.0} : f32[]
          return a=%0, b=%0, c=%1, d=%2, e=%3, f=%2
        }""")
    assert record.changes == ["merged %1 into %0 (same op and operands)",
                              "merged %5 into %3 (same op and operands)"]


def test_random_nodes_merge_only_with_the_same_seed():
    text, _ = run("""
        graph g() {
          %0 = random_normal() {mean=0.0, stddev=1.0, seed=1} : f32[3]
          %1 = random_normal() {mean=0.0, stddev=1.0, seed=1} : f32[3]
          %2 = random_normal() {mean=0.0, stddev=1.0, seed=2} : f32[3]
          return a=%0, b=%1, c=%2
        }""")
    assert text == dedent("""\
        graph g() {
          %0 = random_normal() {mean=0.0, stddev=1.0, seed=1} : f32[3]
          %1 = random_normal() {mean=0.0, stddev=1.0, seed=2} : f32[3]
          return a=%0, b=%0, c=%1
        }""")
