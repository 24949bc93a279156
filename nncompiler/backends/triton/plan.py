"""Fusion planning: group the ops of an optimised IR graph into kernels.

The planner works on the graph as the passes left it and never changes it. Every
node gets a class:

  arg        a graph argument (a device buffer)
  constbuf   a constant tensor, made once at compile time (const, random_uniform,
             random_normal: seeded, so they are constants; evaluated through the
             numpy backend, the reference semantics, as constant folding is)
  inline     a scalar computed from scalars (consts, `size`, rank-0 arguments): it
             is recomputed inside every kernel that needs it (Adam's bias
             corrections, 1/B of a mean) instead of costing a launch
  move       reshape / transpose / broadcast_to / slice / pad / concat: index
             arithmetic, never a kernel of its own (see below)
  compute    everything else: elementwise ops, iota, rng_uniform, reductions, matmul

Each compute node starts as a group; groups then merge pairwise, producer into
consumer, in graph order:

  pointwise + pointwise   one elementwise kernel over a common iteration space
  pointwise + reduction   elementwise prologue / epilogue of a row reduction; a
                          chain (softmax: max, exp, sum, div) needs the whole row in
                          one tile ("persistent"), an independent reduction loops
  matmul + pointwise      the epilogue of a tiled `tl.dot` kernel (bias, activation,
                          the relu mask of a backward matmul, ...)
  matmul + column sum     a bias gradient `sum(G, axis 0)` where G is the matmul's
                          K-major operand is accumulated from the tiles the matmul
                          loads anyway (wgrad and bias grad in one kernel)

then sibling reductions over the same space merge (loss and accuracy), and the sink
elementwise groups (the optimizer update of every parameter) become one
horizontally fused "combo" kernel with one segment per group.

*Legality* (can these two share a kernel at all?) and *profitability* (should
they?) are separate functions; every refusal is recorded with its reason, like
Inductor's WhyNoFuse, and printed by `--emit kernels`.

The space check is a union-find: every (node, axis) of size != 1 is an element;
broadcasting, transposes, squeeze-like reshapes and reductions unite elements; a
legal kernel maps every class onto exactly one dimension of its anchor shape
(the matmul output, the reduction input, or the largest elementwise shape).
Movement ops on values computed in the same kernel must be such dim-map ops;
movement ops on buffers read by the kernel become index arithmetic in the load
(slices, pads, concats, reshapes, transposes, broadcasts: no copy kernel).
Matmul operands are read through strides (transposes are free).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...ir.graph import Graph
from ...ir.primitives import ELEMENTWISE_KINDS
from ...ir.shapes import canon_dim, dim_div, fmt_shape, numel
from ...sourcetext import loc_text
from .index import (UnionFind, View, contiguous_strides, reduce_axes, right_align, squeeze_like,
                    squeeze_pairs, static_numel, view_through)

REDUCE_OPS = ("sum", "max", "argmax")
MAX_PERSISTENT_R = 16384      # legality: a persistent row must fit in one tile
PREFER_PERSISTENT_R = 2048    # profitability: below this, a single pass beats a loop
MAX_COMBO_SEGMENTS = 64       # profitability: compile time of one giant combo kernel


@dataclass
class Space:
    """An iteration space: the anchor shape D, its reduced dims R and where every value lives."""

    shape: tuple                 # D
    raxes: tuple = ()            # reduced dims of D (reductions only)
    dmap: dict = field(default_factory=dict)     # node -> tuple of D dim (or None) per axis
    level: dict = field(default_factory=dict)    # node -> 'x' (kept dims only) or 'xr'
    after: set = field(default_factory=set)      # nodes downstream of a reduction in this kernel
    persistent: bool = True
    closure: list = field(default_factory=list)  # nodes the kernel computes, in graph order
    internal: set = field(default_factory=set)   # movement nodes whose input is computed in-kernel

    @property
    def kept(self) -> list[int]:
        return [d for d in range(len(self.shape)) if d not in self.raxes]

    def rnumel(self):
        return numel([self.shape[d] for d in self.raxes])

    def xnumel(self):
        return numel([self.shape[d] for d in self.kept])


@dataclass
class Group:
    id: int
    kind: str                    # pointwise | reduction | matmul | fallback | combo
    nodes: list                  # owned nodes, graph order
    anchor: tuple | None = None  # preferred anchor shape (pointwise)
    space: Space | None = None
    colsums: dict = field(default_factory=dict)   # matmul: reduction node -> operand position
    segments: list = field(default_factory=list)  # combo: pointwise groups
    riders: list = field(default_factory=list)    # scalar outputs stored by program 0
    name: str = ""
    index: int = -1
    stores: list = field(default_factory=list)    # owned nodes written to memory
    reads: list = field(default_factory=list)     # buffers read (node ids)
    note: str = ""


@dataclass
class WhyNoFuse:
    producer: int                # node ids of the edge that was refused
    consumer: int
    category: str                # legal | profit
    reason: str


class Illegal(Exception):
    pass


class Plan:
    """The kernels of one graph, in launch order, plus everything the code generator needs."""

    def __init__(self, graph: Graph, fallback_ops=(), host_rng: bool = False):
        self.graph = graph
        self.fallback_ops = set(fallback_ops)   # primitives forced through torch (tests the fallback path)
        self.host_rng = host_rng                # rng_uniform from numpy's stream on the host: exact parity
        g = graph
        self.order = {n.id: k for k, n in enumerate(g.nodes)}
        self.users = g.users()
        self.output_ids = [i for _, i in g.outputs]
        self.cls: dict[int, str] = {}
        self.why: list[WhyNoFuse] = []
        self.copies: set[int] = set()          # movement nodes materialized by a copy kernel
        self.inline_stored: set[int] = set()   # inline scalars that also need a buffer
        self.output_views: dict[int, View] = {}   # output movement node -> view of a buffer
        self.operand_views: dict[tuple, View] = {}  # (node, position) -> view (matmul / fallback)
        self._classify()
        self._need_buffers()
        self._src_memo: dict[int, frozenset] = {}
        self.groups: dict[int, Group] = {}
        self._next_gid = 0
        self.owner: dict[int, int] = {}
        self._reads_memo: dict[int, frozenset] = {}
        self._build_groups()
        self._rebuild_deps()
        self._fuse_colsums()
        self._rebuild_deps()
        self._fuse_vertical()
        self._fuse_siblings()
        self._fuse_horizontal()
        self._rebuild_deps()
        self._attach_riders()
        self._rebuild_deps()
        self.kernels: list[Group] = self._finalize()

    # ---- classification -----------------------------------------------------------
    def _scalar_source(self, i: int) -> bool:
        c = self.cls[i]
        return c == "inline" or (c in ("arg", "constbuf") and static_numel(self.graph[i].shape) == 1)

    def _classify(self):
        for n in self.graph.nodes:
            op, kind = n.op, n.prim.kind
            if op == "arg":
                c = "arg"
            elif op == "const":
                c = "inline" if static_numel(n.shape) == 1 else "constbuf"
            elif op in ("random_uniform", "random_normal"):
                c = "constbuf"
            elif op == "size":
                c = "inline"
            elif kind in ELEMENTWISE_KINDS:
                scalar = static_numel(n.shape) == 1 and all(self._scalar_source(i) for i in n.inputs)
                c = "inline" if scalar and op not in self.fallback_ops else "compute"
            elif op == "scatter_add":
                c = "compute"     # a scatter: not a load; runs as a torch op (see is_fallback)
            elif kind == "movement":
                scalar = (op in ("reshape", "broadcast_to", "transpose", "slice") and static_numel(n.shape) == 1
                          and self._scalar_source(n.inputs[0]))
                c = "inline" if scalar else "move"
            else:
                c = "compute"     # iota, rng_uniform, reductions, matmul
            self.cls[n.id] = c

    def is_fallback(self, nid: int) -> bool:
        n = self.graph[nid]
        host_rng = n.op == "rng_uniform" and self.host_rng
        return (n.op in self.fallback_ops or host_rng or n.op == "scatter_add"
                or (n.op == "matmul" and n.dtype == "bool")) and self.cls[nid] == "compute"

    def view_of(self, nid: int) -> View | None:
        """`nid` as a strided view of a buffer, or None (an inline scalar or a pad/concat chain)."""
        c = self.cls[nid]
        n = self.graph[nid]
        if c in ("arg", "constbuf", "compute") or nid in self.copies or nid in self.inline_stored:
            return View(nid, n.shape, tuple(contiguous_strides(n.shape)))
        if c == "move":
            inner = self.view_of(n.inputs[0]) if n.op not in ("pad", "concat", "gather") else None
            return view_through(n, inner) if inner is not None else None
        return None

    def _buffer_operand(self, nid: int, pos: int, operand: int):
        """A matmul / fallback operand must be a strided view of a buffer: materialize it if not."""
        v = self.view_of(operand)
        if v is None:
            if self.cls[operand] == "inline":
                self.inline_stored.add(operand)
            else:
                self.copies.add(operand)
                self.cls[operand] = "compute"
            v = self.view_of(operand)
        self.operand_views[(nid, pos)] = v

    def _need_buffers(self):
        for n in self.graph.nodes:
            if self.cls[n.id] == "compute" and (n.op == "matmul" or self.is_fallback(n.id)):
                for pos, i in enumerate(n.inputs):
                    self._buffer_operand(n.id, pos, i)
        for o in self.output_ids:
            c = self.cls[o]
            if c == "inline":
                self.inline_stored.add(o)
            elif c == "move":
                v = self.view_of(o)
                if v is not None and v.contiguous:
                    self.output_views[o] = v
                else:
                    self.copies.add(o)
                    self.cls[o] = "compute"

    # ---- sources: which buffers a node reads through movement and inline nodes ----------
    def sources(self, nid: int) -> frozenset:
        """The compute / argument / constant nodes that `nid` (an operand) reads."""
        if nid in self._src_memo:
            return self._src_memo[nid]
        c = self.cls[nid]
        n = self.graph[nid]
        if n.op == "size":        # depends on a shape, not on data
            out = frozenset()
        elif c == "inline":
            out = frozenset(s for i in n.inputs for s in self.sources(i))
        elif c == "move":
            out = frozenset(s for i in n.inputs for s in self.sources(i))
        else:
            out = frozenset([nid])
        self._src_memo[nid] = out
        return out

    def node_reads(self, nid: int) -> frozenset:
        """Buffers (node ids) that owned node `nid` reads."""
        memo = self._reads_memo.get(nid)
        if memo is not None:
            return memo
        n = self.graph[nid]
        if n.op == "matmul" or self.is_fallback(nid):
            out = frozenset(self.operand_views[(nid, p)].base for p in range(len(n.inputs)))
        elif any(nid in grp.colsums for grp in self.groups.values() if grp.kind == "matmul"):
            out = frozenset()
        else:
            out = frozenset(s for i in n.inputs for s in self.sources(i))
        self._reads_memo[nid] = out
        return out

    # ---- groups ----------------------------------------------------------------------
    def _new_group(self, kind, nodes, anchor=None) -> Group:
        gid = self._next_gid
        self._next_gid += 1
        grp = Group(gid, kind, sorted(nodes, key=self.order.get), anchor)
        self.groups[gid] = grp
        for n in nodes:
            self.owner[n] = gid
        return grp

    def _build_groups(self):
        for n in self.graph.nodes:
            owned = self.cls[n.id] == "compute" or n.id in self.inline_stored
            if not owned:
                continue
            if self.is_fallback(n.id):
                kind = "fallback"
            elif n.op == "matmul":
                kind = "matmul"
            elif n.op in REDUCE_OPS:
                kind = "reduction"
            else:
                kind = "pointwise"
            grp = self._new_group(kind, [n.id], anchor=tuple(n.shape))
            if kind == "fallback":
                grp.note = ("host: numpy's random stream (host_rng)" if n.op == "rng_uniform"
                            else "fallback: torch")
            try:
                grp.space = self.solve_space(grp.kind, grp.nodes, [grp.anchor]) if kind != "fallback" else None
            except Illegal as e:   # a lone op that no kernel template covers: run it through torch
                grp.kind, grp.note = "fallback", f"fallback: torch ({e})"

    def _deps_of(self, grp: Group) -> set[int]:
        out = set()
        for n in grp.nodes:
            for src in self.node_reads(n):
                o = self.owner.get(src)
                if o is not None and o != grp.id:
                    out.add(o)
        return out

    def _rebuild_deps(self):
        self._reads_memo = {}
        self._gdeps = {gid: self._deps_of(grp) for gid, grp in self.groups.items()}
        self._gdependents = {gid: set() for gid in self.groups}
        for gid, ds in self._gdeps.items():
            for d in ds:
                self._gdependents[d].add(gid)

    def deps(self, grp: Group) -> set[int]:
        return self._gdeps[grp.id]

    def _dependents(self) -> dict[int, set]:
        return self._gdependents

    def _path_between(self, a: int, b: int, dependents) -> int | None:
        """A group X (not a, not b) with a ->+ X ->+ b, or None."""
        stack = [x for x in dependents[a] if x != b]
        seen = set(stack)
        while stack:
            x = stack.pop()
            for y in dependents[x]:
                if y == b:
                    return x
                if y not in seen and y != a:
                    seen.add(y)
                    stack.append(y)
        return None

    def _merge(self, keep: Group, other: Group, kind: str, space: Space) -> Group:
        keep.nodes = sorted(set(keep.nodes) | set(other.nodes), key=self.order.get)
        keep.colsums.update(other.colsums)
        keep.kind = kind
        keep.space = space
        keep.anchor = space.shape
        for n in other.nodes:
            self.owner[n] = keep.id
        del self.groups[other.id]
        # keep the dependency graph current: `other` is now `keep`
        deps = (self._gdeps.pop(other.id) | self._gdeps[keep.id]) - {keep.id, other.id}
        dependents = (self._gdependents.pop(other.id) | self._gdependents[keep.id]) - {keep.id, other.id}
        self._gdeps[keep.id] = deps
        self._gdependents[keep.id] = dependents
        for d in deps:
            self._gdependents[d].discard(other.id)
            self._gdependents[d].add(keep.id)
        for d in dependents:
            self._gdeps[d].discard(other.id)
            self._gdeps[d].add(keep.id)
        return keep

    # ---- legality ----------------------------------------------------------------------
    def _closure(self, owned: set) -> list[int]:
        seen = set(owned)
        stack = [n for n in owned if self.graph[n].op != "matmul"]
        while stack:
            n = stack.pop()
            for i in self.graph[n].inputs:
                if i in seen:
                    continue
                if self.cls[i] in ("move", "inline") and i not in self.copies:
                    seen.add(i)
                    stack.append(i)
        return sorted(seen, key=self.order.get)

    def solve_space(self, kind: str, nodes, anchors, colsums=None) -> Space:
        """The common iteration space of `nodes` (one kernel), or raise Illegal with the reason."""
        g = self.graph
        owned = set(nodes)
        colsums = colsums or {}
        body = owned - set(colsums)
        closure = self._closure(owned)
        cset = set(closure)
        # movement nodes whose input is computed in this kernel (dim-map ops) vs loads
        internal: set[int] = set()
        for n in closure:
            node = g[n]
            if node.prim.kind == "movement" and (n not in owned or n in self.copies):
                if any((i in owned and g[i].prim.kind != "movement") or i in internal for i in node.inputs):
                    internal.add(n)
        computed = {n for n in closure if n in owned or n in internal}
        uf = UnionFind()

        def el(n, j):
            return ("n", n, j)

        def operand_ok(i):   # an operand that lives in the kernel's index space
            return i in cset and not (self.cls[i] == "inline" and i not in owned)

        for n in closure:
            node = g[n]
            if n not in computed:
                continue
            if n in internal:
                i = node.inputs[0]
                if node.op == "transpose":
                    for j, p in enumerate(node.attr["perm"]):
                        if node.shape[j] != 1:
                            uf.union(el(n, j), el(i, p))
                elif node.op == "broadcast_to":
                    for j, oj in enumerate(right_align(g[i].shape, node.shape)):
                        if oj is not None:
                            uf.union(el(i, j), el(n, oj))
                elif node.op == "reshape" and squeeze_like(g[i].shape, node.shape):
                    for a, b in squeeze_pairs(g[i].shape, node.shape):
                        uf.union(el(i, a), el(n, b))
                else:
                    src = next(x for x in node.inputs if x in computed)
                    raise Illegal(f"{self.name(n)} = {node.op}({self.name(src)}) re-indexes a value computed in the "
                                  f"same kernel; only transposes, broadcasts and size-1 reshapes can (the value "
                                  f"would have to be written to memory first)")
            elif node.prim.kind in ELEMENTWISE_KINDS:
                for i in node.inputs:
                    if operand_ok(i):
                        for j, oj in enumerate(right_align(g[i].shape, node.shape)):
                            if oj is not None:
                                uf.union(el(i, j), el(n, oj))
            for j, d in enumerate(node.shape):
                if d != 1:
                    uf.find(el(n, j))
        # the anchor
        raxes: tuple = ()
        if kind == "matmul":
            mm = [n for n in body if g[n].op == "matmul"]
            if len(mm) != 1:
                raise Illegal("two matmuls never share a kernel")
            if any(g[n].op in REDUCE_OPS for n in body):
                raise Illegal("a reduction cannot run in a matmul epilogue (a tile holds only part of a row)")
            D = tuple(g[mm[0]].shape)
            self._anchor(uf, el, mm[0], D)
            for r, pos in colsums.items():     # column sums of B live on N, row sums of A on M
                d = len(D) - 1 if pos == 1 else len(D) - 2
                for j, size in enumerate(g[r].shape):
                    if size != 1:
                        uf.union(el(r, j), ("D", d))
            return self._check(uf, closure, computed, D, (), internal, kind)
        reds = [n for n in body if g[n].op in REDUCE_OPS]
        if reds:
            r0 = g[reds[0]]
            D = tuple(canon_dim(d) for d in g[r0.inputs[0]].shape)
            raxes = reduce_axes(r0, len(D))
            for r in reds:
                rn = g[r]
                ishape = tuple(canon_dim(d) for d in g[rn.inputs[0]].shape)
                ax = reduce_axes(rn, len(ishape))
                if ishape != D or ax != raxes:
                    raise Illegal(f"reductions over different iteration spaces: {self.name(reds[0])} reduces "
                                  f"{fmt_shape(D)} over axes {list(raxes)}, {self.name(r)} reduces "
                                  f"{fmt_shape(ishape)} over axes {list(ax)}")
                i = rn.inputs[0]
                if operand_ok(i):
                    self._anchor(uf, el, i, D)
                keep = bool(rn.attr.get("keepdims"))
                kept = [d for d in range(len(D)) if d not in raxes]
                for j, d in enumerate(rn.shape):
                    if d == 1:
                        continue
                    uf.union(el(r, j), ("D", j if keep else kept[j]))
            return self._check(uf, closure, computed, D, raxes, internal, kind)
        # pointwise: try the anchors in turn
        last = None
        tried = []
        cands = [a for a in anchors if a is not None]
        cands += sorted({tuple(g[n].shape) for n in body}, key=lambda s: (-len(s), -(static_numel(s) or 1 << 40)))
        for D in cands:
            D = tuple(canon_dim(d) for d in D)
            if D in tried or len(tried) >= 4:
                continue
            tried.append(D)
            anchor_node = next((n for n in body if tuple(canon_dim(d) for d in g[n].shape) == D), None)
            if anchor_node is None:
                continue
            uf2 = UnionFind()
            uf2.parent = dict(uf.parent)
            self._anchor(uf2, el, anchor_node, D)
            try:
                return self._check(uf2, closure, computed, D, (), internal, kind)
            except Illegal as e:
                last = e
        raise last or Illegal("no common iteration space")

    @staticmethod
    def _anchor(uf, el, node_id, D):
        for j, d in enumerate(D):
            if d != 1:
                uf.union(el(node_id, j), ("D", j))

    def _check(self, uf, closure, computed, D, raxes, internal, kind) -> Space:
        g = self.graph
        classes = uf.classes()
        dim_of: dict = {}
        for members in classes.values():
            ds = sorted({m[1] for m in members if m[0] == "D"})
            nodes = [m for m in members if m[0] == "n"]
            if len(ds) > 1:
                a = nodes[0][1] if nodes else None
                raise Illegal(f"loop dimensions {ds[0]} and {ds[1]} of {fmt_shape(D)} would have to be one"
                              + (f" (through {self.name(a)})" if a is not None else ""))
            if not ds:
                n, j = nodes[0][1], nodes[0][2]
                raise Illegal(f"{self.name(n)} : {g[n].type} varies along an axis of size {g[n].shape[j]} that "
                              f"is not in the iteration space {fmt_shape(D)}")
            for m in nodes:
                if canon_dim(g[m[1]].shape[m[2]]) != canon_dim(D[ds[0]]):
                    raise Illegal(f"{self.name(m[1])} axis {m[2]} has size {g[m[1]].shape[m[2]]}, "
                                  f"loop dimension {ds[0]} has {D[ds[0]]}")
                dim_of[(m[1], m[2])] = ds[0]
        space = Space(tuple(D), tuple(raxes), closure=list(closure), internal=set(internal))
        for n in closure:
            if n not in computed and self.cls[n] != "inline":
                continue          # a load: indexed from its consumer
            dm = tuple(dim_of.get((n, j)) if d != 1 else None for j, d in enumerate(g[n].shape))
            used = [d for d in dm if d is not None]
            if len(set(used)) != len(used):
                raise Illegal(f"{self.name(n)} would read a diagonal of the iteration space")
            space.dmap[n] = dm
            space.level[n] = "xr" if any(d in raxes for d in used) else "x"
        if raxes:
            needs = False
            for n in closure:
                node = g[n]
                if n not in space.dmap:
                    continue
                if node.op in REDUCE_OPS and n in computed:
                    space.after.add(n)
                    if node.inputs[0] in space.after:
                        needs = True
                    continue
                if any(i in space.after for i in node.inputs):
                    space.after.add(n)
                    if space.level[n] == "xr":
                        needs = True
            r = static_numel([D[d] for d in raxes])
            if needs and (r is None or r > MAX_PERSISTENT_R):
                what = "symbolic" if r is None else f"{r} elements, over {MAX_PERSISTENT_R}"
                raise Illegal(f"a full-row value depends on a reduction, so the whole row must fit in one tile, "
                              f"but the reduced extent is {what}")
            space.persistent = needs or (r is not None and r <= PREFER_PERSISTENT_R)
        return space

    # ---- profitability -----------------------------------------------------------------
    def _profitable(self, p: Group, c: Group, space: Space, dependents) -> tuple[bool, str]:
        if p.kind == "pointwise" and c.kind == "pointwise" and p.space is not None:
            big, small = numel(space.shape), numel(p.space.shape)
            ratio = dim_div(big, small)
            others = dependents[p.id] - {c.id}
            if canon_dim(big) != canon_dim(small) and ratio not in (None, 1) and others:
                return False, (f"the producer ({fmt_shape(p.space.shape)}) would be recomputed at each of the "
                               f"{ratio} broadcast positions of {fmt_shape(space.shape)} and is stored for "
                               f"another kernel anyway")
        return True, ""

    def can_fuse(self, p: Group, c: Group, dependents) -> tuple[bool, str, str, Space | None]:
        """(ok, category, reason, space) for merging producer group p into consumer group c."""
        if "fallback" in (p.kind, c.kind):
            return False, "legal", "torch fallback ops run alone", None
        if c.kind == "matmul":
            mm = next(n for n in c.nodes if self.graph[n].op == "matmul")
            bases = {self.operand_views[(mm, k)].base for k in (0, 1)}
            if bases & set(p.nodes):
                return False, "legal", ("matmul operands are loaded as tiles straight from memory "
                                        "(no prologue fusion)"), None
        if p.kind == "matmul" and c.kind == "matmul":
            return False, "legal", "two matmuls never share a kernel", None
        if "reduction" in (p.kind, c.kind) and "matmul" in (p.kind, c.kind):
            return False, "legal", "a reduction cannot run in a matmul epilogue (a tile holds only part of a row)", None
        x = self._path_between(p.id, c.id, dependents)
        if x is not None:
            return False, "legal", f"fusing would create a cycle through the kernel of {self.name(self.groups[x].nodes[0])}", None
        kind = "matmul" if "matmul" in (p.kind, c.kind) else (
            "reduction" if "reduction" in (p.kind, c.kind) else "pointwise")
        try:
            space = self.solve_space(kind, set(p.nodes) | set(c.nodes), [c.anchor, p.anchor],
                                     {**p.colsums, **c.colsums})
        except Illegal as e:
            return False, "legal", str(e), None
        ok, why = self._profitable(p, c, space, dependents)
        if not ok:
            return False, "profit", why, None
        return True, "", "", space

    def _edge(self, p: Group, c: Group) -> tuple[int, int]:
        pn = set(p.nodes)
        for n in c.nodes:
            for s in self.node_reads(n):
                if s in pn:
                    return s, n
        return p.nodes[-1], c.nodes[0]

    def _record(self, p: Group, c: Group, cat: str, reason: str):
        a, b = self._edge(p, c)
        self.why.append(WhyNoFuse(a, b, cat, reason))

    # ---- the passes ---------------------------------------------------------------------
    def _fuse_vertical(self):
        for gid in sorted(self.groups, key=lambda k: self.order[self.groups[k].nodes[0]]):
            if gid not in self.groups:
                continue
            while True:
                c = self.groups[gid]
                dependents = self._dependents()
                deps = sorted(self.deps(c), key=lambda k: -self.order[self.groups[k].nodes[-1]])
                merged = False
                for d in deps:
                    p = self.groups[d]
                    ok, cat, reason, space = self.can_fuse(p, c, dependents)
                    if ok:
                        kind = "matmul" if "matmul" in (p.kind, c.kind) else (
                            "reduction" if "reduction" in (p.kind, c.kind) else "pointwise")
                        self._merge(c, p, kind, space)
                        merged = True
                        break
                    self._record(p, c, cat, reason)
                if not merged:
                    break

    def _fuse_siblings(self):
        """Reductions over the same space with no path between them (loss and accuracy means)."""
        changed = True
        while changed:
            changed = False
            reds = sorted((g for g in self.groups.values() if g.kind == "reduction"),
                          key=lambda g: self.order[g.nodes[0]])
            dependents = self._dependents()
            for i, a in enumerate(reds):
                for b in reds[i + 1:]:
                    if (a.space.shape, a.space.raxes) != (b.space.shape, b.space.raxes):
                        continue
                    if (self._path_between(a.id, b.id, dependents) is not None or
                            self._path_between(b.id, a.id, dependents) is not None or
                            b.id in dependents[a.id] or a.id in dependents[b.id]):
                        continue
                    try:
                        space = self.solve_space("reduction", set(a.nodes) | set(b.nodes), [a.anchor])
                    except Illegal:
                        continue
                    self._merge(a, b, "reduction", space)
                    changed = True
                    break
                if changed:
                    break

    def _fuse_colsums(self):
        """sum(G, axis 0) where G is a matmul's K-major B operand (or sum(A, axis 1) of its A) is
        accumulated from the operand tiles the matmul loads anyway: the bias gradient rides along
        with the weight gradient. Done before vertical fusion so that the sum's consumers (the
        bias update) can then join the matmul's epilogue."""
        g = self.graph
        for mgrp in [x for x in self.groups.values() if x.kind == "matmul"]:
            mm = mgrp.nodes[0]
            mnode = g[mm]
            if len(mnode.shape) != 2 or mnode.dtype not in ("f32", "f64"):
                continue
            for pos in (0, 1):
                operand = mnode.inputs[pos]
                for u in self.users[operand]:
                    un = g[u]
                    grp = self.groups.get(self.owner.get(u, -1))
                    if grp is None or grp.kind != "reduction" or grp.nodes != [u] or un.op != "sum":
                        continue
                    if un.dtype != mnode.dtype or reduce_axes(un, 2) != ((0,) if pos == 1 else (1,)):
                        continue
                    dependents = self._dependents()
                    if (self._path_between(grp.id, mgrp.id, dependents) is not None
                            or self._path_between(mgrp.id, grp.id, dependents) is not None):
                        self.why.append(WhyNoFuse(u, mm, "legal", "the column sum and the matmul are "
                                                                  "connected through another kernel"))
                        continue
                    cs = {**mgrp.colsums, u: pos}
                    space = self.solve_space("matmul", set(mgrp.nodes) | {u}, [mgrp.anchor], cs)
                    mgrp.colsums = cs
                    self._merge(mgrp, grp, "matmul", space)

    def _fuse_horizontal(self):
        """Sink elementwise groups (the optimizer update of every parameter) -> one combo kernel."""
        dependents = self._dependents()
        sinks = sorted((x for x in self.groups.values() if x.kind == "pointwise" and not dependents[x.id]),
                       key=lambda x: self.order[x.nodes[0]])
        for start in range(0, len(sinks), MAX_COMBO_SEGMENTS):
            chunk = sinks[start:start + MAX_COMBO_SEGMENTS]
            if len(chunk) < 2:
                continue
            if start:
                self.why.append(WhyNoFuse(sinks[start - 1].nodes[-1], chunk[0].nodes[0], "profit",
                                          f"a combo kernel holds at most {MAX_COMBO_SEGMENTS} segments"))
            keep = chunk[0]
            seg_groups = [Group(x.id, "pointwise", list(x.nodes), x.anchor, x.space) for x in chunk]
            for other in chunk[1:]:
                keep.nodes = sorted(set(keep.nodes) | set(other.nodes), key=self.order.get)
                for n in other.nodes:
                    self.owner[n] = keep.id
                del self.groups[other.id]
            keep.kind = "combo"
            keep.segments = seg_groups

    def _attach_riders(self):
        """A lone scalar kernel that only stores a graph output computed from arguments (Adam's
        step counter) rides along at the end of the last kernel: program 0 stores it."""
        dependents = self._dependents()
        riders = [x for x in self.groups.values()
                  if x.kind == "pointwise" and not dependents[x.id] and not self.deps(x)
                  and all(static_numel(self.graph[n].shape) == 1 for n in x.nodes)]
        hosts = [x for x in self.groups.values() if x.kind != "fallback" and x not in riders]
        if not riders or not hosts:
            return
        host = max(hosts, key=lambda x: self.order[x.nodes[-1]])
        for r in riders:
            host.riders.extend(r.nodes)
            for n in r.nodes:
                self.owner[n] = host.id
            host.nodes = sorted(set(host.nodes) | set(r.nodes), key=self.order.get)
            del self.groups[r.id]

    # ---- final order, names, stores -------------------------------------------------------
    def _finalize(self) -> list[Group]:
        deps = {gid: self.deps(grp) for gid, grp in self.groups.items()}
        done: set[int] = set()
        out: list[Group] = []
        pending = sorted(self.groups, key=lambda k: self.order[self.groups[k].nodes[0]])
        while pending:
            for gid in pending:
                if deps[gid] <= done:
                    break
            else:
                raise RuntimeError("fusion produced a cycle")  # pragma: no cover - guarded by legality
            pending.remove(gid)
            done.add(gid)
            out.append(self.groups[gid])
        # who reads what
        readers: dict[int, set] = {}
        for grp in out:
            grp.reads = sorted({s for n in grp.nodes for s in self.node_reads(n)
                                if self.owner.get(s) != grp.id}, key=self.order.get)
            for s in grp.reads:
                readers.setdefault(s, set()).add(grp.id)
        self.output_bases = set()
        for o in self.output_ids:
            if o in self.output_views:
                self.output_bases.add(self.output_views[o].base)
            else:
                self.output_bases.add(o)
        for k, grp in enumerate(out):
            grp.index = k
            grp.stores = [n for n in grp.nodes if n in self.output_bases or readers.get(n, set()) - {grp.id}]
            grp.name = self._name(grp)
        return out

    def _name(self, grp: Group) -> str:
        g = self.graph
        ops = []
        for n in grp.nodes:
            op = g[n].op
            if op not in ops and op not in ("stop_gradient",):
                ops.append(op)
        if grp.kind == "fallback":
            return f"torch_{g[grp.nodes[0]].op}_{grp.index}"
        if grp.kind == "matmul":
            epi = [o for o in ops if o not in ("matmul", "sum")]
            parts = epi[:4] + (["colsum"] if grp.colsums else [])
            return "nnc_matmul_" + "_".join(parts + [str(grp.index)]) if parts else f"nnc_matmul_{grp.index}"
        if grp.kind == "reduction":
            reds = [o for o in ops if o in REDUCE_OPS]
            if {"max", "sum"} <= set(reds) and "exp" in ops:
                pattern = ["softmax"] + (["xent"] if "log" in ops else [])
                pattern += ["argmax"] if "argmax" in reds else []
                return "nnc_reduce_" + "_".join(pattern + [str(grp.index)])
            return "nnc_reduce_" + "_".join(reds + [o for o in ops if o not in reds][:2] + [str(grp.index)])
        if grp.kind == "combo":
            return f"nnc_pointwise_combo{len(grp.segments)}_" + "_".join(ops[:3] + [str(grp.index)])
        return "nnc_pointwise_" + "_".join(ops[:4] + [str(grp.index)])

    # ---- reporting ---------------------------------------------------------------------
    def name(self, nid: int) -> str:
        if not hasattr(self, "_names"):
            from ...passes.pipeline import value_names
            self._names = value_names(self.graph)
        return self._names[nid]

    def launches(self) -> int:
        return len(self.kernels)

    def describe(self) -> str:
        g = self.graph
        fb = sum(1 for k in self.kernels if k.kind == "fallback")
        lines = [f"graph {g.name}: {len(self.kernels)} kernels" + (f" ({fb} fallback: torch)" if fb else "")]
        for k in self.kernels:
            lines.append(f"  kernel {k.index}  {k.name}  [{self._kind_text(k)}]")
            for n in k.nodes:
                node = g[n]
                tag = " (column sum from the operand tiles)" if n in k.colsums else ""
                where = f"  {loc_text(node.loc)}" if node.loc else ""
                lines.append(f"    {self.name(n)} = {node.op}({', '.join(self.name(i) for i in node.inputs)})"
                             f" : {node.type}{tag}{where}")
            if k.reads:
                lines.append("    reads: " + ", ".join(self.name(s) for s in k.reads))
            if k.stores:
                lines.append("    writes: " + ", ".join(f"{self.name(s)} {g[s].type}" for s in k.stores))
            if k.note:
                lines.append(f"    {k.note}")
        if self.output_views:
            lines.append("  views (no kernel): " + ", ".join(
                f"{self.name(o)} = view of {self.name(v.base)}" for o, v in self.output_views.items()))
        where = {n: k for k in self.kernels for n in k.nodes}
        seen = set()
        notes = []
        for w in self.why:
            ka, kb = where.get(w.producer), where.get(w.consumer)
            if ka is None or kb is None or ka is kb:
                continue
            key = (ka.index, kb.index, w.reason)
            if key in seen:
                continue
            seen.add(key)
            notes.append(f"  {self.name(w.producer)} (kernel {ka.index}) -> {self.name(w.consumer)} "
                         f"(kernel {kb.index}): [{w.category}] {w.reason}")
        if notes:
            lines.append("  not fused:")
            lines.extend("  " + n for n in notes)
        return "\n".join(lines)

    def _kind_text(self, k: Group) -> str:
        g = self.graph
        if k.kind == "fallback":
            return k.note or "fallback: torch"
        if k.kind == "matmul":
            mm = next(n for n in k.nodes if g[n].op == "matmul")
            a, b = (g[i].shape for i in g[mm].inputs)
            epi = len([n for n in k.nodes if n != mm and n not in k.colsums])
            extra = f" + {epi}-op epilogue" if epi else ""
            extra += f" + {len(k.colsums)} column sum(s)" if k.colsums else ""
            return f"matmul {fmt_shape(g[mm].shape)} = {fmt_shape(a)} @ {fmt_shape(b)}{extra}"
        if k.kind == "reduction":
            s = k.space
            mode = "persistent" if s.persistent else "looped"
            return f"reduction over {fmt_shape(s.shape)} axes {list(s.raxes)}, {mode}"
        if k.kind == "combo":
            return "combo of " + ", ".join(fmt_shape(x.space.shape) for x in k.segments)
        return f"pointwise over {fmt_shape(k.space.shape)}"


def plan_graph(graph: Graph, fallback_ops=(), host_rng: bool = False) -> Plan:
    return Plan(graph, fallback_ops, host_rng)
