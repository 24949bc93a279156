"""Accumulate a tensor's slice cotangents into one buffer: a sum of pads becomes one concat.

The VJP of `slice` is a `pad` back to the full input shape, so a tensor sliced T
times (the unrolled recurrent layers slice their input projection once per
step, then each step's pre-activation once per gate) receives T full-size
cotangents, summed by a chain of T-1 `add`s: O(T^2) bytes allocated and added
for O(T) useful values. This pass finds such a sum and, when its terms are pads
along one common axis of regions that do not overlap, writes them side by side:

    add(add(pad(a, lo=(0,0), hi=(0,2)), pad(b, lo=(0,1), hi=(0,1))), pad(c, lo=(0,2), hi=(0,0)))
      -> concat(a, b, c, axis=1)

A region not adjacent to the previous one is padded with its leading gap first
(and the last with the trailing gap), so the concat still covers the whole axis
and each element is written once. Terms that are not such pads, and pads that
overlap a region already taken, stay terms of the sum (added to the concat).

Values are those of the sum of pads: every element receives one term plus zeros,
except that the remaining terms are now added in a different order (an ulp when
a sum has both pads and other terms), and an exact -0.0 term reads -0.0 where the
sum of pads gave +0.0 (equal under ==). Runs after autodiff, so every backend
gets the rewritten backward pass.
"""
from __future__ import annotations

import time

from ..ir.graph import Builder, Graph, Node, rebuild
from ..ir.text import value_names
from .records import PassRecord


def _pad_axis(n: Node):
    """The one axis a zero-interior pad extends, or None when it is not such a pad."""
    if n.op != "pad" or any(n.attr["interior"]):
        return None
    axes = [k for k, (lo, hi) in enumerate(zip(n.attr["lo"], n.attr["hi"])) if lo or hi]
    return axes[0] if len(axes) == 1 else None


def _terms(graph: Graph, root: Node, users: dict[int, list[int]], outputs: set[int]) -> list[int]:
    """The terms of the sum rooted at `root`: nested adds of the same type with no other user
    (the partial sums the autodiff driver builds) are flattened, in their original order."""
    out, stack = [], [root.id]
    while stack:
        i = stack.pop()
        n = graph[i]
        inner = i == root.id or (n.op == "add" and n.type == root.type
                                 and len(users.get(i, ())) == 1 and i not in outputs)
        if inner:
            stack.extend(reversed(n.inputs))
        else:
            out.append(i)
    return out


def _is_root(graph: Graph, n: Node, users, outputs) -> bool:
    """An add that is not itself a flattened partial sum of a bigger add."""
    if n.op != "add" or graph[n.inputs[0]].type != n.type or graph[n.inputs[1]].type != n.type:
        return False
    us = users.get(n.id, ())
    return not (len(us) == 1 and n.id not in outputs and graph[us[0]].op == "add"
                and graph[us[0]].type == n.type)


def _regions(graph: Graph, terms: list[int]):
    """Pick pads along one axis whose regions are disjoint: (axis, [(start, stop, term)])."""
    by_axis: dict[int, list] = {}
    for t in terms:
        axis = _pad_axis(graph[t])
        if axis is not None:
            n = graph[t]
            start = n.attr["lo"][axis]
            by_axis.setdefault(axis, []).append((start, n.shape[axis] - n.attr["hi"][axis], t))
    best = (None, [])
    for axis, regions in by_axis.items():
        taken, end = [], 0
        for start, stop, t in sorted(regions, key=lambda r: (r[0], r[1])):
            if start >= end:  # greedy interval scheduling: keep the region if it does not overlap
                taken.append((start, stop, t))
                end = stop
        if len(taken) > len(best[1]):
            best = (axis, taken)
    return best


def _concat(b: Builder, graph: Graph, axis: int, taken, mapping, full: int) -> int:
    """The chosen pads' operands side by side along `axis`, gaps filled by padding a neighbour."""
    pieces, end = [], 0
    rank = len(graph[taken[0][2]].shape)
    for k, (start, stop, t) in enumerate(taken):
        lo = [0] * rank
        hi = [0] * rank
        lo[axis] = start - end
        if k == len(taken) - 1:
            hi[axis] = full - stop
        piece = mapping[graph[t].inputs[0]]
        if lo[axis] or hi[axis]:
            piece = b.pad(piece, lo=tuple(lo), hi=tuple(hi), interior=(0,) * rank)
        pieces.append(piece)
        end = stop
    return b.concat(*pieces, axis=axis)


def pads_to_concat(graph: Graph) -> tuple[Graph, PassRecord]:
    t0 = time.perf_counter()
    users = graph.users()
    outputs = {i for _, i in graph.outputs}
    names = value_names(graph)
    changes: list[str] = []
    roots = {n.id for n in graph.nodes if _is_root(graph, n, users, outputs)}

    def visit(b: Builder, n: Node, ins):
        if n.id not in roots:
            return None
        terms = _terms(graph, n, users, outputs)
        axis, taken = _regions(graph, terms)
        if len(taken) < 2:
            return None
        with b.at(n.loc):
            out = _concat(b, graph, axis, taken, mapping, n.shape[axis])
            chosen = {t for _, _, t in taken}
            for t in terms:
                if t not in chosen:
                    out = b.add(mapping[t], out)
        changes.append(f"{names[n.id]}: sum of {len(taken)} pads along axis {axis} -> one concat")
        return out

    mapping: dict[int, int] = {}

    def visit_and_map(b, n, ins):
        new = visit(b, n, ins)
        if new is None:
            new = b.copy(n, ins)
        mapping[n.id] = new
        return new

    out, _ = rebuild(graph, visit_and_map)
    if not changes:
        out = graph
    return out, PassRecord.of("pads_to_concat", graph, out, changes, t0)
