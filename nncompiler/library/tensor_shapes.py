"""Shape and indexing functions of the language: reshape, transpose, squeeze, expand_dims,
broadcast_to, concat, stack, take, flip, one_hot. Uses `builtins.range` because the
language's `range` (tensor_creation) is a different function."""
from __future__ import annotations

import builtins

from ..errors import ShapeError
from ..ir.shapes import FLOAT_DTYPES, dim_div, dim_mul, fmt_shape, numel
from .context import Axes, DType, Indices, LayerContext, Shape, Tensor, Value
from .tensor_args import axes_of, one_axis, rank_of

INT_DTYPES = ("i32", "i64")


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
    """x with a new shape of the same size, in row-major order; one dimension may be -1 (inferred)."""
    return Value(ctx.b.reshape(x.id, shape=resolve_shape(ctx.b.shape(x.id), shape)))


def transpose(ctx: LayerContext, x: Tensor, perm: Axes = None) -> Value:
    """Axes permuted: output axis i is input axis perm[i] (default: reversed)."""
    rank = rank_of(ctx, x.id)
    if perm is None:
        perm = tuple(reversed(builtins.range(rank)))
    else:
        perm = (perm,) if isinstance(perm, int) else tuple(perm)
        if len(perm) != rank:
            raise ShapeError(f"transpose of a rank-{rank} tensor needs {rank} axes, got {list(perm)}")
        perm = tuple(one_axis(ctx, p, rank) for p in perm)
    return Value(ctx.b.transpose(x.id, perm=perm))


def permute(ctx: LayerContext, x: Tensor, perm: Axes) -> Value:
    """transpose with the permutation required (torch.permute)."""
    return transpose(ctx, x, perm)


def squeeze(ctx: LayerContext, x: Tensor, axis: Axes = None) -> Value:
    """x without size-1 axes: `axis` (which must have size 1), or every static size-1 axis."""
    b = ctx.b
    shape = tuple(b.shape(x.id))
    if axis is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    else:
        axes = axes_of(x.id, ctx, axis)
        for a in axes:
            if shape[a] != 1:
                raise ShapeError(f"cannot squeeze axis {a} of size {shape[a]} (shape {fmt_shape(shape)})")
    new = tuple(d for i, d in enumerate(shape) if i not in axes)
    return Value(b.reshape(x.id, shape=new) if new != shape else x.id)


def expand_dims(ctx: LayerContext, x: Tensor, axis: int) -> Value:
    """x with a new size-1 axis inserted at position `axis` of the result (negative counts from the end)."""
    b = ctx.b
    shape = tuple(b.shape(x.id))
    a = one_axis(ctx, axis, len(shape) + 1)
    return Value(b.reshape(x.id, shape=shape[:a] + (1,) + shape[a:]))


def broadcast_to(ctx: LayerContext, x: Tensor, shape: Shape) -> Value:
    """x repeated along size-1 (or missing leading) axes to `shape`, by numpy's broadcasting rules."""
    return Value(ctx.b.broadcast_to(x.id, shape=tuple(shape)))


def _items(ctx: LayerContext, tensors) -> list[int]:
    """The node ids of the tensors a variadic call was given (the unused slots are None)."""
    return [t.id for t in tensors if t is not None]


def _merge_sequence(ctx: LayerContext, s: int, axis: int) -> int:
    """concat of the items of s (a sequence along axis 0) along item axis `axis`:
    move the sequence axis next to `axis`, then merge the two."""
    b = ctx.b
    shape = tuple(b.shape(s))
    item = shape[1:]
    if not item:
        raise ShapeError("cannot concatenate scalars; use stack")
    a = one_axis(ctx, axis, len(item))
    perm = tuple(builtins.range(1, a + 1)) + (0,) + tuple(builtins.range(a + 1, len(shape)))
    moved = b.transpose(s, perm=perm) if perm != tuple(builtins.range(len(shape))) else s
    return b.reshape(moved, shape=item[:a] + (dim_mul(shape[0], item[a]),) + item[a + 1:])


def concat(ctx: LayerContext, a: Tensor, *more: Tensor, axis: int = -1) -> Value:
    """Tensors joined along an existing axis (default -1, as Keras's Concatenate; numpy's default is 0).

    Any number of tensors, one `concat` primitive; one tensor is a sequence along
    its first axis, as in numpy, so `concat([p, q], axis=0)` joins p and q (a list
    literal stacks equal shapes). A layer too: merges the branches of a
    non-sequential model."""
    ids = _items(ctx, (a, *more))
    if len(ids) == 1:
        return Value(_merge_sequence(ctx, ids[0], axis))
    ranks = {rank_of(ctx, i) for i in ids}
    if ranks == {0}:
        raise ShapeError("cannot concatenate scalars; use stack")
    if len(ranks) != 1:
        raise ShapeError("concat operands differ in rank: "
                         + ", ".join(fmt_shape(ctx.b.shape(i)) for i in ids))
    rank = ranks.pop()
    return Value(ctx.b.concat(*ids, axis=one_axis(ctx, axis, rank)))


def stack(ctx: LayerContext, a: Tensor, b: Tensor = None, c: Tensor = None, d: Tensor = None,
          axis: int = 0) -> Value:
    """Tensors of one shape joined along a new axis (default 0, as numpy).

    Up to four tensors; one tensor is a sequence along its first axis (numpy's
    np.stack(x, axis) moves that axis to `axis`)."""
    bld = ctx.b
    ids = _items(ctx, (a, b, c, d))
    if len(ids) == 1:
        shape = tuple(bld.shape(ids[0]))
        if not shape:
            raise ShapeError("stack of one tensor needs a sequence (rank >= 1), got a scalar")
        k = one_axis(ctx, axis, len(shape))
        perm = tuple(builtins.range(1, k + 1)) + (0,) + tuple(builtins.range(k + 1, len(shape)))
        return Value(bld.transpose(ids[0], perm=perm) if k else ids[0])
    shapes = [tuple(bld.shape(i)) for i in ids]
    if len(set(shapes)) != 1:
        raise ShapeError("stack needs tensors of one shape, got " + ", ".join(fmt_shape(s) for s in shapes))
    k = one_axis(ctx, axis, len(shapes[0]) + 1)
    new = shapes[0][:k] + (1,) + shapes[0][k:]
    return Value(bld.concat(*(bld.reshape(i, shape=new) for i in ids), axis=k))


def _normalised_indices(ctx: LayerContext, ids: int, n) -> int:
    """Integer indices with negative ones counted from the end of a dimension of size n."""
    b = ctx.b
    dt = b.dtype(ids)
    if dt == "bool" or dt in FLOAT_DTYPES:
        raise ShapeError(f"indices must be integers (i32 or i64), got {dt}")
    if not isinstance(n, int):
        return ids                                   # symbolic size: indices must be >= 0
    zero = b.scalar(0, dt)
    return b.where(b.lt(ids, zero), b.add(ids, b.scalar(n, dt)), ids)


def take(ctx: LayerContext, x: Tensor, indices: Indices, axis: int = 0) -> Value:
    """Elements of x at integer `indices` along `axis` (np.take): the axis is replaced by indices' shape.

    Negative indices count from the end; out-of-range ones are clamped to the
    nearest valid index (as XLA's gather). Repeated indices add up their gradients."""
    b = ctx.b
    rank = rank_of(ctx, x.id)
    if rank == 0:
        raise ShapeError("take needs a tensor of rank >= 1")
    a = one_axis(ctx, axis, rank)
    idx = _normalised_indices(ctx, indices.id, b.shape(x.id)[a])
    return Value(b.gather(x.id, idx, axis=a))


def flip(ctx: LayerContext, x: Tensor, axis: Axes = None) -> Value:
    """x with the order of elements reversed along `axis` (default all axes), as np.flip; static sizes only."""
    b = ctx.b
    out = x.id
    shape = b.shape(x.id)
    for a in axes_of(x.id, ctx, axis):
        n = shape[a]
        if not isinstance(n, int):
            raise ShapeError(f"cannot flip axis {a} of symbolic size {n}")
        if n > 1:
            out = b.gather(out, b.constant(tuple(builtins.range(n - 1, -1, -1)), "i32", (n,)), axis=a)
    return Value(out)


def one_hot(ctx: LayerContext, indices: Indices, depth: int, dtype: DType = "f32") -> Value:
    """[..., depth] with 1 at each index and 0 elsewhere (indices outside [0, depth) give all zeros)."""
    b = ctx.b
    ids = indices.id
    if b.dtype(ids) not in INT_DTYPES:
        raise ShapeError(f"one_hot indices must be integers, got {b.dtype(ids)}")
    if depth <= 0:
        raise ShapeError(f"depth must be > 0, got {depth}")
    shape = tuple(b.shape(ids))
    classes = b.iota(axis=len(shape), dtype=b.dtype(ids), shape=shape + (depth,))
    hit = b.eq(b.reshape(ids, shape=shape + (1,)), classes)
    return Value(b.cast(hit, dtype=dtype) if dtype != "bool" else hit)
