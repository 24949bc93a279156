"""Shape arithmetic over symbolic dimensions at import time.

Exporters read the batch size at run time to build shapes: torch writes
`Shape -> Gather -> Unsqueeze -> Concat -> Reshape`, nnc's own exporter
`Shape(start, end) -> Mul -> Concat -> Reshape/Expand`. nnc's IR carries the batch
as a symbolic dimension ("B"), so these chains are evaluated here on `SymInts`
(int64 vectors whose entries may be symbolic dims) and `Reshape`/`Expand` receive
a static, possibly symbolic, shape: no shape computation reaches the IR.
"""
from __future__ import annotations

import numpy as np

from ..ir.shapes import dim_add, dim_div, dim_mul


class SymInts:
    """A 0-d or 1-d int64 value known at import time up to symbolic dimensions."""

    def __init__(self, dims, scalar: bool = False):
        self.dims = tuple(dims)
        self.scalar = scalar

    @property
    def static(self) -> bool:
        return all(isinstance(d, int) for d in self.dims)

    def array(self) -> np.ndarray:
        a = np.asarray(self.dims, dtype=np.int64)
        return a.reshape(()) if self.scalar else a


def _dims(v) -> tuple[list, bool]:
    if isinstance(v, SymInts):
        return list(v.dims), v.scalar
    a = np.asarray(v)
    if a.dtype.kind not in "iu":
        raise ValueError(f"shape arithmetic on {a.dtype} values")
    return [int(x) for x in a.reshape(-1)], a.ndim == 0


def _wrap(dims, scalar=False):
    out = SymInts(dims, scalar)
    return out.array() if out.static else out


def _binary(cx, fn):
    (a, sa), (b, sb) = _dims(cx.value(0)), _dims(cx.value(1))
    if len(a) == 1 and len(b) > 1:
        a = a * len(b)
    if len(b) == 1 and len(a) > 1:
        b = b * len(a)
    return _wrap([fn(x, y) for x, y in zip(a, b)], sa and sb)


def _div(x, y):
    q = dim_div(x, y)
    if q is None:
        raise ValueError(f"cannot divide dimension {x} by {y} exactly")
    return q


def _gather(cx):
    dims, _ = _dims(cx.value(0))
    idx = cx.const(1, "indices")
    picked = [dims[int(i)] for i in np.asarray(idx).reshape(-1)]
    return _wrap(picked, np.ndim(idx) == 0)


def _unsqueeze(cx):
    dims, _ = _dims(cx.value(0))
    return _wrap(dims)


def _squeeze(cx):
    dims, _ = _dims(cx.value(0))
    if len(dims) != 1:
        raise ValueError("squeezing a shape vector of more than one element")
    return _wrap(dims, True)


def _concat(cx):
    out = []
    for i in range(cx.n_inputs):
        out += _dims(cx.value(i))[0]
    return _wrap(out)


def _slice(cx):
    dims, _ = _dims(cx.value(0))
    start, end = int(cx.const(1, "starts")[0]), int(cx.const(2, "ends")[0])
    step = int(cx.const(4, "steps")[0]) if cx.has(4) else 1
    return _wrap(dims[slice(start, end, step)])


def _same(cx):
    dims, scalar = _dims(cx.value(0))
    return _wrap(dims, scalar)


OPS = {
    "Gather": _gather, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Concat": _concat, "Slice": _slice,
    "Cast": _same, "Identity": _same, "Reshape": _same,
    "Mul": lambda cx: _binary(cx, dim_mul), "Add": lambda cx: _binary(cx, dim_add),
    "Div": lambda cx: _binary(cx, _div),
}
