"""Keras's metrics by name: each against its formula written out here, computed over a whole
epoch (precision of an epoch is TP / (TP + FP) over all its rows, not a mean of batch values),
and applicable whatever the loss when the shapes fit."""
import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.errors import CompileError

rng = np.random.default_rng(5)
X = rng.normal(size=(10, 3)).astype(np.float32)


def _model(metrics, loss="binary_crossentropy(p, y)", act="sigmoid", units=1, target="f32[B, 1]", train=""):
    return nnc.compile(f"""
model M {{
  input x: f32[B, 3]
  target y: {target}
  p = dense(x, {units}, activation={act})
  output p
  loss {loss}
  metrics {metrics}
  optimizer sgd(lr=0.0)
}}
{train}""")


def _binary_case():
    m = _model("precision, recall, binary_accuracy, accuracy")
    pred = np.asarray(m.predict(x=X))
    # labels that make TP, FP, FN and TN all occur
    guess = pred > 0.5
    y = guess.copy()
    y[:3] = ~y[:3]
    return m, pred, y.astype(np.float32)


def _precision_recall(pred, y):
    guess, truth = pred > 0.5, y > 0.5
    tp = np.sum(guess & truth)
    return tp / max(np.sum(guess), 1), tp / max(np.sum(truth), 1)


def test_binary_metrics_match_their_formulas():
    m, pred, y = _binary_case()
    got = m.evaluate(x=X, y=y)
    precision, recall = _precision_recall(pred, y)
    np.testing.assert_allclose(got["precision"], precision, rtol=1e-6)
    np.testing.assert_allclose(got["recall"], recall, rtol=1e-6)
    np.testing.assert_allclose(got["binary_accuracy"], np.mean((pred > 0.5) == (y > 0.5)), rtol=1e-6)
    np.testing.assert_allclose(got["accuracy"], got["binary_accuracy"])
    assert "precision.num" not in got


def test_precision_and_recall_are_over_the_whole_epoch_not_a_mean_of_batches():
    m, pred, y = _binary_case()
    hist = m.fit(x=X, y=y, epochs=1, batch_size=3, shuffle=False)
    precision, recall = _precision_recall(pred, y)
    np.testing.assert_allclose(hist["precision"][0], precision, rtol=1e-6)
    np.testing.assert_allclose(hist["recall"][0], recall, rtol=1e-6)
    batch_means = np.average([_precision_recall(pred[i:i + 3], y[i:i + 3])[0] for i in range(0, 10, 3)],
                             weights=[3, 3, 3, 1])
    assert not np.isclose(batch_means, precision)     # the data tells the two apart
    assert set(hist) == {"loss", "precision", "recall", "binary_accuracy", "accuracy"}


def test_precision_is_zero_when_nothing_is_predicted_positive():
    m, pred, y = _binary_case()
    got = m.evaluate(x=X[pred[:, 0] <= 0.5], y=y[pred[:, 0] <= 0.5])
    assert got["precision"] == 0.0


def test_categorical_accuracies_and_top_k():
    labels = rng.integers(0, 7, size=10)
    onehot = np.eye(7, dtype=np.float32)[labels]
    m = _model("categorical_accuracy, top_k_categorical_accuracy, accuracy", loss="mse(p, y)",
               act="softmax", units=7, target="f32[B, 7]")
    pred = np.asarray(m.predict(x=X))
    got = m.evaluate(x=X, y=onehot)
    np.testing.assert_allclose(got["categorical_accuracy"], np.mean(pred.argmax(1) == labels), rtol=1e-6)
    # Keras's in_top_k: fewer than k classes score strictly higher than the true one
    at_true = pred[np.arange(10), labels]
    np.testing.assert_allclose(got["top_k_categorical_accuracy"],
                               np.mean((pred > at_true[:, None]).sum(1) < 5), rtol=1e-6)
    assert got["top_k_categorical_accuracy"] > got["categorical_accuracy"]
    np.testing.assert_allclose(got["accuracy"], got["categorical_accuracy"])   # picked from the shapes


def test_sparse_categorical_accuracy_with_a_loss_expression():
    labels = rng.integers(0, 4, size=10).astype(np.int32)
    m = _model("sparse_categorical_accuracy, accuracy", loss="mean(p * p)", act="softmax", units=4,
               target="i32[B]")
    pred = np.asarray(m.predict(x=X))
    got = m.evaluate(x=X, y=labels)
    np.testing.assert_allclose(got["sparse_categorical_accuracy"], np.mean(pred.argmax(1) == labels))
    np.testing.assert_allclose(got["accuracy"], got["sparse_categorical_accuracy"])


def test_accuracy_applies_to_a_regression_loss():
    m, pred, y = _binary_case()
    m2 = _model("accuracy, mae", loss="mse(p, y)")
    got = m2.evaluate(x=X, y=y)
    np.testing.assert_allclose(got["accuracy"], np.mean((pred > 0.5) == (y > 0.5)), rtol=1e-6)
    np.testing.assert_allclose(got["mae"], np.mean(np.abs(pred - y)), rtol=1e-6)


def test_a_metric_that_does_not_fit_is_reported_on_the_metrics_line():
    src = """model M {
  input x: f32[B, 3]
  target y: f32[B, 2]
  p = dense(x, 2)
  output p
  loss mse(p, y)
  optimizer sgd()
}
train M {
  epochs 1
  metrics mae, sparse_categorical_accuracy
}
"""
    with pytest.raises(CompileError) as e:
        nnc.compile(src)
    assert str(e.value).startswith("<string>:11:16: error: metric 'sparse_categorical_accuracy' does not "
                                   "fit this model: labels of shape [B, 2] do not fit predictions [B, 2] "
                                   "(integer labels have one axis fewer)")


# -- auc: Keras's AUC() with its defaults, written out independently of the library ----------------
def _keras_auc(pred, y, num_thresholds=200):
    """ROC AUC by Keras's summation_method='interpolation' from every prediction at once: counts at
    thresholds -1e-7, 1/199, ..., 198/199, 1 + 1e-7 (a prediction counts above a threshold when
    strictly greater), labels cast to bool, multi-label entries flattened (multi_label=False)."""
    eps = 1e-7
    thresholds = np.array([-eps] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
                          + [1 + eps])
    p = np.asarray(pred, np.float64).ravel()[:, None]
    truth = (np.asarray(y).ravel() != 0)[:, None]
    above = p > thresholds[None, :]
    tp = np.sum(above & truth, axis=0).astype(float)
    fp = np.sum(above & ~truth, axis=0).astype(float)
    fn = np.sum(~above & truth, axis=0).astype(float)
    tn = np.sum(~above & ~truth, axis=0).astype(float)
    recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
    fp_rate = np.where(fp + tn > 0, fp / np.maximum(fp + tn, 1), 0.0)
    return float(np.sum((fp_rate[:-1] - fp_rate[1:]) * (recall[:-1] + recall[1:]) / 2))


XA = rng.normal(size=(40, 3)).astype(np.float32)


def _auc_case(units=1):
    m = _model("auc, binary_accuracy", units=units, target=f"f32[B, {units}]")
    pred = np.asarray(m.predict(x=XA))
    y = (rng.random(pred.shape) < pred).astype(np.float32)    # a noisy ranking: AUC strictly inside (0, 1)
    return m, pred, y


def test_auc_over_batches_of_different_sizes_is_the_epochs_auc():
    m, pred, y = _auc_case()
    want = _keras_auc(pred, y)
    assert 0.0 < want < 1.0
    # 40 rows in batches of 7, 7, 7, 7, 7 and 5; lr 0 keeps the predictions of the reference
    hist = m.fit(x=XA, y=y, epochs=2, batch_size=7, shuffle=True, validation_data={"x": XA, "y": y})
    np.testing.assert_allclose(hist["auc"], [want, want], rtol=1e-5)
    np.testing.assert_allclose(hist["val_auc"], [want, want], rtol=1e-5)
    np.testing.assert_allclose(m.evaluate(x=XA, y=y)["auc"], want, rtol=1e-5)
    assert set(hist) == {"loss", "auc", "binary_accuracy", "val_loss", "val_auc", "val_binary_accuracy"}
    batch_means = np.average([_keras_auc(pred[i:i + 7], y[i:i + 7]) for i in range(0, 40, 7)],
                             weights=[7, 7, 7, 7, 7, 5])
    assert not np.isclose(batch_means, want)     # the data tells the two apart


def test_auc_of_multi_label_outputs_flattens_them():
    m, pred, y = _auc_case(units=3)
    want = _keras_auc(pred, y)
    hist = m.fit(x=XA, y=y, epochs=1, batch_size=9)
    np.testing.assert_allclose(hist["auc"][0], want, rtol=1e-5)
    np.testing.assert_allclose(m.evaluate(x=XA, y=y)["auc"], want, rtol=1e-5)


def test_auc_is_one_for_a_perfect_separator_and_zero_for_a_reversed_one():
    m, pred, _ = _auc_case()
    # split the rows at the widest gap between predictions, wider than a threshold step
    order = np.sort(pred[:, 0])
    cut = int(np.argmax(np.diff(order)))
    assert order[cut + 1] - order[cut] > 1 / 199
    y = (pred > (order[cut] + order[cut + 1]) / 2).astype(np.float32)
    assert m.fit(x=XA, y=y, epochs=1, batch_size=6)["auc"][0] == pytest.approx(1.0, abs=1e-6)
    assert m.evaluate(x=XA, y=1 - y)["auc"] == pytest.approx(0.0, abs=1e-6)
    assert _keras_auc(pred, y) == pytest.approx(1.0) and _keras_auc(pred, 1 - y) == pytest.approx(0.0)
