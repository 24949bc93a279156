"""Fusion plan, step 3: launch order, what each kernel reads and stores, kernel names, and the
`--emit kernels` report (every kernel with its IR ops, and every refused fusion with its reason).

A mixin of `plan.Plan` (it reads `groups`, `why`, `output_views`, `output_ids`)."""
from __future__ import annotations

from ...ir.shapes import fmt_shape
from ...ir.text import value_names
from ...sourcetext import loc_text
from .plan_types import GEMM_OPS, REDUCE_OPS, WINDOW_OPS, Group


class Describe:
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
        if grp.kind == "loop":
            return f"loop_scan_{grp.index}"
        if grp.kind == "matmul":
            anchor = next(g[n].op for n in grp.nodes if g[n].op in GEMM_OPS and n not in grp.colsums)
            epi = [o for o in ops if o not in (anchor, "sum")]
            parts = epi[:4] + (["colsum"] if grp.colsums else [])
            return f"nnc_{anchor}_" + "_".join(parts + [str(grp.index)]) if parts else f"nnc_{anchor}_{grp.index}"
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
                if k.space is not None and n in k.space.tapped:
                    tag = " (recomputed at each tap of its window op)"
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
        if k.kind == "loop":
            a = g[k.nodes[0]].attr
            way = ", reverse" if a.get("reverse") else ""
            return f"scan over {a['length']} steps{way}: graph {a['body'].name}'s kernels once per step, a host loop"
        if k.kind == "matmul":
            mm = next(n for n in k.nodes if g[n].op in GEMM_OPS and n not in k.colsums)
            a, b = (g[i].shape for i in g[mm].inputs)
            epi = len([n for n in k.nodes if n != mm and n not in k.colsums])
            extra = f" + {epi}-op epilogue" if epi else ""
            extra += f" + {len(k.colsums)} column sum(s)" if k.colsums else ""
            if g[mm].op == "conv":
                ci = self.conv_inputs[mm]
                folded = f", {self.name(ci.pad)} folded into its loads" if ci.pad is not None else ""
                return (f"conv {fmt_shape(g[mm].shape)} = {fmt_shape(a)} (*) {fmt_shape(b)}, implicit GEMM "
                        f"(no im2col){folded}{extra}")
            return f"matmul {fmt_shape(g[mm].shape)} = {fmt_shape(a)} @ {fmt_shape(b)}{extra}"
        if k.kind == "reduction":
            s = k.space
            mode = "persistent" if s.persistent else "looped"
            return f"reduction over {fmt_shape(s.shape)} axes {list(s.raxes)}, {mode}"
        if k.kind == "combo":
            return "combo of " + ", ".join(fmt_shape(x.space.shape) for x in k.segments)
        wins = [g[n].op for n in k.nodes if g[n].op in WINDOW_OPS]
        taps = f", {' and '.join(wins)}: window taps unrolled" if wins else ""
        return f"pointwise over {fmt_shape(k.space.shape)}{taps}"
