"""Unroll scans into straight-line ops, and optimise inside scan bodies.

`unroll` replaces a `scan` by `length` copies of its body: step t reads slice t of each
sequence (a `slice` and a `reshape` that drops the axis), the carries thread through, and
each per-step output is stacked with one `concat`. Backends without a loop rule (`HAS_SCAN`
below) compile the unrolled graph; the MLIR and Triton backends unroll short scans
(backends/mlir/loops.py, backends/triton/loops.py), where one straight-line graph is faster
than a loop.

`optimize_bodies` runs the pass pipeline on every scan's body (the pipeline's `bodies` pass),
so a loop is optimised like straight-line code.
"""
from __future__ import annotations

import time

from ..ir.graph import Builder, Graph
from ..ir.text import value_names
from .records import PassRecord

# Scans this short are unrolled before autodiff (frontend/lower.py). Measured on the numpy
# backend (LSTM, 16 units, batch 32, Adam; 2 loaded cores), the loop's train step was already
# faster at T = 2 (2.5 vs 3.2 ms) and T = 4 (3.1 vs 4.8 ms): the unrolled backward pays a
# full-size pad per step for the slices' gradients. So only a single step is inlined.
UNROLL_MAX_LENGTH = 1

# Which backends run a scan as a loop; the others see it unrolled (backends call `unroll`).
HAS_SCAN = {"numpy": True, "triton": True, "mlir": True}


def draws_random(body: Graph) -> bool:
    """Does a scan body (or a body nested in it) draw random numbers? The MLIR and Triton
    backends fill those once per call, not per step, so such a scan runs unrolled there."""
    return any(n.op == "rng_uniform" or (n.op == "scan" and draws_random(n.attr["body"])) for n in body.nodes)


def inline_step(b: Builder, body: Graph, inputs) -> list[int]:
    """Copy `body` into `b` with its arguments bound to `inputs`; its outputs' new ids."""
    env = {}
    args = iter(inputs)
    for n in body.nodes:
        env[n.id] = next(args) if n.op == "arg" else b.copy(n, [env[i] for i in n.inputs])
    return [env[i] for _, i in body.outputs]


def _unrolled(b: Builder, node, operands) -> list[int]:
    a = node.attr
    nc, ns, axis, length = a["n_carry"], a["n_seq"], a["axis"], a["length"]
    body = unroll(a["body"])[0]          # nested scans first
    carries, seqs, inv = list(operands[:nc]), operands[nc:nc + ns], list(operands[nc + ns:])
    steps: dict[int, list[int]] = {}
    for t in (range(length - 1, -1, -1) if a.get("reverse") else range(length)):
        xs = []
        for s in seqs:
            shape = b.shape(s)
            rank = len(shape)
            piece = b.slice(s, start=tuple(t if i == axis else 0 for i in range(rank)),
                            stop=tuple(t + 1 if i == axis else None for i in range(rank)),
                            step=(1,) * rank)
            xs.append(b.reshape(piece, shape=shape[:axis] + shape[axis + 1:]))
        out = inline_step(b, body, carries + xs + inv)
        carries = out[:nc]
        steps[t] = out[nc:]
    stacked = []
    for k in range(len(steps[0])):
        parts = []
        for t in range(length):
            y = steps[t][k]
            shape = b.shape(y)
            parts.append(b.reshape(y, shape=shape[:axis] + (1,) + shape[axis:]))
        stacked.append(parts[0] if length == 1 else b.concat(*parts, axis=axis))
    return carries + stacked


def unroll(graph: Graph, max_length: int | None = None, select=None) -> tuple[Graph, PassRecord]:
    """Every scan (or those no longer than `max_length`, or those `select(node)` picks) as
    straight-line ops."""
    t0 = time.perf_counter()
    todo = [n for n in graph.nodes if n.op == "scan" and (max_length is None or n.attr["length"] <= max_length)
            and (select is None or select(n))]
    if not todo:
        return graph, PassRecord.of("unroll", graph, graph, [], t0)
    names = value_names(graph)
    out = expand_scans(graph, {n.id for n in todo}, _unrolled)
    changes = [f"unrolled {names[n.id]} scan over {n.attr['length']} steps" for n in todo]
    return out, PassRecord.of("unroll", graph, out, changes, t0)


def optimize_bodies(graph: Graph) -> tuple[Graph, PassRecord]:
    """Run the default pipeline inside every scan body (bodies of bodies included)."""
    from .pipeline import optimize
    t0 = time.perf_counter()
    if not any(n.op == "scan" for n in graph.nodes):
        return graph, PassRecord.of("bodies", graph, graph, [], t0)
    names = value_names(graph)
    b = Builder(graph.name)
    env: dict[int, int] = {}
    changes = []
    for n in graph.nodes:
        operands = [env[i] for i in n.inputs]
        if n.op == "scan":
            body, records = optimize(n.attr["body"])
            if body != n.attr["body"]:
                changes.append(f"optimised the body of {names[n.id]} scan: {len(n.attr['body'].nodes)} -> "
                               f"{len(body.nodes)} nodes")
            env[n.id] = b.copy(n, operands, body=body)
        else:
            env[n.id] = b.copy(n, operands)
    if not changes:
        return graph, PassRecord.of("bodies", graph, graph, [], t0)
    out = b.build([(k, env[i]) for k, i in graph.outputs])
    return out, PassRecord.of("bodies", graph, out, changes, t0)


def expand_scans(graph: Graph, todo: set[int], expand) -> Graph:
    """`graph` with each scan in `todo` replaced by `expand(builder, scan, operands)`: the values
    its results (final carries, then stacked outputs) become, which its `scan_out`s then read."""
    b = Builder(graph.name)
    env: dict[int, int] = {}
    results: dict[int, list[int]] = {}
    for n in graph.nodes:
        if n.op == "scan_out" and n.inputs[0] in results:
            env[n.id] = results[n.inputs[0]][n.attr["index"]]
            continue
        operands = [env[i] for i in n.inputs]
        if n.id in todo:
            with b.at(n.loc):
                results[n.id] = expand(b, n, operands)
        else:
            env[n.id] = b.copy(n, operands)
    return b.build([(k, env[i]) for k, i in graph.outputs])
