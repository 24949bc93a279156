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
from .vjp import VJP


def _on_path(graph: Graph, loss_id: int, wrt_ids: set[int]) -> set[int]:
    depends_on_wrt: set[int] = set()
    for n in graph.nodes:
        if n.id in wrt_ids or any(i in depends_on_wrt for i in n.inputs):
            if n.id in wrt_ids or PRIMITIVES[n.op].differentiable:
                depends_on_wrt.add(n.id)
    needed: set[int] = set()
    frontier = [loss_id]
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

    b = Builder(name or f"{graph.name}_grad", start_id=max(n.id for n in graph.nodes) + 1)
    for n in graph.nodes:
        b.add_node(n)
    needed = _on_path(graph, loss_id, set(wrt_ids))

    cotangent: dict[int, int] = {loss_id: b.scalar(1.0, loss_node.dtype)}
    for n in reversed(graph.nodes):
        if n.id not in needed or n.id not in cotangent or n.op == "arg":
            continue
        rule = VJP.get(n.op)
        if rule is None:
            raise ShapeError(f"no gradient rule for primitive '{n.op}'")
        with b.at(n.loc):
            contributions = rule(b, n, cotangent[n.id], *(graph[i] for i in n.inputs))
            for operand, g in zip(n.inputs, contributions):
                if g is None or operand not in needed:
                    continue
                cotangent[operand] = b.add(cotangent[operand], g) if operand in cotangent else g

    outputs = list(graph.outputs)
    for arg_id, arg_name in wrt_ids.items():
        g = cotangent.get(arg_id)
        if g is None:  # the loss does not depend on this argument
            arg = graph[arg_id]
            g = b.broadcast_to(b.scalar(0.0, arg.dtype), shape=arg.shape)
        outputs.append((f"grad.{arg_name}", g))
    return b.build(outputs)
