"""Functions of the language that make tensors: constants, fills, ranges, identity matrices
and fixed random draws (computed once, like a parameter's initial value; without `seed=`
the seed comes from the model seed and the call's position). Several names shadow Python
builtins (range, all), so this module uses `builtins.` where it needs the originals."""
from __future__ import annotations

import builtins

import numpy as np

from ..errors import ShapeError
from ..ir.shapes import FLOAT_DTYPES, fmt_shape
from . import initializers
from .context import DType, LayerContext, Shape, Tensor, Value, _stable_seed


def fill(ctx: LayerContext, shape: Shape, value: float, dtype: DType = "f32") -> Value:
    """A tensor of `shape` with every element `value`."""
    b = ctx.b
    return Value(b.broadcast_to(b.scalar(value, dtype), shape=tuple(shape)))


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
