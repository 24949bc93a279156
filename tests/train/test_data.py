"""The example data files load as documented, and the package list is complete (nncompiler.train.data).

The readers' own tests mirror their modules: test_csvfile.py, test_arrays.py,
test_batching.py, test_datacheck.py, test_datafile.py.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from datahelpers import EXAMPLES, ROOT
from nncompiler.train.data import read_csv


# ----------------------------------------------------------------- the example files

def test_iris_loads():
    x, y, info = read_csv(EXAMPLES / "iris.csv", label="species")
    assert x.shape == (150, 4) and x.dtype == np.float32
    assert y.shape == (150,) and y.dtype == np.int32
    assert info["classes"] == ["setosa", "versicolor", "virginica"]
    assert info["features"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert info["labels"] == ["species"] and info["rows"] == 150
    np.testing.assert_array_equal(np.bincount(y), [50, 50, 50])
    # original order: sorted by species
    assert list(y[:50]) == [0] * 50 and list(y[100:]) == [2] * 50
    np.testing.assert_array_equal(x[0], np.float32([5.1, 3.5, 1.4, 0.2]))
    np.testing.assert_array_equal(x[-1], np.float32([5.9, 3.0, 5.1, 1.8]))


def test_iris_matches_sklearn():
    sklearn = pytest.importorskip("sklearn.datasets")
    ref = sklearn.load_iris()
    x, y, _ = read_csv(EXAMPLES / "iris.csv", label="species")
    np.testing.assert_array_equal(x, ref.data.astype(np.float32))
    np.testing.assert_array_equal(y, ref.target)


def test_digits_loads():
    x, y, info = read_csv(EXAMPLES / "digits.csv", label="label")
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int32
    assert info["classes"] is None
    assert x.min() == 0 and x.max() == 16 and np.all(x == np.round(x))
    assert sorted(set(y.tolist())) == list(range(10))
    assert info["features"] == [f"p{i}" for i in range(64)]


def test_multilabel_loads_and_regenerates(tmp_path):
    x, y, info = read_csv(EXAMPLES / "multilabel.csv", label=["l0", "l1", "l2"])
    assert x.shape == (400, 6) and x.dtype == np.float32
    assert y.shape == (400, 3) and y.dtype == np.int32
    assert set(np.unique(y)) == {0, 1}
    assert len({tuple(r) for r in y.tolist()}) == 8  # non-exclusive: every combination occurs
    np.testing.assert_array_equal(y[:, 0], (x[:, 0] + x[:, 1] > 0).astype(np.int32))
    np.testing.assert_array_equal(y[:, 1], (x[:, 2] * x[:, 3] > 0).astype(np.int32))
    np.testing.assert_array_equal(y[:, 2], (x[:, 4] > 0.5 * x[:, 5]).astype(np.int32))
    sys.path.insert(0, str(EXAMPLES))
    try:
        import make_multilabel
    finally:
        sys.path.remove(str(EXAMPLES))
    out = tmp_path / "m.csv"
    make_multilabel.write(out)
    assert out.read_bytes() == (EXAMPLES / "multilabel.csv").read_bytes()


def test_pyproject_lists_every_package():
    tomllib = pytest.importorskip("tomllib")
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    on_disk = {
        ".".join(Path(d).relative_to(ROOT).parts)
        for d, _, files in os.walk(ROOT / "nncompiler")
        if "__pycache__" not in d and any(f.endswith(".py") for f in files)
    }
    missing = on_disk - listed
    assert not missing, f"add these packages to [tool.setuptools] packages in pyproject.toml: {missing}"
    assert cfg["package-dir"] == {"nncompiler.dsl": "dsl", "nncompiler.kernels": "kernels"}
    assert {"nncompiler.dsl", "nncompiler.kernels"} <= listed
