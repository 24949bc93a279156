"""Metrics: `fn(ctx, pred: Tensor, target: Tensor, loss_name: str) -> int | Ratio`.

A metric applies whenever its inputs' shapes fit, whatever the loss; a shape
that does not fit raises ShapeError, which the front end reports on the
`metrics` line. Metrics are never differentiated.

Keras's metrics are stateful: an epoch's precision is TP / (TP + FP) over
every batch of the epoch, not the mean of the batches' precisions. A metric
that is such a ratio returns `Ratio(num, den)`, each a batch mean (a count
divided by the batch's rows); the training loop's row-weighted mean of each
part is then the epoch's count / rows, and `epoch_value` divides them. Plain
means (accuracy, mae) are exact under the row-weighted mean already.

`accuracy` picks Keras's variant: from the loss when it names one
(sparse categorical, categorical, binary crossentropy), else from the shapes
as keras.metrics.get does: a prediction with one column is binary, integer or
one-fewer-axis targets are sparse, otherwise categorical.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ShapeError
from ..ir.graph import Builder
from ..ir.shapes import fmt_shape
from .activations import const, mean, vid
from .context import LayerContext, Tensor
from .losses import _target

_SPARSE = {"sparse_categorical_crossentropy"}
_CATEGORICAL = {"categorical_crossentropy"}
_BINARY = {"binary_crossentropy"}
THRESHOLD = 0.5   # Keras's default for binary accuracy, precision and recall


@dataclass(frozen=True)
class Curve:
    """A metric from per-threshold confusion counts over the whole epoch: `tp`, `fp`, `tn`,
    `fn` are f32 [num_thresholds] vectors, each a batch mean (counts divided by the batch's
    rows), so the loop's row-weighted epoch mean of each is the epoch's counts per row; `value`
    is the batch's own AUC and `epoch_value` recomputes it from the epoch's counts."""

    value: int
    tp: int
    fp: int
    tn: int
    fn: int


@dataclass(frozen=True)
class Ratio:
    """A metric that is num / den over the whole epoch (each part a batch mean)."""

    num: int
    den: int


def _f32_mean(b: Builder, x: int) -> int:
    return mean(b, x if b.dtype(x) == "f32" else b.cast(x, dtype="f32"))


def _same_shape(b: Builder, p: int, y: int, what: str) -> int:
    """The target as the prediction's shape and dtype, or a ShapeError saying why not."""
    y = _target(b, p, y)
    if tuple(b.shape(y)) != tuple(b.shape(p)):
        raise ShapeError(f"{what} needs a target shaped like the prediction {fmt_shape(b.shape(p))}, "
                         f"got {fmt_shape(b.shape(y))}")
    return y


def _sparse_labels(b: Builder, p: int, y: int) -> int:
    """Integer labels [B] (or [B, 1]) for a prediction [B, C], as i32 [B]."""
    ps, ys = tuple(b.shape(p)), tuple(b.shape(y))
    if ys == ps[:-1] + (1,):
        y = b.reshape(y, shape=ps[:-1])
    elif ys != ps[:-1]:
        raise ShapeError(f"labels of shape {fmt_shape(ys)} do not fit predictions {fmt_shape(ps)} "
                         "(integer labels have one axis fewer)")
    return y if b.dtype(y) == "i32" else b.cast(y, dtype="i32")


def _is_sparse(b: Builder, p: int, y: int) -> bool:
    ps, ys = tuple(b.shape(p)), tuple(b.shape(y))
    return bool(ps) and (b.dtype(y) in ("i32", "i64") or len(ys) == len(ps) - 1
                         or (ys == ps[:-1] + (1,) and ps[-1] != 1))


def binary_accuracy(ctx: LayerContext, pred: Tensor, target: Tensor, loss_name: str = "") -> int:
    """Fraction of entries where (pred > 0.5) equals the 0/1 target."""
    b, p = ctx.b, vid(pred)
    y = _same_shape(b, p, vid(target), "binary_accuracy")
    guess = b.cast(b.gt(p, const(b, THRESHOLD, p)), dtype=b.dtype(p))
    return _f32_mean(b, b.eq(guess, y))


def categorical_accuracy(ctx: LayerContext, pred: Tensor, target: Tensor, loss_name: str = "") -> int:
    """Fraction of rows whose largest prediction is the one-hot target's class."""
    b, p = ctx.b, vid(pred)
    y = _same_shape(b, p, vid(target), "categorical_accuracy")
    axis = len(b.shape(p)) - 1
    return _f32_mean(b, b.eq(b.argmax(p, axis=axis), b.argmax(y, axis=axis)))


def sparse_categorical_accuracy(ctx: LayerContext, pred: Tensor, target: Tensor, loss_name: str = "") -> int:
    """Fraction of rows whose largest prediction is the integer label."""
    b, p = ctx.b, vid(pred)
    y = _sparse_labels(b, p, vid(target))
    return _f32_mean(b, b.eq(b.argmax(p, axis=len(b.shape(p)) - 1), y))


def accuracy(ctx: LayerContext, pred: Tensor, target: Tensor, loss_name: str = "") -> int:
    """Keras's "accuracy": binary, sparse categorical or categorical, from the loss or the shapes."""
    b, p, y = ctx.b, vid(pred), vid(target)
    if loss_name in _SPARSE:
        return sparse_categorical_accuracy(ctx, pred, target)
    if loss_name in _CATEGORICAL:
        return categorical_accuracy(ctx, pred, target)
    if loss_name in _BINARY or not b.shape(p) or b.shape(p)[-1] == 1:
        return binary_accuracy(ctx, pred, target)
    if _is_sparse(b, p, y):
        return sparse_categorical_accuracy(ctx, pred, target)
    return categorical_accuracy(ctx, pred, target)


def top_k_categorical_accuracy(ctx: LayerContext, pred: Tensor, target: Tensor, loss_name: str = "",
                               k: int = 5) -> int:
    """Fraction of rows whose one-hot target class is among the k largest predictions
    (Keras: a class counts when fewer than k classes score strictly higher)."""
    b, p = ctx.b, vid(pred)
    y = _same_shape(b, p, vid(target), "top_k_categorical_accuracy")
    # the prediction at the target's class, then how many classes beat it
    at_target = b.sum(b.mul(y, p), axes=(-1,), keepdims=True)
    higher = b.sum(b.cast(b.gt(p, at_target), dtype=b.dtype(p)), axes=(-1,))
    return _f32_mean(b, b.lt(higher, const(b, float(k), p)))


def _confusion(b: Builder, p: int, y: int, what: str) -> tuple[int, int, int]:
    """Batch means of true positives, predicted positives and actual positives at 0.5."""
    y = _same_shape(b, p, y, what)
    guess = b.cast(b.gt(p, const(b, THRESHOLD, p)), dtype="f32")
    truth = b.cast(b.gt(y, const(b, THRESHOLD, y)), dtype="f32")
    # counts over every entry divided by the rows, so the parts add up over batches of any size
    rows = b.size(p, axes=(0,), dtype="f32") if b.shape(p) else b.scalar(1.0)
    per_row = lambda x: b.div(b.sum(x, axes=tuple(range(len(b.shape(x))))), rows)  # noqa: E731
    return per_row(b.mul(guess, truth)), per_row(guess), per_row(truth)


def precision(ctx: LayerContext, pred: Tensor, target: Tensor, loss_name: str = "") -> Ratio:
    """TP / (TP + FP) over the epoch, predictions thresholded at 0.5 (0 when nothing is predicted)."""
    tp, predicted, _ = _confusion(ctx.b, vid(pred), vid(target), "precision")
    return Ratio(tp, predicted)


def recall(ctx: LayerContext, pred: Tensor, target: Tensor, loss_name: str = "") -> Ratio:
    """TP / (TP + FN) over the epoch, predictions thresholded at 0.5 (0 when there are no positives)."""
    tp, _, actual = _confusion(ctx.b, vid(pred), vid(target), "recall")
    return Ratio(tp, actual)


AUC_THRESHOLDS = 200   # Keras's default num_thresholds
_EPSILON = 1e-7         # Keras's backend epsilon: the end thresholds sit just outside [0, 1]


def auc_thresholds(num_thresholds: int = AUC_THRESHOLDS) -> list[float]:
    """Keras's evenly spaced thresholds: -eps, 1/(n-1), ..., (n-2)/(n-1), 1 + eps."""
    inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    return [0.0 - _EPSILON] + inner + [1.0 + _EPSILON]


def auc_from_counts(tp, fp, tn, fn) -> float:
    """Keras's ROC AUC with summation_method='interpolation' from per-threshold counts
    (numpy, host side): the trapezoidal rule over (false positive rate, recall)."""
    import numpy as np
    tp, fp, tn, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, tn, fn))
    safe = lambda n, d: np.divide(n, d, out=np.zeros_like(n), where=d != 0)  # noqa: E731
    x, y = safe(fp, fp + tn), safe(tp, tp + fn)
    return float(np.sum((x[:-1] - x[1:]) * (y[:-1] + y[1:]) / 2.0))


def auc(ctx: LayerContext, pred: Tensor, target: Tensor, loss_name: str = "") -> Curve:
    """Area under the ROC curve over the epoch, as Keras's AUC() (200 thresholds, interpolation;
    multi-label outputs flattened, as multi_label=False does)."""
    b, p = ctx.b, vid(pred)
    y = _same_shape(b, p, vid(target), "auc")
    rank, n = len(b.shape(p)), AUC_THRESHOLDS
    thr = b.constant(tuple(auc_thresholds(n)), "f32", (n,))
    pf = p if b.dtype(p) == "f32" else b.cast(p, dtype="f32")
    yf = y if b.dtype(y) == "f32" else b.cast(y, dtype="f32")
    # every entry against every threshold: [..., n]
    above = b.cast(b.gt(b.reshape(pf, shape=tuple(b.shape(p)) + (1,)), thr), dtype="f32")
    truth = b.cast(b.eq(yf, b.scalar(0.0)), dtype="f32")          # Keras casts labels to bool
    truth = b.sub(b.scalar(1.0), truth)
    truth = b.reshape(truth, shape=tuple(b.shape(p)) + (1,))
    rows = b.size(p, axes=(0,), dtype="f32") if rank else b.scalar(1.0)
    per_row = lambda x: b.div(b.sum(x, axes=tuple(range(rank))), rows)  # noqa: E731
    one = b.scalar(1.0)
    tp = per_row(b.mul(above, truth))
    fp = per_row(b.mul(above, b.sub(one, truth)))
    fn = per_row(b.mul(b.sub(one, above), truth))
    tn = per_row(b.mul(b.sub(one, above), b.sub(one, truth)))
    return Curve(_auc_value(b, tp, fp, tn, fn, n), tp, fp, tn, fn)


def _auc_value(b: Builder, tp: int, fp: int, tn: int, fn: int, n: int) -> int:
    """auc_from_counts in the graph, for one batch's counts."""
    def safe_div(num, den):
        zero = b.scalar(0.0)
        is0 = b.eq(den, zero)
        return b.where(is0, zero, b.div(num, b.where(is0, b.scalar(1.0), den)))
    x, y = safe_div(fp, b.add(fp, tn)), safe_div(tp, b.add(tp, fn))
    head = lambda v: b.slice(v, start=(0,), stop=(n - 1,), step=(1,))  # noqa: E731
    tail = lambda v: b.slice(v, start=(1,), stop=(n,), step=(1,))      # noqa: E731
    area = b.mul(b.sub(head(x), tail(x)), b.add(head(y), tail(y)))
    return b.mul(b.sum(area, axes=(0,)), b.scalar(0.5))


def mae(ctx: LayerContext, pred: Tensor, target: Tensor, loss_name: str = "") -> int:
    """Mean absolute error."""
    b, p = ctx.b, vid(pred)
    return _f32_mean(b, b.abs(b.sub(p, _same_shape(b, p, vid(target), "mae"))))


def mse(ctx: LayerContext, pred: Tensor, target: Tensor, loss_name: str = "") -> int:
    """Mean squared error."""
    b, p = ctx.b, vid(pred)
    d = b.sub(p, _same_shape(b, p, vid(target), "mse"))
    return _f32_mean(b, b.mul(d, d))


def ratio_value(b: Builder, r: Ratio) -> int:
    """num / den for one batch, 0 where den is 0 (Keras's divide_no_nan)."""
    zero = const(b, 0.0, r.den)
    safe = b.where(b.eq(r.den, zero), const(b, 1.0, r.den), r.den)
    return b.where(b.eq(r.den, zero), zero, b.div(r.num, safe))


RATIO_PARTS = (".num", ".den")
CURVE_PARTS = (".tp", ".fp", ".tn", ".fn")
PARTS = RATIO_PARTS + CURVE_PARTS   # graph outputs summed over an epoch, never shown themselves


def epoch_value(record: dict) -> dict[str, float]:
    """A record of row-weighted means with each ratio metric's parts (`name.num`, `name.den`)
    replaced by the epoch's num / den under the metric's own name, and each curve metric's
    per-threshold counts (`name.tp`, ... vectors) by the AUC of the epoch's counts."""
    out = {}
    for key, value in record.items():
        if key.endswith(PARTS):
            continue
        num, den = record.get(key + ".num"), record.get(key + ".den")
        curve = [record.get(key + part) for part in CURVE_PARTS]
        if num is not None and den is not None:
            out[key] = num / den if den else 0.0
        elif all(c is not None for c in curve):
            out[key] = auc_from_counts(*curve)
        else:
            out[key] = value
    return out


METRICS = {
    "accuracy": accuracy,
    "acc": accuracy,
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "precision": precision,
    "auc": auc,
    "recall": recall,
    "mae": mae,
    "mse": mse,
}
