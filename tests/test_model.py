"""Model's training step (nncompiler/model.py): the bound step (State.bind) with its feed check
(FeedCheck) gives torch.autograd's SGD steps, and a batch like one already accepted skips the
full feed check without letting a wrong batch through.

The oracle is torch in float64: softmax cross-entropy on integer labels, plain SGD."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import nncompiler as nnc
from nncompiler.errors import DataError

MLP = """
model Tiny {
    input  x: f32[B, 4]
    target y: i32[B]
    h1  = dense(x, 16, activation=relu)
    out = dense(h1, 3, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer sgd(lr=0.05)
}
"""


def torch_sgd(params: dict, batches, lr: float, weights=None) -> tuple[list[float], dict]:
    p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    losses = []
    for i, (x, y) in enumerate(batches):
        h = torch.relu(torch.as_tensor(x, dtype=torch.float64) @ p["h1.kernel"] + p["h1.bias"])
        rows = torch.nn.functional.cross_entropy(h @ p["out.kernel"] + p["out.bias"], torch.as_tensor(y).long(),
                                                 reduction="none")
        w = torch.ones_like(rows) if weights is None else torch.as_tensor(weights[i], dtype=torch.float64)
        loss = (w * rows).sum() / len(y)
        loss.backward()
        with torch.no_grad():
            for t in p.values():
                t -= lr * t.grad
                t.grad = None
        losses.append(loss.item())
    return losses, {k: t.detach().numpy() for k, t in p.items()}


def batches(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n, 4)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32)) for n in sizes]


@pytest.fixture
def model_and_spy(monkeypatch):
    """A model whose full feed checks are counted."""
    m = nnc.compile(MLP)
    calls = []
    full = m.check_feeds

    def counted(feeds, wanted):
        calls.append(sorted(feeds))
        return full(feeds, wanted)
    monkeypatch.setattr(m, "check_feeds", counted)
    return m, calls


def test_steps_match_torch_and_repeat_batches_skip_the_full_check(model_and_spy):
    m, calls = model_and_spy
    start = m.params
    data = batches([16, 16, 5, 16, 16])
    losses = [m.step(x=x, y=y)["loss"] for x, y in data]
    want_losses, want = torch_sgd(start, data, 0.05)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    for k, v in m.params.items():
        assert v.dtype == np.float32
        np.testing.assert_allclose(v, want[k], rtol=1e-4, atol=1e-6)
    assert len(calls) == 3            # the first batch, the batch of 5 rows, the first 16 again
    assert m.steps_taken == 5


def test_a_converted_batch_is_checked_every_time_and_still_trains_right(model_and_spy):
    m, calls = model_and_spy
    start = m.params
    data = batches([8, 8])
    for x, y in data:        # float64 x and int64 y: converted by the full check, never remembered
        m.step(x=x.astype(np.float64), y=y.astype(np.int64))
    assert len(calls) == 2
    _, want = torch_sgd(start, data, 0.05)
    for k, v in m.params.items():
        np.testing.assert_allclose(v, want[k], rtol=1e-4, atol=1e-6)


def test_bad_batches_are_refused_after_good_ones(model_and_spy):
    m, _ = model_and_spy
    (x, y), = batches([8])
    m.step(x=x, y=y)
    before = m.params
    with pytest.raises(DataError, match="'x'"):
        m.step(x=x[:, :3], y=y)
    with pytest.raises(DataError, match="x"):
        m.step(x=x[:5], y=y)                  # B bound to 5 by x, 8 by y
    with pytest.raises(DataError, match="missing data for 'y'"):
        m.step(x=x)
    with pytest.raises(DataError, match="no input or target 'z'"):
        m.step(x=x, y=y, z=y)
    with pytest.raises(DataError, match="y"):
        m.step(x=x, y=y.astype(np.float32) + 0.5)   # not integral labels
    for k, v in m.params.items():             # refused steps change nothing
        np.testing.assert_array_equal(v, before[k])
    assert m.steps_taken == 1


def test_sample_weights_go_through_the_bound_weighted_step():
    m = nnc.compile(MLP)
    start = m.params
    data = batches([6, 6], seed=1)
    w = [np.array([1, 0, 2, 1, 0.5, 1], np.float32), np.array([0, 1, 1, 1, 3, 1], np.float32)]
    losses = [m.step(sample_weight=wi, x=x, y=y)["loss"] for wi, (x, y) in zip(w, data)]
    want_losses, want = torch_sgd(start, data, 0.05, weights=w)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    for k, v in m.params.items():
        np.testing.assert_allclose(v, want[k], rtol=1e-4, atol=1e-6)


def test_changing_the_lr_between_steps_is_seen_by_the_next_step():
    m = nnc.compile(MLP)
    start = m.params
    (x, y), = batches([8], seed=2)
    m.lr = 0.5
    m.step(x=x, y=y)
    _, want = torch_sgd(start, [(x, y)], 0.5)
    for k, v in m.params.items():
        np.testing.assert_allclose(v, want[k], rtol=1e-4, atol=1e-6)
