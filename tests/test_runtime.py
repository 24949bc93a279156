"""The runtime's State (nncompiler/runtime.py): declared dtypes kept through compile, fit,
checkpoint and resume; assign, snapshot and restore; the random key.

The oracles are plain float64 numpy (gradient descent on a line written out by hand) and
an integer step counter, so a state entry silently stored as float32 (the old bug) or a
restore that aliases its snapshot fails here."""
from __future__ import annotations

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.backends.numpy import Backend as Numpy
from nncompiler.ir.graph import Builder
from nncompiler.ir.shapes import TensorType
from nncompiler.library.context import ParamDecl, Spec
from nncompiler.model import Model
from nncompiler.program import LoweredModel
from nncompiler.runtime import State
from nncompiler.train.checkpoint import read_checkpoint

LINE64 = """
model Line64 {
    input  x: f64[N]
    target y: f64[N]
    param  w: f64[2] = 0.25
    pred = w[0] + w[1] * x
    output pred
    loss mean((y - pred) ** 2)
    optimizer sgd(lr=0.1)
}
"""
X = np.array([0.1, 0.7, 1.3, 2.2])
Y = 1.0 / 3.0 + np.pi * X          # not representable in float32: rounding would show


def line_oracle(steps: int) -> np.ndarray:
    """Full-batch gradient descent on mean((y - w0 - w1 x)^2) in float64, by hand. The learning
    rate is a graph argument of type f32 (`opt.lr`), so it is 0.1 rounded to float32."""
    w = np.array([0.25, 0.25])
    lr = float(np.float32(0.1))
    for _ in range(steps):
        r = Y - (w[0] + w[1] * X)
        w = w - lr * np.array([np.mean(-2 * r), np.mean(-2 * r * X)])
    return w


def test_f64_parameter_keeps_its_dtype_through_compile_fit_checkpoint_and_resume(tmp_path):
    m = nnc.compile(LINE64)
    assert m.params["w"].dtype == np.float64 and m.state.dtype("w") == np.float64
    path = tmp_path / "line.npz"
    m.fit(x=X, y=Y, epochs=3, batch_size="all", checkpoint=str(path))
    assert m.params["w"].dtype == np.float64
    np.testing.assert_allclose(m.params["w"], line_oracle(3), rtol=1e-13)   # float32 would be ~1e-7 off
    with np.load(path, allow_pickle=False) as z:
        assert z["param/w"].dtype == np.float64
    np.testing.assert_array_equal(read_checkpoint(str(path)).params["w"], m.params["w"])

    resumed = nnc.compile(LINE64)
    resumed.fit(x=X, y=Y, epochs=6, batch_size="all", resume=str(path))
    assert resumed.params["w"].dtype == np.float64 and resumed.steps_taken == 6
    np.testing.assert_allclose(resumed.params["w"], line_oracle(6), rtol=1e-13)

    loaded = nnc.compile(LINE64)
    nnc.load_weights(loaded, str(path))
    assert loaded.params["w"].dtype == np.float64
    np.testing.assert_array_equal(loaded.params["w"], m.params["w"])
    assert loaded.forward(x=X).dtype == np.float64


def test_optimizer_slots_take_their_parameter_dtype():
    m = nnc.compile(LINE64.replace("sgd(lr=0.1)", "adam(lr=0.1)"))
    slots = m.opt_state
    assert slots["opt.m.w"].dtype == slots["opt.v.w"].dtype == np.float64
    assert slots["opt.step"].dtype == np.float32       # the update graph declares the step f32
    m.fit(x=X, y=Y, epochs=2, batch_size="all")
    assert m.opt_state["opt.m.w"].dtype == np.float64 and float(m.opt_state["opt.step"]) == 2.0


def counter_model() -> LoweredModel:
    """A line fit with an i32 buffer counting training steps (`update.count = count + 1`).

    The language declares no buffers of its own (layers do, all f32), so the model is built
    with the IR builder, as a layer would build it."""
    def forward(training: bool):
        b = Builder("forward")
        x = b.argument("x", "input", TensorType("f32", ("N",)))
        y = b.argument("y", "target", TensorType("f32", ("N",)))
        w = b.argument("w", "param", TensorType("f32", ()))
        count = b.argument("count", "buffer", TensorType("i32", ()))
        pred = b.mul(b.broadcast_to(w, shape=("N",)), x)
        r = b.sub(y, pred)
        outs = [("pred", pred), ("loss", b.sum(b.mul(r, r), axes=(0,)))]
        if training:
            outs.append(("update.count", b.add(count, b.scalar(1, "i32"))))
        return b.build(outs)
    return LoweredModel(
        name="Counter", kind="model", forward=forward(True), inference=forward(False),
        params={"w": ParamDecl("w", TensorType("f32", ()), 0.0, None, 0)},
        buffers={"count": ParamDecl("count", TensorType("i32", ()), 0, None, 0)},
        output_names=["pred"], inputs={"x": TensorType("f32", ("N",))},
        targets={"y": TensorType("f32", ("N",))}, optimizer=Spec("sgd", (("lr", 0.01),)))


def test_i32_buffer_keeps_its_dtype_through_fit_checkpoint_and_resume(tmp_path):
    x = np.arange(1, 9, dtype=np.float32)
    y = 2 * x
    m = Model(counter_model())
    assert m.buffers["count"].dtype == np.int32 and int(m.buffers["count"]) == 0
    path = tmp_path / "counter.npz"
    m.fit(x=x, y=y, epochs=2, batch_size=4, checkpoint=str(path))    # 2 batches an epoch
    assert m.buffers["count"].dtype == np.int32 and int(m.buffers["count"]) == 4 == m.steps_taken
    with np.load(path, allow_pickle=False) as z:
        assert z["buffer/count"].dtype == np.int32 and int(z["buffer/count"]) == 4
    resumed = Model(counter_model())
    resumed.fit(x=x, y=y, epochs=3, batch_size=4, resume=str(path))
    assert resumed.buffers["count"].dtype == np.int32 and int(resumed.buffers["count"]) == 6
    resumed.set_params({"count": 7.0})       # an integral float is converted
    assert resumed.buffers["count"].dtype == np.int32 and int(resumed.buffers["count"]) == 7
    with pytest.raises(ValueError, match="'count' holds int32: got non-integral values"):
        resumed.set_params({"count": 2.5})


def state(**hyper) -> State:
    s = State(Numpy(), {"w": "param", "n": "buffer", "opt.step": "opt"},
              {"w": np.float64, "n": np.int32, "opt.step": np.float32}, hyper, seed=3)
    s.assign({"w": [1.5, 2.5], "n": np.int64(4), "opt.step": 0})
    return s


def test_assign_converts_to_declared_dtypes_and_names_unknown_entries():
    s = state()
    assert {k: s.dtype(k) for k in s} == {"w": np.float64, "n": np.int32, "opt.step": np.float32}
    assert {k: v.dtype for k, v in s.numpy().items()} == {"w": np.float64, "n": np.int32, "opt.step": np.float32}
    assert s.names("param") == ["w"] and s.names("opt") == ["opt.step"]
    with pytest.raises(KeyError, match="no state entry 'ww'; did you mean 'w'"):
        s.assign({"ww": 1.0})
    host = s.numpy(["w"])["w"]
    host[0] = 99.0                      # a copy: the state does not change under the caller
    assert s.numpy(["w"])["w"][0] == 1.5


def test_snapshot_restore_copy_and_keep_the_lr_on_request():
    s = state(lr=0.1)
    snap = s.snapshot()
    s.assign({"w": [7.0, 8.0]})
    s.step, s.lr = 5, 0.5
    s.restore(snap, hyper=False)
    np.testing.assert_array_equal(s.numpy(["w"])["w"], [1.5, 2.5])
    assert s.step == 0 and s.lr == 0.5             # the lr a schedule set is kept
    s.assign_device({"w": s["w"]})
    s["w"][0] = -1.0                                # written in place (as a donated buffer is) ...
    s.restore(snap)                                 # ... the snapshot is untouched, and restorable again
    np.testing.assert_array_equal(s.numpy(["w"])["w"], [1.5, 2.5])
    assert s.lr == 0.1
    again = s.snapshot(into=snap)                   # reuses the old snapshot's arrays
    assert again.values["w"] is snap.values["w"]


def test_take_outputs_and_the_random_key():
    s = state()
    s.take_outputs({"new.w": np.array([3.0, 4.0]), "loss": np.float32(1.0), "update.n": np.int32(9)}, "new.")
    np.testing.assert_array_equal(s.numpy(["w"])["w"], [3.0, 4.0])
    assert int(s.numpy(["n"])["n"]) == 4
    s.step = 11
    assert s.rng_key() == np.int32((3 * 1000003 + 11) & 0x7FFFFFFF) and s.rng_key().dtype == np.int32


def test_bind_reads_state_and_feeds_keeps_new_state_and_returns_the_rest():
    """A bound graph against a hand-written function: arguments come from the state, the feeds, the
    random key and the lr in the callee's order; `new.` outputs become state, the rest come back."""
    s = state(lr=0.25)
    s.step = 11
    seen = {}

    def graph(w, x, key, lr, n):
        seen.update(w=w.copy(), x=x, key=key, lr=lr, n=n)
        return {"new.w": w * 2.0 + x, "loss": np.float32(7.0), "new.n": n + 1}

    call = s.bind(graph, ("w", "x", "rng.key", "opt.lr", "n"), ["new.w", "loss", "new.n"], rng=True, lr=True)
    x = np.array([1.0, -1.0])
    assert call({"x": x}) == {"loss": np.float32(7.0)}
    np.testing.assert_array_equal(seen["w"], [1.5, 2.5])
    assert seen["x"] is x and seen["key"] == s.rng_key() and int(seen["n"]) == 4
    assert seen["lr"].shape == () and seen["lr"].dtype == np.float32 and float(seen["lr"]) == 0.25
    np.testing.assert_array_equal(s.numpy(["w"])["w"], [4.0, 4.0])      # 2 * [1.5, 2.5] + [1, -1]
    assert int(s.numpy(["n"])["n"]) == 5
    snap = s.snapshot()
    call({"x": x})
    s.restore(snap)                    # restore refills the dict the bound call reads
    call({"x": np.zeros(2)})
    np.testing.assert_array_equal(s.numpy(["w"])["w"], [8.0, 8.0])
    with pytest.raises(KeyError, match="missing argument 'x'"):
        call({})
    with pytest.raises(KeyError, match="no state entry 'ww'; did you mean 'w'"):
        s.bind(graph, ("w",), ["new.ww"])


def test_the_lr_argument_is_a_new_float32_array_whenever_the_lr_changes():
    s = state(lr=0.1)
    first = s.lr_arg()
    assert first.shape == () and first.dtype == np.float32 and first == np.float32(0.1)
    assert s.lr_arg() is first                      # the same array while the lr stays
    snap = s.snapshot()
    s.lr = 0.5
    assert s.lr_arg() == np.float32(0.5) and first == np.float32(0.1)   # never written in place
    s.restore(snap)
    assert s.lr_arg() == np.float32(0.1)
    s.lr = 0.5
    s.restore(snap, hyper=False)
    assert s.lr_arg() == np.float32(0.5)
