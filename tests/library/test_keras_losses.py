"""The losses added from Keras's losses module: value and gradients against torch (where torch
has the loss) or against the Keras formula written out in torch, plus finite differences."""
import numpy as np
import torch
import torch.nn.functional as F

from library.helpers import check
from nncompiler.library import LOSSES, Value

rng = np.random.default_rng(11)
PRED = rng.normal(size=(4, 3))
TARGET = rng.normal(size=(4, 3))
SIGNS = rng.choice([-1.0, 1.0], size=(4, 3))
BITS = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
ONEHOT = np.eye(3)[[1, 0, 2, 0]]
PROBS = rng.dirichlet(np.ones(3), size=4)
SOFT = rng.dirichlet(np.ones(3), size=4)
POS = rng.uniform(0.1, 3.0, size=(4, 3))
EPS = 1e-7


def _loss(name, **kw):
    return lambda ctx, ids: LOSSES[name](ctx, Value(ids["p"]), Value(ids["y"]), **kw)


def test_huber_matches_torch_at_the_default_delta():
    # |d| spans both sides of delta = 1
    check(_loss("huber"), lambda t: F.huber_loss(t["p"], t["y"], delta=1.0),
          {"p": 2 * PRED, "y": TARGET})


def test_huber_with_delta():
    check(_loss("huber", delta=0.5), lambda t: F.huber_loss(t["p"], t["y"], delta=0.5),
          {"p": 2 * PRED, "y": TARGET})


def test_hinge_with_signed_labels():
    check(_loss("hinge"), lambda t: torch.clamp(1 - t["y"] * t["p"], min=0).mean(),
          {"p": PRED, "y": SIGNS})


def test_hinge_turns_binary_labels_into_signs_like_keras():
    check(_loss("hinge"), lambda t: torch.clamp(1 - (2 * t["y"] - 1) * t["p"], min=0).mean(),
          {"p": PRED, "y": BITS}, fd=False)   # perturbing a 0/1 label leaves the binary case


def test_squared_hinge():
    check(_loss("squared_hinge"), lambda t: (torch.clamp(1 - t["y"] * t["p"], min=0) ** 2).mean(),
          {"p": PRED, "y": SIGNS})


def test_categorical_hinge():
    def ref(t):
        pos = (t["y"] * t["p"]).sum(-1)
        neg = ((1 - t["y"]) * t["p"]).max(-1).values
        return torch.clamp(neg - pos + 1, min=0).mean()
    check(_loss("categorical_hinge"), ref, {"p": PRED, "y": ONEHOT})


def test_kl_divergence_matches_torch():
    check(_loss("kl_divergence"),
          lambda t: F.kl_div(torch.log(t["p"]), t["y"], reduction="batchmean"), {"p": PROBS, "y": SOFT})


def test_kl_divergence_clips_zero_targets_like_keras():
    y = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])

    def ref(t):
        yc, pc = t["y"].clamp(EPS, 1), t["p"].clamp(EPS, 1)
        return (yc * torch.log(yc / pc)).sum(-1).mean()
    out, _ = check(_loss("kl_divergence"), ref, {"p": PROBS[:2], "y": y}, fd=False)
    assert np.isfinite(out)


def test_mean_squared_logarithmic_error():
    def ref(t):
        return ((torch.log(t["p"].clamp(min=EPS) + 1) - torch.log(t["y"].clamp(min=EPS) + 1)) ** 2).mean()
    check(_loss("mean_squared_logarithmic_error"), ref, {"p": POS, "y": POS[::-1].copy()})
    assert LOSSES["msle"] is LOSSES["mean_squared_logarithmic_error"]


def test_log_cosh():
    check(_loss("log_cosh"), lambda t: torch.log(torch.cosh(t["p"] - t["y"])).mean(),
          {"p": PRED, "y": TARGET})


def test_log_cosh_is_finite_for_large_errors():
    big = np.array([[200.0, -200.0]])
    out, _ = check(_loss("log_cosh"), lambda t: (torch.abs(t["p"] - t["y"]) - np.log(2.0)).mean(),
                   {"p": big, "y": np.zeros_like(big)}, fd=False)
    np.testing.assert_allclose(out, 200 - np.log(2), rtol=1e-6)


def test_cosine_similarity_is_the_negative_cosine():
    check(_loss("cosine_similarity"),
          lambda t: -F.cosine_similarity(t["p"], t["y"], dim=-1, eps=1e-12).mean(),
          {"p": PRED, "y": TARGET})
