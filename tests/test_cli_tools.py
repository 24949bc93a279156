"""The CLI's training tools (issue #6): --json, --plot, --save/--resume, schedules, early stopping,
`nnc predict` and `nnc eval`, and their one-line errors."""
from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.cli import main
from nncompiler.train.data import read_csv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = """
model Tiny {
    input  x: f32[B, 3]
    target y: i32[B]
    h   = dense(x, 8, activation=relu)
    d   = dropout(h, 0.2)
    out = dense(d, 2, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.02)
}
train Tiny {
    data "tiny.csv" (label="label")
    epochs 4
    batch 8
    validate 0.25
    metrics accuracy
    seed 3
}
"""


@pytest.fixture
def tiny(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] - x[:, 2] > 0).astype(int)
    rows = ["a,b,c,label"] + [f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f},{c}" for r, c in zip(x, y)]
    (tmp_path / "tiny.csv").write_text("\n".join(rows) + "\n")
    path = tmp_path / "tiny.nn"
    path.write_text(TINY)
    return str(path)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def epoch_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith("epoch=")]


def test_json_lines(capsys, tiny):
    code, out, _ = run(capsys, "run", tiny, "--json")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert set(records[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    _, plain, _ = run(capsys, "run", tiny)
    first = dict(re.findall(r"(\w+)=([-\d.]+)", epoch_lines(plain)[0]))
    assert float(first["loss"]) == pytest.approx(records[0]["loss"], abs=5e-5)


def test_plain_lines_keep_their_format(capsys, tiny):
    code, out, _ = run(capsys, "run", tiny, "--epochs", "2")
    assert code == 0
    for line in out.splitlines():
        assert re.fullmatch(r"epoch=\d+ loss=\d\.\d{4} accuracy=\d\.\d{4} val_loss=\d\.\d{4} val_accuracy=\d\.\d{4}",
                            line)
    _, quiet, _ = run(capsys, "run", tiny, "--epochs", "2", "--quiet")
    assert quiet.splitlines() == out.splitlines()[-1:]


def test_resume_continues_exactly(capsys, tiny, tmp_path):
    _, full, _ = run(capsys, "run", tiny, "--epochs", "4")
    ckpt = tmp_path / "c.npz"
    code, first, err = run(capsys, "run", tiny, "--epochs", "2", "--save", ckpt)
    assert code == 0 and f"saved {ckpt}" in err
    code, rest, _ = run(capsys, "run", tiny, "--epochs", "4", "--resume", ckpt)
    assert code == 0
    assert epoch_lines(first) + epoch_lines(rest) == epoch_lines(full)
    assert [ln.split()[0] for ln in epoch_lines(rest)] == ["epoch=3", "epoch=4"]
    code, _, err = run(capsys, "run", tiny, "--epochs", "2", "--resume", ckpt)
    assert code == 0 and "nothing to train" in err


def test_save_every(capsys, tiny, tmp_path):
    from nncompiler.train.checkpoint import read_checkpoint
    ckpt = tmp_path / "c.npz"
    assert run(capsys, "run", tiny, "--epochs", "3", "--save", ckpt, "--save-every", "2")[0] == 0
    assert read_checkpoint(str(ckpt)).epoch == 3
    code, _, err = run(capsys, "run", tiny, "--save-every", "2")
    assert code == 1 and "--save CKPT.npz" in err


def test_lr_schedule_and_early_stopping(capsys, tiny):
    code, out, _ = run(capsys, "run", tiny, "--epochs", "3", "--json", "--lr-schedule", "step:1:0.5")
    assert code == 0
    assert [json.loads(ln)["lr"] for ln in out.splitlines()] == pytest.approx([0.02, 0.01, 0.005])
    # lr 0 from epoch 2 on: val_loss stays put, so patience 1 stops after epoch 2
    code, out, err = run(capsys, "run", tiny, "--epochs", "40", "--lr-schedule", "exp:0", "--early-stop", "1",
                         "--restore-best")
    assert code == 0 and len(epoch_lines(out)) == 2
    assert "early stopping at epoch 2: val_loss has not improved for 1 epochs (best" in err
    code, _, err = run(capsys, "run", tiny, "--lr-schedule", "warmup:3")
    assert code == 1 and "unknown schedule 'warmup'" in err


def test_plot(capsys, tiny, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    code, _, err = run(capsys, "run", tiny, "--epochs", "2", "--plot", png)
    assert code == 0 and "(1000x360)" in err
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (1000, 360)


def test_predict_csv_equals_forward(capsys, tiny, tmp_path):
    ckpt, out_csv = tmp_path / "c.npz", tmp_path / "out.csv"
    assert run(capsys, "run", tiny, "--epochs", "2", "--save", ckpt)[0] == 0
    # the training CSV itself: its label column is left out
    code, _, err = run(capsys, "predict", tiny, "--weights", ckpt, "--input", tmp_path / "tiny.csv", "-o", out_csv)
    assert code == 0 and err == ""
    m = nnc.compile(tiny)
    nnc.load_weights(m, str(ckpt))
    x, _, _ = read_csv(str(tmp_path / "tiny.csv"), label="label")
    expected = m.forward(x=x)
    lines = out_csv.read_text().splitlines()
    assert lines[0] == "out0,out1"
    got = np.array([[np.float32(v) for v in ln.split(",")] for ln in lines[1:]], dtype=np.float32)
    np.testing.assert_array_equal(got, expected)               # %.9g round-trips float32
    # an .npy input, a chunked forward pass, CSV to standard output
    np.save(tmp_path / "x.npy", x[:5])
    code, out, _ = run(capsys, "predict", tiny, "--weights", ckpt, "--input", tmp_path / "x.npy", "--batch", "2")
    assert code == 0 and out.splitlines()[0] == "out0,out1" and len(out.splitlines()) == 6
    chunked = np.array([[float(v) for v in ln.split(",")] for ln in out.splitlines()[1:]])
    np.testing.assert_allclose(chunked, expected[:5], rtol=1e-6)   # matmul blocking varies with batch size
    code, _, _ = run(capsys, "predict", tiny, "--weights", ckpt, "--input", f"x={tmp_path / 'x.npy'}",
                     "-o", tmp_path / "o.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), expected[:5])


def test_eval_prints_metrics(capsys, tiny, tmp_path):
    ckpt = tmp_path / "c.npz"
    assert run(capsys, "run", tiny, "--epochs", "2", "--save", ckpt)[0] == 0
    code, out, _ = run(capsys, "eval", tiny, "--weights", ckpt)
    assert code == 0
    values = dict(re.findall(r"(\w+)=([-\d.]+)", out))
    assert set(values) == {"loss", "accuracy"}
    m = nnc.compile(tiny)
    nnc.load_weights(m, str(ckpt))
    x, y, _ = read_csv(str(tmp_path / "tiny.csv"), label="label")
    expected = m.evaluate(x=x, y=y)
    assert float(values["loss"]) == pytest.approx(expected["loss"], abs=5e-5)
    code, out, _ = run(capsys, "eval", tiny, "--weights", ckpt, "--split", "validation", "--json")
    last_val = [ln for ln in run(capsys, "run", tiny, "--epochs", "2")[1].splitlines()][-1]
    assert json.loads(out)["loss"] == pytest.approx(float(re.search(r"val_loss=([\d.]+)", last_val).group(1)),
                                                    abs=5e-5)


@pytest.mark.parametrize("argv, message", [
    (["predict", "{tiny}", "--weights", "{tmp}/nope.npz", "--input", "{tmp}/tiny.csv"],
     "nope.npz: no such checkpoint file"),
    (["eval", "{tiny}", "--weights", "{tmp}/iris.npz"],
     "does not fit model Tiny: parameter 'h.kernel' has shape [3, 8]"),
    (["run", "{tiny}", "--resume", "{tmp}/tiny.csv"], "not a checkpoint"),
    (["predict", "{tiny}", "--input", "{tmp}/missing.csv"], "missing.csv"),
    (["predict", "{tiny}", "--input", "{tmp}/tiny.csv", "-o", "{tmp}/no/such/dir/out.csv"],
     "out.csv: cannot write: No such file or directory"),
    (["run", "{tiny}", "--save", "{tmp}/no/such/dir/c.npz"], "cannot write there: no such directory"),
    (["run", "{tiny}", "--early-stop", "2", "--monitor", "val_acc"], "did you mean 'val_accuracy'"),
])
def test_errors_are_one_line(capsys, tiny, tmp_path, argv, message):
    nnc.compile("examples/iris.nn").save(str(tmp_path / "iris.npz"))
    code, _, err = run(capsys, *[a.format(tiny=tiny, tmp=tmp_path) for a in argv])
    assert code == 1 and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_missing_plot_extra(capsys, tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run(capsys, "run", tiny, "--plot", "c.png")
    assert code == 1 and out == ""        # checked before training starts
    assert err.strip() == ("Plotting training curves (--plot) needs the 'matplotlib' package, which is not "
                           "installed: pip install 'nncompiler[plot]'")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_progress_bar_only_on_a_terminal(tiny):
    import pty
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-m", "nncompiler.cli", "run", tiny, "--epochs", "2"],
                          stdout=follower, stderr=subprocess.PIPE, env=env, timeout=60)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    text = b"".join(chunks).decode()
    assert proc.returncode == 0, proc.stderr
    assert "\r" in text and "epoch 1/2 [" in text and "samples/s" in text
    finals = [seg.strip() for seg in re.split(r"[\r\n]+", text) if seg.strip().startswith("epoch=")]
    assert [f.split()[0] for f in finals] == ["epoch=1", "epoch=2"]
