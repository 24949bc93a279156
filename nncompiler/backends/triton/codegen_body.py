"""The lines of one iteration space of a kernel: index variables, loads, one line per op, stores.

A `Body` walks the nodes of a planned group in order and writes each as one line: an
elementwise op as the expression of its rule in `ops.TRITON_OPS` (with a comment giving
the op's printed name and `.nn` position), a reduction as a masked `tl.sum`/`tl.max`
(persistent) or an accumulator updated in a loop over the reduced extent (looped), a
scalar computed from scalars once at the top of the kernel. Loads and index arithmetic
come from `address.Addressing`; stores are masked to one representative when the value
is smaller than the iteration space. Lines go into sections (`pre`, `loop`, `post` of a
looped reduction; `body` otherwise) that codegen.py places into a template.
"""
from __future__ import annotations

from ...ir.primitives import ELEMENTWISE_KINDS, PRIMITIVES
from ...ir.shapes import numel
from ...sourcetext import loc_text
from .address import Addressing
from .codegen_scope import KernelScope
from .codegen_window import Windows
from .ops import TL_DTYPE, TRITON_OPS, literal, lowest, zero
from .plan import REDUCE_OPS
from .plan_types import WINDOW_OPS


class Body(Addressing, Windows):
    """The lines of one iteration space: index variables, loads, one line per op, stores."""

    def __init__(self, kern: KernelScope, space, kind: str, sfx: str = "", indent: int = 1):
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
        # matmul: the dims of the space that the tile's rows (i_m) cover; a conv's rows are its
        # output pixels (n, *o), every dim but the channel (codegen_conv.py sets that)
        self.m_dims: tuple = (len(space.shape) - 2,) if kind == "matmul" else ()
        self.n_name = "i_n"           # matmul: the index variable of the space's last dim
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
        if nid in sp.tapped:
            return                                  # recomputed at each tap by its window op (address.load)
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
        elif n.op in WINDOW_OPS:             # pooling: its taps unrolled (codegen_window.py)
            expr = self.window_expr(nid, var, section)
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
