"""Core layers beyond dense: dropout, merges (add, subtract, multiply, average, concat),
embedding, batchnorm and layernorm, with Keras's semantics, defaults and parameter names.

Layers that behave differently in training and inference read `ctx.training`
(the block is lowered once in each mode): dropout is the identity at inference,
batchnorm normalises with the batch's statistics in training (and records the
update of its moving statistics with `ctx.update`) and with the moving
statistics at inference.

Merge layers take two to four tensors (positional), broadcast like numpy, and
are what a non-sequential model uses to join branches:
`h2 = relu(add(h, dense(h, 16)))` is the same as `relu(h + dense(h, 16))`.
"""
from __future__ import annotations

import functools

from ..errors import ShapeError
from ..ir.shapes import FLOAT_DTYPES
from . import initializers, regularizers
from .activations import mean as _mean
from .activations import vid
from .context import Indices, Initializer, LayerContext, Regularizer, Spec, Tensor, Value
from .tensor_shapes import concat


def _float_input(ctx: LayerContext, x: int, what: str) -> int:
    b = ctx.b
    if b.dtype(x) not in FLOAT_DTYPES:
        raise ShapeError(f"{what} expects a float tensor, got {b.dtype(x)}")
    return x


def _features(ctx: LayerContext, x: int, min_rank: int = 1) -> int:
    shape = tuple(ctx.b.shape(x))
    if len(shape) < min_rank:
        raise ShapeError(f"the input must have rank >= {min_rank}, got shape {list(shape)}")
    n = shape[-1]
    if not isinstance(n, int):
        raise ShapeError(f"the input's last dimension must be static, got {n}")
    return n


# ---- dropout ---------------------------------------------------------------------------

def dropout(ctx: LayerContext, x: Tensor, rate: float) -> Value:
    """Zeroes a fraction `rate` of the elements in training and scales the rest by 1/(1-rate); the identity at inference.

    Inverted dropout, as Keras: the expected value is unchanged, so inference
    needs no rescaling. The mask is redrawn at every training step (from the
    step's random key) and is the same for the same model seed and step."""
    b, xi = ctx.b, vid(x)
    if not 0.0 <= rate < 1.0:
        raise ShapeError(f"rate must be in [0, 1), got {rate}")
    if not ctx.training or rate == 0.0:
        return x if isinstance(x, Value) else Value(xi)
    xi = _float_input(ctx, xi, "dropout")
    dt = b.dtype(xi)
    u = ctx.random_uniform(tuple(b.shape(xi)), dtype=dt)
    keep = b.ge(u, b.scalar(rate, dt))
    scaled = b.mul(xi, b.scalar(1.0 / (1.0 - rate), dt))
    return Value(b.where(keep, scaled, b.scalar(0.0, dt)))


# ---- merges ------------------------------------------------------------------------------

def _operands(*tensors) -> list[int]:
    return [vid(t) for t in tensors if t is not None]


def add(ctx: LayerContext, a: Tensor, b: Tensor, c: Tensor = None, d: Tensor = None) -> Value:
    """a + b (+ c + d), with broadcasting: Keras's Add, joining the branches of a residual block."""
    return Value(functools.reduce(ctx.b.add, _operands(a, b, c, d)))


def subtract(ctx: LayerContext, a: Tensor, b: Tensor) -> Value:
    """a - b, with broadcasting (Keras's Subtract)."""
    return Value(ctx.b.sub(vid(a), vid(b)))


def multiply(ctx: LayerContext, a: Tensor, b: Tensor, c: Tensor = None, d: Tensor = None) -> Value:
    """a * b (* c * d), elementwise with broadcasting (Keras's Multiply)."""
    return Value(functools.reduce(ctx.b.mul, _operands(a, b, c, d)))


def average(ctx: LayerContext, a: Tensor, b: Tensor, c: Tensor = None, d: Tensor = None) -> Value:
    """The elementwise mean of two to four tensors (Keras's Average)."""
    bld = ctx.b
    ids = _operands(a, b, c, d)
    total = add(ctx, a, b, c, d).id
    if bld.dtype(total) not in FLOAT_DTYPES:
        total = bld.cast(total, dtype="f32")
    return Value(bld.div(total, bld.scalar(float(len(ids)), bld.dtype(total))))


# ---- embedding ---------------------------------------------------------------------------

def embedding(ctx: LayerContext, ids: Indices, vocab: int, dim: int,
              embeddings_initializer: Initializer = "uniform",
              embeddings_regularizer: Regularizer = None) -> Value:
    """Rows of a learned [vocab, dim] table at integer ids: [...] -> [..., dim] (Keras's Embedding).

    The table is `<name>.embeddings`, initialised uniform(-0.05, 0.05) like
    Keras. Ids outside [0, vocab) are clamped to the nearest row. The gradient
    is a scatter-add into the rows used (repeated ids add up), so a step costs
    O(ids x dim), not O(vocab x dim) per id."""
    b, i = ctx.b, vid(ids)
    if vocab <= 0 or dim <= 0:
        raise ShapeError(f"vocab and dim must be > 0, got vocab={vocab}, dim={dim}")
    if b.dtype(i) not in ("i32", "i64"):
        i = b.cast(i, dtype="i32")        # float ids from a CSV, as Keras casts them
    table = ctx.param("embeddings", (vocab, dim), initializers.as_spec(embeddings_initializer),
                      regularizers.as_spec(embeddings_regularizer))
    return Value(b.gather(table, i, axis=0))


# ---- normalisation -------------------------------------------------------------------------

def _scale_shift(ctx: LayerContext, y: int, n: int, dt: str, scale: bool, center: bool,
                 gamma_initializer, beta_initializer, gamma_regularizer, beta_regularizer) -> int:
    b = ctx.b
    if scale:
        gamma = ctx.param("gamma", (n,), initializers.as_spec(gamma_initializer),
                          regularizers.as_spec(gamma_regularizer), dtype=dt)
        y = b.mul(y, gamma)
    if center:
        beta = ctx.param("beta", (n,), initializers.as_spec(beta_initializer),
                         regularizers.as_spec(beta_regularizer), dtype=dt)
        y = b.add(y, beta)
    return y


def _normalise(b, x: int, mean: int, variance: int, epsilon: float) -> int:
    dt = b.dtype(x)
    return b.div(b.sub(x, mean), b.sqrt(b.add(variance, b.scalar(epsilon, dt))))


def _moments(b, x: int, axes) -> tuple[int, int]:
    """Mean and biased variance over `axes`, kept as broadcastable size-1 axes."""
    m = _mean(b, x, axes, keepdims=True)
    d = b.sub(x, m)
    return m, _mean(b, b.mul(d, d), axes, keepdims=True)


def batchnorm(ctx: LayerContext, x: Tensor, momentum: float = 0.99, epsilon: float = 1e-3,
              center: bool = True, scale: bool = True,
              beta_initializer: Initializer = "zeros", gamma_initializer: Initializer = "ones",
              beta_regularizer: Regularizer = None, gamma_regularizer: Regularizer = None) -> Value:
    """Normalises each feature (last axis) over all other axes, then scales by gamma and shifts by beta (Keras's BatchNormalization).

    Training uses the batch's mean and biased variance and updates the buffers
    `<name>.moving_mean` (starts at 0) and `<name>.moving_variance` (starts at
    1) as moving = momentum * moving + (1 - momentum) * batch; inference uses
    the moving statistics. (torch's BatchNorm momentum is 1 - Keras's, and torch
    updates its running variance with the unbiased batch variance.)"""
    b, xi = ctx.b, vid(x)
    xi = _float_input(ctx, xi, "batchnorm")
    n = _features(ctx, xi, min_rank=2)
    if not 0.0 <= momentum <= 1.0:
        raise ShapeError(f"momentum must be in [0, 1], got {momentum}")
    if epsilon < 0:
        raise ShapeError(f"epsilon must be >= 0, got {epsilon}")
    dt = b.dtype(xi)
    rank = len(b.shape(xi))
    axes = tuple(range(rank - 1))
    moving_mean = ctx.buffer("moving_mean", (n,), Spec("zeros"), dtype=dt)
    moving_var = ctx.buffer("moving_variance", (n,), Spec("ones"), dtype=dt)
    if ctx.training:
        m, v = _moments(b, xi, axes)
        y = _normalise(b, xi, m, v, epsilon)
        mom, rest = b.scalar(momentum, dt), b.scalar(1.0 - momentum, dt)
        for buf, stat in ((moving_mean, m), (moving_var, v)):
            stat = b.stop_gradient(b.reshape(stat, shape=(n,)))
            ctx.update(buf, b.add(b.mul(buf, mom), b.mul(stat, rest)))
    else:
        y = _normalise(b, xi, moving_mean, moving_var, epsilon)
    return Value(_scale_shift(ctx, y, n, dt, scale, center, gamma_initializer, beta_initializer,
                              gamma_regularizer, beta_regularizer))


def layernorm(ctx: LayerContext, x: Tensor, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
              beta_initializer: Initializer = "zeros", gamma_initializer: Initializer = "ones",
              beta_regularizer: Regularizer = None, gamma_regularizer: Regularizer = None) -> Value:
    """Normalises each example over its last axis (mean 0, variance 1), then scales by gamma and shifts by beta (Keras's LayerNormalization).

    The same in training and inference; the variance is biased, as Keras and
    torch.nn.LayerNorm."""
    b, xi = ctx.b, vid(x)
    xi = _float_input(ctx, xi, "layernorm")
    n = _features(ctx, xi)
    if epsilon < 0:
        raise ShapeError(f"epsilon must be >= 0, got {epsilon}")
    dt = b.dtype(xi)
    m, v = _moments(b, xi, (len(b.shape(xi)) - 1,))
    y = _normalise(b, xi, m, v, epsilon)
    return Value(_scale_shift(ctx, y, n, dt, scale, center, gamma_initializer, beta_initializer,
                              gamma_regularizer, beta_regularizer))


LAYERS: dict = {
    "dropout": dropout,
    "add": add,
    "subtract": subtract,
    "multiply": multiply,
    "average": average,
    "concat": concat,
    "embedding": embedding,
    "batchnorm": batchnorm,
    "layernorm": layernorm,
}
