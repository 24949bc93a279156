"""dense against torch.nn.Linear (kernel = weight transposed), with activations,
batched inputs, initialiser specs and regulariser penalties."""
import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from library.helpers import check, ours
from nncompiler.autodiff import grad
from nncompiler.backends.numpy import compile_graph
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType
from nncompiler.library import (LAYERS, LOSSES, Activation, Initializer, LayerContext, Regularizer, Spec,
                                Tensor, Value, initial_value)

rng = np.random.default_rng(11)
X = rng.normal(size=(5, 4))
K = rng.normal(size=(4, 3)) * 0.5
BIAS = rng.normal(size=(3,))
Y = rng.normal(size=(5, 3))
PARAMS = {"layer.kernel": K, "layer.bias": BIAS}


def _dense(**kw):
    return lambda ctx, ids: LAYERS["dense"](ctx, Value(ids["x"]), 3, **kw)


@pytest.mark.parametrize("activation,torch_act", [
    ("linear", lambda y: y), ("relu", F.relu), ("tanh", torch.tanh), ("sigmoid", torch.sigmoid),
    ("softmax", lambda y: F.softmax(y, -1)), (Spec("leaky_relu", (("alpha", 0.2),)), lambda y: F.leaky_relu(y, 0.2)),
])
def test_dense_matches_linear(activation, torch_act):
    check(_dense(activation=activation),
          lambda t: torch_act(F.linear(t["x"], t["layer.kernel"].T, t["layer.bias"])),
          {"x": X}, PARAMS)


def test_dense_against_nn_linear_module():
    lin = torch.nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(K.T, dtype=torch.float32))     # torch stores [out, in]
        lin.bias.copy_(torch.tensor(BIAS, dtype=torch.float32))
    x = torch.tensor(X, dtype=torch.float32, requires_grad=True)
    out_t = lin(x)
    out, grads, r = ours(_dense(), {"x": X}, PARAMS)
    (out_t * torch.tensor(r, dtype=torch.float32)).sum().backward()
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["layer.kernel"], lin.weight.grad.numpy().T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["layer.bias"], lin.bias.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["x"], x.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_dense_on_rank3_input_and_without_bias():
    x3 = rng.normal(size=(2, 5, 4))
    check(_dense(use_bias=False), lambda t: t["x"] @ t["layer.kernel"], {"x": x3}, {"layer.kernel": K})


def test_dense_declares_params_with_initialisers():
    b = Builder()
    ctx = LayerContext(b, "h", {}, None, seed_base=3)
    x = b.argument("x", "input", TensorType("f32", ("B", 4)))
    v = LAYERS["dense"](ctx, Value(x), 16, activation="softmax",
                        kernel_initializer=Spec("normal", (("stddev", 0.1),)))
    assert v.activation == "softmax" and v.logits is not None     # the loss can use the logits
    assert set(ctx.params) == {"h.kernel", "h.bias"}
    k, bias = ctx.params["h.kernel"], ctx.params["h.bias"]
    assert tuple(k.type.shape) == (4, 16) and tuple(bias.type.shape) == (16,)
    assert k.init == Spec("normal", (("stddev", 0.1),)) and bias.init == Spec("zeros")
    assert tuple(b.shape(v.id)) == ("B", 16)
    # the declared inits evaluate (with per-parameter seeds)
    ib = Builder()
    vals = compile_graph(ib.build({"k": initial_value(k, ib), "b": initial_value(bias, ib)}))({})
    assert np.asarray(vals["k"]).std() > 0.05 and np.all(np.asarray(vals["b"]) == 0)
    with pytest.raises(ValueError, match="did you mean 'he_normal'"):
        LAYERS["dense"](LayerContext(b, "h2", {}, None), Value(x), 2, kernel_initializer="he_nromal")


@pytest.mark.parametrize("kreg,breg,penalty", [
    (Spec("l2", (("l2", 0.01),)), None, lambda k, b: 0.01 * (k ** 2).sum()),
    ("l2", "l1", lambda k, b: 0.01 * (k ** 2).sum() + 0.01 * b.abs().sum()),
    (Spec("l1_l2", (("l1", 0.003), ("l2", 0.02))), Spec("l2", (("l2", 0.5),)),
     lambda k, b: 0.003 * k.abs().sum() + 0.02 * (k ** 2).sum() + 0.5 * (b ** 2).sum()),
])
def test_regularizers_add_their_penalty_to_the_loss(kreg, breg, penalty):
    def build(ctx, ids):
        y = LAYERS["dense"](ctx, Value(ids["x"]), 3, kernel_regularizer=kreg, bias_regularizer=breg)
        loss = LOSSES["mse"](ctx, y, Value(ids["y"]))
        assert len(ctx.penalties) == 1 + (breg is not None)
        for p in ctx.penalties:
            loss = ctx.b.add(loss, p)
        return loss

    def ref(t):
        k, b = t["layer.kernel"], t["layer.bias"]
        return F.mse_loss(F.linear(t["x"], k.T, b), t["y"]) + penalty(k, b)

    check(build, ref, {"x": X, "y": Y}, PARAMS)


def test_integer_inputs_are_cast():
    xi = rng.integers(-3, 4, size=(5, 4)).astype(np.int32)
    out, _, _ = ours(_dense(), {"x": xi}, PARAMS)
    np.testing.assert_allclose(out, xi @ K.astype(np.float32) + BIAS.astype(np.float32), rtol=1e-5, atol=1e-5)


def test_flatten():
    x = rng.normal(size=(2, 3, 4))
    check(lambda ctx, ids: LAYERS["flatten"](ctx, Value(ids["x"])), lambda t: t["x"].reshape(2, -1), {"x": x})
    b = Builder()
    xs = b.argument("x", "input", TensorType("f32", ("B", 8, 8)))
    assert tuple(b.shape(LAYERS["flatten"](LayerContext(b, "f", {}, None), Value(xs)).id)) == ("B", 64)


def test_dense_signature_contract():
    sig = inspect.signature(LAYERS["dense"])
    p = sig.parameters
    assert list(p)[:3] == ["ctx", "x", "units"]
    assert p["x"].annotation is Tensor and p["units"].annotation is int
    assert p["activation"].annotation is Activation and p["activation"].default == "linear"
    assert p["use_bias"].annotation is bool and p["use_bias"].default is True
    assert p["kernel_initializer"].annotation is Initializer and p["kernel_initializer"].default == "glorot_uniform"
    assert p["bias_initializer"].annotation is Initializer and p["bias_initializer"].default == "zeros"
    assert p["kernel_regularizer"].annotation is Regularizer and p["kernel_regularizer"].default is None
    assert p["bias_regularizer"].annotation is Regularizer and p["bias_regularizer"].default is None


def test_dense_grad_graph_has_only_primitives():
    b = Builder()
    ctx = LayerContext(b, "d", {}, None)
    x = b.argument("x", "input", TensorType("f32", ("B", 4)))
    y = b.argument("y", "target", TensorType("i32", ("B",)))
    v = LAYERS["dense"](ctx, Value(x), 3, activation="softmax")
    g = grad(b.build({"loss": LOSSES["sparse_categorical_crossentropy"](ctx, v, Value(y))}), "loss")
    assert {o for o, _ in g.outputs} == {"loss", "grad.d.kernel", "grad.d.bias"}


def test_user_errors_are_shape_errors():
    """The front end turns ShapeError into a located diagnostic (anything else would be a traceback)."""
    from nncompiler.errors import ShapeError
    b = Builder()
    x = b.argument("x", "input", TensorType("f32", (2, "T")))
    with pytest.raises(ShapeError, match="static"):
        LAYERS["dense"](LayerContext(b, "d", {}, None), Value(x), 3)
    y = b.argument("y", "input", TensorType("f32", (2, 4)))
    with pytest.raises(ShapeError, match="units"):
        LAYERS["dense"](LayerContext(b, "e", {}, None), Value(y), 0)
