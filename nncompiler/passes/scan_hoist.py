"""Per-step work that reads no carry moves out of the loop, done once over whole sequences.

An elementwise op whose operands are this step's sequence slices (or values computed
from them alone, or scalar constants) gives at step t what the same op gives on the whole
sequences, sliced at t. The reverse scan of an LSTM is full of them: every gate's local
derivative (sigmoid' = s * (1 - s), tanh' = 1 - t * t) reads only the activations the
forward scan saved, so each step paid two small numpy calls per gate for work that is two
calls in all over [B, T, units]. The pass computes such ops before the scan on the stacked
operands and hands the body their results as new sequences (one per value the rest of
the body or its outputs read).

Only elementwise ops are moved (unary, binary, compare, select) whose per-step operands
all have the op's own shape, so no broadcast changes meaning when the time axis is added;
the values are the same to the bit.
"""
from __future__ import annotations

import time

from ..ir.graph import Builder, Graph, Node
from ..ir.primitives import ELEMENTWISE_KINDS
from .records import PassRecord, value_names


def _hoistable(body: Graph, nc: int, ns: int) -> list[int]:
    """Body node ids, in order, that depend on sequence slices and scalar constants only."""
    seq = {x.id for x in body.args[nc:nc + ns]}
    moved: list[int] = []
    from_seqs = set(seq)
    for x in body.nodes:
        if x.op == "arg" or x.prim.kind not in ELEMENTWISE_KINDS:
            continue
        stepwise = [body[i] for i in x.inputs if i in from_seqs]
        scalars = [body[i] for i in x.inputs if body[i].op == "const" and body[i].shape == ()]
        if stepwise and len(stepwise) + len(scalars) == len(x.inputs) and all(s.shape == x.shape for s in stepwise):
            from_seqs.add(x.id)
            moved.append(x.id)
    return moved


def _seq_arg(node: Node, name: str) -> Node:
    """A sequence argument standing for a hoisted value, with the value's id."""
    b = Builder("hoisted", start_id=node.id)
    b.argument(name, "input", node.type, loc=node.loc)
    return b.nodes[0]


def _rewrite(b: Builder, n: Node, operands: list[int], moved: list[int]) -> int:
    """Emit the hoisted ops over the stacked operands, then the scan reading their results."""
    a = n.attr
    body, nc, ns = a["body"], a["n_carry"], a["n_seq"]
    moved_set = set(moved)
    outside = {x.id: operands[nc + k] for k, x in enumerate(body.args[nc:nc + ns])}
    for i in moved:
        x = body[i]
        ins = []
        for j in x.inputs:
            if j not in outside:              # a scalar constant: copied next to its use
                outside[j] = b.copy(body[j], [])
            ins.append(outside[j])
        outside[i] = b.copy(x, ins)
    read = {j for x in body.nodes if x.id not in moved_set for j in x.inputs} | {i for _, i in body.outputs}
    frontier = [i for i in moved if i in read]
    args = body.args
    new_args = [_seq_arg(body[i], f"hoisted.{k}") for k, i in enumerate(frontier)]
    nodes = list(args[:nc + ns]) + new_args + list(args[nc + ns:])
    nodes += [x for x in body.nodes if x.op != "arg" and x.id not in moved_set]
    new_body = Graph(body.name, tuple(nodes), body.outputs)
    new_operands = operands[:nc + ns] + [outside[i] for i in frontier] + operands[nc + ns:]
    return b.copy(n, new_operands, body=new_body, n_seq=ns + len(frontier))


def scan_hoist(graph: Graph) -> tuple[Graph, PassRecord]:
    t0 = time.perf_counter()
    todo = {}
    for n in graph.nodes:
        if n.op == "scan":
            moved = _hoistable(n.attr["body"], n.attr["n_carry"], n.attr["n_seq"])
            if moved:
                todo[n.id] = moved
    if not todo:
        return graph, PassRecord.of("scan_hoist", graph, graph, [], t0)
    names = value_names(graph)
    changes = []
    b = Builder(graph.name)
    env: dict[int, int] = {}
    for n in graph.nodes:
        operands = [env[i] for i in n.inputs]
        if n.id in todo:
            body = n.attr["body"]
            with b.at(n.loc):
                env[n.id] = _rewrite(b, n, operands, todo[n.id])
            ops = ", ".join(body[i].op for i in todo[n.id])
            changes.append(f"{names[n.id]} scan: {len(todo[n.id])} op(s) read no carry ({ops}), "
                           f"now once over the whole sequences before the loop")
        else:
            env[n.id] = b.copy(n, operands)
    out = b.build([(k, env[i]) for k, i in graph.outputs])
    return out, PassRecord.of("scan_hoist", graph, out, changes, t0)
