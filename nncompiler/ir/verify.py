"""Verifier: re-infers every node's type and checks SSA order; run between passes."""
from __future__ import annotations

from ..errors import ShapeError
from .graph import Graph
from .primitives import PRIMITIVES, infer_type


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
        if ty != n.type:
            raise ShapeError(f"{g.name}: {n.op} %{n.id} has type {n.type}, inferred {ty}")
        seen[n.id] = ty
    for name, i in g.outputs:
        if i not in seen:
            raise ShapeError(f"{g.name}: output {name} refers to undefined %{i}")
    return g
