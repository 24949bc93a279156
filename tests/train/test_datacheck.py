"""Arrays against a model's declarations: class labels (nncompiler.train.datacheck)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.errors import DataError
from nncompiler.train.data import check_labels, label_classes
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


def test_npz_label_names_array_and_index(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((3, 2), np.float32), y=np.array([0, -4, 1], np.int32))
    m = nnc.compile(TWO_CLASS)
    _raises(r"d\.npz: error: array 'y': label -4 at index \(1,\)", load_file, str(p), m.lowered)


def test_check_labels_passes_in_range_and_other_arrays():
    check_labels({"y": np.array([0, 1, 2]), "x": np.array([9.0])}, {"y": 3})
    _raises("label 3", check_labels, {"y": np.array([[0], [3]])}, {"y": 3})
