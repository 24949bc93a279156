"""Helpers shared by the data tests (tests/train/test_csvfile.py, test_arrays.py, ...)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from nncompiler.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "data"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def raises(match, fn, *args, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert re.search(match, msg), msg
    return info.value


def mkdir(p):
    p.mkdir()
    return p
