"""Tensor functions that are one IR primitive each, with the primitive's own arguments.

The friendly functions compute these primitives' attributes for the user
(`conv2d` makes its kernel and works out `same` padding, `maxpool2d` its window,
`take` counts negative indices from the end, `mean` divides by a `size`). These take
the attributes as the IR holds them, so any graph the ONNX importer builds can be
written back as a `.nn` file node for node (`nnc import`, onnx/to_nn.py) and compile
to the same IR. Everything is checked here, at the call, so a wrong argument is a
FILE:LINE:COL error, never a failure inside a pass.

`literal_constant` is also how the front end turns a literal into a tensor, so a
literal and `constant(...)` accept and refuse the same values.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.primitives import norm_axes
from ..ir.shapes import FLOAT_DTYPES, fmt_shape
from .context import Array, Axes, DType, Indices, LayerContext, Padding, Shape, Tensor, Value

_NP = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}
WINDOW_KINDS = ("sum", "max")


def literal_dtype(arr: np.ndarray) -> str:
    """A literal's own dtype: bool, f32 for floats, i32 for integers."""
    return {"b": "bool", "f": "f32"}.get(arr.dtype.kind, "i32")


def literal_constant(b, arr: np.ndarray, dtype: str) -> int:
    """One `const` of `dtype` holding the literal `arr`; a value the dtype cannot hold is an error."""
    if arr.dtype.kind == "f" and dtype not in FLOAT_DTYPES:
        raise ShapeError(f"float literal where a {dtype} value is expected")
    if arr.dtype.kind == "b" and dtype != "bool":
        arr = arr.astype(np.int32)
    if dtype in ("i32", "i64") and arr.size:
        info = np.iinfo(_NP[dtype])
        if arr.min() < info.min or arr.max() > info.max:
            bad = arr.min() if arr.min() < info.min else arr.max()
            raise ShapeError(f"integer {bad} does not fit in {dtype} (range {info.min} to {info.max})")
    if dtype == "f32" and arr.dtype.kind in "iuf" and arr.size and np.abs(arr).max() > np.finfo(np.float32).max:
        raise ShapeError(f"number {np.abs(arr).max():g} does not fit in f32 (the largest f32 is 3.4e+38)")
    value = arr.astype(_NP[dtype] if dtype in ("f32", "f64", "bool") else np.int64)
    return b.constant(value.tolist() if arr.ndim else value.item(), dtype, arr.shape)


def constant(ctx: LayerContext, value: Array, dtype: DType = None) -> Value:
    """A literal (`1.5`, `[1, 2]`) as a tensor here: one `const`, made at this statement, of `dtype` (default: f32 for floats, i32 for integers).

    A literal in an expression becomes a constant where it is used, in the other
    operand's dtype; `constant` fixes it and where it is made, as `nnc import` needs
    to write a graph back node for node. A tensor is returned as it is (and must
    already have `dtype`)."""
    if isinstance(value, Value):
        if dtype is not None and ctx.b.dtype(value.id) != dtype:
            raise ShapeError(f"a {ctx.b.dtype(value.id)} tensor is not a {dtype} constant; use cast(x, {dtype})")
        return value
    return Value(literal_constant(ctx.b, value, dtype or literal_dtype(value)))


def _per_axis(v, n: int, what: str, low: int = 1) -> tuple[int, ...]:
    """An int or a list of n ints, each >= low."""
    vals = tuple(v) if isinstance(v, (list, tuple)) else (v,) * n
    if len(vals) != n or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < low
                             for d in vals):
        raise ShapeError(f"{what} must be an int >= {low} or a list of {n} of them, got {v!r}")
    return tuple(int(d) for d in vals)


def _pairs(padding, n: int, what: str) -> tuple[tuple[int, int], ...]:
    """Padding (an int, or per axis an int or a (lo, hi) pair) as n non-negative (lo, hi) pairs."""
    items = padding if isinstance(padding, tuple) else (padding,) * n
    if len(items) != n:
        raise ShapeError(f"{what} needs one entry per axis ({n}), got {len(items)}")
    out = tuple(tuple(p) if isinstance(p, tuple) else (p, p) for p in items)
    if any(v < 0 for p in out for v in p):
        raise ShapeError(f"{what} must be non-negative, got {[list(p) for p in out]}")
    return out


def _check_shape(shape) -> tuple:
    shape = tuple(shape)
    if not shape or any(isinstance(d, int) and d < 1 for d in shape):
        raise ShapeError(f"shape {fmt_shape(shape)} must have rank >= 1 and positive dimensions")
    return shape


def _windowed(b, x: int, what: str) -> int:
    """The number of spatial axes of x [N, *spatial, C]."""
    shape = b.shape(x)
    if len(shape) < 3 or b.dtype(x) not in FLOAT_DTYPES:
        raise ShapeError(f"{what} expects a float x [N, *spatial, C] of rank >= 3, got {b.type_of(x)}")
    return len(shape) - 2


def conv(ctx: LayerContext, x: Tensor, kernel: Tensor, stride: Axes = 1, padding: Padding = 0,
         dilation: Axes = 1, groups: int = 1) -> Value:
    """The `conv` primitive: x [N, *spatial, C] convolved with kernel [*window, C/groups, F], padded with zeros by `padding` ([lo, hi] per spatial axis).

    Any number of spatial axes; with `groups` > 1 the channels split into that many
    groups, each with its own F/groups filters. conv2d is this plus a kernel
    parameter, `same`/`valid` padding, a bias and an activation."""
    b = ctx.b
    n = _windowed(b, x.id, "conv")
    if isinstance(groups, bool) or groups < 1:
        raise ShapeError(f"groups must be a positive int, got {groups!r}")
    return Value(b.conv(x.id, kernel.id, stride=_per_axis(stride, n, "stride"),
                        padding=_pairs(padding, n, "padding"), dilation=_per_axis(dilation, n, "dilation"),
                        groups=groups))


def reduce_window(ctx: LayerContext, x: Tensor, kind: str, window: Axes, stride: Axes = 1,
                  padding: Padding = 0) -> Value:
    """The `reduce_window` primitive: the sum or max (`kind`) of each window of x [N, *spatial, C]; padding counts as 0 (sum) or -inf (max).

    maxpool2d is this with kind=max; avgpool2d divides a kind=sum window by its count."""
    b = ctx.b
    n = _windowed(b, x.id, "reduce_window")
    if kind not in WINDOW_KINDS:
        raise ShapeError(f"kind must be one of {', '.join(WINDOW_KINDS)}, got {kind!r}")
    return Value(b.reduce_window(x.id, kind=kind, window=_per_axis(window, n, "window"),
                                 stride=_per_axis(stride, n, "stride"), padding=_pairs(padding, n, "padding")))


def pad(ctx: LayerContext, x: Tensor, padding: Padding, interior: Axes = 0) -> Value:
    """x with zeros added before and after each axis ([lo, hi] per axis, as numpy's pad_width) and `interior` zeros between neighbouring elements."""
    b = ctx.b
    rank = len(b.shape(x.id))
    pairs = _pairs(padding, rank, "padding")
    return Value(b.pad(x.id, lo=tuple(p[0] for p in pairs), hi=tuple(p[1] for p in pairs),
                       interior=_per_axis(interior, rank, "interior", low=0)))


def gather(ctx: LayerContext, x: Tensor, indices: Indices, axis: int = 0) -> Value:
    """Elements of x at `indices` along `axis`, every index clamped to the axis (the `gather` primitive).

    take(x, indices) is the same but counts negative indices from the end first."""
    b = ctx.b
    rank = len(b.shape(x.id))
    if rank == 0:
        raise ShapeError("gather needs a tensor of rank >= 1")
    return Value(b.gather(x.id, indices.id, axis=norm_axes([axis], rank)[0]))


def scatter_add(ctx: LayerContext, updates: Tensor, indices: Indices, shape: Shape, axis: int = 0) -> Value:
    """Zeros of `shape`, with each slice of `updates` added at its index along `axis` (gather's transpose; indices clamped)."""
    shape = _check_shape(shape)
    return Value(ctx.b.scatter_add(updates.id, indices.id, axis=norm_axes([axis], len(shape))[0], shape=shape))


def iota(ctx: LayerContext, shape: Shape, axis: int = 0, dtype: DType = "i32") -> Value:
    """A tensor of `shape` holding each element's index along `axis` (`iota([2, 3], axis=1)` is [[0 1 2] [0 1 2]])."""
    shape = _check_shape(shape)
    if dtype == "bool":
        raise ShapeError("iota counts: give a number dtype (f32, f64, i32, i64)")
    return Value(ctx.b.iota(axis=norm_axes([axis], len(shape))[0], dtype=dtype, shape=shape))


def size(ctx: LayerContext, x: Tensor, axis: Axes = None, dtype: DType = "i32") -> Value:
    """The number of elements of x along `axis` (default all), as a `dtype` scalar; read at run time, so a symbolic batch counts."""
    if dtype == "bool":
        raise ShapeError("size counts: give a number dtype (f32, f64, i32, i64)")
    rank = len(ctx.b.shape(x.id))
    return Value(ctx.b.size(x.id, axes=norm_axes(axis, rank), dtype=dtype))


PRIMITIVE_OPS = {f.__name__: f for f in (constant, conv, reduce_window, pad, gather, scatter_add, iota, size)}
