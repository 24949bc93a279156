"""Tensor functions of the language (`sum(x, axis=1)`, `reshape(c, [4])`, `ones([2, 2])`, ...).

Each is a composition of IR primitives, with the same calling convention as
layers: `fn(ctx, ...) -> Value`, annotated so the front end can check calls.
"""
from __future__ import annotations

from ..errors import ShapeError
from ..ir.primitives import norm_axes
from ..ir.shapes import dim_div, numel
from .context import Axes, DType, LayerContext, Shape, Tensor, Value


def _axes(x: int, ctx: LayerContext, axis):
    return norm_axes(axis, len(ctx.b.shape(x)))


def sum(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    return Value(ctx.b.sum(x.id, axes=_axes(x.id, ctx, axis), keepdims=keepdims))


def mean(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    b = ctx.b
    axes = _axes(x.id, ctx, axis)
    total = b.sum(x.id, axes=axes, keepdims=keepdims)
    return Value(b.div(total, b.size(x.id, axes=axes, dtype=b.dtype(x.id))))


def max(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    return Value(ctx.b.max(x.id, axes=_axes(x.id, ctx, axis), keepdims=keepdims))


def min(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    b = ctx.b
    return Value(b.neg(b.max(b.neg(x.id), axes=_axes(x.id, ctx, axis), keepdims=keepdims)))


def argmax(ctx: LayerContext, x: Tensor, axis: int = -1) -> Value:
    return Value(ctx.b.argmax(x.id, axis=_axes(x.id, ctx, [axis])[0], keepdims=False))


def _unary(op):
    def fn(ctx: LayerContext, x: Tensor) -> Value:
        return Value(ctx.b.emit(op, (x.id,)))
    fn.__name__ = op
    fn.__doc__ = f"Elementwise {op}."
    return fn


exp, log, sqrt, abs, sign = (_unary(op) for op in ("exp", "log", "sqrt", "abs", "sign"))


def square(ctx: LayerContext, x: Tensor) -> Value:
    return Value(ctx.b.mul(x.id, x.id))


def pow(ctx: LayerContext, x: Tensor, y: Tensor) -> Value:
    return Value(ctx.b.pow(x.id, y.id))


def maximum(ctx: LayerContext, x: Tensor, y: Tensor) -> Value:
    return Value(ctx.b.maximum(x.id, y.id))


def minimum(ctx: LayerContext, x: Tensor, y: Tensor) -> Value:
    return Value(ctx.b.minimum(x.id, y.id))


def where(ctx: LayerContext, cond: Tensor, x: Tensor, y: Tensor) -> Value:
    return Value(ctx.b.where(cond.id, x.id, y.id))


def clip(ctx: LayerContext, x: Tensor, low: float, high: float) -> Value:
    b = ctx.b
    dt = b.dtype(x.id)
    return Value(b.minimum(b.maximum(x.id, b.scalar(low, dt)), b.scalar(high, dt)))


def cast(ctx: LayerContext, x: Tensor, dtype: DType) -> Value:
    return Value(ctx.b.cast(x.id, dtype=dtype))


def matmul(ctx: LayerContext, a: Tensor, b: Tensor) -> Value:
    return Value(matmul_any(ctx.b, a.id, b.id))


def matmul_any(b, x: int, y: int) -> int:
    """numpy's matmul: 1-D operands are promoted to matrices and the added axis removed."""
    xs, ys = b.shape(x), b.shape(y)
    if not xs or not ys:
        raise ShapeError("matmul operands must not be scalars")
    x2 = b.reshape(x, shape=(1,) + tuple(xs)) if len(xs) == 1 else x
    y2 = b.reshape(y, shape=tuple(ys) + (1,)) if len(ys) == 1 else y
    out = b.matmul(x2, y2)
    shape = list(b.shape(out))
    if len(ys) == 1:
        shape.pop(-1)
    if len(xs) == 1:
        shape.pop(-2 if len(ys) != 1 else -1)
    return b.reshape(out, shape=tuple(shape)) if tuple(shape) != tuple(b.shape(out)) else out


def resolve_shape(old, new) -> tuple:
    """Fill in one -1 in a reshape target from the element count."""
    new = list(new)
    holes = [i for i, d in enumerate(new) if d == -1]
    if len(holes) > 1:
        raise ShapeError("only one dimension of a reshape can be -1")
    if holes:
        known = numel([d for d in new if d != -1])
        rest = dim_div(numel(old), known)
        if rest is None:
            raise ShapeError(f"cannot reshape {list(old)} to {new}")
        new[holes[0]] = rest
    return tuple(new)


def reshape(ctx: LayerContext, x: Tensor, shape: Shape) -> Value:
    return Value(ctx.b.reshape(x.id, shape=resolve_shape(ctx.b.shape(x.id), shape)))


def transpose(ctx: LayerContext, x: Tensor, perm: Shape = None) -> Value:
    rank = len(ctx.b.shape(x.id))
    perm = tuple(reversed(range(rank))) if perm is None else tuple(p % rank for p in perm)
    return Value(ctx.b.transpose(x.id, perm=perm))


def fill(ctx: LayerContext, shape: Shape, value: float, dtype: DType = "f32") -> Value:
    b = ctx.b
    return Value(b.broadcast_to(b.scalar(value, dtype), shape=tuple(shape)))


def zeros(ctx: LayerContext, shape: Shape, dtype: DType = "f32") -> Value:
    return fill(ctx, shape, 0.0, dtype)


def ones(ctx: LayerContext, shape: Shape, dtype: DType = "f32") -> Value:
    return fill(ctx, shape, 1.0, dtype)


TENSOR_OPS = {f.__name__: f for f in (
    sum, mean, max, min, argmax, exp, log, sqrt, abs, sign, square, pow, maximum, minimum, where,
    clip, cast, matmul, reshape, transpose, fill, zeros, ones)}
