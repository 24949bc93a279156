"""Hostile data files and paths (nncompiler.train.datafile, csvfile, arrays): each refused with
one short, printable error naming the file, before it can exhaust memory or block."""
from __future__ import annotations

import io
import os
import re
import time
import zipfile

import numpy as np
import pytest

from nncompiler.errors import DataError
from nncompiler.train.data import read_array, read_csv, read_npz
from nncompiler.train.datafile import printable, show


def _raises(match, fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert re.search(match, msg), msg
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


def test_devices_and_fifos_are_refused_without_reading(tmp_path):
    _raises(r"^/dev/zero: error: is not a regular file \(a device, FIFO or socket\)", read_csv, "/dev/zero", label="y")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)                 # opening it for reading would block until a writer came
    _raises(r"pipe\.csv: error: is not a regular file", read_csv, fifo, label="y")
    npy = tmp_path / "pipe.npy"
    os.mkfifo(npy)
    _raises(r"pipe\.npy: error: is not a regular file", read_array, npy)


def test_a_nul_byte_in_the_path_is_a_clear_error():
    msg = _raises(r"error: the path contains a NUL byte", read_csv, "data\0.csv", label="y")
    assert "\0" not in msg and msg.startswith("data\\x00.csv:")
    _raises(r"NUL byte", read_array, "x\0.npy")


def test_a_line_longer_than_the_limit(tmp_path):
    p = tmp_path / "long.csv"
    p.write_text("a,b\n1,2\n" + "3," * 600 + "4\n")
    _raises(r"long\.csv:3: error: line 3 is longer than 1000 characters \(the limit; set read_csv's max_line",
            read_csv, p, max_line=1000)
    _raises(r"long\.csv:3:3: error: row has 601 values, expected 2", read_csv, p, max_line=2000)


def test_a_two_gigabyte_line_is_refused_after_reading_one_megabyte(tmp_path, monkeypatch):
    """The issue's 2 GiB line (a sparse file: nothing is written to disk)."""
    p = tmp_path / "huge.csv"
    with open(p, "wb") as f:
        f.write(b"a,b\n")
        f.truncate(2**31)
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "4G")
    start = time.perf_counter()
    _raises(r"huge\.csv:2: error: line 2 is longer than 1048576 characters", read_csv, p)
    assert time.perf_counter() - start < 5


def test_too_many_columns(tmp_path):
    p = tmp_path / "wide.csv"
    p.write_text(",".join(f"c{i}" for i in range(50)) + "\n" + ",".join("1" * 50) + "\n")
    _raises(r"wide\.csv:1: error: row has 50 values, more than the limit of 20 columns \(set read_csv's max_columns",
            read_csv, p, max_columns=20)
    assert read_csv(p, max_columns=50)[0].shape == (1, 50)


def test_a_file_larger_than_the_memory_limit(tmp_path, monkeypatch):
    p = tmp_path / "big.csv"
    p.write_text("a,b\n" + "1,2\n" * 100)
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "100")
    _raises(r"big\.csv: error: the file is 404 bytes, more than the 100 bytes of memory available \(NNC_MEMORY_LIMIT\)",
            read_csv, p)
    monkeypatch.delenv("NNC_MEMORY_LIMIT")
    x, _, _ = read_csv(p)
    np.testing.assert_array_equal(x, np.tile([1, 2], (100, 1)))


def test_echoed_content_is_shortened_and_printable(tmp_path):
    p = tmp_path / "passwd"
    first = "root:x:0:0:root:/root:/bin/bash"
    p.write_text(first + "\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    msg = _raises(r"no label column 'species'", read_csv, p, label="species")
    assert first not in msg
    q = tmp_path / "ctl.csv"
    q.write_text("a,b\n1,\x1b[2J\x1b[31mevil" + "x" * 100 + "\n")
    msg = _raises(r"ctl\.csv:2:2: error: non-numeric value '\\x1b\[2J\\x1b\[31mevilxxx", read_csv, q)
    assert "\x1b" not in msg and "x" * 60 not in msg


def test_control_characters_in_the_path_are_escaped(tmp_path):
    p = tmp_path / "a\rb\x1b[31m.csv"
    msg = _raises(r"file not found", read_csv, p, label="y")
    assert "\r" not in msg and "\x1b" not in msg and "a\\rb\\x1b[31m.csv" in msg


def test_printable_and_show():
    assert printable("ok é 😀") == "ok é 😀"
    assert printable("a\u202eb\u2028c\td") == "a\\u202eb\\u2028c\\td"
    assert show("x" * 30) == "'" + "x" * 24 + "...'"


def _npy_header(shape) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_forged_headers_in_data_files_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "64M")
    npz = tmp_path / "forged.npz"
    with zipfile.ZipFile(npz, "w") as z:
        z.writestr("x.npy", _npy_header((200000, 200000)) + b"\0" * 64)
    _raises(r"forged\.npz: error: array 'x' \(float32, shape \(200000, 200000\)\) needs 149\.0 GiB", read_npz, npz)
    npy = tmp_path / "forged.npy"
    npy.write_bytes(_npy_header((100000, 100000)) + b"\0" * 64)
    _raises(r"forged\.npy: error: \.npy file \(float32, shape \(100000, 100000\)\) needs 37\.3 GiB", read_array, npy)
    good = tmp_path / "good.npz"
    np.savez(good, x=np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(read_npz(good)["x"], [[0, 1, 2], [3, 4, 5]])
