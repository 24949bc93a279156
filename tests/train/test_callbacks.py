"""Callbacks (issue #6): lr schedules, early stopping, progress bar / lines / JSON lines, training curves."""
from __future__ import annotations

import io
import json
import math
import struct

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.errors import NNCError
from nncompiler.train.callbacks import Callback, EarlyStopping, parse_schedule
from nncompiler.train.loop import format_epoch
from nncompiler.train.progress import EpochPrinter, ProgressBar, reporter

SRC = """
model Small {
    input  x: f32[B, 3]
    target y: f32[B, 1]
    h = dense(x, 4, activation=tanh)
    p = dense(h, 1)
    output p
    loss mse(p, y)
    optimizer sgd(lr=0.05)
}
train Small {
    metrics mae
}
"""


def data(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return {"x": x, "y": (x @ np.array([[1.0], [-2.0], [0.5]], np.float32))}


class LrSpy(Callback):
    def __init__(self):
        self.lrs = []

    def on_epoch_end(self, state, record):
        self.lrs.append(state.model.lr)


def test_schedules_from_the_command_line():
    step = parse_schedule("step:2:0.5", 0.1, 10)
    assert [step(e) for e in range(1, 6)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    exp = parse_schedule("exp:0.9", 0.1, 10)
    assert exp(1) == pytest.approx(0.1) and exp(3) == pytest.approx(0.1 * 0.81)
    cos = parse_schedule("cosine", 0.1, 4)
    assert [cos(e) for e in (1, 2, 3, 4)] == pytest.approx([0.1, 0.1 * (1 + math.sqrt(0.5)) / 2, 0.05,
                                                            0.1 * (1 - math.sqrt(0.5)) / 2])
    assert parse_schedule("cosine:0.01", 0.1, 4)(3) == pytest.approx(0.055)
    assert parse_schedule("cosine:0.01", 0.1, 4)(9) == pytest.approx(0.01)
    for bad, why in [("step:0:0.5", "N must be a positive integer"), ("exp:x", "RATE 'x' is not a number"),
                     ("linear", "unknown schedule 'linear'"), ("step:3", "step takes N and FACTOR")]:
        with pytest.raises(NNCError, match=why):
            parse_schedule(bad, 0.1, 5)


def test_lr_schedule_sets_the_lr_before_every_epoch_without_recompiling(monkeypatch):
    m = nnc.compile(SRC)
    spy, compiled = LrSpy(), []
    compile_ = m.backend.compile
    monkeypatch.setattr(m.backend, "compile", lambda g, **kw: compiled.append(g) or compile_(g, **kw))
    m.fit(epochs=4, batch_size=8, callbacks=[spy], lr_schedule=lambda epoch: 0.1 / epoch, **data())
    assert spy.lrs == pytest.approx([0.1, 0.05, 0.1 / 3, 0.025])
    assert compiled == [m.graph("train_step")]          # one compiled train step for all four lrs

    # the schedule changes the numbers: lr 0 for the second epoch freezes the weights
    m = nnc.compile(SRC)
    seen = []
    m.fit(epochs=2, batch_size="all", lr_schedule=lambda e: 0.05 if e == 1 else 0.0,
          callback=lambda e, r: seen.append(m.params["p.kernel"].copy()), **data())
    np.testing.assert_array_equal(seen[0], seen[1])


def test_early_stopping_stops_and_restores_the_best_weights():
    m = nnc.compile(SRC)
    weights = {}
    # lr jumps to a diverging value after epoch 3, so the loss stops improving
    hist = m.fit(epochs=30, batch_size="all", lr_schedule=lambda e: 0.05 if e <= 3 else 3.0,
                 early_stopping=("loss", 2, True),
                 callback=lambda e, r: weights.__setitem__(e, m.params), **data())
    losses = hist["loss"]
    best = int(np.argmin(losses)) + 1
    assert len(losses) == best + 2 < 30                   # patience 2 after the best epoch
    for k, v in weights[best].items():
        np.testing.assert_array_equal(m.params[k], v)


def test_early_stopping_modes_and_errors():
    assert EarlyStopping("val_accuracy").mode == "max" and EarlyStopping("val_loss").mode == "min"
    m = nnc.compile(SRC)
    with pytest.raises(NNCError, match="monitors 'val_loss', which training does not report.*--validate"):
        m.fit(epochs=2, early_stopping=("val_loss", 1), **data())
    with pytest.raises(NNCError, match="did you mean 'mae'"):
        m.fit(epochs=2, early_stopping=("mea", 1), **data())


def test_plain_lines_off_a_terminal():
    out = io.StringIO()
    m = nnc.compile(SRC)
    hist = m.fit(epochs=3, batch_size=8, callbacks=[reporter(out)], validation_split=0.25, **data())
    lines = out.getvalue().splitlines()
    assert lines == [format_epoch(e, {k: v[e - 1] for k, v in hist.items()}) for e in (1, 2, 3)]
    assert lines[0].startswith("epoch=1 loss=") and " mae=" in lines[0] and " val_loss=" in lines[0]
    assert "\r" not in out.getvalue()


def test_json_lines():
    out = io.StringIO()
    m = nnc.compile(SRC)
    hist = m.fit(epochs=3, batch_size=8, callbacks=[reporter(out, json=True)], **data())
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["loss"] for r in records] == hist["loss"] and [r["mae"] for r in records] == hist["mae"]
    assert all(r["lr"] == pytest.approx(0.05) for r in records)
    assert json.loads(EpochPrinter(json=True).line(1, {"loss": math.nan}, 0.1))["loss"] is None


def test_quiet_prints_only_the_last_epoch():
    out = io.StringIO()
    m = nnc.compile(SRC)
    hist = m.fit(epochs=3, batch_size=8, callbacks=[reporter(out, quiet=True)], **data())
    assert out.getvalue() == format_epoch(3, {k: v[-1] for k, v in hist.items()}) + "\n"


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal():
    out = FakeTTY()
    bar = reporter(out)
    assert isinstance(bar, ProgressBar)
    bar.min_interval = 0.0                       # draw after every step
    m = nnc.compile(SRC)
    hist = m.fit(epochs=2, batch_size=8, callbacks=[bar], **data())
    text = out.getvalue()
    assert text.count("\n") == 2                 # one finished line per epoch, the bar redrawn with \r
    frames = text.split("\r")
    assert any("epoch 1/2 [" in f and "4/4" in f and "samples/s" in f and "loss=" in f and "ETA" in f
               for f in frames)
    assert "epoch 2/2 [==" in text
    finals = [f.rstrip(" \n") for f in frames if f.startswith("epoch=")]
    assert finals == [format_epoch(e, {k: v[e - 1] for k, v in hist.items()}) for e in (1, 2)]


def test_training_curves_png(tmp_path):
    pytest.importorskip("matplotlib")
    from nncompiler.train.plot import plot_history
    m = nnc.compile(SRC)
    hist = m.fit(epochs=3, batch_size=8, validation_split=0.25, **data())
    path = tmp_path / "curves.png"
    size = plot_history(hist, str(path), title="Small")
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    assert struct.unpack(">II", head[16:24]) == size == (1000, 360)   # two panels: loss, mae


def test_missing_matplotlib_is_one_line(monkeypatch, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    from nncompiler.train.plot import plot_history
    with pytest.raises(NNCError) as info:
        plot_history({"loss": [1.0]}, str(tmp_path / "c.png"))
    assert str(info.value) == ("Plotting training curves (--plot) needs the 'matplotlib' package, which is not "
                               "installed: pip install 'nncompiler[plot]'")
