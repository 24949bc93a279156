"""`nnc graph` (issue #6): DOT with one box per layer, --ops, --grad, SVG through Graphviz, and the fallback."""
from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET

import pytest

import nncompiler as nnc
from nncompiler.cli import main
from nncompiler.ir.text import value_names
from nncompiler.viz import layer_groups, line_key, to_dot

NODE = re.compile(r'^\s*"([^"]+)" \[')
EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)"')


def parse_dot(text: str) -> tuple[set[str], list[tuple[str, str]]]:
    assert text.startswith("digraph ") and text.rstrip().endswith("}")
    nodes, edges = set(), []
    for line in text.splitlines():
        if m := EDGE.match(line):
            edges.append(m.groups())
        elif m := NODE.match(line):
            nodes.add(m.group(1))
    assert all(a in nodes and b in nodes for a, b in edges), "an edge names an undeclared node"
    return nodes, edges


@pytest.fixture(scope="module")
def iris():
    return nnc.compile("examples/iris.nn")


def test_line_keys():
    assert line_key("    h   = dense(x, 16, activation=relu)") == "h"
    assert line_key("    loss mse(p, y)") == "loss"
    assert line_key("    param  slope: f32[] = 1.0") == "slope"
    assert line_key("train Iris {") == "metrics"


def test_one_box_per_layer(iris):
    nodes, edges = parse_dot(to_dot(iris))
    outputs = {"output out", "output loss", "output metric.accuracy"}
    assert nodes == {"x", "y", "h", "out", "loss", "metrics"} | outputs
    assert set(edges) == {("x", "h"), ("h", "out"), ("out", "loss"), ("y", "loss"), ("out", "metrics"),
                          ("y", "metrics"), ("out", "output out"), ("loss", "output loss"),
                          ("metrics", "output metric.accuracy")}
    text = to_dot(iris)
    assert "h.kernel: f32[4,16]" in text and "h = dense(x, 16, activation=relu)" in text


def test_ops_are_ir_nodes_clustered_by_layer(iris):
    g = iris.lowered.forward
    text = to_dot(iris, ops=True)
    nodes, edges = parse_dot(text)
    assert len(nodes) == len(g.nodes) + len(g.outputs)
    assert len(edges) == sum(len(n.inputs) for n in g.nodes) + len(g.outputs)
    last = value_names(g)[g.nodes[-1].id]
    assert {"%x", "%h.kernel", "%0", last} <= nodes             # the names --emit ir prints
    assert text.count("subgraph cluster_") == len({v for v in layer_groups(g, iris.lowered.sources).values()
                                                    if v not in ("x", "y")})
    assert '"%0" [label="%0 = matmul\\nf32[B,16]"' in text


def test_grad_adds_the_backward_pass(iris):
    nodes, edges = parse_dot(to_dot(iris, grad=True))
    assert {"grad h", "grad out", "grad loss"} <= nodes
    assert {"output grad.h.kernel", "output grad.out.bias"} <= nodes
    assert ("grad out", "grad h") in edges and "metrics" not in nodes   # only what the loss needs
    g = iris.unoptimized_graph("gradients")
    ops_nodes, _ = parse_dot(to_dot(iris, ops=True, grad=True))
    assert len(ops_nodes) == len(g.nodes) + len(g.outputs)


def test_graph_block_has_no_backward_pass(capsys):
    assert main(["graph", "examples/basics.nn", "--grad"]) == 1
    assert "has no loss" in capsys.readouterr().err


def test_cli_writes_dot(tmp_path, capsys):
    path = tmp_path / "m.dot"
    assert main(["graph", "examples/iris.nn", "-o", str(path)]) == 0
    assert parse_dot(path.read_text())[0] >= {"h", "out"}
    assert main(["graph", "examples/iris.nn", "--ops"]) == 0
    assert capsys.readouterr().out.startswith('digraph "Iris"')


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_cli_svg_is_well_formed_with_the_node_titles(tmp_path):
    path = tmp_path / "iris.svg"
    assert main(["graph", "examples/iris.nn", "-o", str(path)]) == 0
    root = ET.parse(path).getroot()
    ns = {"svg": "http://www.w3.org/2000/svg"}
    titles = {t.text for t in root.iterfind(".//svg:g[@class='node']/svg:title", ns)}
    assert titles == {"x", "y", "h", "out", "loss", "metrics", "output out", "output loss",
                      "output metric.accuracy"}
    edges = root.findall(".//svg:g[@class='edge']", ns)
    assert len(edges) == 9
    assert main(["graph", "examples/iris.nn", "--ops", "--grad", "-o", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_graphviz_writes_dot_and_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    assert main(["graph", "examples/iris.nn", "-o", str(tmp_path / "iris.svg")]) == 0
    err = capsys.readouterr().err
    assert (tmp_path / "iris.dot").exists() and not (tmp_path / "iris.svg").exists()
    assert err.count("\n") == 1 and "apt-get install graphviz" in err and "brew install graphviz" in err


def test_bad_output_extension(capsys):
    assert main(["graph", "examples/iris.nn", "-o", "x.jpeg"]) == 1
    assert "expected a .svg, .png, .pdf or .dot file" in capsys.readouterr().err
