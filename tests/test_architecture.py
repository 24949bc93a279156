"""The package's layering (docs/design.md, "Layers"): imports point down the layer table,
and no two modules of different folders import each other in a circle.

The import graph is read from the source with `ast` -- every import, including those
inside functions, since a function-local import is still a dependency (it only hides
the cycle from the interpreter until the function runs).
"""
import ast
from pathlib import Path

import pytest

import nncompiler

ROOT = Path(nncompiler.__file__).parent
PKG = "nncompiler"

# bottom first; a module may import its own layer or a lower one
LAYERS = [
    ("errors", "fsutil", "version", "sourcetext", "cachefs", "precision"),
    ("ir",),
    ("autodiff", "passes"),
    ("library", "frontend", "onnx", "program"),
    ("backends", "kernels"),
    ("runtime", "state", "viz", "report", "onnx_backend"),
    ("model", "train"),
    ("cli", "docs", "__init__", "__main__"),
]
RANK = {unit: i for i, units in enumerate(LAYERS) for unit in units}
# Upward imports known and owned elsewhere; each entry says how it goes away. Keep it empty.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def unit(module: str) -> str:
    """The row of the layer table a module belongs to: its folder or top-level file."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _resolve(name: str) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    if name.startswith(PKG + ".kernels"):   # kernels/ is mounted as nncompiler.kernels (see __init__)
        return PKG + ".kernels"
    parts = name.split(".")
    while parts:
        if ".".join(parts) in MODULES:
            return ".".join(parts)
        parts.pop()
    return None


def import_graph() -> dict[str, set[tuple[str, int]]]:
    """module -> {(imported module, line)} for every import of a nncompiler module."""
    graph: dict[str, set[tuple[str, int]]] = {}
    for me, path in MODULES.items():
        is_pkg = path.name == "__init__.py"
        package = me if is_pkg else me.rsplit(".", 1)[0]
        out = graph.setdefault(me, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                names = [f"{mod}.{a.name}" for a in node.names]   # a submodule, or a name in mod
            for name in names:
                target = _resolve(name) if name.startswith(PKG) else None
                if target and target != me:
                    out.add((target, node.lineno))
    return graph


GRAPH = import_graph()


def test_the_graph_is_read():
    # sanity: the reader sees top-level, relative and function-local imports
    assert any(t == "nncompiler.ir.graph" for t, _ in GRAPH["nncompiler.ir.text"])
    assert any(t == "nncompiler.frontend.ast" for t, _ in GRAPH["nncompiler.frontend.lower"])
    assert set(unit(m) for m in MODULES) <= set(RANK), \
        f"not in the layer table: {sorted(set(unit(m) for m in MODULES) - set(RANK))}"


def test_no_import_points_up_the_layer_table():
    upward = [f"{MODULES[a].relative_to(ROOT.parent)}:{line} imports {b} "
              f"(layer {RANK[unit(b)]} > {RANK[unit(a)]})"
              for a, targets in sorted(GRAPH.items()) for b, line in sorted(targets)
              if RANK[unit(b)] > RANK[unit(a)] and (a, b) not in KNOWN_UPWARD]
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


def _cycles(adj: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in adj:
        if root in index:
            continue
        work = [(root, iter(sorted(adj.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(adj.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_circle_crosses_folders():
    # the package __init__ re-exports everything, so it is left out of the module circles
    adj = {a: {b for b, _ in t if b != PKG} for a, t in GRAPH.items() if a != PKG}
    crossing = [c for c in _cycles(adj) if len({unit(m) for m in c}) > 1]
    assert not crossing, "modules of different folders import each other in a circle:\n" + \
        "\n".join("  " + " <-> ".join(c) for c in crossing)
    folders: dict[str, set[str]] = {}
    for a, t in adj.items():
        folders.setdefault(unit(a), set()).update(unit(b) for b in t if unit(b) != unit(a))
    assert not _cycles(folders), f"folders in a circle: {_cycles(folders)}"


@pytest.mark.parametrize("edges,circles", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set(), "c": {"c"}}, []),
    ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b"], ["c", "d"]]),
])
def test_the_cycle_finder(edges, circles):
    assert sorted(_cycles(edges)) == circles


def test_no_two_test_files_share_a_name():
    """The tests folders are not packages: pytest imports each file by its base name, so two
    files of one name (tests/onnx/test_scan.py and tests/autodiff/test_scan.py) stop the whole
    run at collection."""
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted(Path(__file__).parent.rglob("test_*.py")):
        if path.name in seen:
            clashes.append(f"{seen[path.name]} and {path}")
        seen.setdefault(path.name, path)
    assert not clashes, clashes
