"""Metrics: `fn(ctx, pred: Tensor, target: Tensor, loss_name: str) -> int | None`.

A metric is a scalar f32 node (the batch mean), or None when it does not apply
to the model's loss (accuracy of a regression). Like Keras's "accuracy"
string, `accuracy` picks its variant from the loss: sparse categorical,
categorical or binary. Metrics are never differentiated.
"""

from .activations import const, mean, vid
from .context import LayerContext, Tensor
from .losses import _target

_SPARSE = {"sparse_categorical_crossentropy"}
_CATEGORICAL = {"categorical_crossentropy"}
_BINARY = {"binary_crossentropy"}


def accuracy(ctx: LayerContext, pred: Tensor, target: Tensor, loss_name: str) -> int | None:
    b, p, y = ctx.b, vid(pred), vid(target)
    rank = len(b.shape(p))
    if loss_name in _SPARSE:
        guess = b.argmax(p, axis=rank - 1)
        if b.dtype(y) != "i32":
            y = b.cast(y, dtype="i32")
        if tuple(b.shape(y)) == tuple(b.shape(p))[:-1] + (1,):   # [B, 1] labels
            y = b.reshape(y, shape=tuple(b.shape(p))[:-1])
        hit = b.eq(guess, y)
    elif loss_name in _CATEGORICAL:
        hit = b.eq(b.argmax(p, axis=rank - 1), b.argmax(y, axis=rank - 1))
    elif loss_name in _BINARY:
        # Keras's binary_accuracy: threshold the probabilities at 0.5, compare with the labels
        y = _target(b, p, y)
        guess = b.cast(b.gt(p, const(b, 0.5, p)), dtype=b.dtype(p))
        hit = b.eq(guess, y)
    else:
        return None
    return mean(ctx.b, b.cast(hit, dtype="f32"))


def mae(ctx: LayerContext, pred: Tensor, target: Tensor, loss_name: str) -> int | None:
    b, p = ctx.b, vid(pred)
    d = b.abs(b.sub(p, _target(b, p, vid(target))))
    return mean(b, d if b.dtype(d) == "f32" else b.cast(d, dtype="f32"))


def mse(ctx: LayerContext, pred: Tensor, target: Tensor, loss_name: str) -> int | None:
    b, p = ctx.b, vid(pred)
    d = b.sub(p, _target(b, p, vid(target)))
    d = b.mul(d, d)
    return mean(b, d if b.dtype(d) == "f32" else b.cast(d, dtype="f32"))


METRICS = {
    "accuracy": accuracy,
    "acc": accuracy,
    "mae": mae,
    "mse": mse,
}
