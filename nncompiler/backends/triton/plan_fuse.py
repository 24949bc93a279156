"""Fusion plan, step 2: one group per compute node, then the merges -- column sums into their
matmul, producers into consumers (vertical), siblings (reductions; pointwise groups sharing a
read), sink elementwise groups into one combo kernel, lone scalar stores as riders -- each
merge asked of `can_fuse` (legality, then profitability) and every refusal recorded as a
`WhyNoFuse`.

A mixin of `plan.Plan`: it keeps `groups`, `owner` and the group dependency graph."""
from __future__ import annotations

from ...ir.shapes import canon_dim, dim_div, fmt_shape, numel
from .index import reduce_axes, static_numel
from .plan_types import GEMM_OPS, MAX_COMBO_SEGMENTS, REDUCE_OPS, Group, Illegal, Space, WhyNoFuse


class Fuse:
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
            if not owned or n.id in self.owner:     # a scan_out: owned by its scan's loop group
                continue
            if n.op == "scan":      # a host loop over the body's own kernels (runtime: scan_runner.py)
                users = [u for u in self.users[n.id] if self.graph[u].op == "scan_out"]
                self._new_group("loop", [n.id] + users)
                continue
            if self.is_fallback(n.id):
                kind = "fallback"
            elif n.op in GEMM_OPS:       # a conv is an implicit GEMM (plan_conv.py)
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
        if "loop" in (p.kind, c.kind):
            return False, "legal", "a scan runs its body's own kernels once per step", None
        if c.kind == "matmul":
            mm = next(n for n in c.nodes if self.graph[n].op in GEMM_OPS)
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
        """Groups over one iteration space with no path between them: sibling reductions (loss
        and accuracy means), and pointwise groups that read a common buffer, with each other or
        with such a reduction (an LSTM's backward step: the gate gradients that read the same
        cotangent). One kernel instead of two, and the shared buffer loaded once."""
        refused: dict = {}          # (group, group) -> WhyNoFuse, the last word on each pair
        changed = True
        while changed:
            changed = False
            cands = sorted((g for g in self.groups.values() if g.kind in ("reduction", "pointwise")),
                           key=lambda g: self.order[g.nodes[0]])
            dependents = self._dependents()
            reads = {g.id: self._group_reads(g) for g in cands}
            for i, a in enumerate(cands):
                for b in cands[i + 1:]:
                    kind = self._sibling_kind(a, b, reads)
                    if kind is None:
                        continue
                    if (self._path_between(a.id, b.id, dependents) is not None or
                            self._path_between(b.id, a.id, dependents) is not None or
                            b.id in dependents[a.id] or a.id in dependents[b.id]):
                        continue
                    anchors = [x.anchor for x in (a, b) if x.kind == kind]
                    try:
                        space = self.solve_space(kind, set(a.nodes) | set(b.nodes), anchors)
                    except Illegal as e:
                        if "pointwise" in (a.kind, b.kind):
                            refused[(a.id, b.id)] = WhyNoFuse(a.nodes[-1], b.nodes[0], "legal", f"siblings: {e}")
                        continue
                    keep, other = (a, b) if a.kind == kind else (b, a)
                    self._merge(keep, other, kind, space)
                    changed = True
                    break
                if changed:
                    break
        self.why.extend(w for (a, b), w in refused.items() if a in self.groups and b in self.groups)

    def _sibling_kind(self, a: Group, b: Group, reads: dict) -> str | None:
        """The kind of the kernel two sibling candidates would share, or None if they are not
        candidates: the same iteration space (sizes compared canonically: the symbol B is B),
        and for a pointwise group a buffer that both read."""
        sa, sb = a.space, b.space
        if sa is None or sb is None:
            return None
        if tuple(canon_dim(d) for d in sa.shape) != tuple(canon_dim(d) for d in sb.shape):
            return None
        if a.kind == b.kind == "reduction":
            return "reduction" if sa.raxes == sb.raxes else None
        if not (reads[a.id] & reads[b.id]):
            return None
        return "reduction" if "reduction" in (a.kind, b.kind) else "pointwise"

    def _group_reads(self, grp: Group) -> set:
        own = set(grp.nodes)
        return {s for n in grp.nodes for s in self.node_reads(n)} - own

    def _fuse_colsums(self):
        """sum(G, axis 0) where G is a matmul's K-major B operand (or sum(A, axis 1) of its A) is
        accumulated from the operand tiles the matmul loads anyway: the bias gradient rides along
        with the weight gradient. Done before vertical fusion so that the sum's consumers (the
        bias update) can then join the matmul's epilogue. A conv's kernel gradient takes its
        bias gradient the same way: its B operand is the cotangent itself, transposed
        (plan_conv.colsum_operand)."""
        g = self.graph
        for mgrp in [x for x in self.groups.values() if x.kind == "matmul"]:
            mm = mgrp.nodes[0]
            mnode = g[mm]
            if mnode.dtype not in ("f32", "f64"):
                continue
            if mnode.op == "matmul" and len(mnode.shape) == 2:   # (position, operand, the sum's axes)
                sums = [(1, mnode.inputs[1], (0,)), (0, mnode.inputs[0], (1,))]
            elif mnode.op == "conv" and self.colsum_operand(mm) is not None:
                base = self.colsum_operand(mm)
                sums = [(1, base, tuple(range(len(g[base].shape) - 1)))]
            else:
                continue
            for pos, operand, axes in sums:
                for u in self.users[operand]:
                    un = g[u]
                    grp = self.groups.get(self.owner.get(u, -1))
                    if grp is None or grp.kind != "reduction" or grp.nodes != [u] or un.op != "sum":
                        continue
                    if un.dtype != mnode.dtype or reduce_axes(un, len(g[operand].shape)) != axes:
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
        hosts = [x for x in self.groups.values() if x.kind not in ("fallback", "loop") and x not in riders]
        if not riders or not hosts:
            return
        host = max(hosts, key=lambda x: self.order[x.nodes[-1]])
        for r in riders:
            host.riders.extend(r.nodes)
            for n in r.nodes:
                self.owner[n] = host.id
            host.nodes = sorted(set(host.nodes) | set(r.nodes), key=self.order.get)
            del self.groups[r.id]
