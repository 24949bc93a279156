"""MLIR types, literals and affine maps for the mlir backend (no emission state here).

`f32[B,784]` is `tensor<?x784xf32>` (bool is `i1`); floats print so MLIR reads them
back exactly (hex bits for inf and nan); `_groups` finds the reassociation of a
reshape through collapse/expand_shape.
"""
from __future__ import annotations

import math
import re

import numpy as np

from ...ir.shapes import NUMPY_DTYPE, TensorType, canon_dim, dim_div, dim_mul
from ...sourcetext import quote

ELEM = {"f32": "f32", "f64": "f64", "i32": "i32", "i64": "i64", "bool": "i1"}
FLOATS = ("f32", "f64")
INTS = ("i32", "i64")


def tensor_type(ty: TensorType) -> str:
    dims = "".join(f"{d}x" if isinstance(d, int) else "?x" for d in ty.shape)
    return f"tensor<{dims}{ELEM[ty.dtype]}>"


def _tt(dtype: str, shape) -> str:
    return tensor_type(TensorType(dtype, tuple(shape)))


def symbol_name(name: str) -> str:
    """A func/module symbol: bare when it is an identifier, else quoted."""
    return "@" + (name if re.fullmatch(r"[A-Za-z_][\w$.]*", name) else quote(name, "mlir"))


# ---- literals -----------------------------------------------------------------------

_SPECIAL_BITS = {
    "f32": {"inf": "0x7F800000", "-inf": "0xFF800000", "nan": "0x7FC00000"},
    "f64": {"inf": "0x7FF0000000000000", "-inf": "0xFFF0000000000000", "nan": "0x7FF8000000000000"},
}


def float_literal(v, dtype: str) -> str:
    """A float MLIR reads back exactly: the shortest round-trip digits, hex bits for inf/nan."""
    v = float(v)
    if math.isnan(v):
        return _SPECIAL_BITS[dtype]["nan"]
    if math.isinf(v):
        return _SPECIAL_BITS[dtype]["inf" if v > 0 else "-inf"]
    s = str(np.float32(v)) if dtype == "f32" else repr(v)
    if "." not in s:  # MLIR's float literals need a '.' ("1e-07" would be an integer and more)
        s = s.replace("e", ".0e") if "e" in s else s + ".0"
    return s


def scalar_literal(v, dtype: str) -> str:
    if dtype in FLOATS:
        return float_literal(v, dtype)
    if dtype == "bool":
        return "true" if v else "false"
    return str(int(v))


def dense_literal(arr: np.ndarray, dtype: str) -> str:
    """`dense<...>`: a splat, a nested list for small finite tensors, else a hex blob."""
    arr = np.asarray(arr, dtype=NUMPY_DTYPE[dtype])
    flat = arr.reshape(-1)
    if flat.size and (flat == flat[0]).all() and np.signbit(flat).all() == np.signbit(flat).any():
        return f"dense<{scalar_literal(flat[0], dtype)}>"
    if flat.size and dtype in FLOATS and np.isnan(flat).all():
        return f"dense<{scalar_literal(flat[0], dtype)}>"
    finite = dtype not in FLOATS or bool(np.isfinite(flat).all())
    if dtype == "bool" or (finite and flat.size <= 256):
        def nest(a):
            if a.ndim == 0:
                return scalar_literal(a.item(), dtype)
            return "[" + ", ".join(nest(x) for x in a) + "]"
        return f"dense<{nest(arr)}>"
    return f'dense<"0x{np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes().hex().upper()}">'


# ---- reshapes ---------------------------------------------------------------------------

def _groups(a, b):
    """Reassociation between shapes a and b through a common intermediate shape:
    (groups of a, groups of b, intermediate shape), or None when there is none."""
    a = [canon_dim(d) for d in a]
    b = [canon_dim(d) for d in b]
    if not a or not b:  # rank 0: the other side must be all ones
        rest = b if not a else a
        return ([], [], []) if all(d == 1 for d in rest) else None
    ga, gb, inter = [], [], []
    i = j = 0
    while i < len(a) and j < len(b):
        cur_a, pa = [i], a[i]
        cur_b, pb = [j], b[j]
        i += 1
        j += 1
        while canon_dim(pa) != canon_dim(pb):
            if dim_div(pb, pa) is not None and i < len(a):
                cur_a.append(i)
                pa = dim_mul(pa, a[i])
                i += 1
            elif dim_div(pa, pb) is not None and j < len(b):
                cur_b.append(j)
                pb = dim_mul(pb, b[j])
                j += 1
            else:
                return None
        ga.append(cur_a)
        gb.append(cur_b)
        inter.append(canon_dim(pa))
    if any(d != 1 for d in a[i:]) or any(d != 1 for d in b[j:]):
        return None
    ga[-1].extend(range(i, len(a)))
    gb[-1].extend(range(j, len(b)))
    return ga, gb, inter


def _reassoc(groups) -> str:
    return "[" + ", ".join("[" + ", ".join(str(k) for k in g) + "]" for g in groups) + "]"


def _amap(nloops: int, exprs) -> str:
    """affine_map<(d0, d1) -> (d0, 0)> from a list of loop indices (None = constant 0)."""
    dims = ", ".join(f"d{k}" for k in range(nloops))
    res = ", ".join("0" if e is None else f"d{e}" for e in exprs)
    return f"affine_map<({dims}) -> ({res})>"


def lowest(dtype: str):
    """max's identity (the table's `identity = "lowest"`): -inf, or the integer dtype's minimum."""
    if dtype in FLOATS:
        return float("-inf")
    if dtype == "i32":
        return -2**31
    if dtype == "i64":
        return -2**63
    return False
