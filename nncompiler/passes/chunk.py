"""Run a long scan as a loop over chunks of steps, each chunk unrolled.

`chunk_scans(graph, max_steps)` rewrites every scan longer than `max_steps` as a scan over
`q = T // K` chunks whose body is K steps of the original body unrolled (K at most
`max_steps`, chosen by `chunk_length`). The sequences are read chunk-major: the time axis
reshaped to (q, K) and q moved to the front, [q, .., K, ..], so that chunk j is one contiguous
block; the chunk scan runs along axis 0 and its stacked outputs are moved back and reshaped to
[.., T, ..]. When K does not divide T, the `T - q*K` steps the scan reaches last run unrolled
after the loop (the last steps of a forward scan, the first of a reverse one) and their outputs
are concatenated on.

The graph then has at most about `2 * max_steps` copies of each body whatever T is, and the
loop runs T/K iterations instead of T. The mlir backend uses it (backends/mlir/loops.py): it
calls the chunk body once per chunk, and each call costs a command-buffer submission and the
copies of its operands, so fewer, fatter chunks win; contiguous chunks are sliced by plain
copies instead of a strided dispatch each.
"""
from __future__ import annotations

import time

from ..ir.graph import Builder, Graph, Node
from ..ir.shapes import TensorType
from ..ir.text import value_names
from .records import PassRecord
from .unroll import expand_scans, inline_step


def chunk_length(length: int, max_steps: int) -> int:
    """Steps per chunk: between max_steps/2 and max_steps, the fewest steps left over (then
    the longest chunk), so the unrolled remainder stays small."""
    low = max(1, (max_steps + 1) // 2)
    return min(range(low, max_steps + 1), key=lambda k: (length % k, -k))


def _with_axis(t: TensorType, axis: int, size: int) -> TensorType:
    return TensorType(t.dtype, tuple(t.shape[:axis]) + (size,) + tuple(t.shape[axis:]))


def steps_graph(node: Node, length: int) -> Graph:
    """`length` steps of scan `node`'s body, unrolled, as a graph taking (carries, sequences of
    `length` steps, invariants) and returning (carries, stacked per-step outputs). Scans nested
    in the body are copied as they are (the caller decides how to run them)."""
    a = node.attr
    body, nc, ns, axis = a["body"], a["n_carry"], a["n_seq"], a["axis"]
    b = Builder(f"{body.name}.x{length}")
    args = []
    for k, x in enumerate(body.args):
        t = _with_axis(x.type, axis, length) if nc <= k < nc + ns else x.type
        args.append(b.argument(x.attr["name"], x.attr["role"], t))
    carries, seqs, invariants = args[:nc], args[nc:nc + ns], args[nc + ns:]
    steps: dict[int, list[int]] = {}
    for t in (range(length - 1, -1, -1) if a.get("reverse") else range(length)):
        xs = []
        for s in seqs:
            shape = b.shape(s)
            xs.append(b.reshape(_part(b, s, axis, t, t + 1), shape=tuple(shape[:axis]) + tuple(shape[axis + 1:])))
        out = inline_step(b, body, carries + xs + invariants)
        carries, steps[t] = out[:nc], out[nc:]
    stacked = []
    for k in range(len(body.outputs) - nc):
        parts = []
        for t in range(length):
            shape = b.shape(steps[t][k])
            parts.append(b.reshape(steps[t][k], shape=tuple(shape[:axis]) + (1,) + tuple(shape[axis:])))
        stacked.append(parts[0] if length == 1 else b.concat(*parts, axis=axis))
    return b.build([(name, i) for (name, _), i in zip(body.outputs, carries + stacked)])


def _part(b: Builder, x: int, axis: int, start: int, stop: int) -> int:
    rank = len(b.shape(x))
    return b.slice(x, start=tuple(start if i == axis else 0 for i in range(rank)),
                   stop=tuple(stop if i == axis else None for i in range(rank)), step=(1,) * rank)


def _move_axis(b: Builder, x: int, src: int, dst: int) -> int:
    if src == dst:
        return x
    order = [i for i in range(len(b.shape(x))) if i != src]
    order.insert(dst, src)
    return b.transpose(x, perm=tuple(order))


def _chunked(b: Builder, node: Node, operands, max_steps: int) -> list[int]:
    a = node.attr
    nc, ns, axis, length, reverse = a["n_carry"], a["n_seq"], a["axis"], a["length"], bool(a.get("reverse"))
    k = chunk_length(length, max_steps)
    q, rest = divmod(length, k)
    carries, seqs, invariants = list(operands[:nc]), operands[nc:nc + ns], list(operands[nc + ns:])

    # A reverse scan reaches steps [0, rest) last: the loop runs over [rest, T), so in both
    # directions the remainder runs after the loop. Before the loop, IREE 3.13 miscompiles it
    # ("operand does not dominate this use"): the remainder's stacked outputs are concatenated
    # with the loop's after the loop, and iree-stream-emplace-allocations, to write a remainder
    # dispatch straight into the concat's buffer, moves the scf.for (via its operands only) up
    # above that dispatch, leaving behind the sequence slices the loop's body reads that were
    # defined between the two (Util tryMoveProducerBefore ignores values a region captures).
    lo, hi = (rest, length) if reverse else (0, q * k)

    def loop(cs):
        # chunk-major: each sequence as [q, .., K, ..] (chunk j is one contiguous block, sliced
        # without a copy), the stacked outputs back from [q, .., K, ..]: one transpose each
        xs = []
        for s in seqs:
            s = _part(b, s, axis, lo, hi) if rest else s
            shape = b.shape(s)
            s = b.reshape(s, shape=tuple(shape[:axis]) + (q, k) + tuple(shape[axis + 1:]))
            xs.append(_move_axis(b, s, axis, 0))
        outs = b.loop(steps_graph(node, k), cs, xs, invariants, axis=0, reverse=reverse, length=q)
        stacked = []
        for y in outs[nc:]:
            y = _move_axis(b, y, 0, axis)
            shape = b.shape(y)
            stacked.append(b.reshape(y, shape=tuple(shape[:axis]) + (q * k,) + tuple(shape[axis + 2:])))
        return outs[:nc], stacked

    def remainder(cs):
        start = 0 if reverse else q * k
        outs = inline_step(b, steps_graph(node, rest), cs + [_part(b, s, axis, start, start + rest) for s in seqs]
                           + invariants)
        return outs[:nc], outs[nc:]

    cs, looped = loop(carries)
    if not rest:
        return cs + looped
    cs, last = remainder(cs)
    return cs + [b.concat(*((r, y) if reverse else (y, r)), axis=axis) for y, r in zip(looped, last)]


def chunk_scans(graph: Graph, max_steps: int) -> tuple[Graph, PassRecord]:
    """Every scan longer than `max_steps` as a scan over chunks of unrolled steps."""
    t0 = time.perf_counter()
    todo = {n.id: n for n in graph.nodes if n.op == "scan" and n.attr["length"] > max_steps}
    if not todo:
        return graph, PassRecord.of("chunk", graph, graph, [], t0)
    names = value_names(graph)
    out = expand_scans(graph, set(todo), lambda b, n, operands: _chunked(b, n, operands, max_steps))
    changes = [f"{names[n.id]} scan over {n.attr['length']} steps: a loop over chunks of "
               f"{chunk_length(n.attr['length'], max_steps)} unrolled steps" for n in todo.values()]
    return out, PassRecord.of("chunk", graph, out, changes, t0)
