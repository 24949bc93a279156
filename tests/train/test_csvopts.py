"""A data line's options: columns, drop, several labels, one_hot, scale, standardize; for training,
for `nnc predict` / `nnc eval` on other files, and through an .nnx file. Expected arrays are
written out by hand or computed with numpy from the CSV text."""
from __future__ import annotations

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.cli import main
from nncompiler.errors import CompileError, DataError
from nncompiler.train.dataset import training_data

CSV = """id,a,b,c,kind,l0,l1
x1,1,10,100,cat,0,1
x2,2,20,300,dog,1,1
x3,3,60,200,cat,1,0
x4,6,30,400,bird,0,0
"""
A = np.array([1, 2, 3, 6], np.float64)
B = np.array([10, 20, 60, 30], np.float64)
C = np.array([100, 300, 200, 400], np.float64)


def _model(tmp_path, options: str, x: str = "f32[B, 3]", y: str = "i32[B]", loss: str = "sparse_categorical_crossentropy",
           units: int = 3, activation: str = "softmax"):
    (tmp_path / "d.csv").write_text(CSV)
    src = f"""model M {{
    input  x: {x}
    target y: {y}
    o = dense(x, {units}, activation={activation})
    output o
    loss {loss}(o, y)
    optimizer sgd
}}
train M {{
    data "d.csv" ({options})
}}
"""
    path = tmp_path / "m.nn"
    path.write_text(src)
    return nnc.compile(str(path))


def _data(m):
    return training_data(m.lowered, m.lowered.train)


def test_drop_leaves_out_text_columns(tmp_path):
    d = _data(_model(tmp_path, 'label="kind", drop=["id", "l0", "l1"]'))
    np.testing.assert_array_equal(d["x"], np.stack([A, B, C], 1).astype(np.float32))
    np.testing.assert_array_equal(d["y"], [1, 2, 1, 0])          # bird, cat, dog -> 0, 1, 2


def test_columns_pick_and_order_the_features(tmp_path):
    d = _data(_model(tmp_path, 'label="kind", columns=["c", "a"]', x="f32[B, 2]"))
    np.testing.assert_array_equal(d["x"], np.stack([C, A], 1).astype(np.float32))


def test_several_labels_make_a_multi_label_target(tmp_path):
    m = _model(tmp_path, 'label=["l0", "l1"], drop=["id", "kind"]', y="f32[B, 2]", loss="binary_crossentropy",
               units=2, activation="sigmoid")
    d = _data(m)
    np.testing.assert_array_equal(d["y"], [[0, 1], [1, 1], [1, 0], [0, 0]])
    np.testing.assert_array_equal(d["x"][:, 0], A)
    assert len(m.fit(epochs=1, verbose=0, **d)["loss"]) == 1


def test_one_hot_labels_for_categorical_crossentropy(tmp_path):
    m = _model(tmp_path, 'label="kind", drop=["id", "l0", "l1"], one_hot=true', y="f32[B, 3]",
               loss="categorical_crossentropy")
    d = _data(m)
    np.testing.assert_array_equal(d["y"], np.eye(3, dtype=np.float32)[[1, 2, 1, 0]])
    m.fit(epochs=1, verbose=0, **d)


def test_one_hot_needs_a_two_dimensional_target(tmp_path):
    with pytest.raises(DataError) as e:
        _data(_model(tmp_path, 'label="kind", drop=["id", "l0", "l1"], one_hot=true'))
    assert str(e.value).endswith("one_hot=true makes rows of class indicators: declare target 'y' as "
                                 "f32[B, CLASSES] (it is i32[B])")


def test_one_hot_class_out_of_range(tmp_path):
    with pytest.raises(DataError) as e:
        _data(_model(tmp_path, 'label="c", columns=["a", "b"], one_hot=true', x="f32[B, 2]", y="f32[B, 3]",
                     loss="categorical_crossentropy"))
    assert "class id 100 in data row 1 is outside 0..2 (target 'y' has 3 classes)" in str(e.value)


def test_scale_multiplies_every_feature(tmp_path):
    d = _data(_model(tmp_path, 'label="kind", drop=["id", "l0", "l1"], scale=1/16'))
    np.testing.assert_allclose(d["x"], np.stack([A, B, C], 1) / 16, rtol=1e-7)


def test_standardize_uses_the_training_files_statistics_everywhere(tmp_path, capsys):
    m = _model(tmp_path, 'label="kind", drop=["id", "l0", "l1"], standardize=true')
    feats = np.stack([A, B, C], 1)
    mean, std = feats.mean(0), feats.std(0)                      # population deviation, as Keras
    d = _data(m)
    np.testing.assert_allclose(d["x"], (feats - mean) / std, rtol=1e-6, atol=1e-7)
    # other rows for prediction: shifted and scaled with the training file's mean and deviation
    (tmp_path / "new.csv").write_text("id,a,b,c\nq,4,40,250\n")
    want = m.forward(x=((np.array([[4, 40, 250]]) - mean) / std).astype(np.float32))
    for model in (str(tmp_path / "m.nn"), str(tmp_path / "m.nnx")):
        if model.endswith(".nnx"):
            assert main(["export", str(tmp_path / "m.nn"), "-o", model]) == 0
            (tmp_path / "d.csv").unlink()      # the .nnx holds the statistics: no training file needed
        assert main(["predict", model, "--input", str(tmp_path / "new.csv")]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        got = np.array([float(v) for v in lines[1].split(",")])
        np.testing.assert_allclose(got, want[0], rtol=1e-6)


@pytest.mark.parametrize("options, message", [
    ('lable="kind"', "unknown data option 'lable'; did you mean 'label'?"),
    ('label="kind", scale=0', "scale must be a non-zero finite number, got 0"),
    ('label="kind", one_hot="yes"', "one_hot must be true or false"),
    ('label="kind", columns="a"', "columns must be a list of column names in quotes"),
    ('label="kind", drop=["id", "id"]', "drop names column 'id' twice"),
    ('label="kind", scale=1/0', "division by zero"),
])
def test_option_mistakes_point_at_the_option(tmp_path, options, message):
    with pytest.raises(CompileError) as e:
        _model(tmp_path, options)
    assert message in str(e.value) and "m.nn:10:" in str(e.value)


@pytest.mark.parametrize("options, message", [
    ('label="kind", drop=["nope"]', "drop= names column 'nope', which the file does not have"),
    ('label="kind", columns=["a", "kind"]', "column 'kind' is both a feature (columns=) and a label"),
])
def test_option_mistakes_about_the_file(tmp_path, options, message):
    with pytest.raises(DataError) as e:
        _data(_model(tmp_path, options))
    assert message in str(e.value) and "d.csv" in str(e.value)
