"""Verifier: re-infers every node's type and checks SSA order; run between passes."""
from __future__ import annotations

from ..errors import ShapeError
from .graph import Graph
from .primitives import PRIMITIVES, infer_type, scan_result_types


def verify(g: Graph) -> Graph:
    seen: dict[int, object] = {}
    for n in g.nodes:
        if n.op not in PRIMITIVES:
            raise ShapeError(f"{g.name}: unknown primitive '{n.op}'")
        if n.id in seen:
            raise ShapeError(f"{g.name}: value %{n.id} defined twice")
        for i in n.inputs:
            if i not in seen:
                raise ShapeError(f"{g.name}: {n.op} %{n.id} uses %{i} before its definition")
        ty = infer_type(n.op, [seen[i] for i in n.inputs], n.attr)
        if n.op == "scan":
            verify(n.attr["body"])
        elif n.op == "scan_out":
            _check_scan_out(g, n, seen)
        if ty != n.type:
            raise ShapeError(f"{g.name}: {n.op} %{n.id} has type {n.type}, inferred {ty}")
        seen[n.id] = ty
    for name, i in g.outputs:
        if i not in seen:
            raise ShapeError(f"{g.name}: output {name} refers to undefined %{i}")
    return g


def _check_scan_out(g: Graph, n, seen) -> None:
    """scan_out reads result `index` of a scan and declares its type: the two must agree."""
    src = g[n.inputs[0]]
    if src.op != "scan":
        raise ShapeError(f"{g.name}: scan_out %{n.id} reads %{src.id}, a {src.op}, not a scan")
    results = scan_result_types([seen[i] for i in src.inputs], src.attr)
    k = n.attr["index"]
    if not 0 <= k < len(results) or results[k] != n.type:
        want = results[k] if 0 <= k < len(results) else f"one of {len(results)} results"
        raise ShapeError(f"{g.name}: scan_out %{n.id} index {k} has type {n.type}, the scan gives {want}")
