"""Keras layer habits: parameterised activations as a layer's activation, activity
regularisers, and the course's step function."""
import numpy as np
import pytest
import torch

import nncompiler as nnc
from nncompiler.errors import CompileError

rng = np.random.default_rng(2)
X = rng.normal(size=(6, 3)).astype(np.float32)
Y = rng.normal(size=(6, 4)).astype(np.float32)


def _model(layer):
    return nnc.compile(f"""
model M {{
  input x: f32[B, 3]
  target y: f32[B, 4]
  h = {layer}
  output h
  loss mse(h, y)
  optimizer sgd()
}}""")


def _torch_dense(m):
    return (torch.tensor(X) @ torch.tensor(m.params["h.kernel"]).requires_grad_()
            + torch.tensor(m.params["h.bias"]))


@pytest.mark.parametrize("act,ref", [
    ("leaky_relu(alpha=0.2)", lambda z: torch.nn.functional.leaky_relu(z, 0.2)),
    ("elu(0.5)", lambda z: torch.nn.functional.elu(z, 0.5)),
    ("gelu(approximate=true)", lambda z: torch.nn.functional.gelu(z, approximate="tanh")),
    ("softmax(axis=-1)", lambda z: torch.softmax(z, -1)),
])
def test_a_parameterised_activation_as_a_layer_activation(act, ref):
    m = _model(f"dense(x, 4, activation={act})")
    np.testing.assert_allclose(m.predict(x=X), ref(_torch_dense(m)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_an_unknown_activation_keyword_is_positioned():
    with pytest.raises(CompileError) as e:
        _model("dense(x, 4, activation=leaky_relu(slope=0.2))")
    assert str(e.value).startswith("<string>:5:41: error: leaky_relu() has no keyword 'slope'")


def test_activity_regularizer_adds_the_penalty_of_the_output():
    m = _model("dense(x, 4, activation=relu, activity_regularizer=l1_l2(l1=0.01, l2=0.1))")
    k = torch.tensor(m.params["h.kernel"], requires_grad=True)
    bias = torch.tensor(m.params["h.bias"], requires_grad=True)
    out = torch.relu(torch.tensor(X) @ k + bias)
    # Keras 3: the regulariser of the layer's output, summed over the batch
    loss = torch.nn.functional.mse_loss(out, torch.tensor(Y)) + 0.01 * out.abs().sum() + 0.1 * (out ** 2).sum()
    loss.backward()
    value, grads = m.loss_and_grads(x=X, y=Y)
    np.testing.assert_allclose(value, loss.item(), rtol=1e-5)
    np.testing.assert_allclose(grads["h.kernel"], k.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_step_is_one_at_zero():
    out = nnc.compile("graph G {\n output step([-1.0, -0.0, 0.0, 2.0])\n}").forward()
    np.testing.assert_array_equal(out, [0.0, 1.0, 1.0, 1.0])
