"""CSE: IR text in, expected IR text out (more cases as .ir files in cases/, run by test_cases.py)."""
from textwrap import dedent

from nncompiler.ir import parse_graph, print_graph, verify
from nncompiler.passes import cse, dce


def run(text: str):
    out, record = cse(parse_graph(dedent(text)))
    verify(out)
    out, _ = dce(out)  # merged duplicates leave nothing behind, but keep the listing short
    return print_graph(out, with_locs=False), record


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
