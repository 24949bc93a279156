"""One activation over neighbouring slices instead of one per slice.

An LSTM step applies sigmoid to three quarter-width column slices of one pre-activation
(gates i, f and o) and tanh to the fourth: on the numpy backend each sigmoid is a handful
of calls on a [B, units] block, and the step is dozens of such calls. When the same
elementwise function is applied to two or more slices of one value along one axis, this
pass applies it once to the slice covering them all and takes the pieces from the result:

  sigmoid(z[:, 0:16]), sigmoid(z[:, 16:32]), sigmoid(z[:, 48:64])
      -> s = sigmoid(z);  s[:, 0:16], s[:, 16:32], s[:, 48:64]

Every element gets the same value as before (the functions are elementwise). The covering
slice may include columns no one reads (z[:, 32:48] above); the pass merges only when
those are at most as many as the columns read, and only functions that are finite and
silent everywhere (sigmoid, tanh), so computing the extra columns can neither warn nor
trap.
"""
from __future__ import annotations

import time

from ..ir.graph import Builder, Graph, Node
from .records import PassRecord, value_names

MERGEABLE = ("sigmoid", "tanh")


def _one_axis_range(s: Node, source_shape) -> tuple[int, int, int] | None:
    """(axis, start, stop) when slice `s` takes a step-1 range of one static axis and all of
    every other axis."""
    a = s.attr
    cut = None
    for ax, (lo, hi, step) in enumerate(zip(a["start"], a["stop"], a["step"])):
        size = source_shape[ax]
        stop = size if hi is None else hi
        if step != 1:
            return None
        if lo == 0 and stop == size:
            continue
        if cut is not None or not isinstance(size, int) or not isinstance(stop, int) or lo < 0 or stop > size:
            return None
        cut = (ax, lo, stop)
    return cut


def _groups(graph: Graph) -> dict[int, tuple[int, int, int]]:
    """Node id of each mergeable activation -> (axis, lo, hi) of its group's covering range."""
    found: dict[tuple, list[tuple[int, int, int]]] = {}
    for n in graph.nodes:
        if n.op not in MERGEABLE:
            continue
        s = graph[n.inputs[0]]
        if s.op != "slice":
            continue
        cut = _one_axis_range(s, graph[s.inputs[0]].shape)
        if cut is not None:
            found.setdefault((n.op, s.inputs[0], cut[0], n.dtype), []).append((n.id, cut[1], cut[2]))
    out = {}
    for (_, _, axis, _), members in found.items():
        ranges = {(lo, hi) for _, lo, hi in members}
        if len(ranges) < 2:
            continue
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        covered = set()
        for a, b in ranges:
            covered.update(range(a, b))
        if (hi - lo) - len(covered) > len(covered):
            continue
        for i, _, _ in members:
            out[i] = (axis, lo, hi)
    return out


def merge_slices(graph: Graph) -> tuple[Graph, PassRecord]:
    t0 = time.perf_counter()
    groups = _groups(graph)
    if not groups:
        return graph, PassRecord.of("merge_slices", graph, graph, [], t0)
    names = value_names(graph)
    b = Builder(graph.name)
    env: dict[int, int] = {}
    merged: dict[tuple, int] = {}      # (op, source, axis, lo, hi) -> the merged activation's id
    changes = []
    for n in graph.nodes:
        if n.id not in groups:
            env[n.id] = b.copy(n, [env[i] for i in n.inputs])
            continue
        axis, lo, hi = groups[n.id]
        s = graph[n.inputs[0]]
        src = graph[s.inputs[0]]
        key = (n.op, src.id, axis, lo, hi)
        with b.at(n.loc):
            if key not in merged:
                cover = env[src.id]
                if (lo, hi) != (0, src.shape[axis]):
                    rank = len(src.shape)
                    cover = b.slice(cover, start=tuple(lo if k == axis else 0 for k in range(rank)),
                                    stop=tuple(hi if k == axis else None for k in range(rank)), step=(1,) * rank)
                merged[key] = b.emit(n.op, (cover,))
                changes.append(f"one {n.op} over {names[src.id]}[{lo}:{hi}] on axis {axis} "
                               f"for its slices' {n.op}s")
            a = s.attr
            start = tuple(v - lo if k == axis else v for k, v in enumerate(a["start"]))
            stop = tuple((hi if v is None else v) - lo if k == axis else v for k, v in enumerate(a["stop"]))
            env[n.id] = b.slice(merged[key], start=start, stop=stop, step=a["step"])
    out = b.build([(k, env[i]) for k, i in graph.outputs])
    return out, PassRecord.of("merge_slices", graph, out, changes, t0)
