"""Pass tests as text: each tests/passes/cases/*.ir file is run through `nnc opt` (like
mlir-opt lit tests). The file holds the input IR, a `# RUN: nnc opt %s [--pass NAME ...]`
line, the expected output as `# CHECK:` lines (the whole of it, in order) and, optionally,
the expected change records as `# CHANGE:` lines (all of them, in order)."""
from pathlib import Path

import pytest

from nncompiler.cli import main
from nncompiler.ir.text import parse_graphs
from nncompiler.passes.pipeline import PASSES

CASES = sorted((Path(__file__).parent / "cases").glob("*.ir"))


def _directive(lines, key):
    prefix = f"# {key}:"
    return [line[len(prefix):].removeprefix(" ") for line in lines if line.startswith(prefix)]


def test_there_are_cases():
    assert len(CASES) >= 5


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case(path, capsys):
    lines = path.read_text().splitlines()
    (run,) = _directive(lines, "RUN")
    words = run.split()
    assert words[:3] == ["nnc", "opt", "%s"], f"{path.name}: RUN must start with 'nnc opt %s'"
    expected = "\n".join(_directive(lines, "CHECK"))
    parse_graphs(expected, str(path))   # the expectation is itself valid IR
    assert main(["opt", str(path), *words[3:], "--records"]) == 0
    out, err = capsys.readouterr()
    assert out.rstrip("\n") == expected
    changes = _directive(lines, "CHANGE")
    if changes:
        assert [line[2:] for line in err.splitlines() if line.startswith("  ")] == changes


def test_unknown_pass_and_bad_ir_are_one_clear_line(tmp_path, capsys):
    src = tmp_path / "bad.ir"
    src.write_text("graph g(%x: f32[4] input) {\n  %0 = exp(%y) : f32[4]\n  return out=%0\n}\n")
    assert main(["opt", str(src)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{src}:2:") and "error:" in err and "Traceback" not in err
    assert main(["opt", str(CASES[0]), "--pass", "nope"]) == 1
    assert capsys.readouterr().err.strip() == f"unknown pass 'nope' (known: {', '.join(PASSES)})"
