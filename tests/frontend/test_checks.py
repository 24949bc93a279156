"""Compile-time checks against silently wrong programs (nncompiler.frontend.checks)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.errors import CompileError
from nncompiler.frontend.checks import CompileWarning

REGRESSION = """
model M {{
    input  x: f32[B, 3]
    target y: f32[B{ydim}]
    p = dense(x, 1)
    output p
    loss {loss}
    optimizer sgd(lr=0.1)
}}
"""


def _compile_quietly(src):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = nnc.compile(src)
    return m, [w for w in caught if issubclass(w.category, CompileWarning)]


def test_batch_against_new_axis_is_an_error_with_hints():
    with pytest.raises(CompileError) as info:
        nnc.compile(REGRESSION.format(ydim="", loss="mean(square(y - p))"))
    text = info.value.render()
    assert text.startswith("<string>:7:24: error: '-' between f32[B] and f32[B,1]"), text
    assert "the result is [B, B]" in text
    assert "expand_dims(..., -1) on the [B] side" in text and "broadcast_to(..., [B, B])" in text


@pytest.mark.parametrize("call", ["maximum(y, p)", "where(p > 0.0, y, p)", "pow(p, y)"])
def test_elementwise_functions_are_checked_too(call):
    with pytest.raises(CompileError, match=r"<string>:7:\d+: error: '\w+\(\)' between .* broadcasts B against a new axis"):
        nnc.compile(REGRESSION.format(ydim="", loss=f"mean({call})"))
    m, _ = _compile_quietly(REGRESSION.format(ydim=", 1", loss=f"mean({call})"))
    assert "loss" in dict(m.lowered.forward.outputs)


@pytest.mark.parametrize("ydim, loss", [
    (", 1", "mean(square(y - p))"),                              # same shapes
    ("", "mean(square(expand_dims(y, -1) - p))"),               # made explicit elementwise
    ("", "mean(square(broadcast_to(y, [B, B]) - p))"),          # the table, asked for
    ("", "mean(square(p - 1.0))"),                               # a scalar broadcasts freely
])
def test_explicit_or_matching_shapes_compile(ydim, loss):
    m, _ = _compile_quietly(REGRESSION.format(ydim=ydim, loss=loss))
    assert "loss" in dict(m.lowered.forward.outputs)


def test_deliberate_outer_product_of_same_rank_passes():
    m, _ = _compile_quietly("""
graph G {
    input x: f32[B, 1]
    d = x - transpose(x)
    output d
}""")
    out = m.predict(x=np.array([[1.0], [3.0]], np.float32))
    np.testing.assert_array_equal(np.asarray(out), [[0, -2], [2, 0]])


def test_unbound_symbol_in_broadcast_to_is_a_positioned_error():
    with pytest.raises(CompileError) as info:
        nnc.compile("""
graph G {
    input x: f32[B, 3]
    z = broadcast_to(x, [M, B, 3])
    output z
}""")
    assert info.value.render().startswith("<string>:4:9: error: dimension M in shape [M, B, 3] is not bound")


PERCEPTRON = """
model P {{
    input x: f32[B, 2]
    target y: f32[B, 1]
    out = {out}
    output out
    loss mse(out, y)
    optimizer sgd(lr=0.1)
}}
"""


@pytest.mark.parametrize("out, col, op", [
    ("dense(x, 1, activation=step)", 11, "a comparison ('ge'"),
    ("sign(dense(x, 1))", 11, "sign()"),
    ("cast(cast(dense(x, 1), i32), f32)", 16, "a cast to an integer"),   # the inner cast
])
def test_structurally_zero_gradient_warns_with_op_and_line(out, col, op):
    _, caught = _compile_quietly(PERCEPTRON.format(out=out))
    assert len(caught) == 1
    text = str(caught[0].message)
    assert text.startswith(f"<string>:5:{col}: warning: the loss's gradient is zero for every parameter"), text
    assert op in text and "straight_through" in text


@pytest.mark.parametrize("out", ["dense(x, 1, activation=sigmoid)",
                                 "step(dense(x, 1), gradient=straight_through)",
                                 "stop_gradient(dense(x, 1))"])     # asked for: no warning
def test_no_warning_when_a_gradient_flows_or_was_stopped_on_purpose(out):
    _, caught = _compile_quietly(PERCEPTRON.format(out=out))
    assert caught == []


@pytest.mark.parametrize("name, labels", [("AND", [0, 0, 0, 1]), ("OR", [0, 1, 1, 1])])
def test_perceptron_with_straight_through_step_learns(name, labels):
    m, _ = _compile_quietly(PERCEPTRON.format(out="step(dense(x, 1), gradient=straight_through)"))
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array(labels, np.float32)[:, None]
    m.fit(x=x, y=y, epochs=50, batch_size=1, seed=0)
    pred = np.asarray(m.predict(x=x))
    assert set(np.unique(pred)) <= {0.0, 1.0}          # a true threshold unit in the forward pass
    assert (pred == y).mean() == 1.0
    # the rule it follows is the perceptron's: one step of sgd moves w by 2*lr*(y - out)*x / batch
    w, b = m.params["dense_1.kernel"].copy(), m.params["dense_1.bias"].copy()
    xi = x[3:]                                          # [1, 1]: the update is not zero
    outi = float((xi @ w + b)[0, 0] >= 0)
    yi = np.array([[1.0 - outi]], np.float32)           # a wrong label, so the rule moves w
    m.fit(x=xi, y=yi, epochs=1, batch_size=1, shuffle=False)
    np.testing.assert_allclose(m.params["dense_1.kernel"], w + 2 * 0.1 * (yi[0, 0] - outi) * xi.T, atol=1e-6)
    np.testing.assert_allclose(m.params["dense_1.bias"], b + 2 * 0.1 * (yi[0, 0] - outi), atol=1e-6)


def test_plain_step_does_not_learn():
    """The issue's finding: step's true gradient is zero, so the loss stays where it started."""
    m, _ = _compile_quietly(PERCEPTRON.format(out="dense(x, 1, activation=step)"))
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    h = m.fit(x=x, y=np.array([[0], [1], [1], [1]], np.float32), epochs=5, batch_size=1)
    assert len(set(h["loss"])) == 1


def test_step_gradient_keyword_is_checked():
    with pytest.raises(CompileError, match="gradient must be zero or straight_through"):
        nnc.compile(PERCEPTRON.format(out="step(dense(x, 1), gradient=identity)"))
