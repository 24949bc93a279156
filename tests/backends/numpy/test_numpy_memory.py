"""The numpy backend's memory plan (in place, workspaces, recycled outputs, donated state)
must never change a value: each test compares against the same code with the plan off."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import nncompiler as nnc
from nncompiler.backends.numpy import memory

N = 1 << 16   # above memory.LARGE, so the plan is active

CHAIN = f"""
graph D {{
    input x: f32[{N}]
    z = x * 1.5 + 0.25
    output swish(leaky_relu(z))
}}"""

MLP = """
model M {
    input  x: f32[B, 300]
    target y: i32[B]
    h   = dense(x, 256, activation=relu)
    h2  = dense(h, 256, activation=swish)
    out = dense(h2, 10, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.01)
}"""


@pytest.fixture
def no_plan(monkeypatch):
    def off():
        monkeypatch.setattr(memory, "LARGE", 1 << 62)
    return off


def test_planned_chain_matches_torch_and_uses_buffers():
    m = nnc.compile(CHAIN)
    x = np.random.default_rng(0).normal(size=N).astype(np.float32) * 10
    out = m.forward(x=x)
    t = torch.tensor(x) * 1.5 + 0.25
    ref = torch.nn.functional.silu(torch.nn.functional.leaky_relu(t, 0.1)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    src = m.compiled("predict").source
    assert "_swish(" in src and "(into t" in src and "_outbuf(" in src


def test_a_kept_result_is_never_overwritten_by_the_next_call():
    m = nnc.compile(CHAIN)
    x1 = np.full(N, 1.0, np.float32)
    x2 = np.full(N, -3.0, np.float32)
    first = m.forward(x=x1)
    kept = first.copy()
    second = m.forward(x=x2)
    np.testing.assert_array_equal(first, kept)
    assert not np.shares_memory(first, second)


def test_a_dropped_result_is_recycled():
    m = nnc.compile(CHAIN)
    x = np.ones(N, np.float32)
    addr = m.forward(x=x).__array_interface__["data"][0]     # dropped at once
    assert m.forward(x=x).__array_interface__["data"][0] == addr


def _train(steps: int):
    m = nnc.compile(MLP)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(128, 300)).astype(np.float32)
    y = rng.integers(0, 10, 128).astype(np.int32)
    losses = [m.step(x=x, y=y)["loss"] for _ in range(steps)]
    return m, losses


def test_training_with_the_plan_equals_training_without(no_plan):
    planned, l1 = _train(3)
    assert "(into a_" in planned.compiled("train_step").source      # parameters updated in place
    no_plan()
    plain, l2 = _train(3)
    assert "(into a_" not in plain.compiled("train_step").source
    assert l1 == l2
    for k, v in planned.params.items():
        np.testing.assert_array_equal(v, plain.params[k])
    for k, v in planned.opt_state.items():
        np.testing.assert_array_equal(v, plain.opt_state[k])


def test_params_handed_out_are_copies_that_training_does_not_touch():
    m, _ = _train(1)
    before = m.params
    snapshot = {k: v.copy() for k, v in before.items()}
    x = np.zeros((128, 300), np.float32)
    m.step(x=x, y=np.zeros(128, np.int32))
    for k in before:
        np.testing.assert_array_equal(before[k], snapshot[k])
    assert any(not np.array_equal(m.params[k], snapshot[k]) for k in snapshot)


def test_where_with_a_zero_branch_is_exact_for_special_values():
    src = f"""
graph W {{
    input x: f32[{N}]
    output where(x > 0.5, x, 0.0), where(x < 0.5, x * 2.0, 0.0)
}}"""
    m = nnc.compile(src)
    x = np.random.default_rng(2).normal(size=N).astype(np.float32)
    x[:6] = [np.inf, -np.inf, np.nan, -0.0, 0.5, 1e30]
    a, b = m.forward(x=x)
    assert "_where0(" in m.compiled("predict").source
    np.testing.assert_array_equal(a, np.where(x > 0.5, x, np.float32(0)))
    np.testing.assert_array_equal(b, np.where(x < 0.5, x * np.float32(2), np.float32(0)))
