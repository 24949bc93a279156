"""How the tensor functions read their arguments: axes (negative ones counted from the end),
numpy's promotions (ints to f32 where the result is a float, bools to i32 where it is a
count) and truth (non-zero is true)."""
from __future__ import annotations

from ..errors import ShapeError
from ..ir.primitives import norm_axes
from ..ir.shapes import FLOAT_DTYPES
from .context import LayerContext


def axes_of(x: int, ctx: LayerContext, axis):
    return norm_axes(axis, len(ctx.b.shape(x)))


def as_float(ctx: LayerContext, x: int) -> int:
    """x itself if it is a float tensor, else x cast to f32 (numpy's promotion of ints)."""
    b = ctx.b
    return x if b.dtype(x) in FLOAT_DTYPES else b.cast(x, dtype="f32")


def as_count(ctx: LayerContext, x: int) -> int:
    """bools count as i32 (sum of a mask is a count, as numpy)."""
    b = ctx.b
    return b.cast(x, dtype="i32") if b.dtype(x) == "bool" else x


def rank_of(ctx: LayerContext, x: int) -> int:
    return len(ctx.b.shape(x))


def one_axis(ctx: LayerContext, axis: int, rank: int) -> int:
    """One axis (negative counts from the end) of a tensor of rank `rank`, made non-negative."""
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for a tensor of rank {rank}")
    return axis % rank


def truth(ctx: LayerContext, x: int) -> int:
    """A bool tensor: x itself, or x != 0."""
    b = ctx.b
    return x if b.dtype(x) == "bool" else b.ne(x, b.scalar(0, b.dtype(x)))
