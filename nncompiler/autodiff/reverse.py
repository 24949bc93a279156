"""Reverse-mode autodiff as an IR-to-IR transform.

`grad(graph, loss, wrt)` returns a new graph holding the forward computation
followed by its backward pass: seed the loss's cotangent with 1, walk the
nodes in reverse order, apply each node's VJP rule (vjp.py) and sum the
cotangents reaching each operand. The gradient of argument `p` becomes the
output `grad.p`. Only nodes on a path from a `wrt` argument to the loss are
differentiated; everything else is left for dead-code elimination.
"""
from __future__ import annotations

from ..errors import ShapeError
from ..ir.graph import Builder, Graph
from ..ir.primitives import PRIMITIVES
from .scan import save_residuals, scan_vjp
from .vjp import VJP


def _on_path(graph: Graph, roots, wrt_ids: set[int]) -> set[int]:
    depends_on_wrt: set[int] = set()
    for n in graph.nodes:
        if n.id in wrt_ids or any(i in depends_on_wrt for i in n.inputs):
            if n.id in wrt_ids or PRIMITIVES[n.op].differentiable:
                depends_on_wrt.add(n.id)
    needed: set[int] = set()
    frontier = list(roots)
    while frontier:
        i = frontier.pop()
        if i in needed or i not in depends_on_wrt:
            continue
        needed.add(i)
        frontier.extend(graph[i].inputs)
    return needed


def grad(graph: Graph, loss: str = "loss", wrt: list[str] | None = None, name: str | None = None) -> Graph:
    """Forward + backward graph; outputs are the original ones plus `grad.<arg name>` for each `wrt`."""
    loss_id = dict(graph.outputs)[loss]
    loss_node = graph[loss_id]
    if loss_node.shape != ():
        raise ShapeError(f"the loss must be a scalar, got shape {list(loss_node.shape)}")
    if wrt is None:
        wrt = [a.attr["name"] for a in graph.args_with_role("param")]
    wrt_ids = {graph.arg(w).id: w for w in wrt}

    graph, own = save_residuals(graph)   # scans also stack what their reverse scans need
    b = Builder(name or f"{graph.name}_grad", start_id=max(n.id for n in graph.nodes) + 1)
    for n in graph.nodes:
        b.add_node(n)
    cotangent = backprop(b, graph, [(loss_id, b.scalar(1.0, loss_node.dtype))], set(wrt_ids), own)

    outputs = list(graph.outputs)
    for arg_id, arg_name in wrt_ids.items():
        g = cotangent.get(arg_id)
        if g is None:  # the loss does not depend on this argument
            arg = graph[arg_id]
            g = b.broadcast_to(b.scalar(0.0, arg.dtype), shape=arg.shape)
        outputs.append((f"grad.{arg_name}", g))
    return b.build(outputs)


def backprop(b: Builder, graph: Graph, seeds, wrt_ids: set[int], own: dict[int, int] | None = None
             ) -> dict[int, int]:
    """Emit the backward pass of `graph` (whose nodes are already in `b`) into `b`: `seeds` are
    (node id, cotangent id) pairs; returns the cotangent of every node on a path from a
    `wrt_ids` node to a seed. A scan's results are read through `scan_out`, so their
    cotangents are gathered per result index and the scan's rule gets them all at once;
    `own` gives, per scan, how many of its results are its own (the rest are residuals)."""
    if own is None:
        own = {n.id: len(n.attr["body"].outputs) for n in graph.nodes if n.op == "scan"}
    needed = _on_path(graph, [i for i, _ in seeds], wrt_ids)
    cotangent: dict[int, int] = {}
    per_result: dict[int, dict[int, int]] = {}

    def accumulate(table, key, g):
        table[key] = b.add(table[key], g) if key in table else g

    for i, g in seeds:
        accumulate(cotangent, i, g)
    for n in reversed(graph.nodes):
        if n.id not in needed or n.op == "arg" or (n.id not in cotangent and n.id not in per_result):
            continue
        with b.at(n.loc):
            if n.op == "scan_out":
                accumulate(per_result.setdefault(n.inputs[0], {}), n.attr["index"], cotangent[n.id])
                continue
            if n.op == "scan":
                contributions = scan_vjp(b, n, per_result.get(n.id, {}), own[n.id], n.inputs)
            else:
                rule = VJP.get(n.op)
                if rule is None:
                    raise ShapeError(f"no gradient rule for primitive '{n.op}'")
                contributions = rule(b, n, cotangent[n.id], *(graph[i] for i in n.inputs))
            for operand, g in zip(n.inputs, contributions):
                if g is not None and operand in needed:
                    accumulate(cotangent, operand, g)
    return cotangent
