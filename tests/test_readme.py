"""The README's examples are true as printed: the `nnc run` transcript and the epoch line
quoted in the text come out of the command, and the Python snippet runs as written."""
from __future__ import annotations

import pathlib
import re

import numpy as np

from nncompiler.cli import main

README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, re.S | re.M)


def test_the_iris_transcript_is_what_nnc_run_prints(capsys, monkeypatch):
    monkeypatch.chdir(pathlib.Path(__file__).resolve().parents[1])
    transcript = next(b for b in _blocks("") if b.startswith("$ nnc run examples/iris.nn\n"))
    shown = [line for line in transcript.splitlines()[1:] if line != "..."]
    assert main(["run", "examples/iris.nn"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 100
    assert shown == [printed[0], printed[-1]]
    quoted = re.search(r"\(`(epoch=3 [^`]*)`\)", README).group(1)     # the line quoted under "Using it"
    assert quoted == printed[2]


def test_the_python_snippet_runs_as_written(monkeypatch, tmp_path):
    # in a scratch folder holding only examples/ (the snippet saves iris.nnx where it runs)
    (tmp_path / "examples").symlink_to(pathlib.Path(__file__).resolve().parents[1] / "examples")
    monkeypatch.chdir(tmp_path)
    snippet = next(b for b in _blocks("python") if "nnc.compile(\"examples/iris.nn\")" in b)
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    m, X, Y = scope["m"], scope["X"], scope["Y"]
    assert X.shape == (150, 4) and Y.shape == (150,)
    assert scope["y"].shape == (150, 3)
    np.testing.assert_allclose(scope["y"].sum(axis=1), 1.0, rtol=1e-5)    # softmax rows
    assert set(scope["grads"]) == set(m.params)
    assert len(scope["hist"]["loss"]) == 5
    assert set(m.evaluate(x=X, y=Y)) == {"loss", "accuracy"}
    np.testing.assert_array_equal(scope["m2"].forward(x=X), m.forward(x=X))   # the saved model
