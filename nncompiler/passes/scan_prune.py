"""Drop what a scan computes or reads for nobody.

A scan's per-step output that no `scan_out` reads is still computed and copied into its
stacked [T, ...] array every step, and a sequence operand its body never reads is still
sliced every step. After autodiff both are common: the reverse scan no longer reads the
input projection once the step's activations are saved (autodiff/scan.py), and the
forward scan stacks residuals for a gradient that dead-code elimination removed. This pass
removes such per-step outputs (the body's dead nodes go with the `bodies` pass's dce) and
such sequence and invariant operands. Carries stay: they are the loop's state.
"""
from __future__ import annotations

import time

from ..ir.graph import Builder, Graph, Node
from .records import PassRecord, value_names


def _read_indices(graph: Graph) -> dict[int, set[int]]:
    """Per scan id, the result indices some live `scan_out` reads (used by a node or an output)."""
    used = {i for n in graph.nodes for i in n.inputs} | {i for _, i in graph.outputs}
    read: dict[int, set[int]] = {}
    for n in graph.nodes:
        if n.op == "scan_out" and n.id in used:
            read.setdefault(n.inputs[0], set()).add(n.attr["index"])
    return read


def _pruned_body(n: Node, read: set[int]) -> tuple[Graph, list[int], dict[int, int]] | None:
    """(body, kept operand positions, old result index -> new) without the unread stacked
    outputs and the unread sequence/invariant arguments; None when nothing goes."""
    a = n.attr
    body, nc = a["body"], a["n_carry"]
    outputs = [o for k, o in enumerate(body.outputs) if k < nc or k in read]
    if not outputs:     # nothing reads the scan at all: dce removes it whole
        return None
    reads = {i for x in body.nodes for i in x.inputs} | {i for _, i in outputs}
    args = body.args
    kept = [k for k, x in enumerate(args) if k < nc or x.id in reads]
    if len(outputs) == len(body.outputs) and len(kept) == len(args):
        return None
    dropped = {args[k].id for k in range(len(args)) if k not in kept}
    new_body = Graph(body.name, tuple(x for x in body.nodes if x.id not in dropped), tuple(outputs))
    index = {}
    for k in range(len(body.outputs)):
        if k < nc or k in read:
            index[k] = len(index)
    return new_body, kept, index


def scan_prune(graph: Graph) -> tuple[Graph, PassRecord]:
    t0 = time.perf_counter()
    read = _read_indices(graph)
    plans = {}
    for n in graph.nodes:
        if n.op == "scan":
            plan = _pruned_body(n, read.get(n.id, set()))
            if plan is not None:
                plans[n.id] = plan
    if not plans:
        return graph, PassRecord.of("scan_prune", graph, graph, [], t0)
    names = value_names(graph)
    changes = []
    b = Builder(graph.name)
    env: dict[int, int] = {}
    for n in graph.nodes:
        if n.id in plans:
            body, kept, _ = plans[n.id]
            a = n.attr
            nc, ns = a["n_carry"], a["n_seq"]
            n_seq = sum(1 for k in kept if nc <= k < nc + ns)
            gone_in = len(n.inputs) - len(kept)
            gone_out = len(a["body"].outputs) - len(body.outputs)
            changes.append(f"{names[n.id]} scan: dropped {gone_out} unread per-step output(s) "
                           f"and {gone_in} unread operand(s)")
            with b.at(n.loc):
                env[n.id] = b.copy(n, [env[n.inputs[k]] for k in kept], body=body, n_seq=n_seq)
        elif n.op == "scan_out" and n.inputs[0] in plans:
            index = plans[n.inputs[0]][2]
            if n.attr["index"] in index:        # an unread one is dead: nothing refers to it
                env[n.id] = b.copy(n, [env[n.inputs[0]]], index=index[n.attr["index"]])
        else:
            env[n.id] = b.copy(n, [env[i] for i in n.inputs])
    out = b.build([(k, env[i]) for k, i in graph.outputs])
    return out, PassRecord.of("scan_prune", graph, out, changes, t0)
