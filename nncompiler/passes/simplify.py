"""Algebraic simplification, repeated until nothing matches.

The rewrites are data: `RULES`, a list of (Pattern, rewrite) pairs that one driver
(`rewrite`) tries in order on every live node, in the spirit of tinygrad's
PatternMatcher. Adding a simplification means adding a rule.

Rewrites (c is a `const` whose elements all equal one value, a scalar included):
  add(x, 0), add(0, x), sub(x, 0), mul(x, 1), mul(1, x), div(x, 1) -> x
  sub(0, x) -> neg(x)             mul(x, -1), mul(-1, x) -> neg(x)
  neg(neg(x)) -> x                stop_gradient(x) -> x      cast(x) to x's dtype -> x
  reshape(x) to x's shape -> x    reshape(reshape(x)) -> reshape(x)
  transpose(x) by the identity -> x    transpose(transpose(x)) -> one transpose (or x)
  broadcast_to(x) to x's shape -> x    broadcast_to(broadcast_to(x)) -> broadcast_to(x)
  slice of all of x (starts 0, steps 1) -> x    sum/max over no axes -> x
  sum/max over axes of size 1 -> reshape(x)
  op(broadcast_to(a), b) -> op(a, b) for elementwise ops when the result shape stays
  unary(broadcast_to(x)) -> broadcast_to(unary(x))     broadcast_to(reshape(scalar)) -> broadcast_to(scalar)
  reshape(broadcast_to(scalar)) -> broadcast_to(scalar)  reshape(sum(x, keepdims)) dropping those axes -> sum(x)
  conv(pad(x)) with zero interior, spatial axes only -> conv(x) with the pad added to its padding
  where(z > 0, select_scatter(relu(z), g), 0) -> select_scatter(relu(z), where(max_pool(relu(z)) > 0, g, 0))
When the constant operand is bigger than x, the result keeps the broadcast shape:
add(x: [4], zeros: [3, 4]) becomes broadcast_to(x, [3, 4]), never plain x.
pow by a constant is decompose.py's (pow(x, 1) -> x, pow(x, 2) -> x * x, ...): that pass
runs before this one in every round of the pipeline, so no pow rule is repeated here.

Deliberately not simplified, because they change results on special values:
  mul(x, 0) -> 0   inf * 0 and nan * 0 are nan, not 0
  sub(x, x) -> 0   inf - inf and nan - nan are nan
  div(x, x) -> 1   0/0 and inf/inf are nan
Known small differences, all comparing equal: add(x, 0.0) and sub(0.0, x) give
+0.0 where x = -0.0 and neg(x) gives -0.0, a sum over axes of size 1 gave +0.0 and
its reshape keeps -0.0 (sign of zero).

stop_gradient only matters to autodiff; this pass runs after autodiff, when
the marker has done its job, so it is dropped like an identity.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

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


# ---- the rules: (pattern, rewrite) pairs, tried in order by one driver --------------------

@dataclass(frozen=True)
class Pattern:
    """Which nodes a rule looks at: the node's op (or its primitive's kind), and optionally
    the op of the node producing its first operand (after the rewrites so far)."""
    ops: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    inner: tuple[str, ...] = ()

    def matches(self, n: Node, b: Builder, ins: tuple[int, ...]) -> bool:
        if not (n.op in self.ops or n.prim.kind in self.kinds):
            return False
        return not self.inner or (bool(ins) and b.nodes[ins[0]].op in self.inner)


@dataclass
class Match:
    """A node `n` of the old graph, its operands `ins` in the new one (being built by `b`),
    and `uses`: the users of each new node so far (for rules that delete a shared value)."""
    b: Builder
    n: Node
    ins: tuple[int, ...]
    uses: dict[int, int]

    def node(self, i: int) -> Node:
        return self.b.nodes[i]     # a fresh Builder numbers nodes 0, 1, ...

    @property
    def x(self) -> int:
        return self.ins[0]

    @property
    def inner(self) -> Node:
        return self.b.nodes[self.ins[0]]

    @property
    def cx(self):
        return splat(self.node(self.ins[0]))

    @property
    def cy(self):
        return splat(self.node(self.ins[1]))


def _neg_mul_neg(m: Match):
    a, c = m.inner.inputs   # neg(mul(neg(a), c)) -> mul(a, c): the signs cancel
    if m.node(a).op == "neg":
        return m.b.mul(m.node(a).inputs[0], c), "neg(mul(neg(a), c))"
    if m.node(c).op == "neg":
        return m.b.mul(a, m.node(c).inputs[0]), "neg(mul(a, neg(c)))"
    return None


def _unary_of_broadcast(m: Match):
    # compute on the small tensor, broadcast the result: same values, less work
    if m.n.op == "stop_gradient":
        return None
    return m.b.broadcast_to(m.b.copy(m.n, (m.inner.inputs[0],)), shape=m.n.shape), f"{m.n.op}(broadcast_to(x))"


def _of_scalar(m: Match):
    """broadcast_to(reshape(scalar)), reshape(broadcast_to(scalar)) -> broadcast_to(scalar)."""
    if m.node(m.inner.inputs[0]).shape != ():
        return None
    return m.b.broadcast_to(m.inner.inputs[0], shape=m.n.attr["shape"]), f"{m.n.op}({m.inner.op}(scalar))"


def _reshape_of_keepdims_sum(m: Match):
    inner = m.inner
    if not inner.attr.get("keepdims"):
        return None
    src = m.node(inner.inputs[0])
    axes = norm_axes(inner.attr["axes"], len(src.shape))
    dropped = tuple(d for k, d in enumerate(src.shape) if k not in axes)
    if dropped != tuple(m.n.shape):
        return None
    return m.b.sum(inner.inputs[0], axes=axes, keepdims=False), "reshape(sum(keepdims)) -> sum"


def _same_shape(m: Match):
    return (m.x, f"{m.n.op} to the same shape") if m.inner.shape == m.n.shape else None


def _movement_of_itself(m: Match):
    """reshape(reshape(x)), broadcast_to(broadcast_to(x)): one of them, from x."""
    if m.inner.op != m.n.op:
        return None
    return m.b.emit(m.n.op, (m.inner.inputs[0],), shape=m.n.attr["shape"]), f"{m.n.op}({m.n.op}(x))"


def _transpose_identity(m: Match):
    perm = tuple(m.n.attr["perm"])
    return (m.x, "transpose by the identity") if perm == tuple(range(len(perm))) else None


def _transpose_of_transpose(m: Match):
    perm = tuple(m.n.attr["perm"])
    composed = tuple(m.inner.attr["perm"][p] for p in perm)
    if composed == tuple(range(len(perm))):
        return m.inner.inputs[0], "transpose(transpose(x))"
    return m.b.transpose(m.inner.inputs[0], perm=composed), "transpose(transpose(x))"


def _whole_slice(m: Match):
    a = m.n.attr
    if m.inner.shape == m.n.shape and all(s in (0, None) for s in a["start"]) and all(s == 1 for s in a["step"]):
        return m.x, "slice of the whole tensor"
    return None


def _conv_of_pad(m: Match):
    """conv(pad(x)) -> conv(x) with the pad's zeros as the conv's own padding (the VJP's input
    gradient pads g before convolving it): the same taps read zeros, and no padded copy of x
    is made. Only zero interior and non-negative pads of the spatial axes qualify."""
    p = m.inner
    lo, hi, interior = p.attr["lo"], p.attr["hi"], p.attr["interior"]
    if any(interior) or lo[0] or hi[0] or lo[-1] or hi[-1] or min(lo) < 0 or min(hi) < 0:
        return None
    padding = tuple((a + l, b + h) for (a, b), l, h in zip(m.n.attr["padding"], lo[1:-1], hi[1:-1]))
    return m.b.copy(m.n, (p.inputs[0], m.ins[1]), padding=padding), "conv(pad(x))"


def _over_no_axes(m: Match):
    if norm_axes(m.n.attr["axes"], len(m.inner.shape)) == ():
        return m.x, f"{m.n.op} over no axes"
    return None


def _over_unit_axes(m: Match):
    """A sum or max over axes of size 1 reads one element: a reshape (the same values; a
    sum from 0.0 gave +0.0 for -0.0, the reshape keeps -0.0, as add(x, 0.0) above). Backends
    need not build a loop that no operand indexes (IREE refuses a generic whose unit
    reduction loop no map reads: an rnn's gradient at T=1)."""
    axes = norm_axes(m.n.attr["axes"], len(m.inner.shape))
    if axes and all(m.inner.shape[a] == 1 for a in axes) and m.n.dtype == m.inner.dtype:
        return m.b.reshape(m.x, shape=tuple(m.n.shape)), f"{m.n.op} over axes of size 1"
    return None


# Tried in this order; the first rewrite that returns (new id, description) wins.
RULES: list[tuple[Pattern, Callable[[Match], tuple[int, str] | None]]] = [
    (Pattern(ops=("add", "sub")), lambda m: (m.x, f"{m.n.op}(x, 0)") if m.cy == 0 else None),
    (Pattern(ops=("add",)), lambda m: (m.ins[1], "add(0, x)") if m.cx == 0 else None),
    (Pattern(ops=("sub",)), lambda m: (m.b.neg(m.ins[1]), "sub(0, x)") if m.cx == 0 else None),
    (Pattern(ops=("mul", "div")), lambda m: (m.x, f"{m.n.op}(x, 1)") if m.cy == 1 else None),
    (Pattern(ops=("mul",)), lambda m: (m.ins[1], "mul(1, x)") if m.cx == 1 else None),
    (Pattern(ops=("mul",)), lambda m: (m.b.neg(m.x), "mul(x, -1)") if m.cy == -1 else None),
    (Pattern(ops=("mul",)), lambda m: (m.b.neg(m.ins[1]), "mul(-1, x)") if m.cx == -1 else None),
    (Pattern(ops=("where",)), lambda m: _leaky(m.b, m.ins, m.uses)),
    (Pattern(ops=("where",)), lambda m: _relu_grad_through_max_pool(m.b, m.ins)),
    (Pattern(kinds=("binary", "compare", "select")), lambda m: _implicit_broadcast(m.b, m.n, m.ins)),
    (Pattern(ops=("neg",), inner=("neg",)), lambda m: (m.inner.inputs[0], "neg(neg(x))")),
    (Pattern(ops=("neg",), inner=("mul",)), _neg_mul_neg),
    (Pattern(kinds=("unary",), inner=("broadcast_to",)), _unary_of_broadcast),
    (Pattern(ops=("broadcast_to",), inner=("reshape",)), _of_scalar),
    (Pattern(ops=("reshape",), inner=("broadcast_to",)), _of_scalar),
    (Pattern(ops=("reshape",), inner=("sum",)), _reshape_of_keepdims_sum),
    (Pattern(ops=("stop_gradient",)), lambda m: (m.x, "stop_gradient(x)")),
    (Pattern(ops=("cast",)), lambda m: (m.x, "cast to the same dtype") if m.inner.dtype == m.n.attr["dtype"]
     else None),
    (Pattern(ops=("reshape", "broadcast_to")), _same_shape),
    (Pattern(ops=("reshape", "broadcast_to")), _movement_of_itself),
    (Pattern(ops=("transpose",)), _transpose_identity),
    (Pattern(ops=("transpose",), inner=("transpose",)), _transpose_of_transpose),
    (Pattern(ops=("slice",)), _whole_slice),
    (Pattern(ops=("sum", "max")), _over_no_axes),
    (Pattern(ops=("sum", "max")), _over_unit_axes),
    (Pattern(ops=("conv",), inner=("pad",)), _conv_of_pad),
]


def rewrite(b: Builder, n: Node, ins: tuple[int, ...], uses: dict[int, int] | None = None):
    """The driver: (replacement id, description) from the first rule that rewrites old node
    `n` (whose operands are now `ins`), or None. A rule emits nodes only when it rewrites."""
    m = Match(b, n, ins, uses or {})
    for pattern, fn in RULES:
        if pattern.matches(n, b, ins):
            hit = fn(m)
            if hit is not None:
                return hit
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


def _relu_grad_through_max_pool(b: Builder, ins):
    """where(c, select_scatter(x, g), 0) with c = z > 0 and x = where(c, z, 0) (relu, then max
    pooling, differentiated) -> select_scatter(x, where(max_pool(x) > 0, g, 0)): relu's mask
    applied to the pooled gradient, a window's worth smaller, instead of to the full one.
    Exact: c is x > 0 at every position (x is z where z > 0, else +0, never nan), and the tap
    select_scatter gives g to holds the window's max. c keeps one user (the forward relu),
    which `_leaky` then turns into maximum(z, 0)."""
    c, s, zero = ins
    ss, cond, relu = b.nodes[s], b.nodes[c], None
    if ss.op == "select_scatter":
        relu = b.nodes[ss.inputs[0]]
    if (relu is None or relu.op != "where" or cond.op != "gt" or not _positive_zero(b.nodes[zero])
            or relu.inputs[0] != c or relu.inputs[1] != cond.inputs[0] or not _positive_zero(b.nodes[relu.inputs[2]])
            or splat(b.nodes[cond.inputs[1]]) != 0):
        return None
    a = ss.attr
    pooled = b.reduce_window(relu.id, kind="max", window=a["window"], stride=a["stride"], padding=a["padding"])
    g = b.where(b.gt(pooled, cond.inputs[1]), ss.inputs[1], zero)
    return (b.select_scatter(relu.id, g, window=a["window"], stride=a["stride"], padding=a["padding"]),
            "where(z > 0, select_scatter(relu(z), g), 0) -> select_scatter(relu(z), where(max_pool > 0, g, 0))")


def _positive_zero(node: Node) -> bool:
    v = splat(node)
    return v is not _NO and v == 0 and math.copysign(1.0, v) > 0 and node.shape == ()


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
            hit = rewrite(b, n, ins, new_uses) if n.id in live and n.op != "arg" else None
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
