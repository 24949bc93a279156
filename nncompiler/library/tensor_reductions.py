"""Reductions of the language: sum, mean, var, std, max, min, logsumexp, any, all, argmax,
argmin. Several names shadow Python builtins; nothing here needs the originals."""
from __future__ import annotations

from .context import Axes, LayerContext, Tensor, Value
from .tensor_args import as_count, as_float, axes_of, truth
from .tensor_elementwise import logical_not


def sum(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """Sum over `axis` (default all); bools count as i32."""
    xi = as_count(ctx, x.id)
    return Value(ctx.b.sum(xi, axes=axes_of(xi, ctx, axis), keepdims=keepdims))


def mean(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """Mean over `axis` (default all); integers give f32. The count is read at run time, so a symbolic batch is fine."""
    b = ctx.b
    xf = as_float(ctx, x.id)
    axes = axes_of(xf, ctx, axis)
    total = b.sum(xf, axes=axes, keepdims=keepdims)
    return Value(b.div(total, b.size(xf, axes=axes, dtype=b.dtype(xf))))


def var(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """Variance over `axis` (biased, numpy's ddof=0, as Keras's normalisation layers use)."""
    b = ctx.b
    xf = as_float(ctx, x.id)
    axes = axes_of(xf, ctx, axis)
    m = b.div(b.sum(xf, axes=axes, keepdims=True), b.size(xf, axes=axes, dtype=b.dtype(xf)))
    d = b.sub(xf, m)
    sq = b.sum(b.mul(d, d), axes=axes, keepdims=keepdims)
    return Value(b.div(sq, b.size(xf, axes=axes, dtype=b.dtype(xf))))


def std(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """Standard deviation over `axis`: sqrt(var(x)) (biased)."""
    return Value(ctx.b.sqrt(var(ctx, x, axis, keepdims).id))


def max(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """Largest element over `axis` (default all); the gradient is shared evenly between ties, as torch.amax."""
    return Value(ctx.b.max(x.id, axes=axes_of(x.id, ctx, axis), keepdims=keepdims))


def min(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """Smallest element over `axis` (default all)."""
    b = ctx.b
    return Value(b.neg(b.max(b.neg(x.id), axes=axes_of(x.id, ctx, axis), keepdims=keepdims)))


def logsumexp(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """log(sum(exp(x))) over `axis`, computed stably (shifted by the max, which cancels exactly)."""
    b = ctx.b
    xf = as_float(ctx, x.id)
    axes = axes_of(xf, ctx, axis)
    m = b.stop_gradient(b.max(xf, axes=axes, keepdims=True))
    s = b.log(b.sum(b.exp(b.sub(xf, m)), axes=axes, keepdims=True))
    out = b.add(s, m)
    if not keepdims:
        out = b.reshape(out, shape=tuple(d for i, d in enumerate(b.shape(xf)) if i not in axes))
    return Value(out)


def any(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """True where any element over `axis` is true (non-zero)."""
    b = ctx.b
    nz = b.cast(truth(ctx, x.id), dtype="i32")
    m = b.max(nz, axes=axes_of(nz, ctx, axis), keepdims=keepdims)
    return Value(b.gt(m, b.scalar(0, "i32")))


def all(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """True where every element over `axis` is true (non-zero)."""
    b = ctx.b
    z = b.cast(logical_not(ctx, x).id, dtype="i32")
    m = b.max(z, axes=axes_of(z, ctx, axis), keepdims=keepdims)
    return Value(b.eq(m, b.scalar(0, "i32")))


def argmax(ctx: LayerContext, x: Tensor, axis: int = -1, keepdims: bool = False) -> Value:
    """Index (i32) of the largest element along `axis`; the first one on ties, as numpy."""
    return Value(ctx.b.argmax(x.id, axis=axes_of(x.id, ctx, [axis])[0], keepdims=keepdims))


def argmin(ctx: LayerContext, x: Tensor, axis: int = -1, keepdims: bool = False) -> Value:
    """Index (i32) of the smallest element along `axis`; the first one on ties, as numpy."""
    b = ctx.b
    xi = as_count(ctx, x.id)
    return Value(b.argmax(b.neg(xi), axis=axes_of(xi, ctx, [axis])[0], keepdims=keepdims))
