"""numpy-style basic indexing (`x[1]`, `x[-1]`, `d[1:3]`, `x[..., ::2]`) lowered to slice + reshape."""
from __future__ import annotations

from ..errors import error
from ..ir.primitives import slice_len
from . import ast


def _int_or_none(lowerer, e, what):
    if e is None:
        return None
    from .convert import _int
    return _int(lowerer, e, what)


def lower_index(lowerer, x: int, e: ast.Index) -> int:
    b = lowerer.b
    shape = b.shape(x)
    items = list(e.items)
    ellipses = [i for i, it in enumerate(items) if isinstance(it, ast.EllipsisItem)]
    if len(ellipses) > 1:
        raise error(items[ellipses[1]].loc, "an index can have only one '...'")
    n_real = len(items) - len(ellipses)
    if n_real > len(shape):
        raise error(e.loc, f"too many indices: {n_real} for a tensor of rank {len(shape)}")
    if ellipses:
        k = ellipses[0]
        items[k:k + 1] = [None] * (len(shape) - n_real)
    else:
        items += [None] * (len(shape) - n_real)

    starts, stops, steps, keep = [], [], [], []
    for axis, (dim, it) in enumerate(zip(shape, items)):
        if it is None:  # untouched axis
            starts.append(0), stops.append(None), steps.append(1), keep.append(dim)
        elif isinstance(it, ast.SliceItem):
            step = _int_or_none(lowerer, it.step, "a slice step")
            if step is not None and step <= 0:
                raise error(it.step.loc, "slice steps must be positive")
            step = step or 1
            start = _int_or_none(lowerer, it.start, "a slice start")
            stop = _int_or_none(lowerer, it.stop, "a slice stop")
            if isinstance(dim, int):
                start, stop, _ = slice(start, stop, step).indices(dim)
                stop = max(stop, start)
            elif (start or 0) < 0 or (stop is not None and stop < 0):
                raise error(it.loc, f"negative slice bounds need a static dimension, not '{dim}'")
            else:
                start = start or 0
            try:
                length = slice_len(dim, start, stop, step)
            except Exception as err:
                raise error(it.loc, str(err)) from None
            if length == 0:
                raise error(it.loc, f"slice selects no elements of a dimension of size {dim}")
            starts.append(start), stops.append(stop), steps.append(step), keep.append(length)
        else:
            i = _int_or_none(lowerer, it, "an index")
            if not isinstance(dim, int):
                if i < 0:
                    raise error(ast.start_loc(it), f"negative index needs a static dimension, not '{dim}'")
            elif not -dim <= i < dim:
                raise error(ast.start_loc(it), f"index {i} is out of range for axis {axis} of size {dim}")
            elif i < 0:
                i += dim
            starts.append(i), stops.append(i + 1), steps.append(1)
    with b.at(e.loc):
        out = x
        if any(s != 0 for s in starts) or any(s is not None for s in stops) or any(s != 1 for s in steps):
            out = b.slice(x, start=tuple(starts), stop=tuple(stops), step=tuple(steps))
        if tuple(keep) != tuple(b.shape(out)):
            out = b.reshape(out, shape=tuple(keep))
    return out
