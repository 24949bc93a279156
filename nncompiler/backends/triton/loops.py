"""Which scans the Triton backend runs as a host loop, and the graph its planner sees.

A `scan` of at least `LOOP_MIN_LENGTH` steps is not unrolled: its body is planned and
generated once as its own kernel sequence (the same planner and codegen as any graph), and
the runtime runs that sequence once per step (scan_runner.py) -- on a GPU inside the CUDA
graph the step is captured in, so the T launches of each body kernel replay with no Python
in between. The number of kernels and the ahead-of-time compile are then the same at any T.

Shorter scans are unrolled as before (passes/unroll.py), and so are scans whose body draws
random numbers (`rng_uniform`: one Philox key per node, which a loop would replay every step,
as the mlir backend decides too). Nested scans follow the same rule inside the body's own
planning: a long inner scan is a loop of loops, a short one is unrolled into the body.

A looped scan is rewritten to scan along axis 0 (`time_major`): its sequences are
transposed to [T, ...] and its stacked outputs come out [T, ...] and are transposed back.
The transposes are ordinary IR movement ops, so the planner makes them free index arithmetic
where it can -- a producer writes a sequence time-major, a consumer reads a stacked output
through strides -- and the runtime only ever addresses step t at `base + t * stride(0)`:
each step's slice of a sequence, and each step's slot of a stacked output, is one
contiguous block.
"""
from __future__ import annotations

from ...ir.graph import Graph
from ...passes.unroll import draws_random

# Scans shorter than this are unrolled. The trade: per step, an unrolled recurrence launches
# fewer kernels than the loop's body, because the planner fuses across step boundaries (an
# unrolled LSTM backward computes step t-1's gate gradients in step t's matmul epilogue: 4
# launches a step against the bodies' 5; rnn 2 against 3, gru 4 against 5), but its kernel count
# and cold compile grow with T (sine_rnn, T = 20, forward + training step: 140 kernels and a
# 29 s cold sm_90 compile unrolled, 27 kernels and 5 s as loops; 2 loaded cores). At 8 steps
# an LSTM training step is already 45 kernels unrolled against 19 looped, so from there the
# loop's constant size wins; below it the few extra kernels buy the fused step boundaries.
# Counted, not timed: no GPU has run bench/gpu_rnn.py, which times both (docs/triton.md, "Loops").
LOOP_MIN_LENGTH = 8


def runs_as_loop(node) -> bool:
    """Does this scan run as a host loop over its body's kernels (else it is unrolled)?"""
    return node.attr["length"] >= LOOP_MIN_LENGTH and not draws_random(node.attr["body"])


def loops_or_unrolls(graph: Graph) -> Graph:
    """The graph the planner sees: short scans unrolled, the others scanning along axis 0."""
    from ...passes.unroll import unroll
    graph = unroll(graph, select=lambda n: not runs_as_loop(n))[0]
    return time_major(graph)


def time_major(graph: Graph) -> Graph:
    """Every scan along axis 0: sequences transposed to [T, ...], stacked outputs back."""
    from ...passes.unroll import expand_scans
    todo = {n.id for n in graph.nodes if n.op == "scan" and n.attr["axis"] != 0}
    if not todo:
        return graph

    def expand(b, node, operands):
        a = node.attr
        nc, ns, axis = a["n_carry"], a["n_seq"], a["axis"]
        seqs = []
        for s in operands[nc:nc + ns]:
            rank = len(b.shape(s))
            seqs.append(b.transpose(s, perm=(axis,) + tuple(i for i in range(rank) if i != axis)))
        results = b.loop(a["body"], operands[:nc], seqs, operands[nc + ns:], axis=0,
                         reverse=a["reverse"], length=a["length"])
        out = list(results[:nc])
        for y in results[nc:]:
            rank = len(b.shape(y))
            # [T, d0, d1, ...] -> T back at `axis`
            rest = list(range(1, rank))
            perm = tuple(rest[:axis]) + (0,) + tuple(rest[axis:])
            out.append(b.transpose(y, perm=perm))
        return out

    return expand_scans(graph, todo, expand)
