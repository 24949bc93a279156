"""Index arithmetic shared by the fusion planner and the code generator.

* Dimensions are ints or symbolic monomials ("B", "4*B"); `dim_expr` renders one
  as a Triton/Python expression over the runtime size arguments (`4 * s_B`).
* `UnionFind` is how the planner decides whether a set of ops can share one
  iteration space: every (node, axis) of size != 1 is an element, elementwise
  broadcasting / transposes / reductions unite them, and a legal kernel maps
  every class onto exactly one loop dimension of its anchor shape.
* `View` describes a tensor as (base buffer, shape, strides, offset): matmul
  operands that are transposes, broadcasts, reshapes or strided slices of a
  materialized buffer are read in place through their strides (no copy kernel).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ...ir.primitives import norm_axes
from ...ir.shapes import Monomial, canon_dim, dim_mul, eval_dim, eval_shape, numel  # noqa: F401  (eval_*: re-exported)


def size_arg(sym: str) -> str:
    """The kernel argument carrying a symbolic dimension: B -> s_B."""
    return "s_" + sym


def dim_expr(d) -> str:
    """A dimension as an expression over the kernel's size arguments: 16 -> '16', '4*B' -> '4 * s_B'."""
    if isinstance(d, int):
        return str(d)
    m = Monomial.parse(d)
    return " * ".join(([str(m.coef)] if m.coef != 1 else []) + [size_arg(s) for s in m.syms])


def paren(e: str) -> str:
    return e if re.fullmatch(r"[\w.]+", e) else f"({e})"


def mul_expr(a: str, b: str) -> str:
    """a * b with the obvious simplifications (expressions are strings)."""
    if a == "0" or b == "0":
        return "0"
    if a == "1":
        return b
    if b == "1":
        return a
    return f"{paren(a)} * {paren(b)}"


def add_terms(terms) -> str:
    terms = [t for t in terms if t != "0"]
    return " + ".join(terms) if terms else "0"


def is_static(shape) -> bool:
    return all(isinstance(d, int) for d in shape)


def static_numel(shape) -> int | None:
    n = numel(shape)
    return n if isinstance(n, int) else None


def contiguous_strides(shape) -> list:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc = dim_mul(acc, d)
    return list(reversed(strides))


def squeeze_like(src, dst) -> bool:
    """A reshape that only inserts or removes size-1 dims (a dim-map op, not a re-layout)."""
    return [canon_dim(d) for d in src if d != 1] == [canon_dim(d) for d in dst if d != 1]


def squeeze_pairs(src, dst) -> list[tuple[int, int]]:
    a = [i for i, d in enumerate(src) if d != 1]
    b = [i for i, d in enumerate(dst) if d != 1]
    return list(zip(a, b))


def right_align(operand_shape, out_shape) -> list[int | None]:
    """For each operand axis, the output axis it broadcasts along (None for a size-1 axis)."""
    off = len(out_shape) - len(operand_shape)
    return [None if d == 1 else off + j for j, d in enumerate(operand_shape)]


def reduce_axes(node, input_rank: int) -> tuple[int, ...]:
    if node.op == "argmax":
        return norm_axes([node.attr["axis"]], input_rank)
    return norm_axes(node.attr.get("axes"), input_rank)


class UnionFind:
    def __init__(self):
        self.parent: dict = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb

    def classes(self) -> dict:
        out: dict = {}
        for x in list(self.parent):
            out.setdefault(self.find(x), []).append(x)
        return out


# ---- strided views (matmul operands, fallback inputs, output views) -------------------

@dataclass(frozen=True)
class View:
    base: int                 # node id of the materialized buffer
    shape: tuple
    strides: tuple            # dims (ints or monomials), in elements
    offset: tuple = ()        # terms (dims) summed

    @property
    def contiguous(self) -> bool:
        """Row-major dense (an offset is allowed: a contiguous slice is still dense)."""
        return _same_ignoring_unit(self.shape, self.strides)

    def offset_expr(self) -> str:
        return add_terms([dim_expr(t) for t in self.offset])


def _same_ignoring_unit(shape, strides) -> bool:
    want = contiguous_strides(shape)
    return all(d == 1 or canon_dim(s) == canon_dim(w) for d, s, w in zip(shape, strides, want))


def view_through(node, base_view: View) -> View | None:
    """The view of movement `node` applied to its input's view, or None when not a strided view."""
    a = node.attr
    v = base_view
    if node.op == "reshape":
        if not v.contiguous:
            return None
        return View(v.base, node.shape, tuple(contiguous_strides(node.shape)), v.offset)
    if node.op == "transpose":
        perm = a["perm"]
        return View(v.base, node.shape, tuple(v.strides[p] for p in perm), v.offset)
    if node.op == "broadcast_to":
        out = node.shape
        strides = [0] * len(out)
        for j, oj in enumerate(right_align(v.shape, out)):
            if oj is not None:
                strides[oj] = v.strides[j]
        return View(v.base, out, tuple(strides), v.offset)
    if node.op == "slice":
        if not a["start"]:
            return v
        offset = list(v.offset)
        strides = []
        for s, start, step in zip(v.strides, a["start"], a["step"]):
            if start:
                offset.append(dim_mul(s, start))
            strides.append(dim_mul(s, step))
        return View(v.base, node.shape, tuple(strides), tuple(offset))
    return None
