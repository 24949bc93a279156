"""Triton code generation: one readable `@triton.jit` kernel per planned group.

Every kernel follows a template from `kernels/` (pointwise, combo, persistent or
looped reduction, matmul). The generator fills in the index arithmetic of the
iteration space and the loads of the buffers the kernel reads (address.py: movement
ops on them become index arithmetic, one rule per op in `address.MOVE_RULES`), one
line per IR op (an expression from the rule table `ops.TRITON_OPS`, a comment with
the op's printed name and its `.nn` position), and the stores of the values other kernels or the caller need (masked to
one representative when the value is smaller than the iteration space).

Symbolic dimensions are runtime int arguments (`s_B`), specialised by Triton's JIT
rules (divisible by 16, equal to 1), so kernels vectorise and a new batch size
recompiles only when those facts change. Block sizes, split-K and grouped order are
`constexpr` arguments chosen at launch (`tuning.py`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...ir.graph import Graph
from ...ir.primitives import ELEMENTWISE_KINDS, PRIMITIVES
from ...ir.shapes import Monomial, fmt_shape, numel, symbols
from ...sourcetext import loc_text, quote
from . import tma
from .address import Addressing
from .index import add_terms, dim_expr, mul_expr, right_align, size_arg, static_numel
from .ops import HELPERS, SIGNATURE, TL_DTYPE, TRITON_OPS, literal, lowest, zero
from .plan import REDUCE_OPS, Group, Plan

# a matmul's constexprs (tuning.choose fills them): tile, split-K factor, grouped-order width
# and whether qualifying operands load through TMA descriptors (tma.py)
MATMUL_BLOCKS = ("BLOCK_M", "BLOCK_N", "BLOCK_K", "SPLIT_K", "GROUP_M", "TMA")
# constexprs a config may leave out (a pinned config from before TMA existed)
BLOCK_DEFAULTS = {"TMA": 0}


def templates():
    """The kernel template modules (`nncompiler.kernels`, the top-level kernels/ folder)."""
    from ...kernels import matmul, pointwise, reduce
    return {"pointwise": pointwise, "reduce": reduce, "matmul": matmul}


@dataclass
class Param:
    name: str
    kind: str        # buf | size | int
    ref: object      # node id | symbol | ("end", k)
    sig: str


@dataclass
class KernelSource:
    name: str
    kind: str
    index: int
    text: str
    params: list
    blocks: tuple                 # constexpr parameter names
    grid: list                    # recipe, see runtime.grid_of
    group: Group
    info: dict = field(default_factory=dict)   # shape facts the tuner uses
    helpers: set = field(default_factory=set)

    @property
    def signature(self) -> dict:
        sig = {p.name: p.sig for p in self.params}
        sig.update({b: "constexpr" for b in self.blocks})
        return sig


# names the templates use; a model's argument called `a` or `tl` must not shadow them
RESERVED = set("""tl triton pid pid_m pid_n pid_b rm rn rk kk k0 a b acc M N K xnumel rnumel xoffset xindex
xmask rindex rmask rbase roffset i_m i_n mmask nnmask nmask a_base b_base XBLOCK RBLOCK BLOCK_M BLOCK_N BLOCK_K
SPLIT_K GROUP_M pid_k tile tiles_m tiles_n group first_m group_m kblocks kb last tile_id WS ws_tile ws_mine r_mn
s ws_s theirs done ws_ptr lock_ptr float int range min max
SPLIT_R pid_r pid_x rblocks rb ws_rows r_xr last_xr TMA a_desc b_desc""".split())


class _Kernel:
    """Parameters, helpers and naming shared by all bodies (segments) of one kernel."""

    def __init__(self, gen: "ModuleGen", group: Group):
        self.gen = gen
        self.group = group
        self.params: list[Param] = []
        self._by_ref: dict = {}
        self.helpers: set[str] = set()
        self.taken: set[str] = set(RESERVED) | {size_arg(sym) for sym in gen.symbols}
        self.top_vars: dict = {}          # scalars computed once at the top of the kernel
        self.top_lines: list[str] = []

    def _unique(self, base: str, ours: bool = False) -> str:
        name = base
        if not ours and re.fullmatch(r"(v|i|acc|cat|idx|colsum|xmask|xindex|xnumel)\d.*|nb\d+|_.*", name) or name in HELPERS:
            name = "a_" + name                       # our own variable families
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        return name

    def buffer(self, nid: int) -> str:
        key = ("buf", nid)
        if key not in self._by_ref:
            name = self._unique(self.gen.base_name(nid) + "_ptr")
            self._by_ref[key] = name
            self.params.append(Param(name, "buf", nid, SIGNATURE[self.gen.graph[nid].dtype]))
        return self._by_ref[key]

    def size(self, sym: str) -> str:
        key = ("size", sym)
        if key not in self._by_ref:
            name = size_arg(sym)
            self.taken.add(name)
            self._by_ref[key] = name
            self.params.append(Param(name, "size", sym, "i32"))
        return self._by_ref[key]

    def scratch(self, name: str, sig: str) -> str:
        """A runtime-owned scratch buffer (split-K partials and tile counters), not a graph value."""
        key = ("scratch", name)
        if key not in self._by_ref:
            self._by_ref[key] = name
            self.params.append(Param(name, "scratch", name, sig))
        return self._by_ref[key]

    def int_param(self, name: str, ref) -> str:
        key = ("int", ref)
        if key not in self._by_ref:
            self.taken.add(name)
            self._by_ref[key] = name
            self.params.append(Param(name, "int", ref, "i32"))
        return self._by_ref[key]

    def dim(self, d) -> str:
        """A dimension as an expression, registering the size arguments it needs."""
        for s in Monomial.parse(d).syms:
            self.size(s)
        return dim_expr(d)

    def ordered_params(self) -> list[Param]:
        bufs = [p for p in self.params if p.kind == "buf"]
        reads = set(self.group.reads)
        order = {n: k for k, n in enumerate(self.gen.graph_order)}
        ins = sorted((p for p in bufs if p.ref in reads or p.ref not in self.group.stores),
                     key=lambda p: order[p.ref])
        outs = sorted((p for p in bufs if p not in ins), key=lambda p: order[p.ref])
        scratch = [p for p in self.params if p.kind == "scratch"]
        sizes = [p for p in self.params if p.kind == "size"]
        ints = [p for p in self.params if p.kind == "int"]
        return ins + outs + scratch + sizes + ints


class _Body(Addressing):
    """The lines of one iteration space: index variables, loads, one line per op, stores."""

    def __init__(self, kern: _Kernel, space, kind: str, sfx: str = "", indent: int = 1):
        self.k = kern
        self.gen = kern.gen
        self.g = kern.gen.graph
        self.plan = kern.gen.plan
        self.space = space
        self.kind = kind              # pointwise | reduction | matmul
        self.sfx = sfx
        self.indent = indent
        self.sections: dict[str, list[str]] = {"top": [], "pre": [], "loop": [], "post": [], "body": []}
        self.vars: dict[int, str] = {}
        self.loads: dict = {}
        self.used_dims: set[int] = set()
        self.zeros_used: set[str] = set()
        self.mode = "body"
        self.extra_text: list[str] = []     # template text outside the sections that uses index variables
        self.owned: set = set()
        self.accs: list = []          # looped reductions' accumulators: (name, op, dtype, identity)
        if kind == "reduction" and not space.persistent:
            self.mode = "looped"

    # -- emission ---------------------------------------------------------------------
    def emit(self, section: str, line: str):
        self.sections[section].append(line)

    def section_for(self, level: str, after: bool) -> str:
        if self.mode != "looped":
            return "body"
        if level == "xr":
            return "loop"
        return "post" if after else "pre"

    def load_section(self, groups) -> str:
        if self.mode != "looped":
            return "body"
        return "loop" if "r" in groups else "pre"

    def comment(self, nid: int) -> str:
        n = self.g[nid]
        where = f"  {loc_text(n.loc)}" if n.loc else ""
        return f"  # {self.plan.name(nid)} {n.op}{where}"

    def inline(self, nid: int) -> str:
        """A scalar computed from scalars: emitted once at the top of the kernel."""
        if nid in self.vars:
            return self.vars[nid]
        top = self.gen.top_vars(self.k)
        if nid in top:
            self.vars[nid] = top[nid]
            return top[nid]
        n = self.g[nid]
        var = f"v{self.gen.num(nid)}"
        if n.op == "const":
            value = n.attr["value"]
            while isinstance(value, tuple):
                value = value[0]
            expr = f"tl.full([], {literal(value, n.dtype)}, {TL_DTYPE[n.dtype]})"
        elif n.op == "size":
            dims = [self.g[n.inputs[0]].shape[a] for a in self.plan_axes(n)]
            total = numel(dims)
            if isinstance(total, int):
                expr = f"tl.full([], {literal(total, n.dtype)}, {TL_DTYPE[n.dtype]})"
            else:
                expr = f"({self.k.dim(total)}).to({TL_DTYPE[n.dtype]})"
        elif self.plan.cls[nid] in ("arg", "constbuf") or nid in self.plan.copies:
            return self.scalar_load(nid)
        elif n.prim.kind == "movement":
            src = n.inputs[0]
            val = self.inline(src) if self.plan.cls[src] == "inline" else self.scalar_load(src)
            self.vars[nid] = val
            top[nid] = val
            return val
        else:
            args = [self.inline(i) if self.plan.cls[i] == "inline" else self.scalar_load(i) for i in n.inputs]
            expr = TRITON_OPS[n.op](n, args, self)
        self.gen.emit_top(self.k, f"{var} = {expr}" + self.comment(nid))
        self.vars[nid] = var
        top[nid] = var
        return var

    def scalar_load(self, nid: int) -> str:
        top = self.gen.top_vars(self.k)
        if nid not in top:
            var = self.k._unique(self.gen.base_name(nid))
            self.gen.emit_top(self.k, f"{var} = tl.load({self.k.buffer(nid)})  # {self.plan.name(nid)}")
            top[nid] = var
        return top[nid]

    def plan_axes(self, n):
        from ...ir.primitives import norm_axes
        return norm_axes(n.attr["axes"], len(self.g[n.inputs[0]].shape))

    # the ctx interface of ops.TRITON_OPS
    def dtype(self, nid: int) -> str:
        return self.g[nid].dtype

    def helper(self, name: str):
        self.k.helpers.add(name)

    def const_value(self, nid: int):
        n = self.g[nid]
        while n.prim.kind == "movement" and self.plan.cls[n.id] == "inline":
            n = self.g[n.inputs[0]]
        if n.op != "const":
            return None
        v = n.attr["value"]
        while isinstance(v, tuple):
            v = v[0] if v else None
        return float(v) if v is not None else None

    # -- operands ----------------------------------------------------------------------
    def operand(self, nid: int, k: int) -> str:
        i = self.g[nid].inputs[k]
        if i in self.vars:
            return self.vars[i]
        if self.plan.cls[i] == "inline":
            return self.inline(i)
        return self.load(i, self.operand_idx(nid, k))

    # -- stores -------------------------------------------------------------------------
    def store(self, nid: int, value: str, level: str, section: str):
        n = self.g[nid]
        dm = self.space.dmap[nid]
        idx = [self.dvar(d) for d in dm]
        off = self.linear(idx, n.shape)
        if self.kind == "matmul":
            required = ["m", "n"]
            enumerated = list(range(len(self.space.shape)))
        elif self.kind == "pointwise":
            required = ["x"]
            enumerated = list(range(len(self.space.shape)))
        elif level == "xr":
            required = ["x", "r"]
            enumerated = list(range(len(self.space.shape)))
        else:
            required = ["x"]
            enumerated = self.space.kept
        terms = [off.expr] if off.expr != "0" else []
        for grp in required:
            if grp not in off.groups:
                terms.append(self.zero_tile(grp))
        masks = [self.mask_name(g) for g in required if self.mask_name(g)]
        mapped = {d for d in dm if d is not None}
        for d in enumerated:
            if d not in mapped and self.space.shape[d] != 1:
                masks.append(f"({self.dvar(d).expr} == 0)")
        ptr = self.k.buffer(nid)
        self.emit(section, f"tl.store({ptr} + {' + '.join(terms)}, {value}, mask={' & '.join(masks)})"
                           f"  # {self.plan.name(nid)} {n.type}")

    # -- one node ------------------------------------------------------------------------
    def emit_node(self, nid: int, stores: set):
        n = self.g[nid]
        sp = self.space
        if self.plan.cls[nid] == "inline":
            if nid in self.owned and nid in stores:      # a scalar output this kernel must write
                self.store(nid, self.inline(nid), sp.level.get(nid, "x"), self.section_for("x", False))
            return
        if nid in sp.internal:
            self.vars[nid] = self.vars.get(n.inputs[0]) or self.operand_passthrough(n.inputs[0])
            if nid in stores:
                self.store(nid, self.vars[nid], sp.level.get(nid, "x"), self.section_for(sp.level.get(nid, "x"),
                                                                                      nid in sp.after))
            return
        if n.prim.kind == "movement" and nid not in self.plan.copies:
            return                                  # read through by its consumers
        level = sp.level.get(nid, "x")
        section = self.section_for(level, nid in sp.after)
        var = f"v{self.gen.num(nid)}"
        if n.prim.kind in ELEMENTWISE_KINDS:
            args = [self.operand(nid, k) for k in range(len(n.inputs))]
            expr = TRITON_OPS[n.op](n, args, self)
        elif n.prim.kind == "movement":            # a copy kernel's own movement op: a load through it
            value = self.through(nid, [self.dvar(d) for d in sp.dmap[nid]], ())
            self.vars[nid] = value
            if nid in stores:
                self.store(nid, value, level, section)
            return
        elif n.op == "iota":
            d = sp.dmap[nid][n.attr["axis"] % len(n.shape)]
            expr = f"{self.dvar(d).expr}.to({TL_DTYPE[n.dtype]})" if d is not None else \
                f"tl.full([], 0, {TL_DTYPE[n.dtype]})"
            if d is not None and n.dtype == "i32":
                expr = self.dvar(d).expr
        elif n.op == "rng_uniform":
            key = self.operand_scalar(n.inputs[0])
            lin = self.linear([self.dvar(d) for d in sp.dmap[nid]], n.shape)
            seed = (int(n.attr["seed"]) * 2654435761) & 0x7FFFFFFF
            off = lin.expr if lin.groups else f"{lin.expr} + {self.zero_tile('x')}"
            expr = f"tl.rand({key} ^ {seed}, ({off}).to(tl.int32))"
            if n.dtype != "f32":
                expr = f"{expr}.to({TL_DTYPE[n.dtype]})"
        elif n.op in REDUCE_OPS:
            expr = self.reduction(nid, var)
            if expr is None:
                if nid in stores:
                    self.store(nid, var, "x", section)
                return
        else:
            raise NotImplementedError(n.op)
        self.emit(section, f"{var} = {expr}" + self.comment(nid))
        self.vars[nid] = var
        if nid in stores:
            self.store(nid, var, level, section)

    def operand_passthrough(self, i: int) -> str:
        if self.plan.cls[i] == "inline":
            return self.inline(i)
        return self.vars[i]

    def operand_scalar(self, i: int) -> str:
        return self.inline(i) if self.plan.cls[i] == "inline" else self.scalar_load(i)

    def reduction(self, nid: int, var: str) -> str | None:
        n = self.g[nid]
        src = n.inputs[0]
        D = self.space.shape
        if src in self.vars:
            inp = self.vars[src]
        elif self.plan.cls[src] == "inline":
            inp = self.inline(src)
        else:
            inp = self.load(src, self.identity_idx(D))
        dt = self.g[src].dtype
        op = n.op
        if op == "sum" and dt == "bool":
            op, inp = "max", f"{inp}.to(tl.int32)"
            dt = "i32"
        ident = zero(dt) if PRIMITIVES[op].identity == "zero" else lowest(dt)   # argmax: lowest too
        mask = "xmask & rmask"
        cast = f".to({TL_DTYPE[n.dtype]})" if n.dtype != dt and op != "argmax" else ""
        if n.dtype == "bool" and n.op == "sum":
            cast = " != 0"
        if self.mode != "looped":
            masked = f"tl.where({mask}, {inp}, {ident})"
            fn = {"sum": "tl.sum", "max": "tl.max", "argmax": "tl.argmax"}[op]
            return f"{fn}({masked}, 1)[:, None]{cast}"
        acc = f"acc{self.gen.num(nid)}"
        tdt = TL_DTYPE[dt]
        self.emit("pre", f"{acc} = tl.full([XBLOCK, RBLOCK], {ident}, {tdt})")
        self.accs.append((acc, op, dt, ident))
        if op == "sum":
            self.emit("loop", f"{acc} = {acc} + tl.where({mask}, {inp}, {ident})" + self.comment(nid))
            self.emit("post", f"{var} = tl.sum({acc}, 1)[:, None]{cast}" + self.comment(nid))
        elif op == "max":
            self.emit("loop", f"{acc} = tl.maximum({acc}, tl.where({mask}, {inp}, {ident}))" + self.comment(nid))
            self.emit("post", f"{var} = tl.max({acc}, 1)[:, None]{cast}" + self.comment(nid))
        else:
            self.emit("pre", f"{acc}_i = tl.full([XBLOCK, RBLOCK], 0, tl.int32)")
            self.emit("loop", f"{acc}_new = tl.where({mask}, {inp}, {ident})")
            self.emit("loop", f"{acc}_i = tl.where({acc}_new > {acc}, rindex + {self.zero_tile('x')}, {acc}_i)")
            self.emit("loop", f"{acc} = tl.maximum({acc}, {acc}_new)" + self.comment(nid))
            self.emit("post", f"{acc}_m = tl.max({acc}, 1)[:, None]")
            self.emit("post", f"{var} = tl.min(tl.where({acc} == {acc}_m, {acc}_i, 2147483647), 1)[:, None]"
                      + self.comment(nid))
        self.vars[nid] = var
        return None

    def render(self, section: str, indent: int) -> str:
        pad = "    " * indent
        return "\n".join(pad + line for line in self.sections[section])


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
        self.kernels: list[KernelSource] = [self.kernel(k) for k in plan.kernels if k.kind != "fallback"]

    # -- naming ------------------------------------------------------------------------
    def num(self, nid: int) -> str:
        if nid not in self._nums:
            self._nums[nid] = re.sub(r"\W", "_", self.plan.name(nid).lstrip("%"))
        return self._nums[nid]

    def base_name(self, nid: int) -> str:
        s = self.num(nid)
        return ("t" + s) if s[:1].isdigit() else s

    def top_vars(self, kern: _Kernel) -> dict:
        return kern.top_vars

    def emit_top(self, kern: _Kernel, line: str):
        kern.top_lines.append(line)

    def top_text(self, kern: _Kernel, indent: int = 1) -> str:
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

    def decorator(self, kern: _Kernel) -> str:
        # Sizes are specialised as Triton's JIT does by default (a size divisible by 16 and a
        # 16-byte-aligned pointer get tt.divisibility=16, a size of 1 becomes a constant), so
        # loads and stores vectorise; a new batch size recompiles only when that changes.
        return "@triton.jit"

    def params_text(self, kern: _Kernel, blocks) -> str:
        ps = [p.name for p in kern.ordered_params()] + [f"{b}: tl.constexpr" for b in blocks]
        return ", ".join(ps)

    def _emit_body(self, body: _Body, k: Group, nodes, stores):
        body.owned = set(k.nodes) - set(k.riders)
        for nid in nodes:
            body.emit_node(nid, stores)

    def kernel(self, k: Group) -> KernelSource:
        kern = _Kernel(self, k)
        stores = set(k.stores)
        t = self.t
        if k.kind == "pointwise":
            body = _Body(kern, k.space, "pointwise")
            self._emit_body(body, k, k.space.closure, stores)
            self._riders(body, k)
            defs = body.index_defs()
            lines = defs.get("body", []) + body.sections["body"]
            text = t["pointwise"].POINTWISE.render(
                decorator="{decorator}", name=k.name, params="{params}", header=self.header(k),
                xnumel=kern.dim(numel(k.space.shape)),
                body="\n".join("    " + x for x in self._with_top(kern, lines)))
            blocks = ("XBLOCK",)
            grid = [("cdiv", numel(k.space.shape), "XBLOCK")]
            info = {"numel": numel(k.space.shape)}
        elif k.kind == "combo":
            segs = []
            ends = []
            blocks = ("XBLOCK",)
            for s, seg in enumerate(k.segments):
                body = _Body(kern, seg.space, "pointwise", sfx=f"_s{s}", indent=2)
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
            rider_body = _Body(kern, k.segments[0].space, "pointwise")
            self._riders(rider_body, k)
            riders = rider_body.sections["body"]
            text = t["pointwise"].COMBO.render(
                decorator="{decorator}", name=k.name, params="{params}", header=self.header(k),
                top="{top}", segments="\n".join(segs) + ("\n" + "\n".join("    " + x for x in riders) if riders else ""))
            text = text.replace("{top}", self.top_text(kern))
            grid = [("combo", [numel(s.space.shape) for s in k.segments], "XBLOCK")]
            info = {"numel": max((static_numel(s.space.shape) or 1 << 20) for s in k.segments)}
        elif k.kind == "reduction":
            body = _Body(kern, k.space, "reduction")
            self._emit_body(body, k, k.space.closure, stores)
            self._riders(body, k, section="post" if body.mode == "looped" else "body")
            defs = body.index_defs()
            xnumel = kern.dim(k.space.xnumel())
            rnumel = kern.dim(k.space.rnumel())
            split_ok = False
            if body.mode == "looped":
                pre = self._with_top(kern, defs.get("pre", []) + body.sections["pre"])
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
                lines = self._with_top(kern, defs.get("body", []) + body.sections["body"])
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
        else:
            text, grid, info = self.matmul(kern, k, stores)
            blocks = MATMUL_BLOCKS
        text = text.replace("{decorator}", self.decorator(kern)).replace("{params}", self.params_text(kern, blocks))
        text = "\n".join(line.rstrip() for line in text.splitlines() if line.strip()) + "\n"
        return KernelSource(k.name, k.kind, k.index, text, kern.ordered_params(), blocks, grid, k, info,
                            set(kern.helpers))

    def _with_top(self, kern, lines):
        return kern.top_lines + lines

    def _riders(self, body: _Body, k: Group, section: str = "body"):
        if not k.riders:
            return
        pid = "tl.program_id(0) == 0"      # every kind launches a 1-D grid
        for nid in k.riders:
            v = body.inline(nid)
            ptr = body.k.buffer(nid)
            body.emit(section, f"if {pid}:  # {self.plan.name(nid)} rides along: stored once")
            body.emit(section, f"    tl.store({ptr}, {v})")

    def matmul(self, kern: _Kernel, k: Group, stores):
        g = self.graph
        plan = self.plan
        mm = next(n for n in k.nodes if g[n].op == "matmul" and n not in k.colsums)
        mn = g[mm]
        D = k.space.shape
        r = len(D)
        body = _Body(kern, k.space, "matmul")
        body.owned = set(k.nodes) - set(k.riders)
        av, bv = plan.operand_views[(mm, 0)], plan.operand_views[(mm, 1)]
        a_ptr, b_ptr = kern.buffer(av.base), kern.buffer(bv.base)
        M, N = D[-2], D[-1]
        K = av.shape[-1]

        def batch_offset(view):
            terms = [view.offset_expr()] if view.offset else []
            for j, oj in enumerate(right_align(view.shape[:-2], D[:-2])):
                if oj is None or view.strides[j] == 0:
                    continue
                st = kern.dim(view.strides[j])
                terms.append(mul_expr(body.dvar(oj).expr, st))
            for t_ in view.offset:
                kern.dim(t_)
            return add_terms(terms)

        a_off = batch_offset(av)
        b_off = batch_offset(bv)
        body.extra_text += [a_off, b_off]
        a_base = a_ptr if a_off == "0" else f"{a_ptr} + {a_off}"
        b_base = b_ptr if b_off == "0" else f"{b_ptr} + {b_off}"
        dt = mn.dtype
        acc_dtype = {"f32": "tl.float32", "f64": "tl.float64", "i32": "tl.int32", "i64": "tl.int64"}[dt]
        if dt == "f32":
            dot, helper = self.t["matmul"].DOTS[self.precision]
            if helper:
                kern.helpers.add(helper)
        else:   # float64 stays IEEE in every mode (no tensor-core path); integers never dot
            dot = self.t["matmul"].DOT_FLOAT if dt == "f64" else self.t["matmul"].DOT_INT
        cs_init, cs_loop, split_store, split_sum = [], [], [], []
        ws_extra = ""
        for rnode, pos in k.colsums.items():
            cvar = f"colsum{self.num(rnode)}"
            length = "BLOCK_N" if pos == 1 else "BLOCK_M"
            cs_init.append(f"{cvar} = tl.zeros([{length}], dtype={acc_dtype})")
            if pos == 1:
                cs_loop.append(f"{cvar} += tl.sum(b, 0)" + body.comment(rnode) + " (column sums of B)")
                body.vars[rnode] = f"{cvar}[None, :]"
            else:
                cs_loop.append(f"{cvar} += tl.sum(a, 1)" + body.comment(rnode) + " (row sums of A)")
                body.vars[rnode] = f"{cvar}[:, None]"
            # split-K: this partial sum lives after the tile (and earlier sums) in the workspace
            at = f"BLOCK_M * BLOCK_N{ws_extra} + tl.arange(0, {length})"
            split_store.append(f"tl.store(ws_mine + {at}, {cvar})")
            split_sum.append(f"{cvar} += tl.load(ws_s + {at}, mask=tl.arange(0, {length}) * 0 + theirs != 0, "
                             f"other=0.0, cache_modifier=\".cg\")")
            ws_extra += f" + {length}"
        kern.scratch("ws_ptr", "*fp32")
        kern.scratch("lock_ptr", "*i32")
        # epilogue
        body.vars[mm] = "acc"
        if mm in stores:
            body.store(mm, "acc", "x", "body")
        for nid in k.space.closure:
            if nid == mm:
                continue
            if nid in k.colsums:
                if nid in stores:
                    body.store(nid, body.vars[nid], "x", "body")
                continue
            body.emit_node(nid, stores)
        self._riders(body, k)
        defs = body.index_defs()
        top = self._with_top(kern, defs.get("top", []))
        loads, descriptors, tma_layouts = self.operand_loads(kern, k.space.shape, av, bv, dt)
        text = self.t["matmul"].MATMUL.render(
            decorator="{decorator}", name=k.name, params="{params}", header=self.header(k),
            M=kern.dim(M), N=kern.dim(N), K=kern.dim(K),
            top="\n".join("    " + x for x in top),
            a_base=a_base, b_base=b_base, acc_dtype=acc_dtype,
            descriptors=descriptors, load_a=loads[0], load_b=loads[1],
            dot=dot,
            colsum_init="\n".join("    " + x for x in cs_init),
            colsum="\n".join("        " + x for x in cs_loop),
            ws_extra=ws_extra,
            split_store="\n".join("        " + x for x in split_store),
            split_sum="\n".join("            " + x for x in split_sum),
            epilogue="\n".join("    " + x for x in body.sections["body"]))
        batch = numel(D[:-2]) if r > 2 else 1
        grid = [("matmul", M, N, batch)]
        info = {"M": M, "N": N, "K": K, "batch": batch, "dtype": dt, "colsums": len(k.colsums),
                "precision": self.precision, "tma": tma_layouts}
        return text, grid, info

    def operand_loads(self, kern: _Kernel, space_shape, av, bv, dt) -> tuple[list[str], str, tuple]:
        """The K loop's loads of A and B (8-space indented), the descriptor statements before the
        loop (4-space), and each operand's TMA layout (tma.py; None: pointer loads only)."""
        mm = self.t["matmul"]
        pointers = [mm.LOAD_A.render(sm=kern.dim(av.strides[-2]), sk=kern.dim(av.strides[-1]), other=zero(dt)),
                    mm.LOAD_B.render(sk=kern.dim(bv.strides[-2]), sn=kern.dim(bv.strides[-1]), other=zero(dt))]
        layouts = tuple(tma.operand_layout(v, space_shape, dt) for v in (av, bv))
        # (logical rows, cols, block rows, block cols, tile row, tile col) of A[M, K] and B[K, N]
        logical = [("M", "K", "BLOCK_M", "BLOCK_K", "pid_m * BLOCK_M", "kb * BLOCK_K"),
                   ("K", "N", "BLOCK_K", "BLOCK_N", "kb * BLOCK_K", "pid_n * BLOCK_N")]
        loads, desc_lines = [], []
        for pos, (var, view, layout) in enumerate(zip("ab", (av, bv), layouts)):
            if layout is None:
                loads.append(_indent(pointers[pos], 2))
                continue
            rows, cols, brows, bcols, row, col = logical[pos]
            stride = view.strides[-2] if layout == tma.ROWS else view.strides[-1]
            desc_lines.append(tma.descriptor_lines(var, f"{var}_base", layout, rows, cols, str(stride), brows, bcols))
            loads.append(_indent(mm.TMA_OR_POINTERS.render(
                var=var, tma=tma.descriptor_load(var, layout, row, col), pointers=_indent(pointers[pos], 1)), 2))
        descriptors = _indent(mm.TMA_DESCRIPTORS.render(lines=_indent("\n".join(desc_lines), 1)), 1) \
            if desc_lines else ""
        return loads, descriptors, layouts

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


def _indent(text: str, levels: int) -> str:
    pad = "    " * levels
    return "\n".join(pad + line for line in text.splitlines())


def generate(plan: Plan, title: str = "", precision: str = "fp32") -> tuple[str, list[KernelSource]]:
    gen = ModuleGen(plan, title, precision)
    return gen.module_text(title), gen.kernels
