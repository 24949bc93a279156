"""What a file name, a path or a cache can make nnc do from the command line: nothing
but what it was asked (issue 13: findings 1, 14, 15, 16)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.cli import main

ROOT = Path(__file__).resolve().parents[1]
ATTACK = 'm\r__import__("os").system("touch PWNED")\r#.nn'


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("backend", ["numpy", "triton"])
def test_a_file_name_with_code_in_it_runs_nothing(capsys, tmp_path, monkeypatch, backend):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path / "cache"))
    shutil.copy(ROOT / "examples/basics.nn", tmp_path / ATTACK)
    code, out, err = run(capsys, "run", ATTACK, "--backend", backend, "--feed", "x=[[1, 1], [1, 1]]")
    assert code == 0, err
    assert out.splitlines()[0] == "c = [[4. 4.]"
    assert not (tmp_path / "PWNED").exists()


def test_a_file_name_given_to_compile_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = (ROOT / "examples/basics.nn").read_text()
    m = nnc.compile(src, filename=ATTACK)
    out = m.forward(x=np.ones((2, 2), np.float32))
    np.testing.assert_allclose(out[0], [[4, 4], [8, 8]])
    assert not (tmp_path / "PWNED").exists()


def test_a_file_name_with_braces_is_a_path(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "examples/basics.nn", tmp_path / "my{model}.nn")
    code, out, err = run(capsys, "run", "my{model}.nn", "--feed", "x=[[0, 0], [0, 0]]")
    assert code == 0, err
    assert out.splitlines()[0] == "c = [[3. 3.]"
    code, _, err = run(capsys, "compile", "other{model}.nn")
    assert code == 1 and "other{model}.nn: no such file" in err


def test_path_or_program_text():
    """Program text has several lines or starts like a block; anything else one-line is a path."""
    assert not nnc._is_path("graph G { output zeros([2]) }")
    assert not nnc._is_path("  model m { }") and not nnc._is_path("train { epochs: 1 }")
    assert nnc._is_path("my{model}.nn") and nnc._is_path("missing.txt") and nnc._is_path("model.nn")
    assert not nnc._is_path("a\nb.nn") and not nnc._is_path("") and not nnc._is_path("x\x00.nn")


def test_an_unwritable_save_fails_before_training_even_for_root(capsys, tmp_path):
    # os.access says yes to root everywhere; sysfs refuses new files to root too
    code, out, err = run(capsys, "run", str(ROOT / "examples/linefit.nn"), "--epochs", "1",
                         "--save", "/sys/nnc-weights.npz")
    assert code == 1 and "/sys/nnc-weights.npz: cannot write there: " in err
    assert "epoch" not in out.lower() and "Traceback" not in err
    code, _, err = run(capsys, "run", str(ROOT / "examples/linefit.nn"), "--save", str(tmp_path / "no/w.npz"))
    assert code == 1 and "cannot write there: no such directory" in err
    assert list(tmp_path.iterdir()) == []


def test_the_writable_check_leaves_nothing_behind(capsys, tmp_path):
    code, _, err = run(capsys, "run", str(ROOT / "examples/linefit.nn"), "--epochs", "1",
                       "--save", str(tmp_path / "w.npz"))
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]
