"""Every activation: forward and gradient against torch, float64 gradients against
finite differences, on inputs that include exact zeros and large magnitudes."""
import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from library.helpers import check, ours
from nncompiler.library import ACTIVATIONS, Tensor, Value

# exact zeros, tiny, moderate and huge magnitudes of both signs
EDGE = np.array([[0.0, -0.0, 1e-8, -1e-8, 0.5, -0.5, 3.0, -3.0],
                 [20.0, -20.0, 88.0, -88.0, 1e4, -1e4, 0.1, -2.5]], dtype=np.float32)
# away from kinks (|x| >= 0.2) and from saturation, for central differences
SMOOTH = np.array([[0.3, -0.7, 1.5, -2.0, 0.9, -0.4, 1.2, -3.0],
                   [0.2, -0.25, 2.5, -1.1, -0.6, 0.45, -1.7, 0.8]])

CASES = {
    # name: (torch function of x, keyword arguments, finite differences meaningful everywhere?)
    "linear": (lambda x: x, {}),
    "relu": (F.relu, {}),
    "leaky_relu": (lambda x: F.leaky_relu(x, negative_slope=0.1), {}),
    "leaky_relu_alpha": (lambda x: F.leaky_relu(x, negative_slope=0.3), {"alpha": 0.3}),
    "elu": (F.elu, {}),
    "elu_alpha": (lambda x: F.elu(x, alpha=0.5), {"alpha": 0.5}),
    "sigmoid": (torch.sigmoid, {}),
    "tanh": (torch.tanh, {}),
    "softplus": (F.softplus, {}),
    "swish": (F.silu, {}),
    "gelu": (F.gelu, {}),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), {"approximate": True}),
    "softmax": (lambda x: F.softmax(x, dim=-1), {}),
    "softmax_axis0": (lambda x: F.softmax(x, dim=0), {"axis": 0}),
    "log_softmax": (lambda x: F.log_softmax(x, dim=-1), {}),
}


def _fn(case):
    return ACTIVATIONS[case.split("_alpha")[0].replace("_axis0", "").replace("gelu_tanh", "gelu")]


@pytest.mark.parametrize("case", sorted(CASES))
def test_activation_matches_torch(case):
    torch_fn, kw = CASES[case]
    fn = _fn(case)
    check(lambda ctx, ids: fn(ctx, Value(ids["x"]), **kw), lambda t: torch_fn(t["x"]),
          {"x": EDGE}, fd_inputs={"x": SMOOTH})


def test_step_forward_and_zero_gradient():
    out, grads, _ = ours(lambda ctx, ids: ACTIVATIONS["step"](ctx, Value(ids["x"])), {"x": EDGE})
    np.testing.assert_array_equal(out, (EDGE >= 0).astype(np.float32))   # the course's step: 1 at 0
    assert out[0, 0] == 1.0
    assert out.dtype == np.float32
    np.testing.assert_array_equal(grads["x"], np.zeros_like(EDGE))   # exactly zero, not just small


def test_prelu_matches_torch_and_declares_zero_initialised_alpha():
    alpha = np.array([0.25, -0.5, 0.0, 1.5, 0.1, 2.0, -1.0, 0.3], dtype=np.float32)

    def build(ctx, ids):
        return ACTIVATIONS["prelu"](ctx, Value(ids["x"]))

    check(build, lambda t: F.prelu(t["x"], t["layer.alpha"]), {"x": EDGE},
          params={"layer.alpha": alpha}, fd_inputs={"x": SMOOTH})
    from nncompiler.ir import Builder
    from nncompiler.ir.shapes import TensorType
    from nncompiler.library import LayerContext
    b = Builder()
    ctx = LayerContext(b, "act", {}, None)
    ACTIVATIONS["prelu"](ctx, Value(b.argument("x", "input", TensorType("f32", ("B", 8)))))
    decl = ctx.params["act.alpha"]
    assert tuple(decl.type.shape) == (8,) and decl.init == 0.0     # Keras: one alpha per feature, zeros


def test_softmax_and_sigmoid_carry_their_logits():
    from nncompiler.ir import Builder
    from nncompiler.ir.shapes import TensorType
    from nncompiler.library import LayerContext
    b = Builder()
    ctx = LayerContext(b, "", {}, None)
    x = b.argument("x", "input", TensorType("f32", ("B", 3)))
    for name in ("softmax", "sigmoid"):
        v = ACTIVATIONS[name](ctx, Value(x))
        assert v.activation == name and v.logits == x and v.id != x
    for name in ("relu", "tanh", "linear", "log_softmax"):
        v = ACTIVATIONS[name](ctx, Value(x))
        assert v.activation is None and v.logits is None
    # a softmax over a non-class axis must not pass itself off as class probabilities
    assert ACTIVATIONS["softmax"](ctx, Value(x), axis=0).logits is None


def test_no_overflow_in_elu_and_softplus_gradients():
    x = np.array([[100.0, 1e30, -1e30, -100.0]], dtype=np.float32)
    for name, dx in (("elu", [1, 1, 0, 0]), ("softplus", [1, 1, 0, 0]), ("sigmoid", [0, 0, 0, 0])):
        _, grads, r = ours(lambda ctx, ids: ACTIVATIONS[name](ctx, Value(ids["x"])), {"x": x})
        assert np.all(np.isfinite(grads["x"])), name
        np.testing.assert_allclose(grads["x"], np.asarray(dx) * r, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_signature_contract(name):
    """The front end reads these: x is a Tensor, every other parameter has an annotation and default."""
    params = list(inspect.signature(ACTIVATIONS[name]).parameters.values())
    assert params[0].name == "ctx"
    assert params[1].name == "x" and params[1].annotation in (Tensor, "Tensor")
    for p in params[2:]:
        assert p.annotation is not inspect.Parameter.empty and p.default is not inspect.Parameter.empty, p
