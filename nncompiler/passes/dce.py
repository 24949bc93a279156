"""Dead code elimination: drop nodes no output depends on.

Arguments stay even when unused: they are the graph's signature, and callers
pass values by argument name.
"""
from __future__ import annotations

import time

from ..ir.graph import Graph
from .records import PassRecord, value_names


def dce(graph: Graph) -> tuple[Graph, PassRecord]:
    t0 = time.perf_counter()
    live = {i for _, i in graph.outputs}
    for n in reversed(graph.nodes):  # topological order: users come after their operands
        if n.id in live:
            live.update(n.inputs)
    kept = tuple(n for n in graph.nodes if n.id in live or n.op == "arg")
    if len(kept) == len(graph.nodes):
        return graph, PassRecord.of("dce", graph, graph, [], t0)
    names = value_names(graph)
    changes = [f"removed {names[n.id]} {n.op} (unused)" for n in graph.nodes
               if n.id not in live and n.op != "arg"]
    # nodes are immutable, so the survivors are reused as they are (ids included)
    out = Graph(graph.name, kept, graph.outputs)
    return out, PassRecord.of("dce", graph, out, changes, t0)
