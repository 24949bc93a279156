"""Common subexpression elimination: merge nodes computing the same value.

Two nodes merge when they have the same op, the same (already merged)
operands and the same attributes. Operands of commutative ops are sorted
first, so add(a, b) and add(b, a) merge. Arguments never merge (each is a
separate input). random_* nodes merge like any other node: their attributes
include the seed and the backends draw from it deterministically, so equal
attributes mean equal values.

Caveat: maximum/minimum are commutative up to the sign of a zero result
(numpy's maximum(0.0, -0.0) is -0.0, maximum(-0.0, 0.0) is 0.0); merging them
can flip that sign, which compares equal.
"""
from __future__ import annotations

import time

from ..ir.graph import Graph, rebuild
from .records import PassRecord, value_names

def attr_key(v):
    """A hashable key telling apart attribute values that == conflates: 0.0 and -0.0,
    1, 1.0 and True (and making nan equal to itself)."""
    if isinstance(v, (tuple, list)):
        return tuple(attr_key(x) for x in v)
    return (type(v).__name__, repr(v))


def cse(graph: Graph) -> tuple[Graph, PassRecord]:
    t0 = time.perf_counter()
    names = value_names(graph)
    seen: dict[tuple, int] = {}      # key -> new id of the first node with it
    first_name: dict[int, str] = {}  # new id -> its name in the input graph
    changes: list[str] = []

    def visit(b, node, ins):
        if node.op == "arg":
            return None
        operands = tuple(sorted(ins)) if node.prim.commutative else ins
        key = (node.op, operands, attr_key(node.attrs), node.type)
        if key in seen:
            changes.append(f"merged {names[node.id]} into {first_name[seen[key]]} (same op and operands)")
            return seen[key]
        new_id = b.copy(node, ins)
        seen[key] = new_id
        first_name[new_id] = names[node.id]
        return new_id

    out, _ = rebuild(graph, visit)
    if not changes:
        out = graph
    return out, PassRecord.of("cse", graph, out, changes, t0)
