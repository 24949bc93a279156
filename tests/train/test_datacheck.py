"""Arrays against a model's declarations: shapes, dtypes, class labels (nncompiler.train.datacheck)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.errors import DataError, ShapeError
from datahelpers import raises
from nncompiler.train.data import check_against, check_labels, label_classes
from nncompiler.train.dataset import load_file

TWO_CLASS = """
model M {
    input  x: f32[B, 2]
    target y: i32[B]
    out = dense(x, 2, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer sgd(lr=0.1)
}
"""


def _raises(match, fn, *args, **kwargs):
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    assert re.search(match, str(info.value)), str(info.value)
    return str(info.value)


def test_label_classes_reads_the_class_axis_of_sparse_losses():
    m = nnc.compile(TWO_CLASS)
    assert label_classes(m.lowered.forward) == {"y": 2}
    iris = nnc.compile("examples/iris.nn")
    assert label_classes(iris.lowered.forward) == {"y": 3}


def test_label_classes_ignores_float_targets():
    m = nnc.compile("""
model R {
    input x: f32[B, 2]
    target y: f32[B, 1]
    out = dense(x, 1)
    output out
    loss mse(out, y)
    optimizer sgd(lr=0.1)
}""")
    assert label_classes(m.lowered.forward) == {}


@pytest.mark.parametrize("bad, index", [(2, 3), (-1, 1), (7, 0)])
def test_fit_refuses_labels_outside_the_classes(bad, index):
    m = nnc.compile(TWO_CLASS)
    x = np.zeros((5, 2), np.float32)
    y = np.array([0, 1, 0, 1, 1], np.int32)
    y[index] = bad
    msg = _raises(rf"target 'y': label {bad} at index \({index},\).*2 classes.*\[0, 2\)", m.fit, x=x, y=y, epochs=1)
    assert "not a class id" in msg
    _raises(r"not a class id", m.evaluate, x=x, y=y)
    y[index] = 1
    m.fit(x=x, y=y, epochs=1)      # in range: trains


def test_fit_checks_validation_data_labels():
    m = nnc.compile(TWO_CLASS)
    x = np.zeros((3, 2), np.float32)
    good = np.array([0, 1, 1], np.int32)
    _raises("label 3 at index", m.fit, x=x, y=good, epochs=1,
            validation_data={"x": x, "y": np.array([0, 3, 1], np.int32)})


def test_csv_with_more_classes_than_units_names_file_and_row(tmp_path):
    """The issue's case: a 3-class file fed to a 2-unit softmax trained to loss 0.0002."""
    p = tmp_path / "three.csv"
    p.write_text("a,b,label\n0,1,0\n1,0,1\n1,1,2\n0,0,1\n")
    m = nnc.compile(TWO_CLASS)
    msg = _raises(r"three\.csv: error: label 2 in data row 3 \(target 'y'\).*2 classes", load_file,
                  str(p), m.lowered, label="label")
    assert msg.count("\n") == 0


def test_class_names_in_a_csv_are_named(tmp_path):
    p = tmp_path / "four.csv"
    p.write_text("a,b,label\n0,1,x\n1,0,y\n1,1,z\n0,0,w\n")      # 4 classes, sorted: w x y z
    m = nnc.compile(TWO_CLASS)
    _raises(r"four\.csv: error: class 'y' \(label 2; the file has 4 classes\) in data row 2 \(target 'y'\) "
            r"is not a class id: the model has 2 classes", load_file, str(p), m.lowered, label="label")


def test_npz_label_names_array_and_index(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((3, 2), np.float32), y=np.array([0, -4, 1], np.int32))
    m = nnc.compile(TWO_CLASS)
    _raises(r"d\.npz: error: array 'y': label -4 at index \(1,\)", load_file, str(p), m.lowered)


def test_check_labels_passes_in_range_and_other_arrays():
    check_labels({"y": np.array([0, 1, 2]), "x": np.array([9.0])}, {"y": 3})
    _raises("label 3", check_labels, {"y": np.array([[0], [3]])}, {"y": 3})


# ----------------------------------------------------------------- check_against

def test_check_against_binds_symbols():
    b = {}
    x = check_against("x", np.zeros((5, 4), np.float32), "f32", ("B", 4), b)
    assert x.dtype == np.float32 and b == {"B": 5}
    y = check_against("y", np.zeros(5, np.int32), "i32", ("B",), b)
    assert y.shape == (5,)
    e = raises(r"input 'y': expected shape i32\[B\], got shape \(6,\): dimension 0 is 6, but B = 5 "
               r"from an earlier array", check_against, "y", np.zeros(6, np.int32), "i32", ("B",), b)
    assert isinstance(e, DataError)


def test_check_against_shape_mismatches():
    raises(r"input 'x': expected shape f32\[B, 4\], got shape \(5, 3\): dimension 1 is 3, expected 4",
           check_against, "x", np.zeros((5, 3), np.float32), "f32", ("B", 4), {})
    raises(r"input 'x': expected shape f32\[B, 4\] \(2 dimensions\), got shape \(2, 5, 4\) \(3 dimensions\)",
           check_against, "x", np.zeros((2, 5, 4), np.float32), "f32", ("B", 4), {})
    raises(r"dimension 1 is 3, expected B = 2",
           check_against, "x", np.zeros((2, 3)), "f32", ("B", "B"), {})


def test_check_against_products():
    b = {}
    check_against("x", np.zeros((3, 8)), "f32", ("B", "4*T"), b)
    assert b == {"B": 3, "T": 2}
    check_against("z", np.zeros((6,)), "f32", ("B*T",), b)
    raises(r"dimension 0 is 7, expected B\*T = 6", check_against, "z", np.zeros((7,)), "f32", ("B*T",), b)
    raises(r"not a multiple of 4", check_against, "w", np.zeros((5,)), "f32", ("4*N",), {})
    assert check_against("w", np.zeros((8,)), "f32", ("4*N",), b2 := {}).shape == (8,) and b2 == {"N": 2}


def test_check_against_reads_dimensions_like_the_ir():
    # Through ir.shapes.Monomial: spaces and either order of a product, the same error text.
    b = {}
    check_against("x", np.zeros((3, 6)), "f32", ("B", " 2 * B "), b)
    check_against("z", np.zeros((6,)), "f32", ("B*2",), b)
    with pytest.raises(ShapeError, match=r"bad dimension 'B-1'"):
        check_against("x", np.zeros((3,)), "f32", ("B-1",), {})


def test_check_against_trailing_unit_axis():
    assert check_against("y", np.zeros(5), "f32", ("B", 1), {}).shape == (5, 1)
    assert check_against("y", np.zeros((5, 1)), "f32", ("B",), {}).shape == (5,)


def test_check_against_casts():
    i = np.array([[1, 2], [3, 4]], np.int64)
    f = check_against("x", i, "f32", ("B", 2), {})
    assert f.dtype == np.float32 and f.tolist() == [[1, 2], [3, 4]]
    y = check_against("y", np.array([0.0, 2.0, 1.0], np.float32), "i32", ("B",), {})
    assert y.dtype == np.int32 and y.tolist() == [0, 2, 1]
    d = check_against("x", np.array([0.5], np.float64), "f32", ("B",), {})
    assert d.dtype == np.float32 and d[0] == 0.5
    same = np.zeros(3, np.float32)
    assert check_against("x", same, "f32", ("B",), {}) is same
    assert check_against("m", np.array([0, 1, 1]), "bool", ("B",), {}).dtype == np.bool_
    assert check_against("x", np.array([True, False]), "f32", ("B",), {}).tolist() == [1.0, 0.0]


def test_check_against_lossy_casts_rejected():
    raises(r"input 'y': expected i32\[B\], got f32 data with a non-integer value 0\.5 at index \(1,\)",
           check_against, "y", np.array([1.0, 0.5], np.float32), "i32", ("B",), {})
    raises(r"input 'y': value 3000000000\.0 at index \(0,\) does not fit in i32",
           check_against, "y", np.array([3e9]), "i32", ("B",), {})
    raises(r"input 'x': NaN at index \(0, 1\)",
           check_against, "x", np.array([[1, np.nan]]), "f32", ("B", 2), {})
    raises(r"input 'x': infinite value at index \(0,\)",
           check_against, "x", np.array([np.inf], np.float32), "f32", ("B",), {})
    raises(r"input 'x': value 1e\+300 at index \(0,\) does not fit in f32",
           check_against, "x", np.array([1e300]), "f32", ("B",), {})
    raises(r"input 'm': expected bool\[B\] \(0/1 values\)",
           check_against, "m", np.array([0, 2]), "bool", ("B",), {})
    raises(r"input 's': expected f32\[B\], got <U1 data",
           check_against, "s", np.array(["a"]), "f32", ("B",), {})
