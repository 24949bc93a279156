"""Validation splits and batches (nncompiler.train.batching)."""
from __future__ import annotations

import numpy as np

from datahelpers import EXAMPLES, raises
from nncompiler.train.data import batches, read_csv, split_validation


def test_split_validation_shuffles_once_then_takes_tail():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10, dtype=np.int32)
    tr, va = split_validation({"x": x, "y": y}, 0.3, seed=1)
    perm = np.random.default_rng(1).permutation(10)
    np.testing.assert_array_equal(tr["y"], perm[:7])
    np.testing.assert_array_equal(va["y"], perm[7:])
    np.testing.assert_array_equal(tr["x"], x[perm[:7]])  # rows stay aligned
    np.testing.assert_array_equal(va["x"], x[perm[7:]])
    assert tr["x"].dtype == np.float32 and va["y"].dtype == np.int32
    # deterministic
    tr2, va2 = split_validation({"x": x, "y": y}, 0.3, seed=1)
    np.testing.assert_array_equal(va2["y"], va["y"])


def test_split_validation_sorted_iris_keeps_every_class():
    x, y, _ = read_csv(EXAMPLES / "iris.csv", label="species")
    tr, va = split_validation({"x": x, "y": y}, 0.2, seed=0)
    assert len(tr["y"]) == 120 and len(va["y"]) == 30
    assert set(tr["y"].tolist()) == {0, 1, 2} and set(va["y"].tolist()) == {0, 1, 2}
    assert sorted(np.concatenate([tr["y"], va["y"]]).tolist()) == sorted(y.tolist())


def test_split_validation_zero():
    x = np.arange(5, dtype=np.float32)
    tr, va = split_validation({"x": x}, 0, seed=0)
    assert tr["x"] is x
    assert va["x"].shape == (0,) and va["x"].dtype == np.float32


def test_split_validation_keeps_one_training_row():
    tr, va = split_validation({"x": np.arange(3.0)}, 0.9, seed=0)
    assert len(tr["x"]) == 1 and len(va["x"]) == 2


def test_split_validation_errors():
    raises(r"validation fraction must be in \[0, 1\), got 1\.5", split_validation, {"x": np.zeros(3)}, 1.5, 0)
    raises(r"validation fraction", split_validation, {"x": np.zeros(3)}, -0.1, 0)
    raises(r"arrays 'x' and 'y' have different numbers of rows \(3 and 2\)",
           split_validation, {"x": np.zeros(3), "y": np.zeros(2)}, 0.5, 0)
    raises(r"array 'x' is a scalar", split_validation, {"x": np.float32(1)}, 0.5, 0)


# ----------------------------------------------------------------- batches

def test_batches_in_order_last_partial():
    got = [b.tolist() for b in batches(7, 3, shuffle=False, rng=None)]
    assert got == [[0, 1, 2], [3, 4, 5], [6]]


def test_batches_all():
    assert [b.tolist() for b in batches(4, None, False, None)] == [[0, 1, 2, 3]]
    assert [b.tolist() for b in batches(4, "all", False, None)] == [[0, 1, 2, 3]]
    assert list(batches(0, 3, False, None)) == []


def test_batches_shuffle():
    rng = np.random.default_rng(5)
    got = list(batches(10, 4, shuffle=True, rng=rng))
    assert [len(b) for b in got] == [4, 4, 2]
    flat = np.concatenate(got)
    np.testing.assert_array_equal(flat, np.random.default_rng(5).permutation(10))
    # a fresh permutation every epoch from the same generator
    again = np.concatenate(list(batches(10, 4, shuffle=True, rng=rng)))
    assert sorted(again.tolist()) == list(range(10)) and again.tolist() != flat.tolist()
    assert got[0].dtype == np.int64


def test_batches_bad_size():
    for bad in (0, -1, 2.5, "some", True):
        raises(r"batch size must be a positive integer or 'all'", lambda b=bad: list(batches(4, b, False, None)))
