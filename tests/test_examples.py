"""The shipped examples run as written and reach the issue's targets (through the CLI, as a user would)."""
from __future__ import annotations

import re

import pytest

from nncompiler.cli import main


def run(capsys, *argv) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def last_metrics(out: str) -> dict[str, float]:
    line = [ln for ln in out.splitlines() if ln.startswith("epoch=")][-1]
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.e]+)", line)}


def test_linefit_ends_at_the_least_squares_line(capsys):
    out = run(capsys, "run", "examples/linefit.nn", "--quiet")
    assert "params: intercept=0.9487 slope=0.6410" in out   # 0.95 and 0.64 to two decimals


def test_softmax_graph_prints_probabilities(capsys):
    out = run(capsys, "run", "examples/softmax.nn")
    assert out.strip() == "softmax = [0.5771 0.2346 0.1883]"


def test_basics_graph_with_a_fed_placeholder(capsys):
    out = run(capsys, "run", "examples/basics.nn", "--feed", "x=[[1, 0], [0, 1]]")
    assert out.splitlines() == ["c = [[4. 3.]", " [7. 8.]]", "output1 = [3. 7.]"]


def test_iris_reaches_093_validation_accuracy(capsys):
    out = run(capsys, "run", "examples/iris.nn")
    lines = [ln for ln in out.splitlines() if ln.startswith("epoch=")]
    assert len(lines) == 100
    assert re.fullmatch(r"epoch=1 loss=\d+\.\d{4} accuracy=\d\.\d{4} val_loss=\d+\.\d{4} val_accuracy=\d\.\d{4}",
                        lines[0])
    assert last_metrics(out)["val_accuracy"] >= 0.93


def test_digits_reaches_095_held_out_accuracy(capsys):
    out = run(capsys, "run", "examples/digits.nn", "--quiet")
    assert last_metrics(out)["val_accuracy"] >= 0.95


def test_multilabel_learns_non_exclusive_labels(capsys):
    out = run(capsys, "run", "examples/multilabel.nn", "--quiet")
    assert last_metrics(out)["val_accuracy"] >= 0.9


def test_same_seed_same_numbers_other_seed_other_numbers(capsys):
    a = run(capsys, "run", "examples/iris.nn", "--epochs", "3")
    b = run(capsys, "run", "examples/iris.nn", "--epochs", "3")
    c = run(capsys, "run", "examples/iris.nn", "--epochs", "3", "--seed", "1")
    assert a == b and a != c


@pytest.mark.parametrize("batch", ["1", "all"])
def test_stochastic_and_full_batch_gradient_descent(capsys, batch):
    out = run(capsys, "run", "examples/iris.nn", "--epochs", "2", "--batch", batch)
    assert len([ln for ln in out.splitlines() if ln.startswith("epoch=")]) == 2
