"""Fusion plan, legality: the common iteration space of a set of nodes, or `Illegal` with the reason.

The space check is a union-find: every (node, axis) of size != 1 is an element; broadcasting,
transposes, squeeze-like reshapes and reductions unite elements; a legal kernel maps every
class onto exactly one dimension of its anchor shape. A mixin of `plan.Plan` (it reads
`graph`, `cls`, `copies`, `order` and calls `name`)."""
from __future__ import annotations

from ...ir.primitives import ELEMENTWISE_KINDS
from ...ir.shapes import canon_dim, fmt_shape
from .index import UnionFind, reduce_axes, right_align, squeeze_like, squeeze_pairs, static_numel
from .plan_types import GEMM_OPS, MAX_PERSISTENT_R, PREFER_PERSISTENT_R, REDUCE_OPS, WINDOW_OPS, Illegal, Space


class IterationSpace:
    # ---- legality ----------------------------------------------------------------------
    def _closure(self, owned: set) -> list[int]:
        seen = set(owned)
        stack = [n for n in owned if self.graph[n].op not in GEMM_OPS]   # operands: loaded by the template
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
        tapped = self._tapped(owned) if kind == "pointwise" else set()
        body -= tapped
        # movement nodes whose input is computed in this kernel (dim-map ops) vs loads
        internal: set[int] = set()
        for n in closure:
            node = g[n]
            if node.prim.kind == "movement" and (n not in owned or n in self.copies):
                if any((i in owned and g[i].prim.kind != "movement" and i not in tapped) or i in internal
                       for i in node.inputs):
                    internal.add(n)
        computed = {n for n in closure if (n in owned or n in internal) and n not in tapped}
        for n in sorted(tapped):
            for i in g[n].inputs:
                if i in computed:
                    raise Illegal(f"{self.name(n)} is recomputed at every tap of a window, but reads "
                                  f"{self.name(i)}, computed at the kernel's own index")
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
            elif node.op in WINDOW_OPS:
                self._window_legal(n, kind, computed)
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
            mm = [n for n in body if g[n].op in GEMM_OPS]
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
            self._anchor_parts(uf, el, computed, D)
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
            self._anchor_parts(uf2, el, computed, D)
            try:
                return self._check(uf2, closure, computed, D, (), internal, kind, tapped)
            except Illegal as e:
                last = e
        raise last or Illegal("no common iteration space")

    def _tapped(self, owned: set) -> set:
        """The prologue of the window ops in `owned`: elementwise nodes that only those window ops
        (as operands) and each other read, recomputed at every tap from their own loads (relu
        before a pool, the relu mask on max pooling's cotangent) instead of stored and reloaded.
        Anything else in the kernel, or another kernel, or the caller, reading one keeps it out."""
        g = self.graph
        if not any(g[n].op in WINDOW_OPS for n in owned):
            return set()
        outs = set(self.output_ids)
        cand = {n for n in owned if g[n].prim.kind in ELEMENTWISE_KINDS and n not in outs and self.cls[n] == "compute"}

        def at_taps(u) -> bool:    # u reads its operands only at a window's taps
            if u in cand or (u in owned and g[u].op in WINDOW_OPS):
                return True        # (a movement op between: index arithmetic on the way, avg pool's pad)
            return (self.cls[u] == "move" and u not in outs and bool(self.users[u])
                    and all(at_taps(v) for v in self.users[u]))
        changed = True
        while changed:
            changed = False
            for n in sorted(cand):
                if not self.users[n] or not all(at_taps(u) for u in self.users[n]):
                    cand.discard(n)
                    changed = True
        return cand

    def _window_legal(self, n: int, kind: str, computed: set):
        """A window op is an element of a pointwise kernel over its output whose operands are
        loads: it reads them at every tap of its window, not at the kernel's own index."""
        node = self.graph[n]
        if kind != "pointwise":
            raise Illegal(f"{self.name(n)} = {node.op} runs in an elementwise kernel over its output, "
                          f"not in a {kind} kernel")
        for i in node.inputs:
            if i in computed:
                raise Illegal(f"{self.name(n)} = {node.op} reads {self.name(i)} at every tap of its window, "
                              f"so {self.name(i)} must be in memory, not computed in the same kernel")

    @staticmethod
    def _anchor(uf, el, node_id, D):
        for j, d in enumerate(D):
            if d != 1:
                uf.union(el(node_id, j), ("D", j))

    def _anchor_parts(self, uf, el, computed: set, D: tuple):
        """Anchor every part of the kernel that no dataflow edge ties to the anchor already.

        Sibling groups merged into one kernel (plan_fuse._fuse_siblings: two pointwise groups
        over [B, 16] that read the same cotangent) are separate components of the in-kernel
        dataflow, so uniting along edges alone leaves the second one's axes in classes with no
        loop dimension, and `_check` would refuse it as varying "along an axis of size B that is
        not in the iteration space [B, 16]" -- whatever the sizes, symbolic or not. Such a part
        lives in the same space when one of its nodes has exactly the shape D (sizes compared
        canonically, so the symbol B equals B, and B never equals C): that node's axes are D's.
        A part with no such node stays unanchored and `_check` says which axis is foreign."""
        g = self.graph
        comp = UnionFind()
        for n in computed:
            comp.find(n)
            for i in g[n].inputs:
                if i in computed:
                    comp.union(n, i)
        droots = {uf.find(("D", j)) for j, d in enumerate(D) if d != 1}
        for part in comp.classes().values():
            elems = [el(n, j) for n in part for j, d in enumerate(g[n].shape) if d != 1]
            if not elems or any(uf.find(e) in droots for e in elems):
                continue
            node = next((n for n in sorted(part, key=self.order.get)
                         if tuple(canon_dim(d) for d in g[n].shape) == D), None)
            if node is not None:
                self._anchor(uf, el, node, D)

    def _check(self, uf, closure, computed, D, raxes, internal, kind, tapped=frozenset()) -> Space:
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
        space = Space(tuple(D), tuple(raxes), closure=list(closure), internal=set(internal), tapped=set(tapped))
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
