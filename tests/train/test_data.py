"""Data readers, validation split, batching and input checks (nncompiler.train.data)."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from nncompiler.errors import DataError, NNCError
from nncompiler.train import data
from nncompiler.train.data import (
    batches,
    check_against,
    read_array,
    read_csv,
    read_npz,
    split_validation,
)

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


# ----------------------------------------------------------------- read_csv values

def test_read_csv_numeric_labels_and_order(tmp_path):
    p = write(tmp_path, "d.csv", "a,y,b\n1,0,2.5\n3,2,-4\n5,1,1e-3\n")
    x, y, info = read_csv(p, label="y")
    np.testing.assert_array_equal(x, np.float32([[1, 2.5], [3, -4], [5, 1e-3]]))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(y, [0, 2, 1])
    assert y.dtype == np.int32
    assert info["columns"] == ["a", "y", "b"] and info["features"] == ["a", "b"]
    assert info["classes"] is None and info["label_classes"] == {}


def test_read_csv_no_label(tmp_path):
    p = write(tmp_path, "d.csv", "a,b\n1,2\n3,4\n")
    x, y, info = read_csv(p)
    assert y is None and info["labels"] == []
    np.testing.assert_array_equal(x, np.float32([[1, 2], [3, 4]]))


def test_read_csv_float_labels_stay_float32(tmp_path):
    p = write(tmp_path, "d.csv", "a,t\n1,0.5\n2,2\n")
    _, y, _ = read_csv(p, label="t")
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.float32([0.5, 2]))


def test_read_csv_integral_float_labels_become_int32(tmp_path):
    p = write(tmp_path, "d.csv", "a,t\n1,1.0\n2,3.0\n")
    _, y, _ = read_csv(p, label="t")
    assert y.dtype == np.int32 and y.tolist() == [1, 3]


def test_read_csv_string_labels_sorted_ids(tmp_path):
    p = write(tmp_path, "d.csv", "x,kind\n1,cat\n2, dog \n3,ant\n4,cat\n")
    x, y, info = read_csv(p, label="kind")
    assert info["classes"] == ["ant", "cat", "dog"]
    assert info["label_classes"] == {"kind": ["ant", "cat", "dog"]}
    assert y.dtype == np.int32 and y.tolist() == [1, 2, 0, 1]
    assert x.shape == (4, 1)


def test_read_csv_several_label_columns(tmp_path):
    p = write(tmp_path, "d.csv", "l1,x,l0\n1,0.5,0\n0,1.5,1\n")
    x, y, info = read_csv(p, label=["l0", "l1"])
    assert y.shape == (2, 2) and y.dtype == np.int32
    assert y.tolist() == [[0, 1], [1, 0]]  # in the order asked for
    np.testing.assert_array_equal(x, np.float32([[0.5], [1.5]]))
    assert info["classes"] is None


def test_read_csv_list_with_string_column(tmp_path):
    p = write(tmp_path, "d.csv", "x,c,n\n1,b,1\n2,a,0\n")
    _, y, info = read_csv(p, label=["c", "n"])
    assert y.tolist() == [[1, 1], [0, 0]] and y.dtype == np.int32
    assert info["label_classes"] == {"c": ["a", "b"]} and info["classes"] is None


def test_read_csv_tolerates_spaces_quotes_blank_lines_bom(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes(b'\xef\xbb\xbf a , b \n 1 ,"2.5"\n\n3,4\n\n')
    x, _, info = read_csv(p)
    assert info["columns"] == ["a", "b"]
    np.testing.assert_array_equal(x, np.float32([[1, 2.5], [3, 4]]))


def test_read_csv_tsv(tmp_path):
    p = write(tmp_path, "d.tsv", "a\tb\n1\t2\n")
    x, _, _ = read_csv(p)
    np.testing.assert_array_equal(x, np.float32([[1, 2]]))


def test_read_csv_dtype_hint_i32(tmp_path):
    p = write(tmp_path, "d.csv", "tok0,tok1\n3,4\n5,6\n")
    x, _, _ = read_csv(p, dtype_hint="i32")
    assert x.dtype == np.int32 and x.tolist() == [[3, 4], [5, 6]]
    x, _, _ = read_csv(p, dtype_hint="f32")
    assert x.dtype == np.float32
    p2 = write(tmp_path, "e.csv", "tok0,tok1\n3,4\n5,6.5\n")
    e = raises(r"e\.csv:3:2: error: non-integer value '6\.5' in column 'tok1' \(expected an integer\)",
               read_csv, p2, dtype_hint="i32")
    assert (e.row, e.col) == (3, 2)
    with pytest.raises(ValueError):
        read_csv(p, dtype_hint="f16")


def test_read_csv_dtype_hint_other_model_dtypes(tmp_path):
    p = write(tmp_path, "d.csv", "a,b\n1,0\n0,1\n")
    x, _, _ = read_csv(p, dtype_hint="i64")
    assert x.dtype == np.int64 and x.tolist() == [[1, 0], [0, 1]]
    x, _, _ = read_csv(p, dtype_hint="bool")
    assert x.dtype == np.bool_ and x.tolist() == [[True, False], [False, True]]
    x, _, _ = read_csv(write(tmp_path, "f.csv", "a\n0.1\n1e300\n"), dtype_hint="f64")
    assert x.dtype == np.float64 and x[0, 0] == 0.1 and x[1, 0] == 1e300  # asked for, so exact
    raises(r"b\.csv:3:1: error: value '2' in column 'a' is not 0 or 1 \(expected a bool\)",
           read_csv, write(tmp_path, "b.csv", "a\n1\n2\n"), dtype_hint="bool")
    raises(r"i\.csv:2:1: error: value '3e9' in column 'a' does not fit in int32",
           read_csv, write(tmp_path, "i.csv", "a\n3e9\n"), dtype_hint="i32")


def test_read_csv_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "BLOCK_ROWS", 4)
    rng = np.random.default_rng(0)
    xs = rng.integers(-100, 100, size=(11, 3))
    names = ["b", "a", "c"]
    lines = ["x0,x1,x2,y"] + [f"{r[0]},{r[1]},{r[2]},{names[i % 3]}" for i, r in enumerate(xs)]
    p = write(tmp_path, "d.csv", "\n".join(lines) + "\n")
    x, y, info = read_csv(p, label="y")
    np.testing.assert_array_equal(x, xs.astype(np.float32))
    assert info["classes"] == ["a", "b", "c"]
    assert y.tolist() == [[1, 0, 2][i % 3] for i in range(11)]
    # an error in a later block still names its own row
    lines[10] = "1,2,oops,a"
    write(tmp_path, "d.csv", "\n".join(lines) + "\n")
    raises(r"d\.csv:11:3: error: non-numeric value 'oops' in column 'x2'", read_csv, p, label="y")


def test_read_csv_never_float64(tmp_path):
    p = write(tmp_path, "d.csv", "a,t\n0.1,0.25\n")
    x, y, _ = read_csv(p, label="t")
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert x[0, 0] == np.float32(0.1)


# ----------------------------------------------------------------- read_csv errors

def test_error_is_nnc_error(tmp_path):
    assert issubclass(DataError, NNCError)


def test_csv_file_not_found(tmp_path):
    e = raises(r"nope\.csv: error: file not found$", read_csv, tmp_path / "nope.csv")
    assert e.file.endswith("nope.csv") and e.row is None


def test_csv_directory(tmp_path):
    raises(r"is a directory", read_csv, tmp_path)


def test_csv_empty_file(tmp_path):
    raises(r"e\.csv: error: empty file \(expected a header row", read_csv, write(tmp_path, "e.csv", ""))
    raises(r"empty file", read_csv, write(tmp_path, "f.csv", "\n\n"))


def test_csv_header_only(tmp_path):
    e = raises(r"h\.csv:2: error: no data rows \(the file holds only a header\)",
               read_csv, write(tmp_path, "h.csv", "a,b,y\n"), label="y")
    assert e.row == 2


def test_csv_header_required(tmp_path):
    raises(r"n\.csv:1:1: error: the first row holds only numbers; read_csv needs a header row",
           read_csv, write(tmp_path, "n.csv", "1,2\n3,4\n"))


def test_csv_bad_header(tmp_path):
    raises(r"d\.csv:1:2: error: duplicate column name 'a' in the header \(columns 1 and 2\)",
           read_csv, write(tmp_path, "d.csv", "a,a\n1,2\n"))
    raises(r"d\.csv:1:2: error: empty column name in the header \(column 2\)",
           read_csv, write(tmp_path, "d.csv", "a,,b\n1,2,3\n"))


def test_csv_too_few_columns(tmp_path):
    p = write(tmp_path, "d.csv", "a,b,c\n1,2,3\n4,5\n")
    e = raises(r"d\.csv:3:3: error: row has 2 values, expected 3 \(missing a value for column 'c'\)",
               read_csv, p)
    assert (e.row, e.col) == (3, 3)


def test_csv_too_many_columns(tmp_path):
    p = write(tmp_path, "d.csv", "a,b\n1,2\n3,4\n5,6,7\n")
    raises(r"d\.csv:4:3: error: row has 3 values, expected 2 \(extra value '7'\)", read_csv, p)


def test_csv_earlier_bad_cell_reported_before_bad_row(tmp_path):
    p = write(tmp_path, "d.csv", "a,b\n1,x\n3\n")
    raises(r"d\.csv:2:2: error: non-numeric value 'x'", read_csv, p)


def test_csv_missing_label_did_you_mean(tmp_path):
    p = write(tmp_path, "iris.csv", "sepal_length,species\n1,setosa\n")
    e = raises(r"^.*iris\.csv:1: error: no label column 'specis' in the header; did you mean 'species'\?$",
               read_csv, p, label="specis")
    assert e.row == 1 and e.col is None
    raises(r"no label column 'zzz' in the header; the columns are sepal_length, species",
           read_csv, p, label="zzz")
    raises(r"no label column 'lbl'", read_csv, p, label=["species", "lbl"])


def test_csv_non_numeric_value(tmp_path):
    p = write(tmp_path, "iris.csv",
              "sepal_length,sepal_width,petal_length,petal_width,species\n"
              + "5.1,3.5,1.4,0.2,setosa\n" * 15 + "5.1,3.5,abc,0.2,setosa\n")
    e = raises(r"iris\.csv:17:3: error: non-numeric value 'abc' in column 'petal_length' "
               r"\(expected a number\)$", read_csv, p, label="species")
    assert (e.row, e.col) == (17, 3)
    assert str(e).startswith(str(p) + ":17:3: error: ")


def test_csv_string_without_label_hints(tmp_path):
    p = write(tmp_path, "d.csv", "x,species\n1,setosa\n")
    raises(r"d\.csv:2:2: error: non-numeric value 'setosa' in column 'species' \(expected a number\); "
           r"pass label='species' if it is the label column", read_csv, p)


def test_csv_missing_value(tmp_path):
    p = write(tmp_path, "d.csv", "a,b\n1,2\n3,\n")
    raises(r"d\.csv:3:2: error: missing value in column 'b' \(expected a number\)", read_csv, p)


def test_csv_nan_and_inf(tmp_path):
    raises(r"d\.csv:3:1: error: NaN value 'nan' in column 'a' \(expected a finite number\)",
           read_csv, write(tmp_path, "d.csv", "a,b\n1,2\nnan,4\n"))
    raises(r"d\.csv:2:2: error: infinite value '-inf' in column 'b' \(expected a finite number\)",
           read_csv, write(tmp_path, "d.csv", "a,b\n1,-inf\n"))
    raises(r"d\.csv:2:2: error: infinite value 'Infinity' in column 'b'",
           read_csv, write(tmp_path, "d.csv", "a,b\n1,Infinity\n"))
    raises(r"d\.csv:2:1: error: value '1e39' in column 'a' is out of float32 range",
           read_csv, write(tmp_path, "d.csv", "a,b\n1e39,2\n"))


def test_csv_label_errors(tmp_path):
    raises(r"d\.csv:3:2: error: NaN value 'NaN' in column 'y'",
           read_csv, write(tmp_path, "d.csv", "a,y\n1,0\n2,NaN\n"), label="y")
    # a numeric label column (judged by its first value) rejects names later on
    raises(r"d\.csv:3:2: error: non-numeric value 'cat' in column 'y' \(expected a number\)$",
           read_csv, write(tmp_path, "d.csv", "a,y\n1,0\n2,cat\n"), label="y")
    raises(r"d\.csv:3:2: error: empty value in label column 'y' \(expected a class name\)",
           read_csv, write(tmp_path, "d.csv", "a,y\n1,dog\n2,\n"), label="y")


def test_csv_not_utf8(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes(b"a,b\n1,\xff\xfe\n")
    raises(r"d\.csv:\d+: error: not a UTF-8 text file", read_csv, p)


# ----------------------------------------------------------------- read_array / read_npz

def test_read_array_npy(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "a.npy", a)
    b = read_array(tmp_path / "a.npy")
    assert b.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.save(tmp_path / "i.npy", np.arange(3, dtype=np.int64))
    assert read_array(tmp_path / "i.npy").dtype == np.int64  # as saved, no conversion


def test_read_array_csv_headerless_and_header(tmp_path):
    a = read_array(write(tmp_path, "a.csv", "1,2\n3,4.5\n"))
    assert a.dtype == np.float32 and a.shape == (2, 2)
    np.testing.assert_array_equal(a, np.float32([[1, 2], [3, 4.5]]))
    b = read_array(write(tmp_path, "b.csv", "x,y\n1,2\n3,4.5\n"))
    np.testing.assert_array_equal(a, b)
    c = read_array(write(tmp_path, "c.csv", "label\n1\n0\n2\n"))
    assert c.shape == (3,) and c.tolist() == [1, 0, 2] and c.dtype == np.float32


def test_read_array_csv_errors(tmp_path):
    raises(r"a\.csv:2:2: error: non-numeric value 'x' in column 2 \(expected a number\)",
           read_array, write(tmp_path, "a.csv", "1,2\n3,x\n"))
    raises(r"a\.csv:3:2: error: non-numeric value 'x' in column 'q'",
           read_array, write(tmp_path, "a.csv", "p,q\n1,2\n3,x\n"))
    raises(r"a\.csv:1:1: error: non-numeric value 'p'",  # a row mixing names and numbers is data
           read_array, write(tmp_path, "a.csv", "p,1\n1,2\n"))
    raises(r"a\.csv:2:1: error: NaN value", read_array, write(tmp_path, "a.csv", "1,2\nnan,4\n"))
    raises(r"a\.csv:2:2: error: row has 1 values, expected 2",
           read_array, write(tmp_path, "a.csv", "1,2\n3\n"))
    raises(r"a\.csv: error: empty file", read_array, write(tmp_path, "a.csv", ""))
    raises(r"a\.csv:2: error: no data rows", read_array, write(tmp_path, "a.csv", "x,y\n"))
    raises(r"nope\.csv: error: file not found", read_array, tmp_path / "nope.csv")


def test_read_array_npy_errors(tmp_path):
    raises(r"nope\.npy: error: file not found", read_array, tmp_path / "nope.npy")
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"this is not numpy")
    raises(r"bad\.npy: error: cannot read \.npy file", read_array, bad)
    np.save(tmp_path / "t.npy", np.arange(100.0))
    trunc = tmp_path / "trunc.npy"
    trunc.write_bytes((tmp_path / "t.npy").read_bytes()[:200])
    raises(r"trunc\.npy: error: cannot read \.npy file", read_array, trunc)
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    raises(r"empty\.npy: error: empty file", read_array, empty)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    raises(r"obj\.npy: error: cannot read \.npy file: it holds Python objects", read_array,
           tmp_path / "obj.npy")
    raises(r"is a directory", read_array, _mkdir(tmp_path / "dir.npy"))


def _mkdir(p):
    p.mkdir()
    return p


def test_read_array_other_types(tmp_path):
    raises(r"x\.txt: error: unsupported file type '\.txt' \(expected \.npy, \.csv or \.tsv\)",
           read_array, write(tmp_path, "x.txt", "1\n"))
    np.savez(tmp_path / "z.npz", a=np.zeros(2))
    raises(r"use read_npz", read_array, tmp_path / "z.npz")


def test_read_npz(tmp_path):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.array([1, 0], dtype=np.int32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    d = read_npz(tmp_path / "d.npz")
    assert set(d) == {"x", "y"}
    np.testing.assert_array_equal(d["x"], x)
    assert d["x"].dtype == np.float32 and d["y"].dtype == np.int32
    np.savez_compressed(tmp_path / "c.npz", x=x)
    np.testing.assert_array_equal(read_npz(tmp_path / "c.npz")["x"], x)


def test_read_npz_errors(tmp_path):
    raises(r"nope\.npz: error: file not found", read_npz, tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 broken")
    raises(r"bad\.npz: error: cannot read \.npz file", read_npz, bad)
    np.save(tmp_path / "one.npy", np.zeros(2))
    raises(r"it is a single \.npy array", read_npz, tmp_path / "one.npy")
    np.savez(tmp_path / "obj.npz", o=np.array([None], dtype=object))
    raises(r"obj\.npz: error: cannot read array 'o': it holds Python objects", read_npz,
           tmp_path / "obj.npz")


# ----------------------------------------------------------------- split_validation

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


def test_read_csv_all_columns_are_labels(tmp_path):
    x, y, _ = read_csv(write(tmp_path, "d.csv", "a,b\n1,2\n3,4\n5,6\n"), label=["a", "b"])
    assert x.shape == (3, 0) and x.dtype == np.float32
    assert y.tolist() == [[1, 2], [3, 4], [5, 6]]
