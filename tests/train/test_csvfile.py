"""Reading CSV and TSV files: values, dtypes, labels and every error (nncompiler.train.csvfile)."""
from __future__ import annotations

import numpy as np
import pytest

from datahelpers import raises, write
from nncompiler.errors import DataError, NNCError
from nncompiler.train import csvfile
from nncompiler.train.data import read_csv


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
    monkeypatch.setattr(csvfile, "BLOCK_ROWS", 4)
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


def test_read_csv_all_columns_are_labels(tmp_path):
    x, y, _ = read_csv(write(tmp_path, "d.csv", "a,b\n1,2\n3,4\n5,6\n"), label=["a", "b"])
    assert x.shape == (3, 0) and x.dtype == np.float32
    assert y.tolist() == [[1, 2], [3, 4], [5, 6]]
