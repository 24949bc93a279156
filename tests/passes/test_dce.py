"""DCE: IR text in, expected IR text out."""
from textwrap import dedent

from nncompiler.ir import parse_graph, print_graph, verify
from nncompiler.passes import dce


def run(text: str):
    out, record = dce(parse_graph(dedent(text)))
    verify(out)
    return print_graph(out, with_locs=False), record


def test_keeps_unused_args():
    src = """\
        graph g(%x: f32[4] input, %unused: f32[2,2] param, %t: i32[4] target) {
          %0 = const() {value=1.0} : f32[]
          %1 = add(%x, %0) : f32[4]
          return out=%1
        }"""
    text, record = run(src)
    assert text == dedent(src)
    assert record.changes == []


def test_keeps_values_used_only_through_other_outputs():
    text, record = run("""
        graph g(%x: f32[4] input) {
          %0 = exp(%x) : f32[4]
          %1 = sum(%0) {axes=[0]} : f32[]
          %2 = log(%x) : f32[4]
          return a=%0, b=%1
        }""")
    assert "log" not in text and "exp" in text and "sum" in text
    assert record.changes == ["removed %2 log (unused)"]


def test_unchanged_graph_is_returned_as_is():
    g = parse_graph("graph g(%x: f32[4] input) {\n  return out=%x\n}")
    out, record = dce(g)
    assert out is g and not record.changed
