"""train/, report.py and cli/ reach a Model and its State through public methods only
(issue 12): no `model._state`, `m._backend`, `model._rng_key()` and the like.

The private names are read from the classes' own source (attributes `self._x` assigned and
methods `_x` defined), so a private attribute added later is covered too."""
from __future__ import annotations

import ast
from pathlib import Path

import nncompiler

PKG = Path(nncompiler.__file__).parent
CLIENTS = sorted((PKG / "train").glob("*.py")) + sorted((PKG / "cli").glob("*.py")) + [PKG / "report.py"]


def private_names(path: Path, cls: str) -> set[str]:
    tree = ast.parse(path.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.FunctionDef) and n.name.startswith("_") and not n.name.startswith("__"):
            names.add(n.name)
        if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
                and n.attr.startswith("_") and not n.attr.startswith("__")):
            names.add(n.attr)
    return names


def reaches(path: Path, private: set[str]) -> list[str]:
    """`x._name` for a private name of Model or State, where x is anything but `self`."""
    out = []
    for n in ast.walk(ast.parse(path.read_text())):
        if (isinstance(n, ast.Attribute) and n.attr in private
                and not (isinstance(n.value, ast.Name) and n.value.id == "self")):
            where = path.relative_to(PKG.parent) if path.is_relative_to(PKG.parent) else path.name
            out.append(f"{where}:{n.lineno}: {ast.unparse(n)}")
    return out


def test_the_scan_finds_private_names_and_a_private_access(tmp_path):
    private = private_names(PKG / "model.py", "Model") | private_names(PKG / "runtime.py", "State")
    assert {"_state", "_backend", "_compiled", "_values", "_hyper"} <= private
    probe = tmp_path / "probe.py"     # the check itself must be able to fail
    probe.write_text("def f(model, self):\n    return model._state, self._state, model.state\n")
    assert reaches(probe, private) == ["probe.py:2: model._state"]


def test_train_report_and_cli_touch_no_private_attribute_of_model_or_state():
    private = private_names(PKG / "model.py", "Model") | private_names(PKG / "runtime.py", "State")
    found = [hit for path in CLIENTS for hit in reaches(path, private)]
    assert not found, "private attributes of Model/State used outside them:\n" + "\n".join(found)


def test_backend_and_train_tests_use_the_public_model_api_too():
    # `m.backend` and a spy on its `compile` say what `m._backend` / `m._compiled` did
    private = private_names(PKG / "model.py", "Model") | private_names(PKG / "runtime.py", "State")
    tests = Path(__file__).parent
    paths = sorted((tests / "backends").rglob("*.py")) + sorted((tests / "train").rglob("*.py"))
    found = [hit for path in paths for hit in reaches(path, private)]
    assert not found, "tests reaching into Model/State internals:\n" + "\n".join(found)
