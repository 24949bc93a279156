"""The embedding API's contract (README and issue #2): compile, params, forward, grads, fit, evaluate."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import nncompiler as nnc
from nncompiler.errors import CompileError, DataError

IRIS = "examples/iris.nn"


@pytest.fixture(scope="module")
def iris_data():
    from nncompiler.train.data import read_csv
    x, y, _ = read_csv("examples/data/iris.csv", label="species")
    return x, y


def test_compile_from_path_and_from_text_agree():
    a = nnc.compile(IRIS)
    b = nnc.compile(open(IRIS).read())
    assert list(a.params) == ["h.kernel", "h.bias", "out.kernel", "out.bias"]
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_param_layout_and_dtype():
    m = nnc.compile(IRIS)
    assert m.params["h.kernel"].shape == (4, 16) and m.params["h.bias"].shape == (16,)
    assert all(v.dtype == np.float32 for v in m.params.values())
    np.testing.assert_array_equal(m.params["h.bias"], 0)          # zero bias, as Keras
    limit = np.sqrt(6 / (4 + 16))                                  # glorot_uniform
    assert np.abs(m.params["h.kernel"]).max() <= limit


def _torch_iris(m, x, y):
    p = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    h = torch.relu(torch.tensor(x) @ p["h.kernel"] + p["h.bias"])
    logits = h @ p["out.kernel"] + p["out.bias"]
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y, dtype=torch.long))
    loss.backward()
    return torch.softmax(logits, -1).detach().numpy(), loss.item(), {k: v.grad.numpy() for k, v in p.items()}


def test_forward_and_grads_match_torch(iris_data):
    x, y = iris_data
    m = nnc.compile(IRIS)
    probs, loss_t, grads_t = _torch_iris(m, x, y)
    out = m.forward(x=x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, probs, rtol=1e-4, atol=1e-6)
    loss, grads = m.loss_and_grads(x=x, y=y)
    assert loss == pytest.approx(loss_t, rel=1e-5)
    for k in grads_t:
        assert grads[k].dtype == np.float32
        np.testing.assert_allclose(grads[k], grads_t[k], rtol=1e-4, atol=1e-6)


def test_set_params_checks_names_and_shapes():
    m = nnc.compile(IRIS)
    w = np.ones((4, 16))
    m.set_params({"h.kernel": w})
    assert m.params["h.kernel"].dtype == np.float32 and m.params["h.kernel"].sum() == 64
    with pytest.raises(KeyError, match="did you mean 'h.kernel'"):
        m.set_params({"h.kernal": w})
    with pytest.raises(ValueError, match=r"shape \[4, 16\]"):
        m.set_params({"h.kernel": np.ones((3, 16))})


def test_fit_is_deterministic_and_learns(iris_data):
    x, y = iris_data
    h1 = nnc.compile(IRIS).fit(x=x, y=y, epochs=5, batch_size=16, shuffle=True, seed=3)
    h2 = nnc.compile(IRIS).fit(x=x, y=y, epochs=5, batch_size=16, shuffle=True, seed=3)
    assert h1 == h2
    assert h1["loss"][-1] < h1["loss"][0]
    assert set(h1) == {"loss", "accuracy"}


def test_fit_without_shuffle_equals_manual_steps(iris_data):
    x, y = iris_data
    a, b = nnc.compile(IRIS), nnc.compile(IRIS)
    a.fit(x=x, y=y, epochs=1, batch_size=50, shuffle=False)
    for i in range(0, 150, 50):
        b.step(x=x[i:i + 50], y=y[i:i + 50])
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_evaluate_reports_loss_and_accuracy(iris_data):
    x, y = iris_data
    m = nnc.compile(IRIS)
    res = m.evaluate(x=x, y=y)
    loss, _ = m.loss_and_grads(x=x, y=y)
    assert res["loss"] == pytest.approx(loss, rel=1e-6)
    acc = float(np.mean(np.argmax(m.forward(x=x), 1) == y))
    assert res["accuracy"] == pytest.approx(acc)


def test_symbolic_batch_runs_any_batch_size(iris_data):
    x, _ = iris_data
    m = nnc.compile(IRIS)
    full = m.forward(x=x)
    for n in (1, 7, 150):
        np.testing.assert_allclose(m.forward(x=x[:n]), full[:n], rtol=1e-6)


def test_bad_feeds_are_clear_errors(iris_data):
    x, y = iris_data
    m = nnc.compile(IRIS)
    with pytest.raises(DataError, match="did you mean 'x'"):
        m.forward(xx=x)
    with pytest.raises(DataError, match="missing data for 'x'"):
        m.forward()
    with pytest.raises(DataError, match="x"):
        m.forward(x=x[:, :3])


def test_several_outputs_come_back_as_a_tuple():
    m = nnc.compile("examples/basics.nn")
    c, d = m.forward(x=np.eye(2, dtype=np.float32))
    np.testing.assert_array_equal(c, [[4, 3], [7, 8]])
    np.testing.assert_array_equal(d, [3, 7])


def test_compile_error_from_text_names_string_source():
    with pytest.raises(CompileError) as info:
        nnc.compile("graph G {\n    output zz\n}\n")
    assert info.value.render().startswith("<string>:2:12: error: unknown name 'zz'")


def test_regularizer_is_added_to_the_loss():
    src = """
model R {
    input  x: f32[B, 2]
    target y: f32[B, 1]
    h = dense(x, 1, kernel_regularizer=l2(0.5))
    output h
    loss mse(h, y)
    optimizer sgd()
}"""
    m = nnc.compile(src)
    x = np.array([[1, 2], [3, 4]], np.float32)
    y = np.array([[1], [0]], np.float32)
    w = m.params["h.kernel"]
    pred = x @ w + m.params["h.bias"]
    expected = np.mean((pred - y) ** 2) + 0.5 * np.sum(w ** 2)
    loss, grads = m.loss_and_grads(x=x, y=y)
    assert loss == pytest.approx(expected, rel=1e-5)
    g_expected = 2 * x.T @ (pred - y) / 2 + 2 * 0.5 * w
    np.testing.assert_allclose(grads["h.kernel"], g_expected, rtol=1e-5)


def test_a_literal_binding_is_a_constant_not_a_parameter():
    src = open("examples/linefit.nn").read().replace("param  slope: f32[] = 1.0", "slope = 0.64")
    src = src.replace("sgd(lr=0.01)", "sgd(lr=0.1)")
    m = nnc.compile(src)
    assert list(m.params) == ["intercept"]
    m.fit(x=[0.5, 2.3, 2.9], y=[1.4, 1.9, 3.2], epochs=1, batch_size="all", shuffle=False)
    assert round(float(m.params["intercept"]), 2) == 0.57
