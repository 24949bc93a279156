"""Interrupting training: SIGINT/SIGTERM save and exit 130/143, --resume continues exactly,
and SIGKILL at any moment (mid-write included) never leaves a broken checkpoint."""
from __future__ import annotations

import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.train.checkpoint import read_checkpoint, restore_training
from nncompiler.train.safety import Interrupted, TrainingGuard

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODEL = """model Mid {
    input  x: f32[B, 16]
    target y: i32[B]
    h   = dense(x, UNITS, activation=tanh)
    h2  = dense(h, UNITS, activation=tanh)
    d   = dropout(h2, 0.1)
    out = dense(d, 2, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.001)
    metrics accuracy
}
train Mid {
    data "mid.npz"
    epochs 3
    batch BATCH
    validate 0.25
    seed 1
}
"""


def _project(tmp_path, units=128, batch=128, rows=2048):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 16)).astype(np.float32)
    np.savez(tmp_path / "mid.npz", x=x, y=(x[:, 0] + x[:, 1] > 0).astype(np.int32))
    path = tmp_path / "mid.nn"
    path.write_text(MODEL.replace("UNITS", str(units)).replace("BATCH", str(batch)))
    return str(path)


def _env():
    return {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _nnc(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nncompiler.cli", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=120)


def _start(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "nncompiler.cli", *args], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, newer_than=0.0, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path) and os.path.getmtime(path) > newer_than:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} was not written within {timeout} s")


def _epochs(stdout: str) -> dict[int, dict]:
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return {r["epoch"]: r for r in records}


BASELINE_EPOCHS = 12


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    nn = _project(tmp)
    proc = _nnc("run", nn, "--json", "--epochs", str(BASELINE_EPOCHS), cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return _epochs(proc.stdout)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finishes_the_step_saves_and_resume_continues_exactly(tmp_path, uninterrupted, sig, code):
    nn = _project(tmp_path)
    ckpt = str(tmp_path / "ck.npz")
    proc = _start("run", nn, "--json", "--epochs", "100000", "--save", ckpt, "--save-every", "1", cwd=tmp_path)
    _wait_for(ckpt)                       # epoch 1 is saved: the signal lands in a later epoch or at its end
    time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert f"interrupted by {signal.Signals(sig).name}" in err and f"--resume {ckpt}" in err, err
    assert not glob.glob(ckpt + ".tmp*")
    ck = read_checkpoint(ckpt)
    partial = ck.meta.get("partial")
    done = _epochs(out)
    assert list(done) == list(range(1, ck.epoch + 1))       # printed epochs = the saved ones
    if partial:    # stopped in the middle of an epoch: where is recorded
        assert partial["epoch"] == ck.epoch + 1 and 1 <= partial["batches"] <= 12
    if sig == signal.SIGINT:
        return
    if partial:    # a mid-epoch checkpoint needs the batch order it was written with
        other = _nnc("run", nn, "--resume", ckpt, "--batch", "64", cwd=tmp_path)
        assert other.returncode == 1 and "Traceback" not in other.stderr
        assert "in the middle of epoch" in other.stderr and "batch size 128" in other.stderr
    assert ck.epoch + 2 <= BASELINE_EPOCHS, ck.epoch
    resumed = _nnc("run", nn, "--json", "--resume", ckpt, "--epochs", str(ck.epoch + 2), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    again = _epochs(resumed.stdout)
    assert list(again) == [ck.epoch + 1, ck.epoch + 2]
    for epoch, record in again.items():             # the same numbers as the uninterrupted run
        assert record == uninterrupted[epoch], (epoch, record, uninterrupted[epoch])


def _check_loadable(ckpt: str, nn: str) -> int:
    ck = read_checkpoint(ckpt)                     # a readable, complete .npz with its meta
    m = nnc.compile(nn)
    restore_training(m, ck)                        # every array there, with the right shapes
    for name, value in m.params.items():
        assert np.isfinite(value).all(), name
    assert all(len(v) == ck.epoch for v in ck.meta["history"].values())
    return ck.epoch


def _kill_repeatedly(tmp_path, kills: int, seed: int):
    """Train with a checkpoint every epoch (one step each: mostly writing), resuming after each SIGKILL."""
    nn = _project(tmp_path, units=700, batch=64, rows=64)      # ~500k parameters: 6 MB checkpoints
    os.unlink(tmp_path / "mid.npz")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mid.npz", x=rng.normal(size=(64, 16)).astype(np.float32),
             y=rng.integers(0, 2, 64).astype(np.int32))
    ckpt = str(tmp_path / "ck.npz")
    rnd = random.Random(seed)
    mid_write, last_epoch = 0, 0
    for _ in range(kills):
        args = ["run", nn, "--epochs", "100000", "--save", ckpt, "--save-every", "1", "--quiet"]
        if os.path.exists(ckpt):
            args += ["--resume", ckpt]
        started = time.time()
        proc = _start(*args, cwd=tmp_path)
        _wait_for(ckpt, newer_than=started)        # this process is training and saving
        if rnd.random() < 0.5:                     # at a random moment
            time.sleep(rnd.uniform(0.0, 0.3))
        else:                                      # while a checkpoint is being written
            end = time.monotonic() + 10
            while not glob.glob(ckpt + ".tmp*") and time.monotonic() < end:
                time.sleep(0.001)
            time.sleep(rnd.uniform(0.0, 0.005))
        proc.kill()
        proc.communicate(timeout=60)
        mid_write += bool(glob.glob(ckpt + ".tmp*"))   # a temporary file left behind: killed mid-write
        epoch = _check_loadable(ckpt, nn)
        assert epoch >= last_epoch
        last_epoch = epoch
        for stale in glob.glob(ckpt + ".tmp*"):    # what a SIGKILL mid-write leaves: never the checkpoint
            os.unlink(stale)
    return mid_write, last_epoch


def test_sigkill_at_random_moments_never_leaves_a_broken_checkpoint(tmp_path):
    mid_write, epoch = _kill_repeatedly(tmp_path, kills=4, seed=7)
    print(f"4 SIGKILLs, {mid_write} during a checkpoint write; reached epoch {epoch}")
    assert epoch > 0


@pytest.mark.fuzz
def test_sigkill_many_times(tmp_path):
    mid_write, epoch = _kill_repeatedly(tmp_path, kills=40, seed=11)
    print(f"40 SIGKILLs, {mid_write} during a checkpoint write; reached epoch {epoch}")
    assert mid_write > 0


def test_guard_through_the_api(tmp_path):
    """TrainingGuard(signals=True) in fit(): a signal during a step -> saved mid-epoch, Interrupted."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    src = """model M {
    input x: f32[B, 4]
    target y: i32[B]
    out = dense(dense(x, 8, activation=tanh), 2, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer sgd(lr=0.1)
}
"""
    sent = []

    class Kill:           # the user presses Ctrl-C during epoch 2's third step
        def on_batch_end(self, state, batch, stats, rows):
            if state.epoch == 2 and batch == 2 and not sent:
                sent.append(1)
                os.kill(os.getpid(), signal.SIGINT)
        on_train_begin = on_epoch_begin = on_epoch_end = on_train_end = close = \
            lambda self, *a: None

    ckpt = str(tmp_path / "api.npz")
    m = nnc.compile(src)
    guard = TrainingGuard(signals=True)
    with pytest.raises(Interrupted) as info:
        m.fit(x=x, y=y, epochs=3, batch_size=32, seed=3, checkpoint=ckpt, callbacks=[Kill(), guard])
    assert info.value.exit_code == 130 and "epoch 2 after batch 3 of 8" in str(info.value)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler     # handlers restored
    ck = read_checkpoint(ckpt)
    assert ck.epoch == 1 and ck.meta["partial"]["batches"] == 3
    # resuming gives what an uninterrupted run gives
    full = nnc.compile(src).fit(x=x, y=y, epochs=3, batch_size=32, seed=3)
    rest = nnc.compile(src).fit(x=x, y=y, epochs=3, batch_size=32, seed=3, resume=ckpt)
    assert rest == full
