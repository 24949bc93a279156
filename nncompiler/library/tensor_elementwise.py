"""Elementwise functions of the language (exp, pow, where, clip, comparisons, logic, cast)
and numpy's matmul. `abs` and `pow` shadow Python builtins; nothing here needs the originals."""
from __future__ import annotations

from ..errors import ShapeError
from .context import DType, LayerContext, Tensor, Value
from .tensor_args import as_float, truth


def _float_unary(op):
    def fn(ctx: LayerContext, x: Tensor) -> Value:
        return Value(ctx.b.emit(op, (as_float(ctx, x.id),)))
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
    return Value(ctx.b.pow(as_float(ctx, x.id), as_float(ctx, y.id)))


def maximum(ctx: LayerContext, x: Tensor, y: Tensor) -> Value:
    """Elementwise larger of x and y (broadcasting); ties split the gradient, as torch."""
    return Value(ctx.b.maximum(x.id, y.id))


def minimum(ctx: LayerContext, x: Tensor, y: Tensor) -> Value:
    """Elementwise smaller of x and y (broadcasting); ties split the gradient, as torch."""
    return Value(ctx.b.minimum(x.id, y.id))


def where(ctx: LayerContext, cond: Tensor, x: Tensor, y: Tensor) -> Value:
    """x where cond is true (non-zero), else y, with broadcasting; the gradient goes to the chosen branch only."""
    return Value(ctx.b.where(truth(ctx, cond.id), x.id, y.id))


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
    return Value(b.eq(truth(ctx, x.id), b.scalar(False, "bool")))


def logical_and(ctx: LayerContext, x: Tensor, y: Tensor) -> Value:
    """x and y elementwise (bool), with broadcasting."""
    b = ctx.b
    return Value(b.where(truth(ctx, x.id), truth(ctx, y.id), b.scalar(False, "bool")))


def logical_or(ctx: LayerContext, x: Tensor, y: Tensor) -> Value:
    """x or y elementwise (bool), with broadcasting."""
    b = ctx.b
    return Value(b.where(truth(ctx, x.id), b.scalar(True, "bool"), truth(ctx, y.id)))


def isnan(ctx: LayerContext, x: Tensor) -> Value:
    """True where x is NaN."""
    return Value(ctx.b.ne(x.id, x.id))


def cast(ctx: LayerContext, x: Tensor, dtype: DType) -> Value:
    """x converted to `dtype` (f32, f64, i32, i64, bool); float to int truncates toward zero."""
    b = ctx.b
    if dtype == "bool":
        return Value(truth(ctx, x.id))
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
