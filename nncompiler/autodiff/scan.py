"""The VJP of a scan: a reverse scan over per-step residuals (as JAX's scan transpose).

Before differentiating, `save_residuals` makes every scan also stack what its reverse scan
will read (extra per-step outputs after the scan's own results): the carries each step
started from, and the step's intermediates that the step's VJP reads (a sigmoid's output,
a product's other factor). The backward body takes those as sequences instead of
recomputing them, and backpropagates through the step: it takes the carries' cotangents
and an accumulator per invariant as carries, and the residuals, sequence slices and
per-step output cotangents as sequences; it returns the earlier carries' cotangents, the
accumulators plus this step's invariant cotangents, and the sequence slices' cotangents.
Run in reverse, its final carries are the initial carries' and the invariants'
cotangents, and its stacked outputs are the sequences'.

Saving the intermediates costs a few stacked [T, ...] arrays (an LSTM saves five
[B, T, units] ones) and saves the whole forward step in every backward step: on the
numpy backend the step is dozens of small calls, more than the copies it replaces. A body
holding a nested scan still recomputes its step from the saved carries (the nested scan's
own residuals are not threaded through the outer one), and values computed from
invariants alone are recomputed rather than stacked T times.
"""
from __future__ import annotations

import dataclasses

from ..errors import ShapeError
from ..ir.graph import Builder, Graph, Node
from ..ir.shapes import FLOAT_DTYPES


def save_residuals(graph: Graph) -> tuple[Graph, dict[int, int]]:
    """Every scan with carries also stacks its per-step input carries and the intermediates
    its VJP reads (ids are kept); returns the graph and, per scan id, how many results it had
    before (the rest are residuals)."""
    own: dict[int, int] = {}
    nodes = []
    for n in graph.nodes:
        if n.op == "scan" and n.attr["n_carry"] > 0:
            body = n.attr["body"]
            own[n.id] = len(body.outputs)
            carry_args = body.args[:n.attr["n_carry"]]
            kept = carry_args + [body[i] for i in _intermediates_read_by_vjp(body, n.attr)]
            saved = body.outputs + tuple((f"saved.{k}", x.id) for k, x in enumerate(kept))
            attrs = dict(n.attrs, body=Graph(body.name, body.nodes, saved))
            n = dataclasses.replace(n, attrs=tuple((k, attrs[k]) for k, _ in n.attrs))
        nodes.append(n)
    return Graph(graph.name, tuple(nodes), graph.outputs), own


def _intermediates_read_by_vjp(body: Graph, a: dict) -> list[int]:
    """Ids of the body's non-argument nodes that its VJP reads and that change from step to
    step (they depend on a carry or a sequence slice), in body order; none for a body that
    holds a scan (see the module docstring)."""
    if any(x.op == "scan" for x in body.nodes):
        return []
    nc, ns = a["n_carry"], a["n_seq"]
    bwd, _, _ = _backward_body(body, nc, ns, len(body.outputs), {}, saved=())
    forward = {x.id for x in body.nodes if x.op != "arg"}
    live = {i for _, i in bwd.outputs}
    for x in reversed(bwd.nodes):
        if x.id in live:
            live.update(x.inputs)
    read = {i for _, i in bwd.outputs if i in forward}
    for x in bwd.nodes:
        if x.id in live and x.id not in forward:
            read.update(i for i in x.inputs if i in forward)
    varying = {x.id for x in body.args[:nc + ns]}
    for x in body.nodes:
        if x.op != "arg" and any(i in varying for i in x.inputs):
            varying.add(x.id)
    return [x.id for x in body.nodes if x.id in read and x.id in varying]


def _saved_arg(node: Node, name: str) -> Node:
    """An argument standing for a saved intermediate, with the intermediate's id, so the VJP
    rules' references to it read the saved value."""
    b = Builder("saved", start_id=node.id)
    b.argument(name, "input", node.type, loc=node.loc)
    return b.nodes[0]


def _backward_body(body: Graph, nc: int, ns: int, own: int, inner_own: dict, saved
                   ) -> tuple[Graph, list[Node], list[Node]]:
    """The reverse scan's body (its argument order is the backward scan's operand order),
    with the differentiable invariants and sequences. `body` is the forward body (outputs
    `own` results); `saved` the ids it stacks as residuals (carries first); the
    intermediates among them become arguments, the rest of the step is recomputed."""
    args = body.args
    carry_args, seq_args, inv_args = args[:nc], args[nc:nc + ns], args[nc + ns:]
    if any(x.dtype not in FLOAT_DTYPES for x in carry_args):
        raise ShapeError("differentiating a scan needs float carries")
    y_nodes = [body[i] for _, i in body.outputs[nc:own]]
    inv_diff = [x for x in inv_args if x.dtype in FLOAT_DTYPES]
    seq_diff = [x for x in seq_args if x.dtype in FLOAT_DTYPES]
    carry_ids = {x.id for x in carry_args}
    intermediates = [i for i in saved if i not in carry_ids]

    bb = Builder(f"{body.name}_vjp", start_id=max(x.id for x in body.nodes) + 1)
    ct_c = [bb.argument(f"ct.{x.attr['name']}", "carry", x.type) for x in carry_args]
    acc = [bb.argument(f"acc.{x.attr['name']}", "carry", x.type) for x in inv_diff]
    for x in carry_args:
        bb.add_node(x)
    for k, i in enumerate(intermediates):
        bb.add_node(_saved_arg(body[i], f"saved.{nc + k}"))
    for x in seq_args:
        bb.add_node(x)
    ct_y = [bb.argument(f"ct.y{k}", "input", y.type) for k, y in enumerate(y_nodes)]
    for x in inv_args:
        bb.add_node(x)
    replaced = set(intermediates)
    for x in body.nodes:
        if x.op != "arg" and x.id not in replaced:
            bb.add_node(x)
    from .reverse import backprop
    step = Graph(body.name, body.nodes, body.outputs[:own])   # recompute the step, not our residuals
    seeds = list(zip([i for _, i in step.outputs], ct_c + ct_y))
    got = backprop(bb, step, seeds, {x.id for x in args}, inner_own)
    ct_of = lambda x: got[x.id] if x.id in got else _zeros(bb, x.type)  # noqa: E731
    outs = [(f"ct.{x.attr['name']}", ct_of(x)) for x in carry_args]
    outs += [(f"acc.{x.attr['name']}", bb.add(acc[k], ct_of(x))) for k, x in enumerate(inv_diff)]
    outs += [(f"ct.{x.attr['name']}", ct_of(x)) for x in seq_diff]
    return bb.build(outs), inv_diff, seq_diff


def _zeros(b: Builder, like_type) -> int:
    return b.broadcast_to(b.scalar(0.0, like_type.dtype), shape=like_type.shape)


def scan_vjp(b: Builder, n: Node, cts: dict[int, int], own: int, operands) -> list:
    """Cotangents of the scan's operand ids `operands`, from `cts` (result index -> cotangent
    id); `n` is the scan with residuals (its results past `own` are the saved values)."""
    from ..ir.primitives import scan_result_types
    a = n.attr
    types = scan_result_types([b.type_of(i) for i in operands], a)
    residuals = [b.emit("scan_out", (n.id,), index=k, dtype=t.dtype, shape=t.shape)
                 for k, t in enumerate(types) if k >= own]
    nc, ns, axis, length = a["n_carry"], a["n_seq"], a["axis"], a["length"]
    saved = [i for _, i in a["body"].outputs[own:]]
    body, inner_own = save_residuals(a["body"])   # nested scans keep their residuals too
    bwd, inv_diff, seq_diff = _backward_body(body, nc, ns, own, inner_own, saved)
    inv_args, seq_args = body.args[nc + ns:], body.args[nc:nc + ns]
    n_y = own - nc

    # the backward scan walks the steps in the opposite order to the forward one
    own_types = types[:own]
    c_init = [cts.get(k) if k in cts else _zeros(b, own_types[k]) for k in range(nc)]
    acc_init = [_zeros(b, x.type) for x in inv_diff]
    ys_ct = [cts.get(nc + k) if nc + k in cts else _zeros(b, own_types[nc + k]) for k in range(n_y)]
    seqs = residuals + list(operands[nc:nc + ns]) + ys_ct
    out = b.loop(bwd, c_init + acc_init, seqs, operands[nc + ns:], axis=axis, reverse=not a.get("reverse"), length=length)
    grads: list = list(out[:nc]) + [None] * (ns + len(inv_args))
    it = iter(out[nc:nc + len(inv_diff)])
    for k, x in enumerate(inv_args):
        if x.dtype in FLOAT_DTYPES:
            grads[nc + ns + k] = next(it)
    it = iter(out[nc + len(inv_diff):])
    for k, x in enumerate(seq_args):
        if x.dtype in FLOAT_DTYPES:
            grads[nc + k] = next(it)
    return grads
