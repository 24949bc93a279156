"""Decompositions: primitives with cheaper, exact spellings in simpler primitives, rewritten
in one place so that no backend keeps its own list of special cases.

  pow(x, 0) -> 1        pow(x, 1) -> x          pow(x, 2) -> x * x      pow(x, 3) -> x * x * x
  pow(x, 0.5) -> sqrt(x)                        pow(x, -1) -> 1 / x

for an exponent that is a constant whose elements all equal one of those values. These
are what numpy's power computes (its own fast paths square, take the square root and
the reciprocal), with two documented differences, both in the primitive table's `pow`
formula: pow(-inf, 0.5) is sqrt's nan where C's pow says inf, and x*x*x rounds twice.
Every other pow reaches the backends, whose rules all follow that formula.

The pass runs first in the default pipeline (passes/pipeline.py), so any later fold,
simplify and cse see the simpler ops. It is idempotent.
"""
from __future__ import annotations

import time

from ..ir.graph import Builder, Graph, Node
from ..ir.shapes import broadcast_shapes
from .records import PassRecord, value_names


def _splat(node: Node):
    """The value every element of a const equals, or None (not a const, not uniform, or nan)."""
    if node.op != "const":
        return None
    vals, stack = [], [node.attr["value"]]
    while stack:
        v = stack.pop()
        if isinstance(v, tuple):
            stack.extend(v)
        else:
            vals.append(v)
    if not vals or any(v != vals[0] for v in vals):
        return None
    return float(vals[0])


def _pow_by_constant(b: Builder, n: Node, x: int, c: float):
    """pow(x, c) for the exponents with an exact spelling; (new id, description) or None."""
    if c == 1.0:
        return x, "pow(x, 1) -> x"
    if c == 2.0:
        return b.mul(x, x), "pow(x, 2) -> x * x"
    if c == 3.0:
        return b.mul(b.mul(x, x), x), "pow(x, 3) -> x * x * x"
    if c == 0.5:
        return b.sqrt(x), "pow(x, 0.5) -> sqrt(x)"
    if c == -1.0:
        return b.div(b.scalar(1.0, n.dtype), x), "pow(x, -1) -> 1 / x"
    if c == 0.0:   # 1 everywhere, nan and inf bases included (numpy's 0th power)
        return b.scalar(1.0, n.dtype), "pow(x, 0) -> 1"
    return None


def _rule(b: Builder, n: Node, ins: tuple[int, ...]):
    if n.op == "pow":
        c = _splat(b.nodes[ins[1]])    # a Builder's ids are its list positions
        if c is not None:
            return _pow_by_constant(b, n, ins[0], c)
    return None


def _fit(b: Builder, new: int, n: Node) -> int:
    """`new` with `n`'s shape: broadcast up when the exponent was the bigger operand."""
    t = b.type_of(new)
    if tuple(t.shape) == tuple(n.shape):
        return new
    assert broadcast_shapes(t.shape, n.shape) == tuple(n.shape), (t, n.type)
    return b.broadcast_to(new, shape=n.shape)


def decompose(graph: Graph) -> tuple[Graph, PassRecord]:
    t0 = time.perf_counter()
    names = value_names(graph)
    changes: list[str] = []
    b = Builder(graph.name)
    mapping: dict[int, int] = {}
    for n in graph.nodes:
        ins = tuple(mapping[i] for i in n.inputs)
        with b.at(n.loc):
            hit = _rule(b, n, ins)
            if hit is None:
                mapping[n.id] = b.copy(n, ins)
            else:
                mapping[n.id] = _fit(b, hit[0], n)
                changes.append(f"replaced {names[n.id]} {hit[1]}")
    if not changes:
        return graph, PassRecord.of("decompose", graph, graph, [], t0)
    out = b.build([(name, mapping[i]) for name, i in graph.outputs])
    return out, PassRecord.of("decompose", graph, out, changes, t0)
