"""Activation functions: `fn(ctx, x: Tensor, <keywords>) -> Value`, built from IR primitives.

Conventions shared by the whole library (helpers below are imported by the other modules):
  * constants take the dtype of the tensor they combine with, so the same function
    builds an f32 graph for training and an f64 one for finite-difference tests;
  * kinks follow PyTorch's gradient conventions so parity tests can be exact:
    `where(x > 0, ...)` sends x == 0 to the "negative" branch (relu'(0) = 0,
    leaky_relu'(0) = alpha, elu'(0) = alpha), and `maximum`'s tie rule gives the
    0.5 that torch's softplus / BCE-with-logits have at 0;
  * softmax and sigmoid return `Value(..., activation=name, logits=x)` so a
    crossentropy can work from the logits instead of clipped probabilities.
"""

from ..errors import ShapeError
from ..ir.graph import Builder
from ..ir.primitives import norm_axes
from .context import LayerContext, Tensor, Value


# ---- helpers used across the library ---------------------------------------------

def vid(v) -> int:
    """A node id from a `Value` or a bare id (tests and internal callers pass ids)."""
    return v.id if isinstance(v, Value) else v


def const(b: Builder, value, like: int) -> int:
    """A scalar constant with the dtype of node `like`."""
    return b.scalar(value, b.dtype(like))


def all_axes(b: Builder, x: int) -> tuple[int, ...]:
    return tuple(range(len(b.shape(x))))


def mean(b: Builder, x: int, axes=None, keepdims: bool = False) -> int:
    """Mean over `axes` (default all). The count comes from `size`, so symbolic
    dims (the batch "B") are fine: the divisor is read from the runtime shape."""
    axes = all_axes(b, x) if axes is None else norm_axes(axes, len(b.shape(x)))
    total = b.sum(x, axes=axes, keepdims=keepdims)
    return b.div(total, b.size(x, axes=axes, dtype=b.dtype(x)))


def log_softmax_of(b: Builder, x: int, axis: int = -1) -> int:
    """log(softmax(x)) over `axis`, computed as (x - m) - log(sum(exp(x - m))) with
    m the gradient-stopped max: exp() never sees a positive number, so logits of
    1e4 stay finite, and the shift is exact because m cancels analytically.
    Subtracting m *before* adding the log keeps small log-probabilities precise
    next to large logits (m + log(s) would round log 2 to float32's spacing at 1e4)."""
    m = b.stop_gradient(b.max(x, axes=(axis,), keepdims=True))
    shifted = b.sub(x, m)
    return b.sub(shifted, b.log(b.sum(b.exp(shifted), axes=(axis,), keepdims=True)))


def _positive(b: Builder, x: int) -> int:
    return b.gt(x, const(b, 0.0, x))


# ---- activations ---------------------------------------------------------------------

def linear(ctx: LayerContext, x: Tensor) -> Value:
    return Value(vid(x))


def step(ctx: LayerContext, x: Tensor, gradient: str = "zero") -> Value:
    """1 where x >= 0, else 0 (the perceptron's step, 1 at x = 0 as in the course and Keras).
    Its true derivative is zero (compare + cast), so a loss behind a step cannot train
    anything; gradient=straight_through passes the gradient on unchanged, as if step were
    the identity (the straight-through estimator). With sgd and a squared error that is
    Rosenblatt's perceptron rule: w += lr * (y - step(w.x + b)) * x."""
    b, x = ctx.b, vid(x)
    s = b.cast(b.ge(x, const(b, 0.0, x)), dtype=b.dtype(x))
    if gradient == "zero":
        return Value(s)
    if gradient != "straight_through":
        raise ShapeError(f"gradient must be zero or straight_through, got '{gradient}'")
    # s + (x - stop_gradient(x)): the added term is exactly 0 in the forward pass (x - x),
    # so the value is s bit for bit, while its derivative with respect to x is 1.
    return Value(b.add(s, b.sub(x, b.stop_gradient(x))))


def sigmoid(ctx: LayerContext, x: Tensor) -> Value:
    return Value(ctx.b.sigmoid(vid(x)), activation="sigmoid", logits=vid(x))


def tanh(ctx: LayerContext, x: Tensor) -> Value:
    return Value(ctx.b.tanh(vid(x)))


def relu(ctx: LayerContext, x: Tensor) -> Value:
    b, x = ctx.b, vid(x)
    return Value(b.where(_positive(b, x), x, const(b, 0.0, x)))


def leaky_relu(ctx: LayerContext, x: Tensor, alpha: float = 0.1) -> Value:
    b, x = ctx.b, vid(x)
    return Value(b.where(_positive(b, x), x, b.mul(const(b, alpha, x), x)))


def prelu(ctx: LayerContext, x: Tensor) -> Value:
    """Leaky relu with a learned slope per feature (last axis), initialised to 0 like Keras."""
    b, x = ctx.b, vid(x)
    features = b.shape(x)[-1] if b.shape(x) else 1
    if not isinstance(features, int):
        raise ShapeError(f"the input's last dimension must be static, got {features}")
    alpha = ctx.param("alpha", (features,), 0.0, dtype=b.dtype(x))
    return Value(b.where(_positive(b, x), x, b.mul(alpha, x)))


def elu(ctx: LayerContext, x: Tensor, alpha: float = 1.0) -> Value:
    b, x = ctx.b, vid(x)
    pos = _positive(b, x)
    # exp only ever sees x <= 0 (0 where x > 0), so large x cannot overflow into
    # inf and then poison the gradient with inf * 0 = nan. `where` rather than
    # `minimum(x, 0)` keeps the derivative at 0 equal to alpha (torch) instead of
    # the alpha / 2 that minimum's tie rule would give.
    safe = b.where(pos, const(b, 0.0, x), x)
    neg = b.mul(const(b, alpha, x), b.sub(b.exp(safe), const(b, 1.0, x)))
    return Value(b.where(pos, x, neg))


def softmax(ctx: LayerContext, x: Tensor, axis: int = -1) -> Value:
    b, x = ctx.b, vid(x)
    rank = len(b.shape(x))
    m = b.stop_gradient(b.max(x, axes=(axis,), keepdims=True))
    e = b.exp(b.sub(x, m))
    y = b.div(e, b.sum(e, axes=(axis,), keepdims=True))
    # losses assume the class axis is the last one; only then advertise the logits
    last = rank == 0 or axis % rank == rank - 1
    return Value(y, activation="softmax", logits=x) if last else Value(y)


def log_softmax(ctx: LayerContext, x: Tensor, axis: int = -1) -> Value:
    b, x = ctx.b, vid(x)
    return Value(log_softmax_of(b, x, axis))


def softplus(ctx: LayerContext, x: Tensor) -> Value:
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): never exponentiates a positive number
    b, x = ctx.b, vid(x)
    return Value(b.add(b.maximum(x, const(b, 0.0, x)), b.log1p(b.exp(b.neg(b.abs(x))))))


def swish(ctx: LayerContext, x: Tensor) -> Value:
    b, x = ctx.b, vid(x)
    return Value(b.mul(x, b.sigmoid(x)))


def _erf(b: Builder, x: int) -> int:
    """erf via Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below f32 resolution
    of gelu's outputs); there is no erf primitive."""
    c = lambda v: const(b, v, x)  # noqa: E731
    s = b.sign(x)
    a = b.abs(x)
    t = b.div(c(1.0), b.add(c(1.0), b.mul(c(0.3275911), a)))
    poly = c(1.061405429)
    for coef in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly = b.add(b.mul(poly, t), c(coef))
    poly = b.mul(poly, t)
    return b.mul(s, b.sub(c(1.0), b.mul(poly, b.exp(b.neg(b.mul(a, a))))))


def gelu(ctx: LayerContext, x: Tensor, approximate: bool = False) -> Value:
    """x * Phi(x); `approximate=True` is the tanh form (torch approximate='tanh')."""
    b, x = ctx.b, vid(x)
    c = lambda v: const(b, v, x)  # noqa: E731
    if approximate:
        inner = b.mul(c(0.7978845608028654), b.add(x, b.mul(c(0.044715), b.mul(x, b.mul(x, x)))))
        phi = b.mul(c(0.5), b.add(c(1.0), b.tanh(inner)))
    else:
        phi = b.mul(c(0.5), b.add(c(1.0), _erf(b, b.mul(x, c(0.7071067811865476)))))
    return Value(b.mul(x, phi))


ACTIVATIONS = {
    "linear": linear,
    "step": step,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "prelu": prelu,
    "elu": elu,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "softplus": softplus,
    "swish": swish,
    "gelu": gelu,
}
