"""Semantic errors in .nn files: each file in semantic/ states the diagnostic it must produce.

The first line of each file is `# expect: LINE:COL: MESSAGE-PREFIX`; the test
compiles the file and checks the rendered `FILE:LINE:COL: error: MESSAGE`, the
echoed source line and the caret under the reported column.
"""
from __future__ import annotations

import pathlib
import re

import pytest

import nncompiler as nnc
from nncompiler.errors import CompileError

CASES = sorted((pathlib.Path(__file__).parent / "semantic").glob("*.nn"))


def _expectation(path: pathlib.Path):
    m = re.match(r"# expect: (\d+):(\d+): (.*)", path.read_text().splitlines()[0])
    assert m, f"{path.name}: first line must be '# expect: LINE:COL: MESSAGE'"
    return int(m.group(1)), int(m.group(2)), m.group(3)


def test_corpus_is_large_enough():
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_semantic_error(path):
    line, col, message = _expectation(path)
    with pytest.raises(CompileError) as info:
        nnc.compile(str(path))
    text = info.value.render()
    first = text.splitlines()[0]
    assert first.startswith(f"{path}:{line}:{col}: error: "), first
    assert first[len(f"{path}:{line}:{col}: error: "):].startswith(message), first
    if path.read_text().strip().count("\n"):
        source_line = path.read_text().splitlines()[line - 1]
        echoed, caret = text.splitlines()[1:3]
        assert echoed.strip() == source_line.strip()
        assert caret.index("^") - 4 == col - 1 - (len(source_line) - len(source_line.expandtabs(1)))
