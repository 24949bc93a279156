"""Checkpoints (issue #6): what they hold, atomic writes, model checks, and exact resumption."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.train.checkpoint import CheckpointError, read_checkpoint

# dropout (random mask per step), batchnorm (buffers), adam (slots): every kind of state
TINY = """
model Tiny {
    input  x: f32[B, 4]
    target y: i32[B]
    h   = dense(x, 8, activation=relu)
    d   = dropout(h, 0.25)
    n   = batchnorm(d)
    out = dense(n, 3, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.01)
}
train Tiny {
    epochs 4
    batch 8
    metrics accuracy
    seed 1
}
"""


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)
    return {"x": x, "y": y}


def fit(m, epochs, **kw):
    return m.fit(epochs=epochs, batch_size=8, shuffle=True, validation_split=0.25, seed=7, **data(), **kw)


def test_checkpoint_holds_everything(tmp_path):
    m = nnc.compile(TINY)
    path = tmp_path / "c.npz"
    fit(m, 2, checkpoint=str(path))
    ck = read_checkpoint(str(path))
    assert ck.meta["format"] == "nncompiler-checkpoint" and ck.meta["version"] == 1
    assert ck.meta["model"] == "Tiny" and ck.meta["optimizer"] == "adam"
    assert ck.meta["epoch"] == 2 and ck.meta["steps_taken"] == m.steps_taken == 2 * 4
    assert ck.meta["rng"]["bit_generator"] == "PCG64" and ck.meta["seed"] == 7
    assert set(ck.params) == set(m.params) and set(ck.buffers) == {"n.moving_mean", "n.moving_variance"}
    assert "opt.step" in ck.opt_state and "opt.m.h.kernel" in ck.opt_state
    for k, v in {**m.params, **m.buffers}.items():
        np.testing.assert_array_equal(ck.params.get(k, ck.buffers.get(k)), v)
    assert list(ck.meta["history"]) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    with np.load(path, allow_pickle=False) as z:        # nothing pickled
        assert json.loads(str(z["__meta__"]))["epoch"] == 2
    assert os.listdir(tmp_path) == ["c.npz"]             # no temporary file left behind


def test_resume_equals_an_uninterrupted_run(tmp_path):
    full = nnc.compile(TINY)
    h_full = fit(full, 4)
    path = str(tmp_path / "c.npz")
    h_first = fit(nnc.compile(TINY), 2, checkpoint=path)     # stopped after epoch 2 ...
    assert h_first == {k: v[:2] for k, v in h_full.items()}
    second = nnc.compile(TINY)
    h_rest = fit(second, 4, resume=path)                       # ... and continued: epochs 3 and 4
    assert h_rest == h_full   # the restored history plus the new epochs, bit for bit
    assert second.steps_taken == full.steps_taken
    for k, v in {**full.params, **full.buffers, **full.opt_state}.items():
        got = {**second.params, **second.buffers, **second.opt_state}[k]
        np.testing.assert_array_equal(got, v)


def test_save_every_and_final_save(tmp_path):
    path = str(tmp_path / "c.npz")
    m = nnc.compile(TINY)
    saved = []
    import nncompiler.train.checkpoint as ckmod
    real = ckmod.save_checkpoint

    def spy(model, p, **kw):
        saved.append(kw["epoch"])
        real(model, p, **kw)
    ckmod.save_checkpoint = spy
    try:
        fit(m, 5, checkpoint=path, save_every=2)
    finally:
        ckmod.save_checkpoint = real
    assert saved == [2, 4, 5]
    assert read_checkpoint(path).epoch == 5


def test_model_save_and_load_weights(tmp_path):
    a = nnc.compile(TINY)
    fit(a, 1)
    path = str(tmp_path / "w.npz")
    a.save(path)
    b = nnc.compile(TINY.replace("seed 1", "seed 2"))
    assert not np.array_equal(a.params["h.kernel"], b.params["h.kernel"])
    nnc.load_weights(b, path)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    np.testing.assert_array_equal(a.forward(x=data()["x"]), b.forward(x=data()["x"]))
    assert "load_weights" in nnc.__all__


def test_incompatible_checkpoint_is_a_clear_error(tmp_path):
    path = str(tmp_path / "w.npz")
    nnc.compile(TINY).save(path)
    other = nnc.compile(TINY.replace("dense(x, 8,", "dense(x, 5,"))
    with pytest.raises(CheckpointError) as info:
        nnc.load_weights(other, path)
    msg = str(info.value)
    assert "does not fit model Tiny" in msg and "'h.kernel' has shape [4, 5] in the model but [4, 8]" in msg
    renamed = nnc.compile(TINY.replace("out = dense(n", "top = dense(n").replace("(out, y)", "(top, y)")
                          .replace("output out", "output top"))
    with pytest.raises(CheckpointError, match="missing parameter 'top.kernel'.*unexpected parameter 'out.kernel'"):
        nnc.load_weights(renamed, path)
    sgd = nnc.compile(TINY.replace("adam(lr=0.01)", "sgd(lr=0.01)"))
    with pytest.raises(CheckpointError, match="saved with optimizer adam, the model uses sgd"):
        fit(sgd, 2, resume=path)


def test_unreadable_checkpoints(tmp_path):
    m = nnc.compile(TINY)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        nnc.load_weights(m, str(tmp_path / "nope.npz"))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        nnc.load_weights(m, str(junk))
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(2))
    with pytest.raises(CheckpointError, match="not an nncompiler checkpoint"):
        nnc.load_weights(m, str(plain))
    future = tmp_path / "future.npz"
    np.savez(future, __meta__=np.array(json.dumps({"format": "nncompiler-checkpoint", "version": 99})))
    with pytest.raises(CheckpointError, match="version 99 is newer"):
        nnc.load_weights(m, str(future))


def test_failed_write_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / "c.npz")
    m = nnc.compile(TINY)
    m.save(path)
    before = open(path, "rb").read()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(CheckpointError, match="cannot write checkpoint: No space left on device"):
        m.save(path)
    assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["c.npz"]
