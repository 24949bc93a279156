"""Fusion plan, step 1: classify every node (arg, constbuf, inline, move, compute), decide which
values must be buffers (matmul, fallback and looped scan operands, graph outputs), and say which buffers
a node reads through the movement and inline nodes between them (`sources`, `node_reads`).

A mixin of `plan.Plan`: it reads `graph`, `cls`, `fallback_ops`, `host_rng`, `copies`,
`inline_stored`, `output_views`, `operand_views`, `output_ids`, `groups` and the memo dicts."""
from __future__ import annotations

from ...ir.primitives import ELEMENTWISE_KINDS
from .index import View, contiguous_strides, static_numel, view_through
from .ops import TORCH_FALLBACK
from .plan_types import GEMM_OPS


class Classify:
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
            elif op in TORCH_FALLBACK:
                c = "compute"     # scatter_add: not a load; runs as a torch op (see is_fallback)
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
        return (n.op in self.fallback_ops or host_rng or n.op in TORCH_FALLBACK
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

    def _buffer_operand(self, nid: int, pos: int, operand: int, dense: bool = False):
        """A matmul / fallback operand must be a strided view of a buffer, a looped scan's a
        dense buffer (`dense`: the runtime addresses step t of a sequence as one contiguous
        block, loops.py): materialize it if not."""
        v = self.view_of(operand)
        if v is None or dense and not v.contiguous:
            if self.cls[operand] == "inline":
                self.inline_stored.add(operand)
            else:
                self.copies.add(operand)
                self.cls[operand] = "compute"
            v = self.view_of(operand)
        self.operand_views[(nid, pos)] = v

    def _need_buffers(self):
        for n in self.graph.nodes:
            if self.cls[n.id] == "compute" and n.op == "conv" and not self.is_fallback(n.id):
                self._conv_operands(n)      # plan_conv.py: the input may be a folded pad
            elif self.cls[n.id] == "compute" and (n.op == "matmul" or self.is_fallback(n.id)):
                for pos, i in enumerate(n.inputs):
                    self._buffer_operand(n.id, pos, i)
            elif n.op == "scan":
                for pos, i in enumerate(n.inputs):
                    self._buffer_operand(n.id, pos, i, dense=True)
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
        if n.op in GEMM_OPS or n.op == "scan" or self.is_fallback(nid):
            out = frozenset(self.operand_views[(nid, p)].base for p in range(len(n.inputs)))
        elif any(nid in grp.colsums for grp in self.groups.values() if grp.kind == "matmul"):
            out = frozenset()
        else:
            out = frozenset(s for i in n.inputs for s in self.sources(i))
        self._reads_memo[nid] = out
        return out
