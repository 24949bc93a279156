"""`nnc compile` and `nnc run`: outputs, stages, and errors that never show a traceback."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nncompiler.cli import main
from nncompiler.ir import parse_graphs


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_compile_prints_a_summary(capsys):
    code, out, _ = run(capsys, "compile", "examples/iris.nn")
    assert code == 0
    assert "h.kernel    f32[4,16]  64" in out
    assert "total 131 trainable values" in out
    assert "train_step:" in out and "matmul" in out


@pytest.mark.parametrize("stage", ["ir", "grad", "opt"])
def test_emitted_ir_parses_back(capsys, stage):
    code, out, _ = run(capsys, "compile", "examples/iris.nn", "--emit", stage)
    assert code == 0
    graphs = parse_graphs(out)
    assert graphs and all(g.nodes for g in graphs)
    if stage == "grad":
        assert {"grad.h.kernel", "grad.out.bias"} <= {n for n, _ in graphs[0].outputs}
    if stage == "opt":
        assert [g.name for g in graphs] == ["predict", "train_step"]


def test_emit_python_is_runnable_numpy_code(capsys):
    code, out, _ = run(capsys, "compile", "examples/iris.nn", "--emit", "python")
    assert code == 0
    assert "def train_step(" in out and " @ " in out and "# %" in out
    ns: dict = {}
    exec(compile(out, "<emitted>", "exec"), ns)
    assert callable(ns["predict"]) and callable(ns["train_step"])


def test_emit_passes_says_what_each_pass_did(capsys):
    code, out, _ = run(capsys, "compile", "examples/iris.nn", "--emit", "passes")
    assert code == 0
    assert "train_step:" in out and "fold:" in out and "dce:" in out


def test_output_file_is_written(capsys, tmp_path):
    target = tmp_path / "iris.ir"
    code, out, _ = run(capsys, "compile", "examples/iris.nn", "--emit", "ir", "-o", str(target))
    assert code == 0 and out == ""
    assert parse_graphs(target.read_text())[0].name == "Iris"


def test_run_overrides(capsys):
    code, out, _ = run(capsys, "run", "examples/iris.nn", "--epochs", "2", "--batch", "150", "--lr", "0.001",
                       "--validate", "0")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2 and "val_loss" not in out


def test_run_with_data_override(capsys, tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y)
    code, out, _ = run(capsys, "run", "examples/iris.nn", "--data", str(path), "--epochs", "1")
    assert code == 0 and out.startswith("epoch=1 ")


def test_feed_from_npy(capsys, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.full((2, 2), 2.0, np.float32))
    code, out, _ = run(capsys, "run", "examples/basics.nn", "--feed", f"x={path}")
    assert code == 0 and out.splitlines()[0] == "c = [[5. 5.]"


@pytest.mark.parametrize("argv, message", [
    (["run", "examples/basics.nn"], "missing data for 'x'"),
    (["run", "examples/basics.nn", "--feed", "x=[1, 2]"], "x"),
    (["run", "examples/basics.nn", "--feed", "x=hello"], "neither a number/list literal"),
    (["run", "examples/iris.nn", "--batch", "zero"], "--batch must be a positive integer"),
    (["run", "examples/iris.nn", "--data", "/nonexistent.csv"], "/nonexistent.csv"),
    (["compile", "examples/nope.nn"], "no such file"),
    (["compile", "examples/iris.nn", "--backend", "numpi"], "did you mean 'numpy'"),
])
def test_user_errors_exit_1_with_a_message(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert message in err and "Traceback" not in err


def test_syntax_error_through_the_console_script_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.nn"
    bad.write_text("model M {\n    h = dense(x, 16\n}\n")
    proc = subprocess.run([sys.executable, "-m", "nncompiler.cli", "compile", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{bad}:3:1: error: ")
    assert "Traceback" not in proc.stderr
    assert "    }" in proc.stderr and "^" in proc.stderr


def test_compile_warning_prints_as_a_diagnostic(capsys, tmp_path):
    p = tmp_path / "perceptron.nn"
    p.write_text("model P {\n    input x: f32[B, 2]\n    target y: f32[B, 1]\n"
                 "    out = dense(x, 1, activation=step)\n    output out\n    loss mse(out, y)\n"
                 "    optimizer sgd(lr=0.1)\n}\n")
    assert main(["compile", str(p)]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"{p}:4:11: warning: the loss's gradient is zero for every parameter"), err
    assert "CompileWarning" not in err and "compile.py" not in err
