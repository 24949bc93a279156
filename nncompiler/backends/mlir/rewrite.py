"""Graph rewrites the mlir backend applies before planning (the numpy reference keeps the graph).

    sum over select_scatter   sum(select_scatter(x, g), axes ⊇ the spatial ones), windows without
                              padding, is the same sum of g: every window hands its g to exactly
                              one pixel of x (its first maximal tap, always inside x), so summing
                              over every pixel adds each g once. A bias's gradient under max
                              pooling is such a sum: reading g [N, *O, C] instead of the scattered
                              [N, *S, C] reads 1/taps of the data, and IREE no longer computes the
                              scatter a second time in the sum's dispatch. Only the order of the
                              float additions changes, which a reduction's order never promised.
                              Not where g is an elementwise function of a conv's output and the
                              scatter recomputes each window's winner from x: IREE fuses g and
                              the scatter into that conv's dispatch, and a second reader of g
                              splits them, making g one more intermediate of the call's
                              transient block (case F's first conv: +2 MiB, past local-task's
                              64 MiB line; docs/mlir.md "A bias gradient under max pooling").
                              Where the windows tile, such a pool records its winners instead
                              (recorded_pools, windows.py) and the scatter reads those: the
                              pool's input is free after the forward, which more than pays for
                              g (case F at batch 64: 56.8 MiB with both bias gradients reading
                              g, 62.3 with neither recorded nor the first bias rewritten).
"""
from __future__ import annotations

from ...ir.graph import Graph, rebuild
from ...ir.primitives import ELEMENTWISE_KINDS, norm_axes
from .windows import pool_pairs


def _fed_by_conv(graph: Graph, g_id: int) -> bool:
    """Is g a conv's output, or an elementwise function (of g's shape, at any depth) of one?"""
    shape, seen, stack = graph[g_id].shape, set(), [g_id]
    while stack:
        i = stack.pop()
        n = graph[i]
        if i in seen or n.shape != shape:
            continue
        seen.add(i)
        if n.op == "conv":
            return True
        if n.prim.kind in ELEMENTWISE_KINDS:
            stack.extend(n.inputs)
    return False


def recorded_pools(graph: Graph) -> dict[int, int]:
    """windows.pool_pairs where the gradient's g comes from a conv: the pools that record their
    winning taps (windows.py), which makes room for the sum above to read g. Not elsewhere: the
    pool as a generic over its taps is slower than linalg.pooling (case E: 0.67 -> 0.80 ms of
    CPU per step on local-sync), and nothing needs the room there."""
    return {p: s for p, s in pool_pairs(graph).items() if _fed_by_conv(graph, graph[s].inputs[1])}


def _sum_of_scattered_g(graph: Graph, node, recorded: set[int]) -> int | None:
    """The id of g when `node` sums a select_scatter's result over all its spatial axes (and
    the rewrite applies, see above); `recorded`: the select_scatters whose pool records the
    winning taps."""
    if node.op != "sum":
        return None
    src = graph[node.inputs[0]]
    if src.op != "select_scatter" or any(lo or hi for lo, hi in src.attr["padding"]):
        return None
    sp = src.type.rank - 2
    if not set(range(1, sp + 1)) <= set(norm_axes(node.attr["axes"], src.type.rank)):
        return None
    g_id = src.inputs[1]
    return g_id if src.id in recorded or not _fed_by_conv(graph, g_id) else None


def rewrite(graph: Graph) -> Graph:
    """`graph` with the rewrites above (the same graph when none applies)."""
    recorded = set(recorded_pools(graph).values())
    if all(_sum_of_scattered_g(graph, n, recorded) is None for n in graph.nodes):
        return graph
    ids: dict[int, int] = {}      # old id -> new id (rebuild walks in order: g is mapped first)

    def fn(b, node, new_inputs):
        g_id = _sum_of_scattered_g(graph, node, recorded)
        ids[node.id] = b.copy(node, new_inputs if g_id is None else (ids[g_id],))
        return ids[node.id]

    return rebuild(graph, fn)[0]
