"""The windowed reductions (pooling) of an elementwise kernel: `reduce_window` and `select_scatter`.

Both are nodes of a pointwise kernel over their own output (plan_space.py): each output element
walks its window's taps, a static loop unrolled in the generated source, and loads the operand
at `o*stride + t - pad_lo` per spatial axis, masked outside the input; a masked tap reads the
reduction's identity (0 for sum, -inf for max), as ir/windows.py pads. Taps that lie in the
padding for every output position are the identity literal, and per-axis bounds are tested only
where some output position can cross them (decided from the static spatial sizes).

The numerics are ir/windows.py's, tap by tap: a running sum or NaN-propagating maximum in
window raster order, and select_scatter's winner is the last tap strictly greater than the
running maximum (the first maximal tap; a NaN stops later taps from winning, as numpy's).

select_scatter writes every input position once, with no atomics:

  * windows that do not overlap (stride >= window on every axis): a position lies in at most one
    window, o = (p + lo) // s at tap t = (p + lo) % s; it recomputes that window's winner and
    takes g[o] if the winner is t, else +0.0.
  * overlapping windows (the gather form): for each tap t, in descending raster order as the
    reference adds them, the window o = (p + lo - t) / s where that is a whole in-range index;
    the position sums g[o] over the windows whose winner it is.

A mixin of codegen_body.Body (it calls `load`, `dvar`, `emit`, `cond_expr`, `k`, `g`, `gen`).
"""
from __future__ import annotations

import itertools
import math

from .address import Idx, ix_add, ix_scale
from .index import paren
from .ops import lowest, zero


class Windows:
    def window_expr(self, nid: int, var: str, section: str) -> str:
        """The value of a window op at this kernel's index: lines emitted into `section`, the
        last expression returned (assigned to `var` by the caller)."""
        n = self.g[nid]
        if n.op == "reduce_window":
            return self._reduce_window(n, var, section)
        return self._select_scatter(n, var, section)

    # -- taps -----------------------------------------------------------------------------
    def _taps(self, n, base: list, outs, extra: tuple):
        """(tap number, index into x, conditions) per tap of window `base` (an Idx per axis of
        the window op's output [N, *O, C]), raster order; conditions None: the tap lies in the
        padding wherever `base` ranges over [0, O)."""
        a = n.attr
        x = self.g[n.inputs[0]]
        sp = len(a["window"])
        for t, tap in enumerate(itertools.product(*(range(k) for k in a["window"]))):
            idx, conds, dead = [base[0]], list(extra), False
            for ax in range(sp):
                o, s, lo, size = base[1 + ax], a["stride"][ax], a["padding"][ax][0], x.shape[1 + ax]
                off = tap[ax] - lo
                fixed = o.expr.lstrip("-").isdigit()      # a static window index: static bounds
                qmin = int(o.expr) * s + off if fixed else off
                qmax = qmin if fixed else (outs[ax] - 1) * s + off
                if qmax < 0 or qmin >= size:
                    dead = True
                    break
                q = ix_add(ix_scale(o, s), off)
                parts = ([f"({q.expr} >= 0)"] if qmin < 0 else []) + ([f"({q.expr} < {size})"] if qmax >= size else [])
                if parts:
                    conds.append(Idx(" & ".join(parts), o.groups))
                idx.append(q)
            idx.append(base[-1])
            yield t, (None if dead else idx), tuple(conds)

    def _tap_value(self, x: int, idx, conds: tuple, ident: str) -> str:
        if idx is None:
            return ident
        v = self.load(x, idx, conds)
        return f"tl.where({self.cond_expr(conds)}, {v}, {ident})" if conds else v

    # -- reduce_window --------------------------------------------------------------------
    def _reduce_window(self, n, var: str, section: str) -> str:
        a = n.attr
        x = n.inputs[0]
        ident = zero(n.dtype) if a["kind"] == "sum" else lowest(n.dtype)
        base = [self.dvar(d) for d in self.space.dmap[n.id]]
        last = math.prod(a["window"]) - 1
        for t, idx, conds in self._taps(n, base, n.shape[1:-1], ()):
            v = self._tap_value(x, idx, conds, ident)
            if t == 0:
                expr = v
            elif a["kind"] == "sum":
                expr = f"{var} + {v}"
            else:
                expr = f"tl.maximum({var}, {v}, propagate_nan=tl.PropagateNan.ALL)"
            if t == last:
                return expr
            self.emit(section, f"{var} = {expr}" + (f"  # tap {t}" if t else self.comment(n.id)))

    # -- select_scatter -------------------------------------------------------------------
    def _winner(self, n, base: list, outs, valid: tuple, name: str, section: str) -> str:
        """(a variable holding the number of the first maximal tap of window `base` of x (read
        where `valid`, the conditions under which `base` is a window), `valid` as one named condition)."""
        x = n.inputs[0]
        if valid:
            groups = frozenset().union(*(c.groups for c in valid))
            self.emit(section, f"{name}_ok = {self.cond_expr(valid)}")
            valid = (Idx(f"{name}_ok", groups),)
        ident = lowest(self.g[x].dtype)
        best, win = f"{name}_max", f"{name}_tap"
        first = True
        for t, idx, conds in self._taps(n, base, outs, valid):
            v = self._tap_value(x, idx, conds, ident)
            if first:
                self.emit(section, f"{best} = {v}")
                self.emit(section, f"{win} = 0")
                first = False
                continue
            if idx is None:
                continue                  # the identity never wins, nor changes the maximum
            if conds:                     # read twice below: name it
                self.emit(section, f"{name}_x{t} = {v}")
                v = f"{name}_x{t}"
            self.emit(section, f"{win} = tl.where({v} > {best}, {t}, {win})")
            self.emit(section, f"{best} = tl.maximum({best}, {v}, propagate_nan=tl.PropagateNan.ALL)")
        return win, valid

    def _select_scatter(self, n, var: str, section: str) -> str:
        a = n.attr
        xs, gn = self.g[n.inputs[0]], n.inputs[1]
        outs = self.g[gn].shape[1:-1]
        window, stride = a["window"], a["stride"]
        p = [self.dvar(d) for d in self.space.dmap[n.id]]
        self.emit(section, self.comment(n.id).strip())
        if all(s >= k for s, k in zip(stride, window)):
            return self._scatter_tiled(n, var, section, p, outs)
        # overlapping windows: gather from the windows that contain this position
        taps = list(itertools.product(*(range(k) for k in window)))
        acc = None
        for t in range(len(taps) - 1, -1, -1):
            base, valid = [p[0]], []
            for ax, (s, (lo, _), o_n) in enumerate(zip(stride, a["padding"], outs)):
                u = ix_add(p[1 + ax], lo - taps[t][ax])
                umin = lo - taps[t][ax]
                umax = umin if p[1 + ax].expr == "0" else xs.shape[1 + ax] - 1 + umin
                if umax < 0 or (umin >= 0 and umin // s >= o_n) or (umin == umax and umin % s):
                    break                  # no window has this position at tap t
                o = Idx(f"{paren(u.expr)} // {s}" if s > 1 else u.expr, u.groups)
                if umin != umax:
                    parts = [f"({u.expr} >= 0)"] if umin < 0 else []
                    parts += [f"({paren(u.expr)} % {s} == 0)"] if s > 1 else []
                    parts += [f"({o.expr} < {o_n})"] if umax // s >= o_n else []
                    if parts:
                        valid.append(Idx(" & ".join(parts), u.groups))
                else:
                    o = Idx(str(umin // s))
                base.append(o)
            else:
                base.append(p[-1])
                valid = tuple(valid)
                win, valid = self._winner(n, base, outs, valid, f"{var}_t{t}", section)
                keep = " & ".join([f"({win} == {t})"] + [f"({c.expr})" for c in valid])
                part = f"tl.where({keep}, {self.load(gn, base, valid)}, {zero(n.dtype)})"
                self.emit(section, f"{var} = {var if acc else zero(n.dtype)} + {part}  # tap {t}")
                acc = var
        return acc or zero(n.dtype)

    def _scatter_tiled(self, n, var: str, section: str, p: list, outs) -> str:
        """Windows that do not overlap: the one window o holding this position, at tap t."""
        a = n.attr
        xs, gn = self.g[n.inputs[0]], n.inputs[1]
        window = a["window"]
        base, valid, tap = [p[0]], [], []
        for ax, (k, s, (lo, _), o_n) in enumerate(zip(window, a["stride"], a["padding"], outs)):
            if p[1 + ax].expr == "0":          # a spatial axis of size 1: all static
                if lo % s >= k or lo // s >= o_n:
                    return zero(n.dtype)       # in no window
                base.append(Idx(str(lo // s)))
                tap.append(str(lo % s))
                continue
            u = ix_add(p[1 + ax], lo)
            o = Idx(f"{paren(u.expr)} // {s}" if s > 1 else u.expr, u.groups)
            t = f"{paren(u.expr)} % {s}" if s > 1 else "0"
            top = (xs.shape[1 + ax] - 1 + lo) // s          # the largest o
            parts = ([f"({t} < {k})"] if s > k else []) + ([f"({o.expr} < {o_n})"] if top >= o_n else [])
            if parts:
                valid.append(Idx(" & ".join(parts), u.groups))
            base.append(o)
            tap.append(t)
        base.append(p[-1])
        valid = tuple(valid)
        win, valid = self._winner(n, base, outs, valid, f"{var}_w", section)
        strides = [math.prod(window[ax + 1:]) for ax in range(len(window))]
        mine = " + ".join(paren(t) if st == 1 else f"{paren(t)} * {st}" for t, st in zip(tap, strides))
        keep = " & ".join([f"({win} == {mine})"] + [f"({c.expr})" for c in valid])
        return f"tl.where({keep}, {self.load(gn, base, valid)}, {zero(n.dtype)})"
