"""The CUDA-graph runtime (graphs.py) without a GPU: a stand-in for the few torch.cuda calls
it makes runs the same code on the CPU (kernels in the interpreter) and counts what a GPU
would pay per step: host->device uploads, device copies and host syncs."""
import contextlib
import os

import numpy as np
import pytest
import torch

import nncompiler as nnc
from nncompiler.backends.triton import Backend
from nncompiler.backends.triton.graphs import CudaAPI, DeviceStats

SOURCE = """
model Mlp {
    input  x: f32[B, 6]
    target y: i32[B]
    h   = dense(x, 8, activation=relu)
    out = dense(h, 3, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.01)
}
train Mlp {
    metrics accuracy
    seed 0
}
"""


class FakeEvent:
    def __init__(self, api):
        self.api = api

    def record(self):
        pass

    def query(self):
        return True      # a copy on the CPU is done when copy_ returns

    def synchronize(self):
        self.api.syncs += 1


class FakeCuda(CudaAPI):
    """Runs on the CPU: a 'captured graph' replays by running the captured function again,
    which writes the same buffers a real graph would (the runtime preallocates them all)."""

    def __init__(self):
        self.uploads = self.copies = self.syncs = self.replays = self.captures = 0

    def side_stream(self):
        return contextlib.nullcontext()

    def capture(self, fn):
        self.captures += 1

        def replay():
            self.replays += 1
            fn()
        return replay, fn()

    def pinned(self, shape, dtype):
        return torch.empty(shape, dtype=dtype)

    def upload(self, dst, src):
        self.uploads += 1
        dst.copy_(src)

    def copy(self, dst, src):
        self.copies += 1
        dst.copy_(src)

    def event(self):
        return FakeEvent(self)


@contextlib.contextmanager
def count_host_reads(api):
    """Count every way a tensor's value reaches the host (each is a sync on a GPU), and every
    tensor made from a numpy array (each would be a host->device copy outside the uploads)."""
    counts = {"syncs": 0, "from_numpy": 0}
    saved = {}

    def counting(name, key):
        orig = getattr(torch.Tensor, name)
        saved[name] = orig

        def f(self, *a, **k):
            counts[key] += 1
            return orig(self, *a, **k)
        setattr(torch.Tensor, name, f)

    for name in ("item", "tolist", "cpu", "__float__", "__bool__", "__int__"):
        counting(name, "syncs")
    from_numpy = torch.from_numpy

    def fn(a):
        counts["from_numpy"] += 1
        return from_numpy(a)
    torch.from_numpy = fn
    try:
        yield counts
    finally:
        torch.from_numpy = from_numpy
        for name, orig in saved.items():
            setattr(torch.Tensor, name, orig)


def _models(tmp_path):
    path = os.path.join(tmp_path, "mlp.nn")
    with open(path, "w") as f:
        f.write(SOURCE)
    mt = nnc.compile(path, backend="triton")
    mt.backend.cuda_api = api = FakeCuda()      # before anything is compiled
    return mt, nnc.compile(path), api


def _batches(n, rows, seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((rows, 6)).astype(np.float32),
             "y": rng.integers(0, 3, rows).astype(np.int32)} for _ in range(n)]


def test_steady_state_steps_upload_the_batch_only_and_never_sync(tmp_path):
    mt, mn, api = _models(tmp_path)
    batches = _batches(8, 5)
    for b in batches[:2]:                 # the first call compiles, the second captures
        mt.step_on_device(**b)
    assert api.captures == 2              # both phases of the donated state
    before = (api.uploads, api.copies, api.syncs)
    stats = DeviceStats()
    with count_host_reads(api) as counts:
        for b in batches[2:]:
            stats.add(mt.step_on_device(**b), rows=5)
        assert counts["syncs"] == 0 and counts["from_numpy"] == 0
        sums, rows = stats.read()         # the log interval's one read
        assert counts["syncs"] == 1
    steps = len(batches) - 2
    assert api.uploads - before[0] == 2 * steps      # x and y: the batch's own arrays
    assert api.copies - before[1] == 0               # state ping-pongs: no device copy either
    assert api.syncs - before[2] == 0
    assert api.replays == steps + 1               # and the capturing call replayed once
    # the numbers are the reference backend's
    losses = [mn.step(**b) for b in batches]
    want = sum(s["loss"] for s in losses[2:]) * 5
    assert rows == 5 * steps
    assert sums["loss"] == pytest.approx(want, rel=1e-4)
    assert sums["metric.accuracy"] == pytest.approx(sum(s["metric.accuracy"] for s in losses[2:]) * 5, rel=1e-5)
    for k, v in mn.params.items():
        np.testing.assert_allclose(mt.params[k], v, rtol=1e-4, atol=1e-5, err_msg=k)
    np.testing.assert_allclose(mt.opt_state["opt.step"], mn.opt_state["opt.step"])


DROPOUT = SOURCE.replace("h   = dense(x, 8, activation=relu)", "h   = dropout(dense(x, 8, activation=relu), 0.5)")


def test_dropout_keys_advance_on_the_device_and_only_the_batch_is_uploaded(tmp_path):
    """The random key changes every step; the captured graph advances it on the device, so a
    steady-state step uploads exactly the batch's arrays. The oracle: the same model stepped
    eagerly (no graphs), whose key the host computes from the step count every step."""
    path = os.path.join(tmp_path, "drop.nn")
    with open(path, "w") as f:
        f.write(DROPOUT)
    mt = nnc.compile(path, backend="triton")
    mt.backend.cuda_api = api = FakeCuda()
    eager = nnc.compile(path, backend="triton")
    batches = _batches(9, 5, seed=6)
    for b in batches[:3]:                 # compile; capture and replay (uploading the key); replay
        mt.step_on_device(**b)
    uploads = api.uploads
    losses = [mt.step(**b)["loss"] for b in batches[3:]]
    assert api.uploads - uploads == 2 * len(batches[3:])
    want = [eager.step(**b)["loss"] for b in batches][3:]
    np.testing.assert_allclose(losses, want, rtol=1e-5)
    for k, v in eager.params.items():
        np.testing.assert_allclose(mt.params[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    # a key the device does not predict (the step count set by hand) is uploaded once, then advances
    mt.steps_taken = eager.steps_taken = 1000
    uploads = api.uploads
    for b in batches[:3]:
        np.testing.assert_allclose(mt.step(**b)["loss"], eager.step(**b)["loss"], rtol=1e-5)
    assert api.uploads - uploads == 2 * 3 + 1


def test_the_key_wraps_as_the_state_computes_it():
    from nncompiler.backends.triton.graphs import advance_key, next_key
    from nncompiler.runtime import State
    st = State(None, {}, {}, seed=0)
    st.step = 0x7FFFFFFE
    key = torch.tensor(int(st.rng_key()), dtype=torch.int32)
    host = np.int32(st.rng_key()).tobytes()
    for _ in range(3):                    # across 2^31 - 1 -> 0
        st.step += 1
        advance_key(key)
        host = next_key(host)
        assert int(key) == int(st.rng_key()) == int(np.frombuffer(host, np.int32)[0])


def test_state_set_from_outside_is_adopted_and_lr_uploads_only_on_change(tmp_path):
    mt, mn, api = _models(tmp_path)
    batches = _batches(6, 4, seed=1)
    for b in batches[:3]:
        mt.step(**b)
        mn.step(**b)
    weights = {k: v * 0.5 for k, v in mn.params.items()}
    mt.set_params(weights)                # fresh tensors, not the graph's buffers: copied in once
    mn.set_params(weights)
    mt.lr = mn.lr = 0.003
    copies, uploads = api.copies, api.uploads
    mt.step(**batches[3])
    mn.step(**batches[3])
    assert api.copies - copies == len(weights)
    assert api.uploads - uploads == 2 + 1            # the batch and the new learning rate
    uploads = api.uploads
    for b in batches[4:]:
        mt.step(**b)
        mn.step(**b)
    assert api.uploads - uploads == 2 * len(batches[4:])
    for k, v in mn.params.items():
        np.testing.assert_allclose(mt.params[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_last_partial_batch_gets_its_own_graph(tmp_path):
    mt, mn, api = _models(tmp_path)
    rng = np.random.default_rng(2)
    data = {"x": rng.standard_normal((11, 6)).astype(np.float32), "y": rng.integers(0, 3, 11).astype(np.int32)}
    ht = mt.fit(epochs=3, batch_size=4, shuffle=False, **data)     # batches of 4, 4, 3
    hn = mn.fit(epochs=3, batch_size=4, shuffle=False, **data)
    assert api.captures == 4              # two phases for B=4, two for B=3
    for k in hn:
        np.testing.assert_allclose(ht[k], hn[k], rtol=1e-4, atol=1e-5, err_msg=k)
    for k, v in mn.params.items():
        np.testing.assert_allclose(mt.params[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_scalar_state_stays_0d():
    be = Backend()
    assert tuple(be.to_device(np.float32(3.0)).shape) == ()
    assert tuple(be.to_device(np.zeros((), np.float32)).shape) == ()


def test_all_finite_on_device():
    be = Backend()
    ok = [torch.ones(3), torch.zeros((2, 2)), torch.arange(4)]
    assert be.all_finite(ok)
    assert not be.all_finite(ok + [torch.tensor([1.0, float("nan")])])
    assert not be.all_finite([torch.tensor(float("inf"))])
    assert not be.all_finite([np.array([np.inf], np.float32)])


def test_callers_writing_into_the_static_inputs_pay_no_copy(tmp_path):
    mt, mn, api = _models(tmp_path)
    cg = mt.compiled("train_step")
    batches = _batches(4, 3, seed=3)
    args = mt.arguments("train_step", batches[0], ("input", "target"))
    assert cg.static_inputs(args) is None           # nothing captured yet
    for b in batches[:2]:
        mt.step(**b)
    static = cg.static_inputs(args)
    assert set(static) == {"x", "y", "opt.lr"}       # the donated state is not shared
    for b in batches[2:]:
        uploads, copies = api.uploads, api.copies
        static["x"].copy_(torch.from_numpy(b["x"]))
        static["y"].copy_(torch.from_numpy(b["y"]))
        args = {**mt.arguments("train_step", b, ("input", "target")), "x": static["x"], "y": static["y"]}
        mt.state.take_outputs(cg(args), "new.")   # what bench/gpu_step.py does: state fed straight back
        assert api.uploads == uploads and api.copies == copies
    for b in batches:
        mn.step(**b)
    for k, v in mn.params.items():
        np.testing.assert_allclose(mt.params[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_fit_waits_for_the_device_per_log_interval_not_per_step(tmp_path):
    mt, mn, api = _models(tmp_path)
    rng = np.random.default_rng(4)
    data = {"x": rng.standard_normal((48, 6)).astype(np.float32), "y": rng.integers(0, 3, 48).astype(np.int32)}
    mt.fit(epochs=1, batch_size=4, shuffle=False, **data)        # compiles and captures
    with count_host_reads(api) as counts:
        ht = mt.fit(epochs=1, batch_size=4, shuffle=False, **data)       # 12 steps
    # the epoch's loss and accuracy, and the NaN guard's one check of the losses and parameters
    assert counts["syncs"] == 2 + 2
    assert counts["from_numpy"] == 0
    hn = [mn.fit(epochs=1, batch_size=4, shuffle=False, **data) for _ in range(2)][-1]
    for k in hn:
        np.testing.assert_allclose(ht[k], hn[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_nan_guard_checks_on_the_device_and_finds_the_step(tmp_path):
    from nncompiler.train.safety import NonFiniteError
    mt, _, _ = _models(tmp_path)
    rng = np.random.default_rng(5)
    data = {"x": rng.standard_normal((24, 6)).astype(np.float32), "y": rng.integers(0, 3, 24).astype(np.int32)}
    data["x"][13] = 3e38          # finite, but overflows in the fourth batch of 4
    with pytest.raises(NonFiniteError) as e:
        mt.fit(epochs=1, batch_size=4, shuffle=False, **data)
    assert e.value.step == 4 and e.value.batch == 4
    assert all(np.isfinite(v).all() for v in mt.params.values())    # the state before that step
