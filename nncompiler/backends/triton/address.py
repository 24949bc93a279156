"""Addressing for the Triton code generator: index variables, loads, and the movement
ops a kernel reads through instead of materialising.

`Addressing` is the half of a kernel body (`codegen_body.Body`) that turns an IR index
into Triton index arithmetic: the per-axis variables decomposed from the linear
program index, a load at an index (a variable, a buffer load, or a load through
movement ops), and `MOVE_RULES`, the table primitive -> how a movement op rewrites
the index: a transpose permutes it, a slice scales and shifts it, a pad masks it, a
concat selects between pieces, a gather reads the index from another tensor.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ...ir.shapes import canon_dim, numel
from .index import (add_terms, contiguous_strides, mul_expr, paren, right_align, squeeze_like,
                    squeeze_pairs)
from .ops import TRITON_OPS, zero


@dataclass(frozen=True)
class Idx:
    """An index expression and the tile axes ("x", "r", "m", "n") it varies along."""

    expr: str
    groups: frozenset = frozenset()


ZERO = Idx("0")


def ix_add(a: Idx, c) -> Idx:
    """The index a + c (a constant or an expression), written without a `+ 0`."""
    if c == 0 or c == "0":
        return a
    if a.expr == "0":
        return Idx(str(c), a.groups)
    return Idx(f"{a.expr} + {c}", a.groups)


def ix_scale(a: Idx, s) -> Idx:
    """The index a * s."""
    return Idx(mul_expr(a.expr, str(s)), a.groups)


class Addressing:
    """Index variables and loads of one iteration space (mixed into codegen_body.Body, which
    provides k, gen, g, plan, space, kind, sfx, vars, loads, used_dims, zeros_used, mode,
    sections and the emission methods)."""

    # -- index variables ------------------------------------------------------------
    def dvar(self, d) -> Idx:
        if d is None or self.space.shape[d] == 1:
            return ZERO
        self.used_dims.add(d)
        return Idx(self.dname(d), frozenset([self.dgroup(d)]))

    def dname(self, d) -> str:
        if self.kind == "matmul":
            r = len(self.space.shape)
            if self.m_dims == (d,):
                return "i_m"
            if d == r - 1:
                return self.n_name     # i_n; a grouped conv's output channel is offset by its group
        return f"i{d}{self.sfx}"     # (a conv's output pixel axes: decomposed from i_m)

    def dgroup(self, d) -> str:
        if self.kind == "matmul":
            r = len(self.space.shape)
            return "m" if d in self.m_dims else "n" if d == r - 1 else "b"
        if self.kind == "reduction" and d in self.space.raxes:
            return "r"
        return "x"

    def mask_name(self, grp: str) -> str | None:
        return {"x": f"xmask{self.sfx}", "r": "rmask", "m": "mmask", "n": "nmask", "b": None}[grp]

    def zero_tile(self, grp: str) -> str:
        self.zeros_used.add(grp)
        return {"x": f"xindex{self.sfx} * 0", "r": "rindex * 0", "m": "i_m * 0", "n": "i_n * 0"}[grp]

    def index_defs(self) -> dict[str, list[str]]:
        """Definitions of the used index variables, by section."""
        text = "\n".join(line for lines in self.sections.values() for line in lines) + "\n" + \
            "\n".join(self.k.top_lines) + "\n" + "\n".join(self.extra_text)
        self.used_dims = {d for d in self.used_dims if re.search(rf"\b{self.dname(d)}\b", text)}
        D = self.space.shape
        out: dict[str, list[str]] = {}
        if self.kind == "matmul":
            bdims = [d for d in range(len(D) - 1) if d not in self.m_dims]
            out["top"] = self._decompose("pid_b", bdims, [d for d in bdims if d in self.used_dims])
            if len(self.m_dims) > 1:      # a conv: the output pixel of each tile row, for the epilogue
                out["epilogue"] = self._decompose("i_m", list(self.m_dims),
                                                  [d for d in self.m_dims if d in self.used_dims])
            return out
        if self.kind == "pointwise":
            out["body"] = self._decompose(f"xindex{self.sfx}", list(range(len(D))), sorted(self.used_dims))
            return out
        kept = self.space.kept
        raxes = list(self.space.raxes)
        xs = self._decompose("xindex", kept, [d for d in sorted(self.used_dims) if d in kept])
        rs = self._decompose("rindex", raxes, [d for d in sorted(self.used_dims) if d in raxes])
        if self.mode == "looped":
            out["pre"], out["loop"] = xs, rs
        else:
            out["body"] = xs + rs
        return out

    def _decompose(self, lin: str, dims: list, wanted: list) -> list[str]:
        lines = []
        D = self.space.shape
        live = [d for d in dims if D[d] != 1]
        for d in wanted:
            after = [D[e] for e in live[live.index(d) + 1:]]
            stride = self.k.dim(numel(after)) if after else "1"
            expr = lin if stride == "1" else f"{lin} // {paren(stride)}"
            if live.index(d) > 0:
                expr = f"{paren(expr) if '//' in expr else expr} % {paren(self.k.dim(D[d]))}"
            lines.append(f"{self.dname(d)} = {expr}")
        return lines

    # -- loads --------------------------------------------------------------------------
    def is_buffer(self, nid: int) -> bool:
        c = self.plan.cls[nid]
        return nid not in self.vars and (c in ("arg", "constbuf", "compute") or nid in self.plan.inline_stored)

    def load(self, nid: int, idx: list, conds: tuple = ()) -> str:
        """The value of node `nid` at index `idx` (one Idx per axis): a variable, a load, or a
        load through movement ops (index arithmetic)."""
        n = self.g[nid]
        c = self.plan.cls[nid]
        if nid in self.vars and not conds:
            return self.vars[nid]
        if c == "inline" and nid not in self.vars:
            v = self.inline(nid)
            return v if not conds else f"tl.where({self.cond_expr(conds)}, {v}, {zero(n.dtype)})"
        if nid in self.vars:
            return f"tl.where({self.cond_expr(conds)}, {self.vars[nid]}, {zero(n.dtype)})"
        if nid in self.space.tapped:
            return self.recompute(nid, idx, conds)
        if c == "move" and nid not in self.plan.copies:
            return self.through(nid, idx, conds)
        return self.buffer_load(nid, idx, conds)

    def recompute(self, nid: int, idx: list, conds: tuple) -> str:
        """A window op's elementwise prologue at one tap: its expression over its operands loaded
        at that index (under the tap's conditions; the window op masks the result itself)."""
        n = self.g[nid]
        key = ("tap", nid, tuple(i.expr for i in idx), tuple(c.expr for c in conds))
        if key in self.loads:
            return self.loads[key]
        args = []
        for i in n.inputs:
            if self.plan.cls[i] == "inline":
                args.append(self.inline(i))
            else:
                args.append(self.load(i, [ZERO if oj is None else idx[oj]
                                          for oj in right_align(self.g[i].shape, n.shape)], conds))
        var = self.k._unique(f"v{self.gen.num(nid)}_at", ours=True)
        groups = frozenset().union(frozenset(), *(i.groups for i in idx), *(c.groups for c in conds))
        self.emit(self.load_section(groups), f"{var} = {TRITON_OPS[n.op](n, args, self)}"
                                             f"  # {self.plan.name(nid)} {n.op}, recomputed at a tap")
        self.loads[key] = var
        return var

    def through(self, nid: int, idx: list, conds: tuple) -> str:
        """A load through a movement op: its rule in MOVE_RULES rewrites the index."""
        n = self.g[nid]
        rule = MOVE_RULES.get(n.op)
        if rule is None:
            raise NotImplementedError(n.op)
        src = n.inputs[0]
        return rule(self, n, n.attr, src, self.g[src].shape, idx, conds)

    def _move_transpose(self, n, a, src, sshape, idx: list, conds: tuple) -> str:
        new = [ZERO] * len(sshape)
        for j, p in enumerate(a["perm"]):
            new[p] = idx[j]
        return self.load(src, new, conds)

    def _move_broadcast_to(self, n, a, src, sshape, idx: list, conds: tuple) -> str:
        new = [ZERO if oj is None else idx[oj] for oj in right_align(sshape, n.shape)]
        return self.load(src, new, conds)

    def _move_reshape(self, n, a, src, sshape, idx: list, conds: tuple) -> str:
        if squeeze_like(sshape, n.shape):
            new = [ZERO] * len(sshape)
            for i, o in squeeze_pairs(sshape, n.shape):
                new[i] = idx[o]
            return self.load(src, new, conds)
        lin = self.linear(idx, n.shape)
        if self.is_buffer(src) and self.plan.cls[src] != "move":
            return self.buffer_load(src, None, conds, flat=lin)
        new = []
        strides = contiguous_strides(sshape)
        for d, st in zip(sshape, strides):
            if d == 1:
                new.append(ZERO)
                continue
            e = lin.expr if st == 1 else f"{paren(lin.expr)} // {paren(self.k.dim(st))}"
            new.append(Idx(f"{paren(e)} % {paren(self.k.dim(d))}", lin.groups))
        return self.load(src, new, conds)

    def _move_slice(self, n, a, src, sshape, idx: list, conds: tuple) -> str:
        if not a["start"]:
            return self.load(src, idx, conds)
        new = [ix_add(ix_scale(i, step), start) for i, start, step in zip(idx, a["start"], a["step"])]
        return self.load(src, new, conds)

    def _move_pad(self, n, a, src, sshape, idx: list, conds: tuple) -> str:
        new, extra = [], list(conds)
        for i, d, lo, hi, k in zip(idx, sshape, a["lo"], a["hi"], a["interior"]):
            if lo == 0 and hi == 0 and k == 0:
                new.append(i)
                continue
            shifted = ix_add(i, -lo) if lo else i
            src_i = Idx(f"{paren(shifted.expr)} // {k + 1}", i.groups) if k else shifted
            parts = [f"({i.expr} >= {lo})"] if lo else []
            parts.append(f"({src_i.expr} < {self.k.dim(d)})")
            if k:
                parts.append(f"({paren(shifted.expr)} % {k + 1} == 0)")
            extra.append(Idx(" & ".join(parts), i.groups))
            new.append(src_i)
        return self.load(src, new, tuple(extra))

    def _move_gather(self, n, a, src, sshape, idx: list, conds: tuple) -> str:
        # out[pre, j..., post] = x[pre, clamp(indices[j...]), post]: a data-dependent index
        axis = a["axis"] % len(sshape)
        inds = n.inputs[1]
        r = len(self.g[inds].shape)
        raw = self.load(inds, idx[axis:axis + r])
        hi = self.k.dim(sshape[axis])
        var = self.k._unique(f"idx{self.gen.num(n.id)}", ours=True)
        groups = frozenset().union(*(x.groups for x in idx[axis:axis + r]))
        self.emit(self.load_section(groups),
                  f"{var} = tl.minimum(tl.maximum({raw}, 0), {paren(hi)} - 1)  # {self.plan.name(n.id)} gather index")
        new = list(idx[:axis]) + [Idx(var, groups)] + list(idx[axis + r:])
        return self.load(src, new, conds)

    def _move_concat(self, n, a, src, sshape, idx: list, conds: tuple) -> str:
        axis = a["axis"] % len(n.shape)
        pieces, start = [], 0
        for p in n.inputs:
            size = self.g[p].shape[axis]
            pieces.append((p, start, size))
            start = start + size if isinstance(size, int) and isinstance(start, int) else None
            if start is None:
                break
        i = idx[axis]
        values = []
        for k, (p, s0, size) in enumerate(pieces):
            pidx = list(idx)
            pidx[axis] = ix_add(i, -s0) if s0 else i
            lo = f"({i.expr} >= {s0})" if s0 else None
            hi = f"({i.expr} < {s0 + size})" if k < len(pieces) - 1 else None
            cond = " & ".join(x for x in (lo, hi) if x)
            pc = conds + ((Idx(cond, i.groups),) if cond else ())
            values.append((hi, self.load(p, pidx, pc)))
        expr = values[-1][1]
        for hi, v in reversed(values[:-1]):
            expr = f"tl.where({hi}, {v}, {expr})"
        var = self.k._unique(f"cat{self.gen.num(n.id)}", ours=True)
        groups = frozenset().union(*(x.groups for x in idx)) | frozenset().union(*(x.groups for x in conds))
        self.emit(self.load_section(groups), f"{var} = {expr}  # {self.plan.name(n.id)} concat")
        return var

    def linear(self, idx: list, shape) -> Idx:
        if self.kind == "pointwise" and self._identity(idx, shape):
            return Idx(f"xindex{self.sfx}", frozenset(["x"]))
        if self.kind == "matmul" and len(self.m_dims) > 1 and shape and shape[-1] != 1 and self._identity(idx, shape):
            # a conv's output [N, *O, F] at its own index: the tile row is the pixel, row-major
            return Idx(f"i_m * {paren(self.k.dim(shape[-1]))} + {self.n_name}", frozenset(["m", "n"]))
        terms, groups = [], frozenset()
        for i, st in zip(idx, contiguous_strides(shape)):
            if i.expr == "0":
                continue
            terms.append(mul_expr(i.expr, self.k.dim(st)))
            groups |= i.groups
        return Idx(add_terms(terms), groups)

    def _identity(self, idx: list, shape) -> bool:
        D = self.space.shape
        if tuple(canon_dim(d) for d in shape) != tuple(canon_dim(d) for d in D):
            return False
        return all(D[j] == 1 or i.expr == self.dname(j) for j, i in enumerate(idx)) and \
            any(D[j] != 1 for j in range(len(D)))

    def cond_expr(self, conds) -> str:
        return " & ".join(f"({c.expr})" for c in conds)

    def buffer_load(self, nid: int, idx, conds: tuple = (), flat: Idx | None = None) -> str:
        n = self.g[nid]
        off = flat if flat is not None else self.linear(idx, n.shape)
        groups = set(off.groups)
        for c in conds:
            groups |= c.groups
        ptr = self.k.buffer(nid)
        masks = [self.mask_name(g) for g in sorted(groups) if self.mask_name(g)]
        masks += [f"({c.expr})" for c in conds]
        key = (nid, off.expr, tuple(masks))
        if key in self.loads:
            return self.loads[key]
        if not groups and off.expr == "0" and not conds:
            return self.scalar_load(nid)
        base = self.gen.base_name(nid)
        var = self.k._unique(base)
        address = ptr if off.expr == "0" else f"{ptr} + {off.expr}"
        if not off.groups:        # a constant offset under a tile-shaped mask: give the pointer the tile's shape
            address += "".join(f" + {self.zero_tile(g)}" for g in sorted(groups))
        mask = " & ".join(masks)
        text = f"{var} = tl.load({address}, mask={mask}, other={zero(n.dtype)})" if mask else f"{var} = tl.load({address})"
        self.emit(self.load_section(groups), text + f"  # {self.plan.name(nid)}")
        self.loads[key] = var
        return var

    # -- operand indices ----------------------------------------------------------------
    def operand_idx(self, nid: int, k: int) -> list:
        n = self.g[nid]
        i = n.inputs[k]
        dm = self.space.dmap[nid]
        return [ZERO if oj is None else self.dvar(dm[oj]) for oj in right_align(self.g[i].shape, n.shape)]

    def identity_idx(self, shape) -> list:
        return [self.dvar(d) if shape[d] != 1 else ZERO for d in range(len(shape))]


# movement primitive -> rule(body, node, attrs, source id, source shape, index, conditions) -> value
MOVE_RULES = {
    "transpose": Addressing._move_transpose,
    "broadcast_to": Addressing._move_broadcast_to,
    "reshape": Addressing._move_reshape,
    "slice": Addressing._move_slice,
    "pad": Addressing._move_pad,
    "gather": Addressing._move_gather,
    "concat": Addressing._move_concat,
}
