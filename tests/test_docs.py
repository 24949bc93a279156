"""The generated and hand-written references must match the code: dsl/functions.md, docs/configuration.md."""
import pathlib

from nncompiler.docs import generate


def test_function_reference_is_up_to_date():
    path = pathlib.Path(__file__).resolve().parents[1] / "dsl" / "functions.md"
    assert path.read_text() == generate(), "stale: run `python -m nncompiler.docs > dsl/functions.md`"


def test_every_environment_variable_is_documented_in_one_place():
    """docs/configuration.md lists exactly the NNC_* variables the package reads."""
    import re
    root = pathlib.Path(__file__).resolve().parents[1]
    read = {m for p in (root / "nncompiler").rglob("*.py")
            for m in re.findall(r"[\"'](NNC_[A-Z0-9_]+)[\"']", p.read_text(encoding="utf-8"))}
    table = (root / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(NNC_[A-Z0-9_]+)` \|", table, re.M))
    assert read == documented
    assert len(read) <= 8, "keep the environment small: prefer options and arguments"
