"""Tampered and hostile checkpoints (nncompiler.train.ckptcheck and the header checks in arrays.py):
one clear error naming the file and the field, never a traceback or a silently wrong model."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.train.checkpoint import CheckpointError, read_checkpoint

SMALL = """
model S {
    input  x: f32[B, 2]
    target y: i32[B]
    out = dense(x, 2, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.01)
}
"""
X = np.array([[0, 1], [1, 0], [1, 1], [0, 0]], np.float32)
Y = np.array([0, 1, 1, 0], np.int32)


@pytest.fixture
def saved(tmp_path):
    m = nnc.compile(SMALL)
    path = str(tmp_path / "ck.npz")
    m.fit(x=X, y=Y, epochs=2, batch_size=2, checkpoint=path)
    return path


def rewrite(path, meta_change=None, arrays_change=None):
    """The checkpoint at `path` with its meta record and arrays edited, as a tamperer would."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    if meta_change:
        meta_change(meta)
    if arrays_change:
        arrays_change(arrays)
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    return path


def _set(key, value):
    def change(meta):
        meta[key] = value
    return change


@pytest.mark.parametrize("field, value, expected", [
    ("version", "1", "an integer in [1, 2)"),
    ("version", 0, "an integer in [1, 2)"),
    ("epoch", -5, "an integer >= 0"),
    ("epoch", "3", "an integer >= 0"),
    ("epoch", 2.5, "an integer >= 0"),
    ("lr", "fast", "a positive finite number"),
    ("lr", -1, "a positive finite number"),
    ("seed", "zero", "an integer in [0, "),
    ("seed", -1, "an integer in [0, "),
    ("steps_taken", True, "an integer >= 0"),
    ("history", [1, 2], "a mapping"),
    ("history", {"loss": "low"}, "a list of numbers"),
    ("rng", {"bit_generator": "PCG64", "state": "x"}, "the state of numpy's PCG64 generator"),
    ("rng", 7, "the state of numpy's PCG64 generator"),
    ("partial", {"epoch": 2, "batches": "1"}, "an integer >= 0"),
    ("partial", [1], "a mapping"),
    ("partial", {"epoch": 2, "batches": 1, "seen": 2, "rows": 4, "totals": {"metric.auc.tp": ["x"]}},
     "a number or a list of numbers"),
    ("callbacks", {"EarlyStopping": {"best": "x"}}, "a number or null"),
    ("model", 3, "a string"),
])
def test_every_meta_field_is_checked_by_type_and_range(saved, field, value, expected):
    rewrite(saved, _set(field, value))
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(saved)
    msg = str(info.value)
    assert msg.startswith(f"{saved}: error: damaged checkpoint: field '{field}"), msg
    assert expected in msg and "\n" not in msg


@pytest.mark.parametrize("how", ["resume", "weights"])
def test_tampered_checkpoint_through_fit_and_cli_is_one_line(saved, capsys, how):
    rewrite(saved, _set("epoch", -5))
    m = nnc.compile(SMALL)
    with pytest.raises(CheckpointError, match="field 'epoch'"):
        m.fit(x=X, y=Y, epochs=5, resume=saved)
    rewrite(saved, _set("epoch", 2), lambda a: a.update({"param/out.kernel": np.array([["a", "b"], ["c", "d"]])}))
    from nncompiler.cli import main
    src, data = saved.replace("ck.npz", "s.nn"), saved.replace("ck.npz", "d.npz")
    open(src, "w").write(SMALL)
    np.savez(data, x=X, y=Y)
    argv = ["eval", src, "--weights", saved] if how == "weights" else ["run", src, "--resume", saved]
    argv += ["--data", data]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "array 'param/out.kernel' holds <U1 data, not numbers" in err and "Traceback" not in err


@pytest.mark.parametrize("bad, what", [(np.nan, "NaN"), (np.inf, "an infinite value")])
def test_nonfinite_weights_refused_unless_asked(saved, bad, what):
    def poison(arrays):
        arrays["param/out.kernel"][1, 0] = bad
    rewrite(saved, arrays_change=poison)
    m = nnc.compile(SMALL)
    with pytest.raises(CheckpointError, match=rf"array 'param/out.kernel' holds {what} at index \(1, 0\)"):
        nnc.load_weights(m, saved)
    nnc.load_weights(m, saved, allow_nonfinite=True)            # asked for explicitly
    assert m.params["out.kernel"][1, 0] == bad or np.isnan(m.params["out.kernel"][1, 0])


def test_weights_beyond_float32_refused(saved):
    rewrite(saved, arrays_change=lambda a: a.update({"param/out.bias": np.array([1.0, 1e300])}))
    with pytest.raises(CheckpointError, match=r"'param/out.bias' holds 1e\+300 at index \(1,\), beyond float32's range"):
        read_checkpoint(saved)


def test_complex_weights_refused(saved):
    rewrite(saved, arrays_change=lambda a: a.update(
        {"param/out.bias": a["param/out.bias"].astype(np.complex64) + 1j}))
    with pytest.raises(CheckpointError, match=r"'param/out.bias' holds complex numbers"):
        read_checkpoint(saved)


def _npy_header(shape, descr="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_forged_header_refused_before_reading(saved, monkeypatch):
    """An .npy inside the .npz whose header claims 149 GiB: refused from the header alone."""
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "64M")
    with zipfile.ZipFile(saved, "a") as z:
        z.writestr("param/huge.npy", _npy_header((200000, 200000)) + b"\0" * 64)
    with pytest.raises(CheckpointError, match=r"array 'param/huge' \(float32, shape \(200000, 200000\)\) "
                                              r"needs 149\.0 GiB.*64\.0 MiB of memory available"):
        read_checkpoint(saved)


def test_zip_bomb_refused_before_inflating(tmp_path, monkeypatch):
    """A small compressed member that inflates to far more than the limit: the header check
    reads only its first bytes (zipfile stops there), so nothing is inflated."""
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "16M")
    path = tmp_path / "bomb.npz"
    n = 64 * 2**20 // 4                                # 64 MiB of zeros, ~64 KiB compressed
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("param/w.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((n,)))
            chunk = b"\0" * 2**20
            for _ in range(64):
                f.write(chunk)
        meta = io.BytesIO()
        np.save(meta, np.array(json.dumps({"format": "nncompiler-checkpoint", "version": 1})))
        z.writestr("__meta__.npy", meta.getvalue())
    assert path.stat().st_size < 2**20
    import tracemalloc
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"'param/w' \(float32, shape \(16777216,\)\) needs 64\.0 MiB"):
            read_checkpoint(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def test_a_mid_epoch_checkpoint_keeps_a_curve_metrics_count_vectors(saved):
    """auc's running totals are vectors (a count per threshold): saved as lists, accepted on load."""
    partial = {"epoch": 3, "batches": 1, "seen": 2, "rows": 4, "batch_size": 2,
               "totals": {"loss": 1.5, "metric.auc.tp": [2.0, 1.0, 0.0]}}
    rewrite(saved, _set("partial", partial))
    assert read_checkpoint(saved).meta["partial"]["totals"]["metric.auc.tp"] == [2.0, 1.0, 0.0]


def test_a_valid_checkpoint_still_loads_and_resumes(saved):
    ck = read_checkpoint(saved)
    assert ck.epoch == 2 and set(ck.params) == {"out.kernel", "out.bias"}
    m = nnc.compile(SMALL)
    h = m.fit(x=X, y=Y, epochs=3, batch_size=2, resume=saved)
    assert len(h["loss"]) == 3


def test_a_flipped_byte_anywhere_is_a_clear_error_or_harmless(saved, tmp_path):
    # every 5th byte flipped in turn: loading works (a byte nothing reads) or fails with one
    # CheckpointError naming the file; a damaged .npy header once leaked numpy's TokenError
    data = open(saved, "rb").read()
    bad = str(tmp_path / "bad.npz")
    refused = 0
    for at in range(0, len(data), 5):
        flipped = bytearray(data)
        flipped[at] ^= 0x55
        with open(bad, "wb") as f:
            f.write(bytes(flipped))
        try:
            read_checkpoint(bad)
        except CheckpointError as e:
            assert bad in str(e)
            refused += 1
    assert refused > len(data) // 5 // 2
