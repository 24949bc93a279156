"""Reading .npy, .npz and numeric CSV arrays (nncompiler.train.arrays)."""
from __future__ import annotations

import numpy as np

from datahelpers import mkdir, raises, write
from nncompiler.train.data import read_array, read_npz


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
    raises(r"is a directory", read_array, mkdir(tmp_path / "dir.npy"))


def mkdir(p):
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
