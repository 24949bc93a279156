"""numpy-style indexing lowered to primitives.

    x[1], x[-1]            an integer drops the axis (negative counts from the end)
    d[1:3], x[..., ::2]    slices with positive steps: one `slice` primitive
    x[::-1], x[5:1:-2]     negative steps (static dimensions): `gather` with constant indices
    x[ids], x[:, [0, 2]]   one integer tensor or list literal: `gather` along that axis; the
                           axis is replaced by the index's shape (numpy's advanced indexing)

The order of emission is: one slice for every positive step and integer, one
gather per negative-step axis, a reshape dropping the integer-indexed axes, and
the gather of the tensor index. As in numpy, when integer indices and the
tensor index are not next to each other (`x[0, :, ids]`), the tensor index's
axes come first in the result.

Negative tensor indices count from the end of a static dimension; indices
outside the dimension are clamped to it (gather's rule). Boolean masks are not
indices here (their result shape depends on the data): use `where`.
"""
from __future__ import annotations

import numpy as np

from ..errors import error
from ..ir.primitives import slice_len
from . import ast
from .literals import Literal, _int

_TENSOR_INDEX = "tensor index"


def _int_or_none(lowerer, e, what):
    if e is None:
        return None
    return _int(lowerer, e, what)


def _index_value(lowerer, it, dim, axis):
    """An index item that is not a slice: ('int', i) or ('tensor', node id)."""
    b = lowerer.b
    loc = ast.start_loc(it)
    v = lowerer.expr(it)
    if isinstance(v, Literal):
        arr = np.asarray(v.value)
        if arr.dtype == object:
            raise error(loc, "a list index is ragged: every row must have the same length")
        if arr.dtype.kind not in "iu" or (arr.ndim == 0 and isinstance(v.value, bool)):
            if arr.dtype.kind == "b":
                raise error(loc, "boolean masks are not supported as indices; use where(mask, x, y)")
            raise error(loc, f"an index must be an integer, a slice or an integer tensor, got {v.value!r}")
        if arr.size == 0:
            raise error(loc, "an index list must not be empty")
        if isinstance(dim, int):
            bad = arr[(arr < -dim) | (arr >= dim)]
            if bad.size:
                raise error(loc, f"index {int(bad.flat[0])} is out of range for axis {axis} of size {dim}")
            arr = np.where(arr < 0, arr + dim, arr)
        elif (arr < 0).any():
            raise error(loc, f"negative index needs a static dimension, not '{dim}'")
        if arr.ndim == 0:
            return "int", int(arr)
        with b.at(loc):
            return "tensor", b.constant(arr.astype(np.int64).tolist(), "i32", arr.shape)
    ids = v.id
    dt = b.dtype(ids)
    if dt == "bool":
        raise error(loc, "boolean masks are not supported as indices; use where(mask, x, y)")
    if dt not in ("i32", "i64"):
        raise error(loc, f"a tensor index must be i32 or i64, got {dt}; convert it with cast(..., i32)")
    if isinstance(dim, int):
        with b.at(loc):
            zero = b.scalar(0, dt)
            ids = b.where(b.lt(ids, zero), b.add(ids, b.scalar(dim, dt)), ids)
    return "tensor", ids


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
    reversed_axes: list[tuple[int, list[int]]] = []    # (axis, indices) of negative-step slices
    integer_axes: list[int] = []
    tensor_index: tuple[int, int] | None = None         # (axis, index node id)
    for axis, (dim, it) in enumerate(zip(shape, items)):
        if it is None:  # untouched axis
            starts.append(0), stops.append(None), steps.append(1), keep.append(dim)
        elif isinstance(it, ast.SliceItem):
            step = _int_or_none(lowerer, it.step, "a slice step")
            if step == 0:
                raise error(it.step.loc, "a slice step must not be zero")
            step = step or 1
            start = _int_or_none(lowerer, it.start, "a slice start")
            stop = _int_or_none(lowerer, it.stop, "a slice stop")
            if step < 0:
                if not isinstance(dim, int):
                    raise error(it.loc, f"a negative slice step needs a static dimension, not '{dim}'")
                picked = list(range(*slice(start, stop, step).indices(dim)))
                if not picked:
                    raise error(it.loc, f"slice selects no elements of a dimension of size {dim}")
                starts.append(0), stops.append(None), steps.append(1), keep.append(len(picked))
                if picked != list(range(dim)):
                    reversed_axes.append((axis, picked))
                continue
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
            kind, i = _index_value(lowerer, it, dim, axis)
            if kind == "tensor":
                if tensor_index is not None:
                    raise error(ast.start_loc(it), "only one tensor (or list) index is supported in a subscript; "
                                "index twice, e.g. x[i][:, j]")
                tensor_index = (axis, i)
                starts.append(0), stops.append(None), steps.append(1), keep.append(_TENSOR_INDEX)
                continue
            if not isinstance(dim, int):
                if i < 0:
                    raise error(ast.start_loc(it), f"negative index needs a static dimension, not '{dim}'")
            elif not -dim <= i < dim:
                raise error(ast.start_loc(it), f"index {i} is out of range for axis {axis} of size {dim}")
            elif i < 0:
                i += dim
            integer_axes.append(axis)
            starts.append(i), stops.append(i + 1), steps.append(1)
    with b.at(e.loc):
        out = x
        if any(s != 0 for s in starts) or any(s is not None for s in stops) or any(s != 1 for s in steps):
            out = b.slice(x, start=tuple(starts), stop=tuple(stops), step=tuple(steps))
        for axis, picked in reversed_axes:
            out = b.gather(out, b.constant(tuple(picked), "i32", (len(picked),)), axis=axis)
        kept = [shape[tensor_index[0]] if d == _TENSOR_INDEX else d for d in keep]
        if tuple(kept) != tuple(b.shape(out)):
            out = b.reshape(out, shape=tuple(kept))
        if tensor_index is not None:
            axis, ids = tensor_index
            p = keep.index(_TENSOR_INDEX)
            out = b.gather(out, ids, axis=p)
            advanced = sorted(integer_axes + [axis])
            if integer_axes and advanced != list(range(advanced[0], advanced[-1] + 1)):
                k = len(b.shape(ids))       # numpy: separated advanced indices put their axes first
                rank = len(b.shape(out))
                perm = tuple(range(p, p + k)) + tuple(i for i in range(rank) if not p <= i < p + k)
                if perm != tuple(range(rank)):
                    out = b.transpose(out, perm=perm)
    return out
