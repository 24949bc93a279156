"""The optimizers added from Keras: step for step against torch.optim where torch has the same
algorithm, else against Keras's published update transcribed in numpy."""
import numpy as np
import pytest
import torch

import nncompiler as nnc
from library.test_optimizers import GRADS, P0, SHAPE, run_ours
from nncompiler.library import OPTIMIZERS


def _torch_steps(make):
    w = torch.nn.Parameter(torch.tensor(P0))
    opt = make([w])
    out = []
    for g in GRADS:
        w.grad = torch.tensor(g)
        opt.step()
        out.append(w.detach().numpy().copy())
    return out


def _compare(name, kwargs, expected, rtol=1e-5):
    ours = run_ours(name, kwargs)
    for t, ((p, _), ref) in enumerate(zip(ours, expected), start=1):
        np.testing.assert_allclose(p, ref, rtol=rtol, atol=1e-6, err_msg=f"{name} step {t}")
        np.testing.assert_allclose(p - P0, ref - P0, rtol=1e-3, atol=1e-6, err_msg=f"{name} update {t}")
    assert not np.allclose(ours[-1][0], P0)


@pytest.mark.parametrize("kwargs", [{"momentum": 0.9, "nesterov": True},
                                    {"lr": 0.1, "momentum": 0.5, "nesterov": 1}])
def test_sgd_nesterov_matches_torch(kwargs):
    hp = OPTIMIZERS["sgd"].hyperparams(kwargs)
    _compare("sgd", kwargs, _torch_steps(lambda w: torch.optim.SGD(w, lr=hp["lr"], momentum=hp["momentum"],
                                                                   nesterov=True)))


@pytest.mark.parametrize("kwargs", [{}, {"learning_rate": 0.05, "beta_1": 0.8, "beta_2": 0.99}])
def test_nadam_matches_torch(kwargs):
    # torch's NAdam uses Keras's momentum schedule (momentum_decay 0.004, base 0.96)
    hp = OPTIMIZERS["nadam"].hyperparams(kwargs)
    _compare("nadam", kwargs, _torch_steps(lambda w: torch.optim.NAdam(
        w, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["epsilon"], momentum_decay=4e-3)))


def test_adamax_matches_torch_without_epsilon():
    # torch adds eps inside the max, Keras outside; with eps = 0 they are the same update
    kwargs = {"lr": 0.01, "epsilon": 0.0}
    _compare("adamax", kwargs, _torch_steps(lambda w: torch.optim.Adamax(w, lr=0.01, eps=0.0)))


def test_adamax_matches_the_keras_update():
    hp = OPTIMIZERS["adamax"].hyperparams({})
    f = np.float32
    p, m, u, ref = P0.copy(), np.zeros(SHAPE, f), np.zeros(SHAPE, f), []
    for t, g in enumerate(GRADS, start=1):
        m = f(hp["beta1"]) * m + f(1 - hp["beta1"]) * g
        u = np.maximum(f(hp["beta2"]) * u, np.abs(g))
        p = p - f(hp["lr"]) / (f(1) - f(hp["beta1"]) ** t) * m / (u + f(hp["epsilon"]))
        ref.append(p)
    _compare("adamax", {}, ref)


@pytest.mark.parametrize("kwargs", [{}, {"lr": 1.0, "rho": 0.9, "epsilon": 1e-6}])
def test_adadelta_matches_torch(kwargs):
    hp = OPTIMIZERS["adadelta"].hyperparams(kwargs)
    _compare("adadelta", kwargs, _torch_steps(lambda w: torch.optim.Adadelta(
        w, lr=hp["lr"], rho=hp["rho"], eps=hp["epsilon"])), rtol=1e-4)


def _keras_ftrl(hp):
    """keras/src/optimizers/ftrl.py's update_step, in float64."""
    lr, power = hp["lr"], hp["lr_power"]
    l1, l2 = hp["l1"], hp["l2"] + hp["beta"] / (2.0 * lr)
    p = P0.astype(np.float64)
    n = np.full(SHAPE, hp["initial_accumulator"])
    z = np.zeros(SHAPE)
    out = []
    for g in GRADS:
        g = g.astype(np.float64)
        g_shrunk = g + 2.0 * hp["l2_shrinkage"] * p
        n_new = n + g * g
        z = z + g_shrunk - (n_new ** -power - n ** -power) / lr * p
        quadratic = n_new ** -power / lr + 2.0 * l2
        p = np.where(np.abs(z) > l1, (np.clip(z, -l1, l1) - z) / quadratic, 0.0)
        n = n_new
        out.append(p)
    return out


@pytest.mark.parametrize("kwargs", [{"lr": 0.1}, {"learning_rate": 0.5, "l1_regularization_strength": 2.0,
                                                  "l2_regularization_strength": 0.1, "beta": 0.2,
                                                  "l2_shrinkage_regularization_strength": 0.05,
                                                  "learning_rate_power": -0.7}])
def test_ftrl_matches_the_keras_update(kwargs):
    ours = run_ours("ftrl", kwargs)
    ref = _keras_ftrl(OPTIMIZERS["ftrl"].hyperparams(kwargs))
    for t, ((p, _), rp) in enumerate(zip(ours, ref), start=1):
        np.testing.assert_allclose(p, rp, rtol=1e-4, atol=1e-6, err_msg=f"ftrl step {t}")
    if kwargs.get("l1_regularization_strength"):
        assert (ours[-1][0] == 0).any()       # l1 makes some weights exactly zero


def test_keras_defaults():
    assert OPTIMIZERS["nadam"].defaults == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-7}
    assert OPTIMIZERS["adamax"].defaults == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-7}
    assert OPTIMIZERS["adadelta"].defaults == {"lr": 0.001, "rho": 0.95, "epsilon": 1e-7}
    assert OPTIMIZERS["ftrl"].slot_init() == {"accumulator": 0.1, "linear": 0.0}
    assert OPTIMIZERS["nadam"].slot_init() == {"m": 0.0, "v": 0.0, "mu_product": 1.0}


NESTEROV = """
model M {
  input x: f32[B, 2]
  target y: f32[B, 1]
  h = dense(x, 1, kernel_initializer=ones)
  output h
  loss mse(h, y)
  optimizer sgd(lr=0.1, momentum=0.9, nesterov=true)
}
"""


def test_nesterov_from_the_language_trains_like_torch():
    m = nnc.compile(NESTEROV)
    x = np.array([[1.0, 2.0], [0.5, -1.0]], np.float32)
    y = np.array([[1.0], [0.0]], np.float32)
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.zero_()
    opt = torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    for _ in range(3):
        m.step(x=x, y=y)
        opt.zero_grad()
        torch.nn.functional.mse_loss(lin(torch.tensor(x)), torch.tensor(y)).backward()
        opt.step()
    np.testing.assert_allclose(m.params["h.kernel"], lin.weight.detach().numpy().T, rtol=1e-5)
