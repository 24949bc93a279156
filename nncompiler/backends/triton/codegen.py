"""Triton code generation: one readable `@triton.jit` kernel per planned group.

Every kernel follows a template from `kernels/` (pointwise, combo, persistent or
looped reduction, matmul, conv as an implicit GEMM in the matmul skeleton). The
generator fills in the index arithmetic of the iteration space and the loads of the buffers the kernel reads (address.py: movement
ops on them become index arithmetic, one rule per op in `address.MOVE_RULES`), one
line per IR op (an expression from the rule table `ops.TRITON_OPS`, a comment with
the op's printed name and its `.nn` position), and the stores of the values other kernels or the caller need (masked to
one representative when the value is smaller than the iteration space).

Symbolic dimensions are runtime int arguments (`s_B`), specialised by Triton's JIT
rules (divisible by 16, equal to 1), so kernels vectorise and a new batch size
recompiles only when those facts change. Block sizes, split-K, grouped order and TMA
loads are `constexpr` arguments chosen at launch (`tuning.py`).

This module assembles the module and each kind's template; the parts live beside it:
codegen_scope.py (a kernel's parameters and names), codegen_body.py (the lines of one
iteration space), codegen_matmul.py (the matmul template filled) and codegen_conv.py
(a convolution's implicit-GEMM loads in the same template).
"""
from __future__ import annotations

import re

from ...ir.graph import Graph
from ...ir.shapes import fmt_shape, numel, symbols
from ...sourcetext import loc_text, quote
from .codegen_body import Body
from .codegen_conv import conv_kernel
from .codegen_matmul import matmul_kernel
from .codegen_scope import MATMUL_BLOCKS, KernelScope, KernelSource
from .index import static_numel
from .ops import HELPERS
from .plan import Group, Plan


def templates():
    """The kernel template modules (`nncompiler.kernels`, the top-level kernels/ folder)."""
    from ...kernels import conv, matmul, pointwise, reduce
    return {"pointwise": pointwise, "reduce": reduce, "matmul": matmul, "conv": conv}


class ModuleGen:
    """Generates the Triton module of one planned graph."""

    def __init__(self, plan: Plan, source_name: str = "", precision: str = "fp32"):
        self.plan = plan
        self.precision = precision   # of float32 matmuls: precision.py, kernels/matmul.py's DOTS
        self.graph: Graph = plan.graph
        self.graph_order = [n.id for n in self.graph.nodes]
        self.source_name = source_name
        self.symbols = sorted({s for n in self.graph.nodes for s in symbols(n.shape)})
        self._nums: dict[int, str] = {}
        self.t = templates()
        self.kernels: list[KernelSource] = [self.kernel(k) for k in plan.kernels
                                            if k.kind not in ("fallback", "loop")]

    # -- naming ------------------------------------------------------------------------
    def num(self, nid: int) -> str:
        if nid not in self._nums:
            self._nums[nid] = re.sub(r"\W", "_", self.plan.name(nid).lstrip("%"))
        return self._nums[nid]

    def base_name(self, nid: int) -> str:
        s = self.num(nid)
        return ("t" + s) if s[:1].isdigit() else s

    def top_vars(self, kern: KernelScope) -> dict:
        return kern.top_vars

    def emit_top(self, kern: KernelScope, line: str):
        kern.top_lines.append(line)

    def top_text(self, kern: KernelScope, indent: int = 1) -> str:
        pad = "    " * indent
        return "\n".join(pad + x for x in kern.top_lines)

    # -- kernels -------------------------------------------------------------------------
    def header(self, k: Group) -> str:
        g = self.graph
        lines = [f"# kernel {k.index}: {self.plan._kind_text(k)}"]
        for nid in k.nodes:
            n = g[nid]
            where = f"  {loc_text(n.loc)}" if n.loc else ""
            lines.append(f"#   {self.plan.name(nid)} = {n.op}({', '.join(self.plan.name(i) for i in n.inputs)})"
                         f" : {n.type}{where}")
        return "\n".join("    " + x for x in lines)

    def decorator(self, kern: KernelScope) -> str:
        # Sizes are specialised as Triton's JIT does by default (a size divisible by 16 and a
        # 16-byte-aligned pointer get tt.divisibility=16, a size of 1 becomes a constant), so
        # loads and stores vectorise; a new batch size recompiles only when that changes.
        return "@triton.jit"

    def params_text(self, kern: KernelScope, blocks) -> str:
        ps = [p.name for p in kern.ordered_params()] + [f"{b}: tl.constexpr" for b in blocks]
        return ", ".join(ps)

    def _emit_body(self, body: Body, k: Group, nodes, stores):
        body.owned = set(k.nodes) - set(k.riders)
        for nid in nodes:
            body.emit_node(nid, stores)

    def kernel(self, k: Group) -> KernelSource:
        kern = KernelScope(self, k)
        stores = set(k.stores)
        t = self.t
        if k.kind == "pointwise":
            body = Body(kern, k.space, "pointwise")
            self._emit_body(body, k, k.space.closure, stores)
            self.riders(body, k)
            defs = body.index_defs()
            lines = defs.get("body", []) + body.sections["body"]
            text = t["pointwise"].POINTWISE.render(
                decorator="{decorator}", name=k.name, params="{params}", header=self.header(k),
                xnumel=kern.dim(numel(k.space.shape)),
                body="\n".join("    " + x for x in self.with_top(kern, lines)))
            blocks = ("XBLOCK",)
            grid = [("cdiv", numel(k.space.shape), "XBLOCK")]
            info = {"numel": numel(k.space.shape)}
        elif k.kind == "combo":
            segs = []
            ends = []
            blocks = ("XBLOCK",)
            for s, seg in enumerate(k.segments):
                body = Body(kern, seg.space, "pointwise", sfx=f"_s{s}", indent=2)
                self._emit_body(body, seg, seg.space.closure, stores & set(seg.nodes))
                defs = body.index_defs()
                lines = defs.get("body", []) + body.sections["body"]
                total = numel(seg.space.shape)
                start = "0" if s == 0 else ends[-1]
                end = kern.int_param(f"nb{s + 1}", ("end", s))
                ends.append(end)
                what = ", ".join(self.plan.name(x) for x in seg.nodes if x in stores) or "no stores"
                segs.append(t["pointwise"].COMBO_SEGMENT.render(
                    keyword="if" if s == 0 else "elif", end=end, first="pid" if start == "0" else f"(pid - {start})", k=s,
                    what=f"{fmt_shape(seg.space.shape)} -> {what}", sfx=f"_s{s}", xnumel=kern.dim(total),
                    body="\n".join("        " + x for x in lines)))
            rider_body = Body(kern, k.segments[0].space, "pointwise")
            self.riders(rider_body, k)
            riders = rider_body.sections["body"]
            text = t["pointwise"].COMBO.render(
                decorator="{decorator}", name=k.name, params="{params}", header=self.header(k),
                top="{top}", segments="\n".join(segs) + ("\n" + "\n".join("    " + x for x in riders) if riders else ""))
            text = text.replace("{top}", self.top_text(kern))
            grid = [("combo", [numel(s.space.shape) for s in k.segments], "XBLOCK")]
            info = {"numel": max((static_numel(s.space.shape) or 1 << 20) for s in k.segments)}
        elif k.kind == "reduction":
            body = Body(kern, k.space, "reduction")
            self._emit_body(body, k, k.space.closure, stores)
            self.riders(body, k, section="post" if body.mode == "looped" else "body")
            defs = body.index_defs()
            xnumel = kern.dim(k.space.xnumel())
            rnumel = kern.dim(k.space.rnumel())
            split_ok = False
            if body.mode == "looped":
                pre = self.with_top(kern, defs.get("pre", []) + body.sections["pre"])
                # split reductions: float32 sums and maxima only (the workspace is float32;
                # an argmax would need its index partials too)
                split_ok = bool(body.accs) and all(op in ("sum", "max") and dt == "f32"
                                                   for _, op, dt, _ in body.accs)
                sp_store, sp_init, sp_sum = [], [], []
                if split_ok:
                    kern.scratch("ws_ptr", "*fp32")
                    kern.scratch("lock_ptr", "*i32")
                for j, (acc, op, dt, ident) in enumerate(body.accs if split_ok else []):
                    at = f"{j} * XBLOCK * RBLOCK + r_xr"
                    sp_store.append(f"tl.store(ws_mine + {at}, {acc})")
                    sp_init.append(f"{acc} = tl.full([XBLOCK, RBLOCK], {ident}, tl.float32)")
                    part = f"tl.load(ws_s + {at}, mask=last_xr, other={ident}, cache_modifier=\".cg\")"
                    sp_sum.append(f"{acc} = {acc} + {part}" if op == "sum" else f"{acc} = tl.maximum({acc}, {part})")
                split = t["reduce"].SPLIT_FINISH.render(
                    naccs=len(sp_store),
                    split_store="\n".join("        " + x for x in sp_store),
                    split_init="\n".join("        " + x for x in sp_init),
                    split_sum="\n".join("            " + x for x in sp_sum)) if split_ok else ""
                text = t["reduce"].LOOPED.render(
                    decorator="{decorator}", name=k.name, params="{params}", header=self.header(k),
                    xnumel=xnumel, rnumel=rnumel, split=split.rstrip("\n"),
                    pre="\n".join("    " + x for x in pre),
                    loop="\n".join("        " + x for x in defs.get("loop", []) + body.sections["loop"]),
                    post="\n".join("    " + x for x in body.sections["post"]))
            else:
                lines = self.with_top(kern, defs.get("body", []) + body.sections["body"])
                text = t["reduce"].PERSISTENT.render(
                    decorator="{decorator}", name=k.name, params="{params}", header=self.header(k),
                    xnumel=xnumel, rnumel=rnumel, body="\n".join("    " + x for x in lines))
            if body.mode == "looped":
                blocks = ("XBLOCK", "RBLOCK", "SPLIT_R")
                grid = [("reduce", k.space.xnumel(), "XBLOCK")]
            else:
                blocks = ("XBLOCK", "RBLOCK")
                grid = [("cdiv", k.space.xnumel(), "XBLOCK")]
            info = {"xnumel": k.space.xnumel(), "rnumel": k.space.rnumel(), "persistent": body.mode != "looped",
                    "split_ok": split_ok, "accs": len(body.accs),
                    "rinner": max(k.space.raxes) == len(k.space.shape) - 1 if k.space.raxes else True}
        else:   # a tiled tl.dot kernel: a matmul, or a conv as an implicit GEMM
            gemm = conv_kernel if any(self.graph[n].op == "conv" for n in k.nodes) else matmul_kernel
            text, grid, info = gemm(self, kern, k, stores)
            blocks = MATMUL_BLOCKS
        text = text.replace("{decorator}", self.decorator(kern)).replace("{params}", self.params_text(kern, blocks))
        text = "\n".join(line.rstrip() for line in text.splitlines() if line.strip()) + "\n"
        return KernelSource(k.name, k.kind, k.index, text, kern.ordered_params(), blocks, grid, k, info,
                            set(kern.helpers))

    def with_top(self, kern, lines):
        return kern.top_lines + lines

    def riders(self, body: Body, k: Group, section: str = "body"):
        if not k.riders:
            return
        pid = "tl.program_id(0) == 0"      # every kind launches a 1-D grid
        for nid in k.riders:
            v = body.inline(nid)
            ptr = body.k.buffer(nid)
            body.emit(section, f"if {pid}:  # {self.plan.name(nid)} rides along: stored once")
            body.emit(section, f"    tl.store({ptr}, {v})")

    def module_text(self, title: str = "") -> str:
        helpers = sorted({h for k in self.kernels for h in k.helpers})
        head = [f'"""Triton kernels generated by nncompiler for graph {quote(self.graph.name)}'
                + (f" ({quote(title)})" if title else "") + ".",
                "",
                "One kernel per fused group of the plan (`nnc compile --emit kernels`); comments name the IR op",
                "(`--emit opt` numbering) and the .nn position each line computes.",
                '"""',
                "import triton",
                "import triton.language as tl",
                ""]
        parts = ["\n".join(head)]
        for h in helpers:
            parts.append(HELPERS[h].strip("\n") + "\n")
        for k in self.kernels:
            parts.append(k.text)
        return "\n\n".join(parts)


def generate(plan: Plan, title: str = "", precision: str = "fp32") -> tuple[str, list[KernelSource]]:
    gen = ModuleGen(plan, title, precision)
    return gen.module_text(title), gen.kernels
