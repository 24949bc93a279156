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
from ..ir.shapes import fmt_shape
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


def _labels_hint(b: Builder, ref: int, target: int, name: str) -> None:
    """Integer labels given to a loss that wants one-hot targets: say which loss takes them."""
    ps, ts = tuple(b.shape(ref)), tuple(b.shape(target))
    if ps and ps[-1] != 1 and (ts == ps[:-1] or ts == ps[:-1] + (1,)):
        raise ShapeError(f"the target {fmt_shape(ts)} holds class labels, but it takes one-hot targets "
                         f"shaped like the prediction {fmt_shape(ps)}: use sparse_categorical_crossentropy "
                         "for integer labels, or one-hot encode them")


def categorical_crossentropy(ctx: LayerContext, pred: Tensor, target: Tensor) -> int:
    b = ctx.b
    ref = pred.logits if isinstance(pred, Value) and pred.logits is not None else vid(pred)
    _labels_hint(b, ref, vid(target), "categorical_crossentropy")
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
    if isinstance(pred, Value) and pred.activation == "softmax" and pred.logits is not None:
        # one fused primitive (and one for its gradient) instead of the one-hot chain
        z = pred.logits
        labels = vid(target)
        if b.dtype(labels) != "i32":
            labels = b.cast(labels, dtype="i32")
        zs, ls = tuple(b.shape(z)), tuple(b.shape(labels))
        if ls == zs[:-1] + (1,):             # Keras also accepts [B, 1] labels
            labels = b.reshape(labels, shape=zs[:-1])
        elif ls != zs[:-1]:
            raise ShapeError(f"sparse labels of shape {list(ls)} do not match predictions {list(zs)}")
        return _batch_mean(b, b.sparse_xent(z, labels))
    ref = pred.logits if isinstance(pred, Value) and pred.logits is not None else vid(pred)
    return _crossentropy_onehot(b, pred, one_hot(b, vid(target), ref))


# ---- the rest of Keras's losses module (formulas as in keras/src/losses/losses.py) ----

def _last_axis_mean(b: Builder, per_element: int) -> int:
    """Keras's reduction for elementwise losses: mean over the last axis, then over the batch,
    which is the plain mean over all elements."""
    return mean(b, per_element)


def huber(ctx: LayerContext, pred: Tensor, target: Tensor, delta: float = 1.0) -> int:
    """0.5 * d^2 where |d| <= delta, else delta * (|d| - 0.5 * delta), with d = pred - target."""
    b, p = ctx.b, vid(pred)
    d = b.sub(p, _target(b, p, vid(target)))
    a = b.abs(d)
    c = lambda v: const(b, v, p)  # noqa: E731
    quad = b.mul(c(0.5), b.mul(d, d))
    lin = b.mul(c(delta), b.sub(a, c(0.5 * delta)))
    return _last_axis_mean(b, b.where(b.le(a, c(delta)), quad, lin))


def _hinge_labels(b: Builder, y: int) -> int:
    """Keras converts labels that are all 0 or 1 to -1 or 1 before a hinge loss (decided on the
    whole batch, so -1/1 labels pass unchanged)."""
    one, zero = const(b, 1.0, y), const(b, 0.0, y)
    other = b.mul(b.cast(b.ne(y, zero), dtype=b.dtype(y)), b.cast(b.ne(y, one), dtype=b.dtype(y)))
    all_binary = b.eq(b.sum(other, axes=tuple(range(len(b.shape(y))))), zero)
    return b.where(all_binary, b.sub(b.mul(const(b, 2.0, y), y), one), y)


def _hinge_margin(b: Builder, p: int, target: int) -> int:
    y = _hinge_labels(b, _target(b, p, target))
    return b.maximum(b.sub(const(b, 1.0, p), b.mul(y, p)), const(b, 0.0, p))


def hinge(ctx: LayerContext, pred: Tensor, target: Tensor) -> int:
    """mean(max(1 - y * pred, 0)); 0/1 labels become -1/1."""
    b, p = ctx.b, vid(pred)
    return _last_axis_mean(b, _hinge_margin(b, p, vid(target)))


def squared_hinge(ctx: LayerContext, pred: Tensor, target: Tensor) -> int:
    """mean(max(1 - y * pred, 0)^2); 0/1 labels become -1/1."""
    b, p = ctx.b, vid(pred)
    m = _hinge_margin(b, p, vid(target))
    return _last_axis_mean(b, b.mul(m, m))


def categorical_hinge(ctx: LayerContext, pred: Tensor, target: Tensor) -> int:
    """max(max((1 - y) * pred) - sum(y * pred) + 1, 0) per sample, y one-hot."""
    b, p = ctx.b, vid(pred)
    y = _target(b, p, vid(target))
    pos = b.sum(b.mul(y, p), axes=(-1,))
    neg = b.max(b.mul(b.sub(const(b, 1.0, p), y), p), axes=(-1,))
    per = b.maximum(b.add(b.sub(neg, pos), const(b, 1.0, p)), const(b, 0.0, p))
    return _batch_mean(b, per)


def kl_divergence(ctx: LayerContext, pred: Tensor, target: Tensor) -> int:
    """sum(y * log(y / pred)) over the last axis, both clipped to [1e-7, 1]."""
    b, p = ctx.b, vid(pred)
    y = _clip(b, _target(b, p, vid(target)), EPSILON, 1.0)
    p = _clip(b, p, EPSILON, 1.0)
    per = b.sum(b.mul(y, b.sub(b.log(y), b.log(p))), axes=(-1,))
    return _batch_mean(b, per)


def mean_squared_logarithmic_error(ctx: LayerContext, pred: Tensor, target: Tensor) -> int:
    """mean((log(max(pred, 1e-7) + 1) - log(max(target, 1e-7) + 1))^2)."""
    b, p = ctx.b, vid(pred)
    y = _target(b, p, vid(target))
    one, eps = const(b, 1.0, p), const(b, EPSILON, p)
    d = b.sub(b.log(b.add(b.maximum(p, eps), one)), b.log(b.add(b.maximum(y, eps), one)))
    return _last_axis_mean(b, b.mul(d, d))


def log_cosh(ctx: LayerContext, pred: Tensor, target: Tensor) -> int:
    """mean(log(cosh(pred - target))), as d + softplus(-2d) - log 2 so large d cannot overflow."""
    b, p = ctx.b, vid(pred)
    d = b.sub(p, _target(b, p, vid(target)))
    m2d = b.mul(const(b, -2.0, p), d)
    softplus = b.add(b.maximum(m2d, const(b, 0.0, p)), b.log1p(b.exp(b.neg(b.abs(m2d)))))
    return _last_axis_mean(b, b.sub(b.add(d, softplus), const(b, 0.6931471805599453, p)))


def _l2_normalize(b: Builder, x: int, axis: int) -> int:
    # Keras: x / sqrt(max(sum(x^2), 1e-12)), so an all-zero row stays zero instead of nan
    sq = b.sum(b.mul(x, x), axes=(axis,), keepdims=True)
    return b.div(x, b.sqrt(b.maximum(sq, const(b, 1e-12, x))))


def cosine_similarity(ctx: LayerContext, pred: Tensor, target: Tensor, axis: int = -1) -> int:
    """-sum(l2_normalize(target) * l2_normalize(pred)) over `axis`: -1 when they point the same way."""
    b, p = ctx.b, vid(pred)
    y = _target(b, p, vid(target))
    per = b.neg(b.sum(b.mul(_l2_normalize(b, y, axis), _l2_normalize(b, p, axis)), axes=(axis,)))
    return _batch_mean(b, per)


LOSSES = {
    "mse": mse,
    "mae": mae,
    "poisson": poisson,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "huber": huber,
    "hinge": hinge,
    "squared_hinge": squared_hinge,
    "categorical_hinge": categorical_hinge,
    "kl_divergence": kl_divergence,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "log_cosh": log_cosh,
    "cosine_similarity": cosine_similarity,
    # Keras's long names
    "msle": mean_squared_logarithmic_error,
    "kld": kl_divergence,
    "mean_squared_error": mse,
    "mean_absolute_error": mae,
}
