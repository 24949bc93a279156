"""The fusion plan: which IR nodes become which MLIR ops.

One pass over an optimised graph decides, before any text is printed:

* **Folded transposes.** A `transpose` that only swaps the last two axes and is read
  only by matmuls disappears: the matmul reads its operand through a transposed
  indexing map instead. So does any `transpose` read only as an operand of convs
  emitted by channel (`conv_by_channel`: a kernel gradient reads x^T and g^T), which
  read its source through the permutation.
* **Fused clusters.** Elementwise nodes (unary, binary, compare, select, cast), the
  index remappings (`broadcast_to`, `transpose`, a `reshape` that only adds or drops
  unit axes), `iota`, and reductions (`sum`, `max`, `argmax`) form clusters, each one
  `linalg.generic`. Walking the graph backwards, a node joins the cluster of its
  consumers when it is not a graph output, *all* its consumers are in that one
  cluster, each reads it at the same index, and it has as many elements as each
  consumer (so nothing is recomputed per broadcast element). Anything else roots a
  new cluster. A reduction roots a cluster over its input's shape, so the
  elementwise chain feeding it is computed inside the reduction's loop.
* **Inline scalars.** Scalar and splat constants and `size` are not tensors at all
  inside a cluster: the generic's region uses an `arith.constant` (or the dimension
  arithmetic) directly. They are materialised as tensors only where a non-fused op
  or a function result needs them.
* **Batch-summed matmuls.** `sum(matmul(transpose(x), g), axes=batch)` with x [B.., K, M]
  and g [B.., K, N] (a weight's gradient when the layer runs on every step of a sequence:
  dW = sum over b of x[b]^T @ g[b]) is one `linalg.matmul` of the operands collapsed to
  [B..*K, M] and [B..*K, N], not a batched matmul and a reduction (`batch_summed`).
* **Singles.** Everything else (matmul, general reshape, slice, pad, concat, dense
  constants, random numbers) is one op (or a few) of its own.

Each cluster node gets an *access*: for every axis of the node, which loop of the
cluster's iteration domain indexes it (`d3`) or the constant 0 (a broadcast axis).
A cluster's inputs ("leaves") are read through affine maps built from these.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...ir.graph import Graph, Node
from ...ir.primitives import ELEMENTWISE_KINDS, norm_axes
from ...ir.shapes import Monomial, canon_dim, numel

ELEMENTWISE = ELEMENTWISE_KINDS
REMAP = ("broadcast_to", "transpose", "reshape")
REDUCTIONS = ("sum", "max", "argmax")

Access = tuple  # one entry per axis of a node: an int k (loop d<k>) or None (index 0)


def reduced_axes(node: Node, graph: Graph) -> tuple[int, ...]:
    rank = graph[node.inputs[0]].type.rank
    if node.op == "argmax":
        return norm_axes([node.attr["axis"]], rank)
    return norm_axes(node.attr["axes"], rank)


def is_unit_reshape(src_shape, dst_shape) -> bool:
    """A reshape that only inserts or removes axes of size 1 (an index remapping)."""
    strip = lambda s: [canon_dim(d) for d in s if d != 1]  # noqa: E731
    return strip(src_shape) == strip(dst_shape)


def is_splat_const(node: Node) -> bool:
    if node.op != "const":
        return False
    if not node.shape:
        return True
    if not all(isinstance(d, int) for d in node.shape) or numel(node.shape) == 0:
        return False
    flat = _flatten(node.attr["value"])
    return all(_same(v, flat[0]) for v in flat)


def splat_value(node: Node):
    v = node.attr["value"]
    while isinstance(v, tuple):
        v = v[0]
    return v


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # both nan
    return a == b and (not isinstance(a, float) or str(a) == str(b))  # 0.0 vs -0.0


def _flatten(v) -> list:
    if isinstance(v, tuple):
        return [x for item in v for x in _flatten(item)]
    return [v]


def is_last_two_swap(node: Node) -> bool:
    perm = tuple(node.attr["perm"])
    r = len(perm)
    return r >= 2 and perm == tuple(range(r - 2)) + (r - 1, r - 2)


def conv_by_channel(node: Node, graph: Graph) -> bool:
    """A conv with more window taps T than output positions (the shape of a kernel gradient:
    window = the forward output, output = the forward kernel) that convs.py emits as one
    matmul per input channel c (a batch_matmul over c, then the sum over c) rather than one
    matmul whose contraction runs over every channel and tap at once: that contraction is
    the whole batch of images deep (case F: 65536), and IREE's CPU matmul streams both
    operands from memory once per output tile at that depth. Only where the per-channel
    partial sums [C, out positions * batch, F] are no bigger than the im2col copy
    [C, T, out positions * batch] it reads, i.e. F <= T, and only for a static C: with a
    symbolic one (a kernel gradient's C is the forward batch B) the partial sums are a
    B-sized intermediate, and IREE 3.13 gives every dynamic-size intermediate of a call its
    own memory in the call's one transient block (no reuse between them), which local-task
    maps afresh every call above 64 MiB (docs/mlir.md): such a conv is batched over its
    first tap axis instead (convs._conv_as_matmul), whose partial sums are static."""
    if node.op != "conv" or node.attr["groups"] != 1 or node.dtype == "bool":
        return False
    w = graph[node.inputs[1]]
    sp = node.type.rank - 2
    taps, positions, f = numel(w.shape[:sp]), numel(node.shape[1:-1]), w.shape[-1]
    return (isinstance(taps, int) and isinstance(positions, int) and isinstance(f, int)
            and isinstance(w.shape[sp], int) and taps > positions and f <= taps)


@dataclass
class Cluster:
    root: int
    nodes: list[int] = field(default_factory=list)     # members in graph order (root last)
    access: dict[int, Access] = field(default_factory=dict)
    domain: tuple = ()                                # the iteration space's shape


@dataclass
class Plan:
    graph: Graph
    live: list[Node]                                   # nodes reached from the outputs, in order
    inputs: dict[int, tuple[int, ...]]                 # effective operands (after folding transposes)
    folded: dict[tuple[int, int], object]              # (matmul id, operand index) -> True: reads transposed;
                                                       # (conv id, operand index) -> the folded transpose's perm
    clusters: dict[int, Cluster]                       # root id -> cluster
    member_of: dict[int, int]                          # node id -> root id of its cluster
    inline: set[int]                                   # scalar/splat constants and sizes
    batch_summed: dict[int, int] = field(default_factory=dict)   # sum id -> the matmul it absorbs

    def unit(self, node_id: int):
        """What emits a node: ('cluster', Cluster) for cluster roots, ('single', node) otherwise."""
        if node_id in self.clusters:
            return "cluster", self.clusters[node_id]
        return "single", self.graph[node_id]

    def is_reduction_root(self, c: Cluster) -> bool:
        n = self.graph[c.root]
        return n.op in REDUCTIONS and bool(reduced_axes(n, self.graph))

    def stats(self) -> dict:
        fused = [c for c in self.clusters.values() if len(c.nodes) > 1]
        return {"clusters": len(self.clusters), "fused": len(fused),
                "fused_ops": sum(len(c.nodes) for c in fused)}


def fusible(node: Node, graph: Graph) -> bool:
    """Can this node live inside a cluster (as a member or the root)?"""
    if node.prim.kind in ELEMENTWISE or node.op == "iota":
        return True
    if node.op in ("broadcast_to", "transpose"):
        return True
    if node.op == "reshape":
        return is_unit_reshape(graph[node.inputs[0]].shape, node.shape)
    if node.op in REDUCTIONS:
        return True
    return False


def operand_access(user: Node, user_access: Access, operand: Node, graph: Graph) -> Access:
    """The access of `operand` as read by cluster member `user` (whose own access is given)."""
    op = user.op
    if op in REDUCTIONS and reduced_axes(user, graph):
        return tuple(range(operand.type.rank))          # the reduction's domain is its input
    if op == "transpose":
        perm = tuple(user.attr["perm"])
        out: list = [None] * len(perm)
        for i, p in enumerate(perm):
            out[p] = user_access[i]
        return tuple(out)
    if op == "reshape":                                 # unit reshape: match the non-unit axes
        src = [i for i, d in enumerate(operand.shape) if d != 1]
        dst = [i for i, d in enumerate(user.shape) if d != 1]
        out = [None] * operand.type.rank
        for i, j in zip(src, dst):
            out[i] = user_access[j]
        return tuple(out)
    # elementwise and broadcast_to: numpy broadcasting, aligned on the right
    shift = user.type.rank - operand.type.rank
    out = []
    for j, d in enumerate(operand.shape):
        k = j + shift
        out.append(None if (d == 1 and user.shape[k] != 1) else user_access[k])
    return tuple(out)


def build_plan(graph: Graph) -> Plan:
    outputs = {i for _, i in graph.outputs}
    all_users = graph.users()

    # 1. transposes read only by matmuls fold into the matmul's indexing maps; those read only
    #    by convs emitted by channel into the conv's im2col map and operand layout
    folded: dict[tuple[int, int], object] = {}
    inputs: dict[int, tuple[int, ...]] = {}
    foldable, conv_foldable = set(), set()
    for n in graph.nodes:
        if n.op != "transpose" or n.id in outputs or not all_users[n.id]:
            continue
        readers = [graph[u] for u in all_users[n.id]]
        if is_last_two_swap(n) and all(u.op == "matmul" for u in readers):
            foldable.add(n.id)
        elif all(conv_by_channel(u, graph) and n.id in u.inputs[:2] for u in readers):
            conv_foldable.add(n.id)
    for n in graph.nodes:
        ins = list(n.inputs)
        if n.op == "matmul":
            for k, i in enumerate(ins):
                if i in foldable:
                    folded[(n.id, k)] = True
                    ins[k] = graph[i].inputs[0]
        elif n.op == "conv":
            for k, i in enumerate(ins[:2]):
                if i in conv_foldable:
                    folded[(n.id, k)] = tuple(graph[i].attr["perm"])
                    ins[k] = graph[i].inputs[0]
        inputs[n.id] = tuple(ins)

    # 2. live nodes (dead ones, such as folded transposes, are never emitted)
    live_ids: set[int] = set()
    stack = [i for _, i in graph.outputs]
    while stack:
        i = stack.pop()
        if i not in live_ids:
            live_ids.add(i)
            stack.extend(inputs[i])
    live = [n for n in graph.nodes if n.id in live_ids]
    users: dict[int, list[int]] = {n.id: [] for n in live}
    for n in live:
        for i in dict.fromkeys(inputs[n.id]):        # distinct consumers
            users[i].append(n.id)

    # 3. sums over a matmul's batch axes that one collapsed matmul computes
    batch_summed = {n.id: n.inputs[0] for n in live if _sums_batches(n, users, outputs, folded, inputs, graph)}

    # 4. clusters, walking backwards
    inline = {n.id for n in live if is_splat_const(n) or n.op == "size"}
    clusters: dict[int, Cluster] = {}
    member_of: dict[int, int] = {}
    for n in reversed(live):
        if n.op == "arg" or n.id in inline or not fusible(n, graph) or n.id in batch_summed:
            continue
        target = _join_target(n, users[n.id], outputs, member_of, clusters, graph)
        if target is not None:
            c, acc = target
            c.nodes.append(n.id)
            c.access[n.id] = acc
            member_of[n.id] = c.root
            continue
        c = Cluster(n.id, [n.id])
        c.access[n.id] = tuple(range(n.type.rank))
        c.domain = n.shape
        if n.op in REDUCTIONS and reduced_axes(n, graph):
            c.domain = graph[n.inputs[0]].shape
            c.access[n.id] = None                        # a reduction root is not indexed
        clusters[n.id] = c
        member_of[n.id] = n.id
    order = {n.id: k for k, n in enumerate(live)}
    for c in clusters.values():
        c.nodes.sort(key=order.__getitem__)
    return Plan(graph, live, inputs, folded, clusters, member_of, inline, batch_summed)


def _sums_batches(n: Node, users, outputs, folded, inputs, graph: Graph) -> bool:
    """Whether `n` is sum(matmul(a, b), axes=every batch axis) with `a` read transposed and `b`
    not, both with the output's batch shape and the matmul read by nothing else: then the batch
    axes and the contraction axis are adjacent in both stored operands ([B.., K, M], [B.., K, N])
    and collapse into one contraction axis (plan.batch_summed)."""
    if n.op != "sum" or n.attr.get("keepdims") or n.dtype not in ("f32", "f64"):
        return False
    m = graph[n.inputs[0]]
    if m.op != "matmul" or m.id in outputs or users.get(m.id) != [n.id] or m.type.rank < 3:
        return False
    nb = m.type.rank - 2
    if tuple(reduced_axes(n, graph)) != tuple(range(nb)):
        return False
    if not folded.get((m.id, 0)) or folded.get((m.id, 1)):
        return False
    batch = [canon_dim(d) for d in m.shape[:nb]]
    return all([canon_dim(d) for d in graph[i].shape[:nb]] == batch for i in inputs[m.id])


def _join_target(n: Node, users: list[int], outputs, member_of, clusters, graph):
    """The cluster `n` joins (with its access there), or None when it roots its own."""
    if n.id in outputs or not users or (n.op in REDUCTIONS and reduced_axes(n, graph)):
        return None
    roots = {member_of.get(u) for u in users}
    if len(roots) != 1 or None in roots:
        return None
    c = clusters[roots.pop()]
    acc = None
    for u in users:
        un = graph[u]
        if un.op in REDUCTIONS and reduced_axes(un, graph):
            if u != c.root:
                return None
        elif canon_dim(numel(un.shape)) != canon_dim(numel(n.shape)):
            return None                                   # would be recomputed per broadcast element
        a = operand_access(un, c.access[u], n, graph)
        if acc is not None and a != acc:
            return None                                   # read at two different indices
        acc = a
    return c, acc


# ---- work estimate --------------------------------------------------------------------

def work_terms(graph: Graph) -> dict[tuple[str, ...], int]:
    """Elements of work of a graph as a polynomial in its symbolic dimensions:
    {symbols: coefficient}, each node counting its output's elements (a matmul or a conv
    its multiply-adds, a window op its taps, a reduction its input's elements, a scan its
    body's work once per step)."""
    terms: dict[tuple[str, ...], int] = {}
    for n in graph.nodes:
        if n.op in ("arg", "const"):
            continue
        if n.op == "scan":
            for syms, coef in work_terms(n.attr["body"]).items():
                terms[syms] = terms.get(syms, 0) + coef * n.attr["length"]
            continue
        d = numel(n.shape)
        if n.op == "matmul":
            d = numel(tuple(n.shape) + (graph[n.inputs[0]].shape[-1],))
        elif n.op == "conv":      # each output entry sums window x channels-per-group products
            d = numel(tuple(n.shape) + tuple(graph[n.inputs[1]].shape[:-1]))
        elif n.op in ("reduce_window", "select_scatter"):
            d = numel(tuple(n.shape) + tuple(n.attr["window"]))
        elif n.op in REDUCTIONS or n.op == "size":
            d = numel(graph[n.inputs[0]].shape) if n.op != "size" else 1
        m = Monomial.parse(d)
        terms[m.syms] = terms.get(m.syms, 0) + m.coef
    return terms


def op_count(graph: Graph) -> int:
    """How many ops a call runs (a scan's body once per step): with the work, the mean size
    of a dispatch, which decides whether a thread pool pays for its per-dispatch cost."""
    total = 0
    for n in graph.nodes:
        if n.op == "scan":
            total += op_count(n.attr["body"]) * n.attr["length"]
        elif n.op not in ("arg", "const"):
            total += 1
    return total


def work(terms: dict, sizes: dict) -> int:
    """Evaluate a work polynomial at concrete sizes (a missing symbol counts as `sizes.get(None, 32)`)."""
    default = sizes.get(None, 32)
    total = 0
    for syms, coef in terms.items():
        v = coef
        for s in syms:
            v *= sizes.get(s, default)
        total += v
    return total
