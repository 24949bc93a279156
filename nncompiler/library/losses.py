"""Losses: `fn(ctx, pred: Tensor, target: Tensor) -> int`, a scalar node.

Reductions follow Keras: a per-sample loss (the mean over the last axis for the
regression losses, the sum over classes for crossentropies) averaged over the
batch, i.e. the plain mean over all elements for the elementwise losses. Means
divide by `size`, so a symbolic batch "B" works.

When the prediction is `sigmoid(z)` or `softmax(z)` (its `Value` carries the
logits), the crossentropies are computed from z with log-sum-exp, which is
exact and finite even for logits of +-1e4 (Keras's `from_logits=True`);
otherwise from probabilities clipped to [1e-7, 1 - 1e-7] like Keras.
"""

from ..errors import ShapeError
from ..ir.graph import Builder
from .activations import const, log_softmax_of, mean, vid
from .context import LayerContext, Tensor, Value

EPSILON = 1e-7  # Keras's backend epsilon


def _target(b: Builder, pred: int, target: int) -> int:
    """The target as pred's dtype and shape: integer labels become floats, and a
    [B] target against a [B, 1] prediction is reshaped (instead of silently
    broadcasting to [B, B])."""
    if b.dtype(target) != b.dtype(pred):
        target = b.cast(target, dtype=b.dtype(pred))
    ps, ts = b.shape(pred), b.shape(target)
    if len(ts) == len(ps) - 1 and ps and ps[-1] == 1 and tuple(ps[:-1]) == tuple(ts):
        target = b.reshape(target, shape=ps)
    return target


def _clip(b: Builder, p: int, lo: float, hi: float) -> int:
    # `where` rather than minimum/maximum: at the bounds the gradient passes whole,
    # like torch.clamp (minimum's tie rule would halve it)
    lo_c, hi_c = const(b, lo, p), const(b, hi, p)
    return b.where(b.lt(p, lo_c), lo_c, b.where(b.gt(p, hi_c), hi_c, p))


def _batch_mean(b: Builder, per_sample: int) -> int:
    return mean(b, per_sample) if b.shape(per_sample) else per_sample


def mse(ctx: LayerContext, pred: Tensor, target: Tensor) -> int:
    b, p = ctx.b, vid(pred)
    d = b.sub(p, _target(b, p, vid(target)))
    return mean(b, b.mul(d, d))


def mae(ctx: LayerContext, pred: Tensor, target: Tensor) -> int:
    b, p = ctx.b, vid(pred)
    return mean(b, b.abs(b.sub(p, _target(b, p, vid(target)))))


def poisson(ctx: LayerContext, pred: Tensor, target: Tensor) -> int:
    b, p = ctx.b, vid(pred)
    y = _target(b, p, vid(target))
    return mean(b, b.sub(p, b.mul(y, b.log(b.add(p, const(b, EPSILON, p))))))


def binary_crossentropy(ctx: LayerContext, pred: Tensor, target: Tensor) -> int:
    b = ctx.b
    if isinstance(pred, Value) and pred.activation == "sigmoid" and pred.logits is not None:
        z = pred.logits
        y = _target(b, z, vid(target))
        # max(z, 0) - z*y + log1p(exp(-|z|)); maximum's tie rule gives torch's
        # gradient sigmoid(0) - y at z == 0
        per = b.add(b.sub(b.maximum(z, const(b, 0.0, z)), b.mul(z, y)),
                    b.log1p(b.exp(b.neg(b.abs(z)))))
        return mean(b, per)
    p = vid(pred)
    y = _target(b, p, vid(target))
    p = _clip(b, p, EPSILON, 1.0 - EPSILON)
    one = const(b, 1.0, p)
    per = b.add(b.mul(y, b.log(p)), b.mul(b.sub(one, y), b.log(b.sub(one, p))))
    return mean(b, b.neg(per))


def _crossentropy_onehot(b: Builder, pred, y: int) -> int:
    """-sum(y * log p) over the last axis, averaged over the rest; `y` has pred's shape."""
    if isinstance(pred, Value) and pred.activation == "softmax" and pred.logits is not None:
        log_p = log_softmax_of(b, pred.logits, -1)
    else:
        p = vid(pred)
        # Keras: renormalise (the rows may not sum to 1), then clip
        p = b.div(p, b.sum(p, axes=(-1,), keepdims=True))
        log_p = b.log(_clip(b, p, EPSILON, 1.0 - EPSILON))
    per_sample = b.neg(b.sum(b.mul(y, log_p), axes=(-1,)))
    return _batch_mean(b, per_sample)


def categorical_crossentropy(ctx: LayerContext, pred: Tensor, target: Tensor) -> int:
    b = ctx.b
    ref = pred.logits if isinstance(pred, Value) and pred.logits is not None else vid(pred)
    return _crossentropy_onehot(b, pred, _target(b, ref, vid(target)))


def one_hot(b: Builder, labels: int, like: int) -> int:
    """Integer labels [...] -> one-hot with `like`'s shape [..., C] and dtype.
    There is no gather primitive: compare the labels against an iota over the classes."""
    shape = tuple(b.shape(like))
    if b.dtype(labels) != "i32":
        labels = b.cast(labels, dtype="i32")
    lshape = tuple(b.shape(labels))
    if lshape == shape[:-1] + (1,):          # Keras also accepts [B, 1] labels
        pass
    elif lshape == shape[:-1]:
        labels = b.reshape(labels, shape=shape[:-1] + (1,))
    else:
        raise ShapeError(f"sparse labels of shape {list(lshape)} do not match predictions {list(shape)}")
    classes = b.iota(axis=len(shape) - 1, dtype="i32", shape=shape)
    return b.cast(b.eq(classes, labels), dtype=b.dtype(like))


def sparse_categorical_crossentropy(ctx: LayerContext, pred: Tensor, target: Tensor) -> int:
    b = ctx.b
    ref = pred.logits if isinstance(pred, Value) and pred.logits is not None else vid(pred)
    return _crossentropy_onehot(b, pred, one_hot(b, vid(target), ref))


LOSSES = {
    "mse": mse,
    "mae": mae,
    "poisson": poisson,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    # Keras's long names
    "mean_squared_error": mse,
    "mean_absolute_error": mae,
}
