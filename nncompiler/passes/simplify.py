"""Algebraic simplification, repeated until nothing matches.

Rewrites (c is a `const` whose elements all equal one value, a scalar included):
  add(x, 0), add(0, x), sub(x, 0), mul(x, 1), mul(1, x), div(x, 1), pow(x, 1) -> x
  pow(x, 2) -> mul(x, x)          sub(0, x) -> neg(x)        mul(x, -1), mul(-1, x) -> neg(x)
  neg(neg(x)) -> x                stop_gradient(x) -> x      cast(x) to x's dtype -> x
  reshape(x) to x's shape -> x    reshape(reshape(x)) -> reshape(x)
  transpose(x) by the identity -> x    transpose(transpose(x)) -> one transpose (or x)
  broadcast_to(x) to x's shape -> x    broadcast_to(broadcast_to(x)) -> broadcast_to(x)
  slice of all of x (starts 0, steps 1) -> x    sum/max over no axes -> x
  op(broadcast_to(a), b) -> op(a, b) for elementwise ops when the result shape stays
  unary(broadcast_to(x)) -> broadcast_to(unary(x))     broadcast_to(reshape(scalar)) -> broadcast_to(scalar)
  reshape(broadcast_to(scalar)) -> broadcast_to(scalar)  reshape(sum(x, keepdims)) dropping those axes -> sum(x)
When the constant operand is bigger than x, the result keeps the broadcast shape:
add(x: [4], zeros: [3, 4]) becomes broadcast_to(x, [3, 4]), never plain x.

Deliberately not simplified, because they change results on special values:
  mul(x, 0) -> 0   inf * 0 and nan * 0 are nan, not 0
  sub(x, x) -> 0   inf - inf and nan - nan are nan
  div(x, x) -> 1   0/0 and inf/inf are nan
Known small differences, all comparing equal: add(x, 0.0) and sub(0.0, x) give
+0.0 where x = -0.0 and neg(x) gives -0.0 (sign of zero); pow(x, 2) with an
array exponent goes through powf, which can differ from the exact x*x by an ulp
(with a scalar exponent numpy already squares, so there it is bit-identical).

stop_gradient only matters to autodiff; this pass runs after autodiff, when
the marker has done its job, so it is dropped like an identity.
"""
from __future__ import annotations

import time

from ..ir.graph import Builder, Graph, Node
from ..ir.primitives import norm_axes
from ..ir.shapes import broadcast_shapes
from .records import PassRecord, value_names

MAX_SWEEPS = 50
_NO = object()  # "not a splat constant"; equal to no number


def _flat(v):
    if isinstance(v, tuple):
        for x in v:
            yield from _flat(x)
    else:
        yield v


def splat(node: Node):
    """The value every element of a const node equals (`_NO` if not a const, or not uniform).
    nan equals nothing, so a nan constant is never a splat."""
    if node.op != "const":
        return _NO
    vals = list(_flat(node.attr["value"]))
    if not vals or any(v != vals[0] for v in vals):
        return _NO
    return vals[0]


def _rule(b: Builder, n: Node, ins: tuple[int, ...], uses: dict[int, int] | None = None):
    """(replacement id, description) for old node `n` whose operands are now `ins`, or None.
    `uses` counts the users of each new node so far (for rules that delete a shared value)."""
    get = lambda i: b.nodes[i]  # noqa: E731 -- a fresh Builder numbers nodes 0, 1, ...
    op, a = n.op, n.attr
    if n.prim.kind == "binary":
        x, y = ins
        cx, cy = splat(get(x)), splat(get(y))
        if op in ("add", "sub") and cy == 0:
            return x, f"{op}(x, 0)"
        if op == "add" and cx == 0:
            return y, "add(0, x)"
        if op == "sub" and cx == 0:
            return b.neg(y), "sub(0, x)"
        if op in ("mul", "div", "pow") and cy == 1:
            return x, f"{op}(x, 1)"
        if op == "mul" and cx == 1:
            return y, "mul(1, x)"
        if op == "mul" and cy == -1:
            return b.neg(x), "mul(x, -1)"
        if op == "mul" and cx == -1:
            return b.neg(y), "mul(-1, x)"
        if op == "pow" and cy == 2:
            return b.mul(x, x), "pow(x, 2)"
    if op == "where":
        hit = _leaky(b, ins, uses or {})
        if hit is not None:
            return hit
    if n.prim.kind in ("binary", "compare", "select"):
        return _implicit_broadcast(b, n, ins)
    if not ins:
        return None
    x = ins[0]
    inner = get(x)
    if op == "neg" and inner.op == "neg":
        return inner.inputs[0], "neg(neg(x))"
    if op == "neg" and inner.op == "mul" and any(b.nodes[i].op == "neg" for i in inner.inputs):
        a, c = inner.inputs   # neg(mul(neg(a), c)) -> mul(a, c): the signs cancel
        if b.nodes[a].op == "neg":
            return b.mul(b.nodes[a].inputs[0], c), "neg(mul(neg(a), c))"
        return b.mul(a, b.nodes[c].inputs[0]), "neg(mul(a, neg(c)))"
    if n.prim.kind == "unary" and inner.op == "broadcast_to" and op != "stop_gradient":
        # compute on the small tensor, broadcast the result: same values, less work
        return b.broadcast_to(b.copy(n, (inner.inputs[0],)), shape=n.shape), f"{op}(broadcast_to(x))"
    if op == "broadcast_to" and inner.op == "reshape" and b.nodes[inner.inputs[0]].shape == ():
        return b.broadcast_to(inner.inputs[0], shape=a["shape"]), "broadcast_to(reshape(scalar))"
    if op == "reshape" and inner.op == "broadcast_to" and b.nodes[inner.inputs[0]].shape == ():
        return b.broadcast_to(inner.inputs[0], shape=a["shape"]), "reshape(broadcast_to(scalar))"
    if op == "reshape" and inner.op == "sum" and inner.attr.get("keepdims"):
        src = b.nodes[inner.inputs[0]]
        axes = norm_axes(inner.attr["axes"], len(src.shape))
        dropped = tuple(d for k, d in enumerate(src.shape) if k not in axes)
        if dropped == tuple(n.shape):
            return b.sum(inner.inputs[0], axes=axes, keepdims=False), "reshape(sum(keepdims)) -> sum"
    if op == "stop_gradient":
        return x, "stop_gradient(x)"
    if op == "cast" and inner.dtype == a["dtype"]:
        return x, "cast to the same dtype"
    if op in ("reshape", "broadcast_to"):
        if inner.shape == n.shape:
            return x, f"{op} to the same shape"
        if inner.op == op:
            return b.emit(op, (inner.inputs[0],), shape=a["shape"]), f"{op}({op}(x))"
    if op == "transpose":
        perm = tuple(a["perm"])
        if perm == tuple(range(len(perm))):
            return x, "transpose by the identity"
        if inner.op == "transpose":
            composed = tuple(inner.attr["perm"][p] for p in perm)
            if composed == tuple(range(len(perm))):
                return inner.inputs[0], "transpose(transpose(x))"
            return b.transpose(inner.inputs[0], perm=composed), "transpose(transpose(x))"
    if op == "slice" and inner.shape == n.shape and all(s in (0, None) for s in a["start"]) \
            and all(s == 1 for s in a["step"]):
        return x, "slice of the whole tensor"
    if op in ("sum", "max") and norm_axes(a["axes"], len(inner.shape)) == ():
        return x, f"{op} over no axes"
    return None


def _leaky(b: Builder, ins, uses):
    """where(x > 0, x, c*x) with 0 <= c <= 1 (relu, leaky_relu) -> maximum(x, c*x), when the
    comparison has no other user: one pass instead of three. Values are equal for every x
    (NaN included); this runs after autodiff, so the gradient rule of `where` has been used."""
    c, x, y = ins
    cond, other = b.nodes[c], b.nodes[y]
    if cond.op != "gt" or cond.inputs[0] != x or splat(b.nodes[cond.inputs[1]]) != 0 or uses.get(c, 0) > 1:
        return None
    if splat(other) == 0 and b.nodes[y].shape == ():
        return b.maximum(x, y), "where(x > 0, x, 0) -> maximum(x, 0)"
    if other.op == "mul" and x in other.inputs:
        k = other.inputs[1] if other.inputs[0] == x else other.inputs[0]
        c_value = splat(b.nodes[k])       # _NO when the slope is not a constant (prelu's is a param)
        if c_value is not _NO and 0 <= c_value <= 1:
            return b.maximum(x, y), "where(x > 0, x, c*x) -> maximum(x, c*x)"
    return None


def _implicit_broadcast(b: Builder, n: Node, ins: tuple[int, ...]):
    """Elementwise ops broadcast by themselves: an operand that is only a broadcast_to (or a
    reshape of a scalar) can be replaced by what it broadcasts, when the result's shape stays."""
    for k, i in enumerate(ins):
        src = b.nodes[i]
        if src.op == "broadcast_to" or (src.op == "reshape" and b.nodes[src.inputs[0]].shape == ()):
            smaller = ins[:k] + (src.inputs[0],) + ins[k + 1:]
            shape = ()
            for j in smaller:
                shape = broadcast_shapes(shape, b.nodes[j].shape)
            if tuple(shape) == tuple(n.shape):
                return b.copy(n, smaller), f"{n.op} of a {src.op} (operands broadcast themselves)"
    return None


def _fit(b: Builder, new: int, n: Node) -> int:
    """`new` with node `n`'s type: broadcast up when the rewrite dropped a bigger operand."""
    t = b.type_of(new)
    if t == n.type:
        return new
    assert t.dtype == n.dtype and broadcast_shapes(t.shape, n.shape) == tuple(n.shape), (t, n.type)
    return b.broadcast_to(new, shape=n.shape)


def _sweep(graph: Graph, labels: dict[int, str], changes: list[str]):
    """One rewrite pass over the graph; returns the new graph and its labels (the name in
    the pass's input of the node each value comes from)."""
    b = Builder(graph.name)
    live = {i for _, i in graph.outputs}  # dead nodes are copied, not rewritten (dce drops them)
    for n in reversed(graph.nodes):
        if n.id in live:
            live.update(n.inputs)
    old_uses: dict[int, int] = {}
    for n in graph.nodes:
        if n.id in live:
            for i in n.inputs:
                old_uses[i] = old_uses.get(i, 0) + 1
    for _, i in graph.outputs:
        old_uses[i] = old_uses.get(i, 0) + 1
    mapping: dict[int, int] = {}
    new_uses: dict[int, int] = {}  # users of each new node, as counted in the old graph
    new_labels: dict[int, str] = {}
    for n in graph.nodes:
        ins = tuple(mapping[i] for i in n.inputs)
        start = len(b.nodes)
        with b.at(n.loc):
            hit = _rule(b, n, ins, new_uses) if n.id in live and n.op != "arg" else None
            if hit is None:
                new = b.copy(n, ins)
            else:
                new = _fit(b, hit[0], n)
                target = new_labels.get(new, "a new node") if new < start else f"a new {b.nodes[new].op}"
                changes.append(f"replaced {labels[n.id]} {hit[1]} by {target}")
        for m in b.nodes[start:]:
            new_labels[m.id] = labels[n.id]
        mapping[n.id] = new
        new_uses[new] = new_uses.get(new, 0) + old_uses.get(n.id, 0)
    out = b.build([(name, mapping[i]) for name, i in graph.outputs])
    return out, new_labels


def simplify(graph: Graph) -> tuple[Graph, PassRecord]:
    t0 = time.perf_counter()
    changes: list[str] = []
    out, labels = graph, value_names(graph)
    for _ in range(MAX_SWEEPS):
        before = len(changes)
        out, labels = _sweep(out, labels, changes)
        if len(changes) == before:
            break
    if not changes:
        out = graph
    return out, PassRecord.of("simplify", graph, out, changes, t0)
