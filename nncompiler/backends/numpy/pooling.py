"""numpy codegen's max pools: which nodes the generated code computes together.

A training step holds a max pool (reduce_window max) and its gradient (select_scatter of
the same operand and windows); where the windows do not overlap, ir/pools.py computes the
pool and records each window's winning tap, and the gradient writes g through it. Around
them, simplify leaves relu's mask on the pooled gradient (where(pooled > 0, g, 0)), which
the gradient absorbs, and the relu itself, which the pool applies to the pooled values.
codegen.py emits the lines; this module only decides, from the graph, what pairs with what.
"""
from __future__ import annotations

import math

from ...ir.graph import Graph, Node
from ...ir.pools import tiles
from ...ir.shapes import NUMPY_DTYPE


def max_pool_pairs(graph: Graph) -> dict[int, tuple[int, int | None]]:
    """select_scatter nodes mapped to (the max pool of the same operand and windows before
    them, the where(c, g, +0.0) they read if nothing else does, or None), for windows that
    ir/pools.py computes: the pool records each window's winning tap, the gradient writes
    g through it (a training step pairs them; relu's mask, moved onto the pooled gradient
    by simplify, is that where)."""
    users = graph.users()
    outputs = {i for _, i in graph.outputs}
    forward: dict[tuple, int] = {}
    pairs: dict[int, tuple[int, int | None]] = {}
    for n in graph.nodes:
        if n.op not in ("reduce_window", "select_scatter"):
            continue
        a = n.attr
        key = (n.inputs[0], tuple(a["window"]), tuple(a["stride"]), tuple(map(tuple, a["padding"])))
        if not tiles(key[1], key[2], key[3], NUMPY_DTYPE[n.dtype]):
            continue
        if n.op == "reduce_window":
            if a["kind"] == "max":
                forward.setdefault(key, n.id)
        elif key in forward:
            w = graph[n.inputs[1]]
            absorb = (is_where0(graph, w) and len(users[w.id]) == 1 and w.id not in outputs
                      and graph[w.inputs[1]].shape == w.shape)     # g itself, not broadcast
            pairs[n.id] = (forward[key], w.id if absorb else None)
    return pairs


def pooled_relus(graph: Graph, pools: dict[int, tuple[int, int | None]]) -> dict[int, int]:
    """relu nodes, maximum(z, +0.0), mapped to the max pool that can take z and apply relu
    to the pooled values instead (a pass over the pooled quarter, not the whole z): the relu
    is read by that pool and its gradient only, and the gradient absorbs where(pooled > 0,
    g, 0). The pooled bits are the same (ir/pools.py); z's winning taps differ from relu(z)'s
    only in windows whose max is not positive, and there the where zeroes the gradient."""
    users = graph.users()
    outputs = {i for _, i in graph.outputs}
    out = {}
    for s, (f, w) in pools.items():
        r, keep = graph[graph[f].inputs[0]], graph[graph[w].inputs[0]] if w is not None else None
        if (r.op == "maximum" and is_zero(graph[r.inputs[1]]) and r.id not in outputs
                and graph[r.inputs[0]].type == r.type and sorted(users[r.id]) == sorted((f, s))
                and keep is not None and keep.op == "gt" and keep.inputs[0] == f and is_zero(graph[keep.inputs[1]])):
            out[r.id] = f
    return out


def is_zero(n: Node) -> bool:
    """A scalar float constant +0.0."""
    return (n.op == "const" and n.shape == () and n.dtype in ("f32", "f64") and n.attr["value"] == 0
            and math.copysign(1.0, n.attr["value"]) > 0)


def is_where0(graph: Graph, node: Node) -> bool:
    """where(c, x, +0.0) on floats: computed with a bit mask instead of a masked copy."""
    return node.op == "where" and node.dtype in ("f32", "f64") and is_zero(graph[node.inputs[2]])
