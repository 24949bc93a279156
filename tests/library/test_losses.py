"""Every loss: value and gradients (w.r.t. predictions, logits and targets) against torch,
float64 gradients against finite differences; logits of +-1e4 give exact finite values."""
import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from library.helpers import check, ours
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType
from nncompiler.library import ACTIVATIONS, LOSSES, LayerContext, Tensor, Value

rng = np.random.default_rng(7)
PRED = rng.normal(size=(4, 3))
TARGET = rng.normal(size=(4, 3))
POS = rng.uniform(0.2, 3.0, size=(4, 3))          # poisson rates
COUNTS = rng.integers(0, 5, size=(4, 3)).astype(np.float64)
LOGITS = rng.normal(scale=2.0, size=(4, 3))
PROBS = rng.uniform(0.05, 0.95, size=(4, 3))
BITS = rng.integers(0, 2, size=(4, 3)).astype(np.float64)
SOFT = rng.dirichlet(np.ones(3), size=4)          # probability targets
LABELS = np.array([0, 2, 1, 2], dtype=np.int32)
HUGE = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, -1e4], [1e4, 1e4, 1e4]])

EPS = 1e-7


def _loss(name, act=None):
    def build(ctx, ids):
        pred = Value(ids["p"]) if act is None else ACTIVATIONS[act](ctx, Value(ids["p"]))
        return LOSSES[name](ctx, pred, Value(ids["y"]))
    return build


def _clamp(p):
    return p.clamp(EPS, 1 - EPS)


def test_mse():
    check(_loss("mse"), lambda t: F.mse_loss(t["p"], t["y"]), {"p": PRED, "y": TARGET})


def test_mae():
    check(_loss("mae"), lambda t: F.l1_loss(t["p"], t["y"]), {"p": PRED, "y": TARGET})


def test_mae_gradient_is_zero_where_prediction_equals_target():
    _, grads, _ = ours(_loss("mae"), {"p": PRED, "y": PRED.copy()})
    np.testing.assert_array_equal(grads["p"], 0.0)     # torch: sign(0) = 0


def test_poisson():
    # torch's poisson_nll_loss(log_input=False) is exactly mean(p - y*log(p + eps))
    check(_loss("poisson"), lambda t: F.poisson_nll_loss(t["p"], t["y"], log_input=False, eps=EPS),
          {"p": POS, "y": COUNTS})


def test_binary_crossentropy_from_logits():
    check(_loss("binary_crossentropy", "sigmoid"),
          lambda t: F.binary_cross_entropy_with_logits(t["p"], t["y"]), {"p": LOGITS, "y": BITS})


def test_binary_crossentropy_from_logits_at_zero():
    z = np.zeros((2, 3))
    check(_loss("binary_crossentropy", "sigmoid"),
          lambda t: F.binary_cross_entropy_with_logits(t["p"], t["y"]), {"p": z, "y": BITS[:2]}, fd=False)


def test_binary_crossentropy_from_probabilities():
    check(_loss("binary_crossentropy"), lambda t: F.binary_cross_entropy(t["p"], t["y"]),
          {"p": PROBS, "y": BITS})


def test_binary_crossentropy_clips_probabilities_like_keras():
    p = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 1e-9]])
    y = np.array([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])

    def ref(t):
        pc = _clamp(t["p"])
        return -(t["y"] * torch.log(pc) + (1 - t["y"]) * torch.log(1 - pc)).mean()

    out, _ = check(_loss("binary_crossentropy"), ref, {"p": p, "y": y}, fd=False)
    assert np.isfinite(out) and out > 2.0    # log(1e-7) terms, not inf


def test_categorical_crossentropy_from_logits():
    check(_loss("categorical_crossentropy", "softmax"), lambda t: F.cross_entropy(t["p"], t["y"]),
          {"p": LOGITS, "y": SOFT})


def test_categorical_crossentropy_from_probabilities():
    unnormalised = PROBS  # Keras renormalises rows before clipping

    def ref(t):
        p = _clamp(t["p"] / t["p"].sum(-1, keepdim=True))
        return -(t["y"] * torch.log(p)).sum(-1).mean()

    check(_loss("categorical_crossentropy"), ref, {"p": unnormalised, "y": SOFT})


def test_sparse_categorical_crossentropy_from_logits():
    check(_loss("sparse_categorical_crossentropy", "softmax"),
          lambda t: F.cross_entropy(t["p"], t["y"].long()), {"p": LOGITS, "y": LABELS})


def test_sparse_categorical_crossentropy_accepts_column_labels():
    check(_loss("sparse_categorical_crossentropy", "softmax"),
          lambda t: F.cross_entropy(t["p"], t["y"].long().reshape(-1)),
          {"p": LOGITS, "y": LABELS.reshape(-1, 1)})


def test_sparse_categorical_crossentropy_from_probabilities():
    def ref(t):
        return F.nll_loss(torch.log(_clamp(t["p"] / t["p"].sum(-1, keepdim=True))), t["y"].long())

    check(_loss("sparse_categorical_crossentropy"), ref, {"p": PROBS, "y": LABELS})


def _ce64(z, onehot):
    """Cross-entropy in float64 numpy with log-sum-exp: the exact value."""
    m = z.max(-1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(-1, keepdims=True))
    return float(np.mean(-(onehot * (z - lse)).sum(-1)))


@pytest.mark.parametrize("name,ref,target", [
    ("categorical_crossentropy", lambda t: F.cross_entropy(t["p"], t["y"]), np.eye(3)[[1, 0, 2, 0]]),
    ("sparse_categorical_crossentropy", lambda t: F.cross_entropy(t["p"], t["y"].long()), LABELS),
])
def test_crossentropy_with_huge_logits_is_exact_and_finite(name, ref, target):
    out, grads = check(_loss(name, "softmax"), ref, {"p": HUGE, "y": target}, fd=False)
    onehot = target if target.ndim == 2 else np.eye(3)[target]
    expected = _ce64(HUGE, onehot)
    assert expected > 1e3 or name.startswith("sparse")   # the one-hot case has wrong-side logits of 1e4
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert np.all(np.isfinite(grads["p"]))


def test_binary_crossentropy_with_huge_logits_is_exact_and_finite():
    z = HUGE
    y = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    out, grads = check(_loss("binary_crossentropy", "sigmoid"),
                       lambda t: F.binary_cross_entropy_with_logits(t["p"], t["y"]), {"p": z, "y": y}, fd=False)
    # a logit on the wrong side costs |z| = 1e4; the exact float64 formula
    per = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    np.testing.assert_allclose(out, per.mean(), rtol=1e-6)
    np.testing.assert_allclose(grads["p"], (torch.sigmoid(torch.tensor(z)).numpy() - y) / z.size, atol=1e-7)


def test_symbolic_batch_size():
    """Means divide by the runtime batch size, not a compile-time constant."""
    build = _loss("sparse_categorical_crossentropy", "softmax")
    for n in (2, 5):
        z = rng.normal(size=(n, 3))
        y = rng.integers(0, 3, size=n).astype(np.int32)
        check(build, lambda t: F.cross_entropy(t["p"], t["y"].long()), {"p": z, "y": y},
              shapes={"p": ("B", 3), "y": ("B",)}, fd=False)
    for name, ref in (("mse", F.mse_loss), ("mae", F.l1_loss)):
        for n in (1, 6):
            check(_loss(name), lambda t: ref(t["p"], t["y"]), {"p": rng.normal(size=(n, 2)), "y": rng.normal(size=(n, 2))},
                  shapes={"p": ("B", 2), "y": ("B", 2)}, fd=False)


def test_integer_targets_are_cast():
    y = np.array([[1, 0, 2], [0, 3, 1], [2, 2, 0], [1, 1, 1]], dtype=np.int32)
    check(_loss("mse"), lambda t: F.mse_loss(t["p"], t["y"].float()), {"p": PRED, "y": y})


def test_column_prediction_against_flat_target_does_not_broadcast():
    p = rng.normal(size=(5, 1))
    y = rng.normal(size=(5,))
    check(_loss("mse"), lambda t: F.mse_loss(t["p"].reshape(-1), t["y"]), {"p": p, "y": y})


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_signature_contract(name):
    params = list(inspect.signature(LOSSES[name]).parameters.values())
    assert [p.name for p in params[:3]] == ["ctx", "pred", "target"]
    assert params[1].annotation is Tensor and params[2].annotation is Tensor
    # anything after the two tensors is a Keras hyper-parameter with Keras's default (huber's delta)
    assert all(p.default is not inspect.Parameter.empty for p in params[3:])


def test_losses_are_f32_scalars():
    for name in LOSSES:
        b = Builder()
        ctx = LayerContext(b, "", {}, None)
        p = b.argument("p", "input", TensorType("f32", ("B", 3)))
        y = b.argument("y", "target", TensorType("i32" if name.startswith("sparse") else "f32",
                                                   ("B",) if name.startswith("sparse") else ("B", 3)))
        out = LOSSES[name](ctx, Value(p), Value(y))
        assert b.type_of(out) == TensorType("f32", ()), name


# ---- metrics (accuracy picks its Keras variant from the loss) -------------------------------

def _metric(name, loss_name, pred, target, act=None):
    from nncompiler.library import METRICS
    b = Builder()
    ctx = LayerContext(b, "", {}, None)
    p = b.argument("p", "input", TensorType("f32", ("B",) + pred.shape[1:]))
    dt = "i32" if target.dtype == np.int32 else "f32"
    y = b.argument("y", "target", TensorType(dt, ("B",) + target.shape[1:]))
    v = Value(p) if act is None else ACTIVATIONS[act](ctx, Value(p))
    out = METRICS[name](ctx, v, Value(y), loss_name)
    if out is None:
        return None
    assert b.type_of(out) == TensorType("f32", ())
    from nncompiler.backends.numpy import evaluate
    return float(evaluate(b.build({"m": out}), {"p": pred.astype(np.float32), "y": target})["m"])


def test_accuracy_variants():
    z = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [4.0, 0.0, 1.0]])
    labels = np.array([0, 2, 2, 1], dtype=np.int32)
    assert _metric("accuracy", "sparse_categorical_crossentropy", z, labels, "softmax") == 0.5
    assert _metric("accuracy", "sparse_categorical_crossentropy", z, labels.reshape(-1, 1)) == 0.5
    onehot = np.eye(3, dtype=np.float32)[labels]
    assert _metric("accuracy", "categorical_crossentropy", z, onehot, "softmax") == 0.5
    # binary: sigmoid(z) > 0.5 against 0/1 labels, mean over all elements (Keras's binary_accuracy)
    zb = np.array([[2.0, -1.0], [0.0, 3.0], [-2.0, -0.5]])
    yb = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    expected = np.mean((torch.sigmoid(torch.tensor(zb)).numpy() > 0.5) == yb)
    assert _metric("accuracy", "binary_crossentropy", zb, yb, "sigmoid") == pytest.approx(expected)
    # any other loss: the variant comes from the shapes (two columns: categorical, as keras.metrics.get)
    assert _metric("accuracy", "mse", zb, yb) == pytest.approx(np.mean(zb.argmax(1) == yb.argmax(1)))


def test_regression_metrics():
    p, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)).astype(np.float32)
    assert _metric("mae", "mse", p, y) == pytest.approx(np.abs(p.astype(np.float32) - y).mean(), rel=1e-5)
    assert _metric("mse", "mse", p, y) == pytest.approx(((p.astype(np.float32) - y) ** 2).mean(), rel=1e-5)
