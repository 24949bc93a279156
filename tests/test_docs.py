"""dsl/functions.md is generated from the library; it must match the code."""
import pathlib

from nncompiler.docs import generate


def test_function_reference_is_up_to_date():
    path = pathlib.Path(__file__).resolve().parents[1] / "dsl" / "functions.md"
    assert path.read_text() == generate(), "stale: run `python -m nncompiler.docs > dsl/functions.md`"
