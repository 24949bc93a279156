"""The VJP of a scan: a reverse scan over per-step residuals (as JAX's scan transpose).

Before differentiating, `save_residuals` makes every scan also stack the carries each step
started from (extra per-step outputs after the scan's own results). The backward body
recomputes one forward step from those carries, the step's sequence slices and the
invariants, and backpropagates through it: it takes the carries' cotangents and an
accumulator per invariant as carries, and the residuals, sequence slices and per-step
output cotangents as sequences; it returns the earlier carries' cotangents, the
accumulators plus this step's invariant cotangents, and the sequence slices' cotangents.
Run in reverse, its final carries are the initial carries' and the invariants'
cotangents, and its stacked outputs are the sequences'.

Recomputing the step (rather than stacking every intermediate) keeps the saved state at
one carry per step; the body is small, and the backward pass costs one more forward step.
"""
from __future__ import annotations

import dataclasses

from ..errors import ShapeError
from ..ir.graph import Builder, Graph, Node
from ..ir.shapes import FLOAT_DTYPES


def save_residuals(graph: Graph) -> tuple[Graph, dict[int, int]]:
    """Every scan with carries also stacks its per-step input carries (ids are kept); returns
    the graph and, per scan id, how many results it had before (the rest are residuals)."""
    own: dict[int, int] = {}
    nodes = []
    for n in graph.nodes:
        if n.op == "scan" and n.attr["n_carry"] > 0:
            body = n.attr["body"]
            own[n.id] = len(body.outputs)
            carry_args = body.args[:n.attr["n_carry"]]
            saved = body.outputs + tuple((f"saved.{k}", a.id) for k, a in enumerate(carry_args))
            attrs = dict(n.attrs, body=Graph(body.name, body.nodes, saved))
            n = dataclasses.replace(n, attrs=tuple((k, attrs[k]) for k, _ in n.attrs))
        nodes.append(n)
    return Graph(graph.name, tuple(nodes), graph.outputs), own


def _zeros(b: Builder, like_type) -> int:
    return b.broadcast_to(b.scalar(0.0, like_type.dtype), shape=like_type.shape)


def scan_vjp(b: Builder, n: Node, cts: dict[int, int], own: int, operands) -> list:
    """Cotangents of the scan's operand ids `operands`, from `cts` (result index -> cotangent
    id); `n` is the scan with residuals (its results past `own` are the saved carries)."""
    from ..ir.primitives import scan_result_types
    from .reverse import backprop
    a = n.attr
    types = scan_result_types([b.type_of(i) for i in operands], a)
    residuals = [b.emit("scan_out", (n.id,), index=k, dtype=t.dtype, shape=t.shape)
                 for k, t in enumerate(types) if k >= own]
    nc, ns, axis, length = a["n_carry"], a["n_seq"], a["axis"], a["length"]
    body, inner_own = save_residuals(a["body"])   # nested scans keep their residuals too
    body = Graph(body.name, body.nodes, body.outputs[:own])  # recompute the step, not our residuals
    args = body.args
    carry_args, seq_args, inv_args = args[:nc], args[nc:nc + ns], args[nc + ns:]
    if any(x.dtype not in FLOAT_DTYPES for x in carry_args):
        raise ShapeError("differentiating a scan needs float carries")
    y_nodes = [body[i] for _, i in body.outputs[nc:]]
    inv_diff = [x for x in inv_args if x.dtype in FLOAT_DTYPES]
    seq_diff = [x for x in seq_args if x.dtype in FLOAT_DTYPES]

    # the backward body: its argument order is the backward scan's operand order
    bb = Builder(f"{body.name}_vjp", start_id=max(x.id for x in body.nodes) + 1)
    ct_c = [bb.argument(f"ct.{x.attr['name']}", "carry", x.type) for x in carry_args]
    acc = [bb.argument(f"acc.{x.attr['name']}", "carry", x.type) for x in inv_diff]
    for x in carry_args + seq_args:
        bb.add_node(x)
    ct_y = [bb.argument(f"ct.y{k}", "input", y.type) for k, y in enumerate(y_nodes)]
    for x in inv_args:
        bb.add_node(x)
    for x in body.nodes:
        if x.op != "arg":
            bb.add_node(x)
    seeds = list(zip([i for _, i in body.outputs], ct_c + ct_y))
    got = backprop(bb, body, seeds, {x.id for x in args}, inner_own)
    ct_of = lambda x: got[x.id] if x.id in got else _zeros(bb, x.type)  # noqa: E731
    outs = [(f"ct.{x.attr['name']}", ct_of(x)) for x in carry_args]
    outs += [(f"acc.{x.attr['name']}", bb.add(acc[k], ct_of(x))) for k, x in enumerate(inv_diff)]
    outs += [(f"ct.{x.attr['name']}", ct_of(x)) for x in seq_diff]
    bwd = bb.build(outs)

    # the backward scan walks the steps in the opposite order to the forward one
    own_types = types[:own]
    c_init = [cts.get(k) if k in cts else _zeros(b, own_types[k]) for k in range(nc)]
    acc_init = [_zeros(b, x.type) for x in inv_diff]
    ys_ct = [cts.get(nc + k) if nc + k in cts else _zeros(b, own_types[nc + k]) for k in range(len(y_nodes))]
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
