"""Tensor functions of the language (`sum(x, axis=1)`, `reshape(c, [4])`, `ones([2, 2])`, ...).

Each is a composition of IR primitives, with the same calling convention as
layers: `fn(ctx, ...) -> Value`, annotated so the front end can check calls.
The first paragraph of each docstring is its one-line summary in
dsl/functions.md; dsl/ref/tensors.md is the reference with examples.

Conventions (numpy's unless said otherwise):
  * axes may be negative; `axis=None` reduces over every axis;
  * integer and bool tensors are promoted to f32 where the result is a float
    (exp, log, sqrt, mean, var, ...), bools to i32 where it is a count (sum);
  * the random functions draw fixed numbers (they are computed once, like a
    parameter's initial value, not redrawn at every step); without `seed=`
    the seed is derived from the model seed and the call's position;
  * functions that take several tensors (`concat`, `stack`) take up to four
    positional tensors; a single tensor is a sequence along its first axis,
    so `concat([a, b], axis=0)` (a list literal stacks) works for equal shapes.

Several names shadow Python builtins (sum, max, min, abs, pow, range, any,
all); this module uses `builtins.` where it needs the originals.
"""
from __future__ import annotations

import builtins

import numpy as np

from ..errors import ShapeError
from ..ir.primitives import norm_axes
from ..ir.shapes import FLOAT_DTYPES, dim_div, dim_mul, fmt_shape, numel
from . import initializers
from .context import Axes, DType, Indices, LayerContext, Shape, Tensor, Value, _stable_seed

INT_DTYPES = ("i32", "i64")


def _axes(x: int, ctx: LayerContext, axis):
    return norm_axes(axis, len(ctx.b.shape(x)))


def _floating(ctx: LayerContext, x: int) -> int:
    """x itself if it is a float tensor, else x cast to f32 (numpy's promotion of ints)."""
    b = ctx.b
    return x if b.dtype(x) in FLOAT_DTYPES else b.cast(x, dtype="f32")


def _counting(ctx: LayerContext, x: int) -> int:
    """bools count as i32 (sum of a mask is a count, as numpy)."""
    b = ctx.b
    return b.cast(x, dtype="i32") if b.dtype(x) == "bool" else x


def _rank(ctx: LayerContext, x: int) -> int:
    return len(ctx.b.shape(x))


def _axis(ctx: LayerContext, axis: int, rank: int) -> int:
    """One axis (negative counts from the end) of a tensor of rank `rank`, made non-negative."""
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for a tensor of rank {rank}")
    return axis % rank


# ---- reductions ---------------------------------------------------------------------

def sum(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """Sum over `axis` (default all); bools count as i32."""
    xi = _counting(ctx, x.id)
    return Value(ctx.b.sum(xi, axes=_axes(xi, ctx, axis), keepdims=keepdims))


def mean(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """Mean over `axis` (default all); integers give f32. The count is read at run time, so a symbolic batch is fine."""
    b = ctx.b
    xf = _floating(ctx, x.id)
    axes = _axes(xf, ctx, axis)
    total = b.sum(xf, axes=axes, keepdims=keepdims)
    return Value(b.div(total, b.size(xf, axes=axes, dtype=b.dtype(xf))))


def var(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """Variance over `axis` (biased, numpy's ddof=0, as Keras's normalisation layers use)."""
    b = ctx.b
    xf = _floating(ctx, x.id)
    axes = _axes(xf, ctx, axis)
    m = b.div(b.sum(xf, axes=axes, keepdims=True), b.size(xf, axes=axes, dtype=b.dtype(xf)))
    d = b.sub(xf, m)
    sq = b.sum(b.mul(d, d), axes=axes, keepdims=keepdims)
    return Value(b.div(sq, b.size(xf, axes=axes, dtype=b.dtype(xf))))


def std(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """Standard deviation over `axis`: sqrt(var(x)) (biased)."""
    return Value(ctx.b.sqrt(var(ctx, x, axis, keepdims).id))


def max(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """Largest element over `axis` (default all); the gradient is shared evenly between ties, as torch.amax."""
    return Value(ctx.b.max(x.id, axes=_axes(x.id, ctx, axis), keepdims=keepdims))


def min(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """Smallest element over `axis` (default all)."""
    b = ctx.b
    return Value(b.neg(b.max(b.neg(x.id), axes=_axes(x.id, ctx, axis), keepdims=keepdims)))


def logsumexp(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """log(sum(exp(x))) over `axis`, computed stably (shifted by the max, which cancels exactly)."""
    b = ctx.b
    xf = _floating(ctx, x.id)
    axes = _axes(xf, ctx, axis)
    m = b.stop_gradient(b.max(xf, axes=axes, keepdims=True))
    s = b.log(b.sum(b.exp(b.sub(xf, m)), axes=axes, keepdims=True))
    out = b.add(s, m)
    if not keepdims:
        out = b.reshape(out, shape=tuple(d for i, d in enumerate(b.shape(xf)) if i not in axes))
    return Value(out)


def any(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """True where any element over `axis` is true (non-zero)."""
    b = ctx.b
    nz = b.cast(_truth(ctx, x.id), dtype="i32")
    m = b.max(nz, axes=_axes(nz, ctx, axis), keepdims=keepdims)
    return Value(b.gt(m, b.scalar(0, "i32")))


def all(ctx: LayerContext, x: Tensor, axis: Axes = None, keepdims: bool = False) -> Value:
    """True where every element over `axis` is true (non-zero)."""
    b = ctx.b
    z = b.cast(logical_not(ctx, x).id, dtype="i32")
    m = b.max(z, axes=_axes(z, ctx, axis), keepdims=keepdims)
    return Value(b.eq(m, b.scalar(0, "i32")))


def argmax(ctx: LayerContext, x: Tensor, axis: int = -1, keepdims: bool = False) -> Value:
    """Index (i32) of the largest element along `axis`; the first one on ties, as numpy."""
    return Value(ctx.b.argmax(x.id, axis=_axes(x.id, ctx, [axis])[0], keepdims=keepdims))


def argmin(ctx: LayerContext, x: Tensor, axis: int = -1, keepdims: bool = False) -> Value:
    """Index (i32) of the smallest element along `axis`; the first one on ties, as numpy."""
    b = ctx.b
    xi = _counting(ctx, x.id)
    return Value(b.argmax(b.neg(xi), axis=_axes(xi, ctx, [axis])[0], keepdims=keepdims))


# ---- elementwise --------------------------------------------------------------------

def _float_unary(op):
    def fn(ctx: LayerContext, x: Tensor) -> Value:
        return Value(ctx.b.emit(op, (_floating(ctx, x.id),)))
    fn.__name__ = fn.__qualname__ = op
    fn.__doc__ = f"Elementwise {op} (integers are promoted to f32)."
    return fn


def _unary(op):
    def fn(ctx: LayerContext, x: Tensor) -> Value:
        return Value(ctx.b.emit(op, (x.id,)))
    fn.__name__ = fn.__qualname__ = op
    fn.__doc__ = f"Elementwise {op}."
    return fn


exp, log, log1p, sqrt = (_float_unary(op) for op in ("exp", "log", "log1p", "sqrt"))
abs, sign = (_unary(op) for op in ("abs", "sign"))


def stop_gradient(ctx: LayerContext, x: Tensor) -> Value:
    """x itself, but no gradient flows back through it (a constant to autodiff)."""
    return Value(ctx.b.stop_gradient(x.id))


def square(ctx: LayerContext, x: Tensor) -> Value:
    """x * x."""
    return Value(ctx.b.mul(x.id, x.id))


def pow(ctx: LayerContext, x: Tensor, y: Tensor) -> Value:
    """x ** y, elementwise with broadcasting (float; integers are promoted to f32)."""
    return Value(ctx.b.pow(_floating(ctx, x.id), _floating(ctx, y.id)))


def maximum(ctx: LayerContext, x: Tensor, y: Tensor) -> Value:
    """Elementwise larger of x and y (broadcasting); ties split the gradient, as torch."""
    return Value(ctx.b.maximum(x.id, y.id))


def minimum(ctx: LayerContext, x: Tensor, y: Tensor) -> Value:
    """Elementwise smaller of x and y (broadcasting); ties split the gradient, as torch."""
    return Value(ctx.b.minimum(x.id, y.id))


def _truth(ctx: LayerContext, x: int) -> int:
    """A bool tensor: x itself, or x != 0."""
    b = ctx.b
    return x if b.dtype(x) == "bool" else b.ne(x, b.scalar(0, b.dtype(x)))


def where(ctx: LayerContext, cond: Tensor, x: Tensor, y: Tensor) -> Value:
    """x where cond is true (non-zero), else y, with broadcasting; the gradient goes to the chosen branch only."""
    return Value(ctx.b.where(_truth(ctx, cond.id), x.id, y.id))


def clip(ctx: LayerContext, x: Tensor, low: float, high: float) -> Value:
    """x limited to [low, high]."""
    b = ctx.b
    if low > high:
        raise ShapeError(f"clip needs low <= high, got {low} > {high}")
    dt = b.dtype(x.id)
    return Value(b.minimum(b.maximum(x.id, b.scalar(low, dt)), b.scalar(high, dt)))


def _compare(op, name, symbol):
    def fn(ctx: LayerContext, x: Tensor, y: Tensor) -> Value:
        return Value(ctx.b.emit(op, (x.id, y.id)))
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"x {symbol} y elementwise (bool), with broadcasting."
    return fn


equal = _compare("eq", "equal", "==")
not_equal = _compare("ne", "not_equal", "!=")
less = _compare("lt", "less", "<")
less_equal = _compare("le", "less_equal", "<=")
greater = _compare("gt", "greater", ">")
greater_equal = _compare("ge", "greater_equal", ">=")


def logical_not(ctx: LayerContext, x: Tensor) -> Value:
    """True where x is false (zero)."""
    b = ctx.b
    return Value(b.eq(_truth(ctx, x.id), b.scalar(False, "bool")))


def logical_and(ctx: LayerContext, x: Tensor, y: Tensor) -> Value:
    """x and y elementwise (bool), with broadcasting."""
    b = ctx.b
    return Value(b.where(_truth(ctx, x.id), _truth(ctx, y.id), b.scalar(False, "bool")))


def logical_or(ctx: LayerContext, x: Tensor, y: Tensor) -> Value:
    """x or y elementwise (bool), with broadcasting."""
    b = ctx.b
    return Value(b.where(_truth(ctx, x.id), b.scalar(True, "bool"), _truth(ctx, y.id)))


def isnan(ctx: LayerContext, x: Tensor) -> Value:
    """True where x is NaN."""
    return Value(ctx.b.ne(x.id, x.id))


def cast(ctx: LayerContext, x: Tensor, dtype: DType) -> Value:
    """x converted to `dtype` (f32, f64, i32, i64, bool); float to int truncates toward zero."""
    b = ctx.b
    if dtype == "bool":
        return Value(_truth(ctx, x.id))
    return Value(b.cast(x.id, dtype=dtype))


def matmul(ctx: LayerContext, a: Tensor, b: Tensor) -> Value:
    """numpy's matmul (`a @ b`): leading axes broadcast, 1-D operands are vectors."""
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


# ---- shapes -------------------------------------------------------------------------

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
    rank = _rank(ctx, x.id)
    if perm is None:
        perm = tuple(reversed(builtins.range(rank)))
    else:
        perm = (perm,) if isinstance(perm, int) else tuple(perm)
        if len(perm) != rank:
            raise ShapeError(f"transpose of a rank-{rank} tensor needs {rank} axes, got {list(perm)}")
        perm = tuple(_axis(ctx, p, rank) for p in perm)
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
        axes = _axes(x.id, ctx, axis)
        for a in axes:
            if shape[a] != 1:
                raise ShapeError(f"cannot squeeze axis {a} of size {shape[a]} (shape {fmt_shape(shape)})")
    new = tuple(d for i, d in enumerate(shape) if i not in axes)
    return Value(b.reshape(x.id, shape=new) if new != shape else x.id)


def expand_dims(ctx: LayerContext, x: Tensor, axis: int) -> Value:
    """x with a new size-1 axis inserted at position `axis` of the result (negative counts from the end)."""
    b = ctx.b
    shape = tuple(b.shape(x.id))
    a = _axis(ctx, axis, len(shape) + 1)
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
    a = _axis(ctx, axis, len(item))
    perm = tuple(builtins.range(1, a + 1)) + (0,) + tuple(builtins.range(a + 1, len(shape)))
    moved = b.transpose(s, perm=perm) if perm != tuple(builtins.range(len(shape))) else s
    return b.reshape(moved, shape=item[:a] + (dim_mul(shape[0], item[a]),) + item[a + 1:])


def concat(ctx: LayerContext, a: Tensor, b: Tensor = None, c: Tensor = None, d: Tensor = None,
           axis: int = -1) -> Value:
    """Tensors joined along an existing axis (default -1, as Keras's Concatenate; numpy's default is 0).

    Up to four tensors; one tensor is a sequence along its first axis, as in
    numpy, so `concat([p, q], axis=0)` joins p and q (a list literal stacks
    equal shapes). A layer too: merges the branches of a non-sequential model."""
    ids = _items(ctx, (a, b, c, d))
    if len(ids) == 1:
        return Value(_merge_sequence(ctx, ids[0], axis))
    ranks = {_rank(ctx, i) for i in ids}
    if ranks == {0}:
        raise ShapeError("cannot concatenate scalars; use stack")
    if len(ranks) != 1:
        raise ShapeError("concat operands differ in rank: "
                         + ", ".join(fmt_shape(ctx.b.shape(i)) for i in ids))
    rank = ranks.pop()
    return Value(ctx.b.concat(*ids, axis=_axis(ctx, axis, rank)))


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
        k = _axis(ctx, axis, len(shape))
        perm = tuple(builtins.range(1, k + 1)) + (0,) + tuple(builtins.range(k + 1, len(shape)))
        return Value(bld.transpose(ids[0], perm=perm) if k else ids[0])
    shapes = [tuple(bld.shape(i)) for i in ids]
    if len(set(shapes)) != 1:
        raise ShapeError("stack needs tensors of one shape, got " + ", ".join(fmt_shape(s) for s in shapes))
    k = _axis(ctx, axis, len(shapes[0]) + 1)
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
    rank = _rank(ctx, x.id)
    if rank == 0:
        raise ShapeError("take needs a tensor of rank >= 1")
    a = _axis(ctx, axis, rank)
    idx = _normalised_indices(ctx, indices.id, b.shape(x.id)[a])
    return Value(b.gather(x.id, idx, axis=a))


def flip(ctx: LayerContext, x: Tensor, axis: Axes = None) -> Value:
    """x with the order of elements reversed along `axis` (default all axes), as np.flip; static sizes only."""
    b = ctx.b
    out = x.id
    shape = b.shape(x.id)
    for a in _axes(x.id, ctx, axis):
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


# ---- creating tensors -----------------------------------------------------------------

def fill(ctx: LayerContext, shape: Shape, value: float, dtype: DType = "f32") -> Value:
    """A tensor of `shape` with every element `value`."""
    b = ctx.b
    return Value(b.broadcast_to(b.scalar(value, dtype), shape=tuple(shape)))


def constant(ctx: LayerContext, value: Tensor) -> Value:
    """A literal (`1.5`, `[1, 2]`) as a tensor here: one `const`, made at this statement.

    A literal in an expression becomes a constant where it is used, in the other operand's
    dtype; `constant` fixes it (f32 for `1.0`, i32 for `1`) and where it is made, as
    `nnc import` needs to write a graph back node for node. A tensor is returned as it is."""
    return Value(value.id)


def zeros(ctx: LayerContext, shape: Shape, dtype: DType = "f32") -> Value:
    """A tensor of zeros. (As a param's initial value, `zeros` is the initializer.)"""
    return fill(ctx, shape, 0.0, dtype)


def ones(ctx: LayerContext, shape: Shape, dtype: DType = "f32") -> Value:
    """A tensor of ones. (As a param's initial value, `ones` is the initializer.)"""
    return fill(ctx, shape, 1.0, dtype)


def zeros_like(ctx: LayerContext, x: Tensor) -> Value:
    """Zeros with x's shape and dtype."""
    b = ctx.b
    return Value(b.broadcast_to(b.scalar(0, b.dtype(x.id)), shape=tuple(b.shape(x.id))))


def ones_like(ctx: LayerContext, x: Tensor) -> Value:
    """Ones with x's shape and dtype."""
    b = ctx.b
    return Value(b.broadcast_to(b.scalar(1, b.dtype(x.id)), shape=tuple(b.shape(x.id))))


def range(ctx: LayerContext, start: int, stop: int = None, step: int = 1, dtype: DType = "i32") -> Value:
    """[start, start+step, ...] up to but excluding stop, as Python's range; `range(n)` counts 0..n-1."""
    b = ctx.b
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ShapeError("range step must not be zero")
    if dtype == "bool":
        raise ShapeError("range makes numbers, not bool")
    n = len(builtins.range(start, stop, step))
    if n == 0:
        raise ShapeError(f"range({start}, {stop}, {step}) is empty")
    out = b.iota(axis=0, dtype=dtype, shape=(n,))
    if step != 1:
        out = b.mul(out, b.scalar(step, dtype))
    if start != 0:
        out = b.add(out, b.scalar(start, dtype))
    return Value(out)


def linspace(ctx: LayerContext, start: float, stop: float, num: int = 50, dtype: DType = "f32") -> Value:
    """`num` evenly spaced numbers from start to stop, both included (np.linspace)."""
    if num < 1:
        raise ShapeError(f"num must be >= 1, got {num}")
    if dtype not in FLOAT_DTYPES:
        raise ShapeError(f"linspace makes floats, not {dtype}")
    values = np.linspace(start, stop, num).astype(np.float32 if dtype == "f32" else np.float64)
    return Value(ctx.b.constant(tuple(values.tolist()), dtype, (num,)))


def eye(ctx: LayerContext, n: int, m: int = None, k: int = 0, dtype: DType = "f32") -> Value:
    """[n, m] (default [n, n]) with ones on diagonal k (0 the main one, > 0 above it) and zeros elsewhere."""
    b = ctx.b
    m = n if m is None else m
    if n <= 0 or m <= 0:
        raise ShapeError(f"eye needs positive sizes, got {n} x {m}")
    rows = b.iota(axis=0, dtype="i32", shape=(n, m))
    cols = b.iota(axis=1, dtype="i32", shape=(n, m))
    diag = b.eq(b.add(rows, b.scalar(k, "i32")), cols) if k else b.eq(rows, cols)
    return Value(diag if dtype == "bool" else b.cast(diag, dtype=dtype))


# ---- random tensors ---------------------------------------------------------------------

def _seed(ctx: LayerContext, seed, what: str) -> int:
    if seed is not None:
        if not 0 <= seed < 2 ** 32:
            raise ShapeError(f"seed must be in [0, 2^32), got {seed}")
        return int(seed)
    site = f"{ctx.loc.line}:{ctx.loc.col}" if ctx.loc is not None else f"{ctx.prefix}#{len(ctx.b.nodes)}"
    return _stable_seed(ctx.seed_base, f"{what}@{site}")


def _static(shape, what: str) -> tuple:
    shape = tuple(shape)
    if not builtins.all(isinstance(d, int) for d in shape):
        raise ShapeError(f"{what} needs a static shape, got {fmt_shape(shape)}")
    return shape


def _float_dtype(dtype: str, what: str) -> str:
    if dtype not in FLOAT_DTYPES:
        raise ShapeError(f"{what} draws floats, not {dtype}")
    return dtype


def normal(ctx: LayerContext, shape: Shape, mean: float = 0.0, stddev: float = 1.0, seed: int = None,
           dtype: DType = "f32") -> Value:
    """Numbers drawn from N(mean, stddev^2) (defaults 0 and 1, as np.random.normal; the initializer's stddev is 0.05)."""
    if stddev < 0:
        raise ShapeError(f"stddev must be >= 0, got {stddev}")
    return Value(ctx.b.random_normal(mean=float(mean), stddev=float(stddev), seed=_seed(ctx, seed, "normal"),
                                     dtype=_float_dtype(dtype, "normal"), shape=tuple(shape)))


def uniform(ctx: LayerContext, shape: Shape, low: float = 0.0, high: float = 1.0, seed: int = None,
            dtype: DType = "f32") -> Value:
    """Numbers drawn uniformly from [low, high) (default [0, 1), as np.random.uniform; the initializer's is +-0.05)."""
    if low > high:
        raise ShapeError(f"uniform needs low <= high, got {low} > {high}")
    return Value(ctx.b.random_uniform(low=float(low), high=float(high), seed=_seed(ctx, seed, "uniform"),
                                      dtype=_float_dtype(dtype, "uniform"), shape=tuple(shape)))


def truncated_normal(ctx: LayerContext, shape: Shape, mean: float = 0.0, stddev: float = 1.0,
                     seed: int = None) -> Value:
    """N(mean, stddev^2) redrawn beyond 2 standard deviations (f32), as the initializer of that name."""
    shape = _static(shape, "truncated_normal")
    return Value(initializers.truncated_normal(ctx.b, shape, _seed(ctx, seed, "truncated_normal"),
                                               mean=mean, stddev=stddev))


def _fan_initializer(name: str, summary: str):
    init = initializers.INITIALIZERS[name]

    def fn(ctx: LayerContext, shape: Shape, seed: int = None) -> Value:
        return Value(init(ctx.b, _static(shape, name), _seed(ctx, seed, name)))
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{summary} (f32), the numbers the initializer of that name gives a [fan_in, fan_out] parameter."
    return fn


glorot_uniform = _fan_initializer("glorot_uniform", "U(-l, l) with l = sqrt(6 / (fan_in + fan_out))")
glorot_normal = _fan_initializer("glorot_normal", "Truncated normal with stddev sqrt(2 / (fan_in + fan_out))")
he_uniform = _fan_initializer("he_uniform", "U(-l, l) with l = sqrt(6 / fan_in)")
he_normal = _fan_initializer("he_normal", "Truncated normal with stddev sqrt(2 / fan_in)")
lecun_uniform = _fan_initializer("lecun_uniform", "U(-l, l) with l = sqrt(3 / fan_in)")
lecun_normal = _fan_initializer("lecun_normal", "Truncated normal with stddev sqrt(1 / fan_in)")


TENSOR_OPS = {f.__name__: f for f in (
    # reductions
    sum, mean, var, std, max, min, logsumexp, any, all, argmax, argmin,
    # elementwise
    exp, log, log1p, sqrt, abs, sign, square, pow, maximum, minimum, where, clip, stop_gradient,
    equal, not_equal, less, less_equal, greater, greater_equal, logical_and, logical_or, logical_not,
    isnan, cast, matmul,
    # shapes and indexing
    reshape, transpose, permute, squeeze, expand_dims, broadcast_to, stack, take, flip, one_hot,
    # creation
    constant, fill, zeros, ones, zeros_like, ones_like, range, linspace, eye,
    normal, uniform, truncated_normal, glorot_uniform, glorot_normal, he_uniform, he_normal,
    lecun_uniform, lecun_normal)}
