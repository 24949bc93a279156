""".nnx files: a trained model that predicts, evaluates and fine-tunes with no .nn file, and
tampered files that fail with a clear error naming the file and what is wrong."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.cli import main
from nncompiler.train.data import read_csv
from nncompiler.train.nnx import NNXError

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "examples" / "iris.nn"
IRIS_CSV = ROOT / "examples" / "data" / "iris.csv"


@pytest.fixture(scope="module")
def iris_data():
    x, y, _ = read_csv(str(IRIS_CSV), label="species")
    return x, y


@pytest.fixture(scope="module")
def trained(tmp_path_factory, iris_data):
    """The iris model trained 3 epochs through the CLI, its checkpoint, and an .nnx exported from it."""
    folder = tmp_path_factory.mktemp("trained")
    ckpt, nnx = folder / "w.npz", folder / "iris.nnx"
    assert main(["run", str(IRIS), "--epochs", "3", "--quiet", "--save", str(ckpt)]) == 0
    assert main(["export", str(IRIS), "--weights", str(ckpt), "-o", str(nnx)]) == 0
    m = nnc.compile(str(IRIS))
    nnc.load_weights(m, str(ckpt))
    return m, nnx


def test_nnc_predict_in_an_empty_folder_prints_the_trained_models_predictions(tmp_path, trained, iris_data):
    m, nnx = trained
    x, _ = iris_data
    work = tmp_path / "empty"
    work.mkdir()
    (work / "iris.nnx").write_bytes(nnx.read_bytes())
    rows = x[:7]
    # the rows with their label column: the train block's label= says to leave it out
    lines = ["sepal_length,sepal_width,petal_length,petal_width,species"]
    lines += [",".join(f"{v:.9g}" for v in r) + ",0" for r in rows]
    (work / "rows.csv").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "nncompiler.cli", "predict", "iris.nnx", "--input", "rows.csv"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(work)) == ["iris.nnx", "rows.csv"]       # no .nn file anywhere near
    out = res.stdout.strip().splitlines()
    assert out[0] == "out0,out1,out2"
    got = np.array([[float(v) for v in line.split(",")] for line in out[1:]])
    want = m.forward(x=rows)              # the trained model, compiled from its source
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert "freshly initialised" not in res.stderr


def test_nnc_eval_of_an_nnx_file(trained, iris_data, capsys):
    m, nnx = trained
    x, y = iris_data
    assert main(["eval", str(nnx), "--data", str(IRIS_CSV), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = m.evaluate(x=x, y=y)
    assert got == pytest.approx(want, rel=1e-6)
    assert main(["eval", str(nnx)]) == 1
    assert capsys.readouterr().err.strip() == (f"{nnx}: give the data to evaluate on: --data PATH "
                                               "(an .nnx file holds no data)")


def test_the_other_commands_take_an_nnx_file(trained, tmp_path, capsys):
    _, nnx = trained
    assert main(["compile", str(nnx)]) == 0
    assert "h.kernel    f32[4,16]  64" in capsys.readouterr().out
    # fine-tuning from the shell: the file's train settings, new data, a checkpoint of the result
    ckpt = tmp_path / "tuned.npz"
    assert main(["run", str(nnx), "--data", str(IRIS_CSV), "--epochs", "2", "--save", str(ckpt)]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["epoch=1", "epoch=2"]
    tuned = tmp_path / "tuned.nnx"
    assert main(["export", str(nnx), "--weights", str(ckpt), "-o", str(tuned)]) == 0
    ck = np.load(ckpt)
    np.testing.assert_array_equal(nnc.load(str(tuned)).params["h.kernel"], ck["param/h.kernel"])
    # --format nnx whatever the name; --no-train: no training graph, no optimizer slots
    small = tmp_path / "small.bin"
    assert main(["export", str(IRIS), "--format", "nnx", "--no-train", "-o", str(small)]) == 0
    names = zipfile.ZipFile(small).namelist()
    assert "predict.ir" in names and "forward.ir" not in names and not any(n.startswith("opt/") for n in names)


def test_load_predicts_evaluates_and_fine_tunes_exactly_as_the_source_model(tmp_path, iris_data):
    x, y = iris_data
    m = nnc.compile(str(IRIS))
    m.fit(x=x, y=y, epochs=2, shuffle=False)
    path = tmp_path / "m.nnx"
    m.save(str(path))
    loaded = nnc.load(str(path))
    np.testing.assert_array_equal(loaded.forward(x=x), m.forward(x=x))
    assert loaded.evaluate(x=x, y=y) == m.evaluate(x=x, y=y)
    assert loaded.steps_taken == m.steps_taken and loaded.lr == m.lr
    # fine-tuning continues adam from the saved slots: the same steps as the original model
    h1 = loaded.fit(x=x, y=y, epochs=1, shuffle=False)
    h0 = m.fit(x=x, y=y, epochs=1, shuffle=False)
    assert h1 == h0
    for k, v in m.params.items():
        np.testing.assert_array_equal(loaded.params[k], v)


def test_without_the_training_graph_it_predicts_but_cannot_fine_tune(tmp_path, iris_data):
    x, y = iris_data
    m = nnc.compile(str(IRIS))
    path = tmp_path / "m.nnx"
    m.save(str(path), train=False)
    names = zipfile.ZipFile(path).namelist()
    assert "forward.ir" not in names and not any(n.startswith("opt/") for n in names)
    loaded = nnc.load(str(path))
    np.testing.assert_array_equal(loaded.forward(x=x[:5]), m.forward(x=x[:5]))
    assert loaded.evaluate(x=x, y=y)["loss"] == pytest.approx(m.evaluate(x=x, y=y)["loss"], rel=1e-6)
    assert loaded.lowered.optimizer is None


# ---------------------------------------------------------------------------- tampering

def _rewrite(src: Path, dst: Path, edit_manifest=None, entries: dict | None = None, rehash: bool = False):
    """Copy an .nnx, replacing entries and editing the manifest; `rehash` records the new entries'
    sizes and hashes in the manifest, as a forger would."""
    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
    files.update(entries or {})
    meta = json.loads(files["manifest.json"])
    if rehash:
        for n in entries or {}:
            meta["entries"][n] = {"size": len(files[n]), "sha256": hashlib.sha256(files[n]).hexdigest()}
    if edit_manifest:
        edit_manifest(meta)
    files["manifest.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    return dst


def _error(path) -> str:
    with pytest.raises(NNXError) as e:
        nnc.load(str(path))
    assert str(path) in str(e.value)
    return str(e.value)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "iris.nnx"
    nnc.compile(str(IRIS)).save(str(path))
    return path


def test_a_flipped_byte_in_the_weights_is_refused(tmp_path, saved):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo("param/h.kernel.npy")
    # the entry's data starts after its local header (30 bytes + name + extra); flip its last byte
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.file_size - 1] ^= 0x40
    bad = tmp_path / "flipped.nnx"
    bad.write_bytes(bytes(data))
    msg = _error(bad)
    assert "Bad CRC-32 for file 'param/h.kernel.npy'" in msg


def test_a_weight_replaced_behind_the_manifests_back_is_refused(tmp_path, saved):
    buf = io.BytesIO()
    np.save(buf, np.ones((4, 16), np.float32))
    msg = _error(_rewrite(saved, tmp_path / "swapped.nnx", entries={"param/h.kernel.npy": buf.getvalue()}))
    assert "entry 'param/h.kernel.npy' does not match its SHA-256 in the manifest" in msg


def test_an_edited_manifest_is_refused(tmp_path, saved):
    def widen(meta):
        meta["params"]["h.kernel"] = "f32[4,17]"
    msg = _error(_rewrite(saved, tmp_path / "edited.nnx", widen))
    assert "graph 'predict' takes param 'h.kernel' as f32[4,16], the manifest says f32[4,17]" in msg


def test_a_newer_format_version_is_refused(tmp_path, saved):
    msg = _error(_rewrite(saved, tmp_path / "v99.nnx", lambda meta: meta.update(version=99)))
    assert ".nnx format version 99 is newer than this nncompiler reads (1); upgrade nncompiler" in msg
    msg = _error(_rewrite(saved, tmp_path / "vbad.nnx", lambda meta: meta.update(version="1")))
    assert "manifest field 'version' must be a positive integer, got '1'" in msg


def test_a_huge_shape_header_is_refused_before_anything_is_read(tmp_path, saved, monkeypatch):
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "1G")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**7, 10**7)})
    msg = _error(_rewrite(saved, tmp_path / "huge.nnx", entries={"param/h.kernel.npy": header.getvalue()},
                          rehash=True))
    assert "array 'param/h.kernel' (float32, shape (10000000, 10000000)) needs 363.8 TiB" in msg
    assert "more than the 1.0 GiB of memory available (NNC_MEMORY_LIMIT)" in msg


def test_an_object_array_is_never_unpickled(tmp_path, saved):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": (4, 16)})
    msg = _error(_rewrite(saved, tmp_path / "pickle.nnx", entries={"param/h.kernel.npy": header.getvalue()},
                          rehash=True))
    assert "cannot read array 'param/h.kernel': it holds Python objects (pickled data is not loaded)" in msg


def test_nan_weights_are_refused_unless_allowed(tmp_path, saved):
    buf = io.BytesIO()
    w = np.zeros((4, 16), np.float32)
    w[1, 2] = np.nan
    np.save(buf, w)
    bad = _rewrite(saved, tmp_path / "nan.nnx", entries={"param/h.kernel.npy": buf.getvalue()}, rehash=True)
    assert "error: array 'param/h.kernel' holds NaN at index (1, 2)" in _error(bad)
    assert np.isnan(nnc.load(str(bad), allow_nonfinite=True).params["h.kernel"][1, 2])


def test_a_forged_graph_is_parsed_and_checked(tmp_path, saved):
    with zipfile.ZipFile(saved) as z:
        text = z.read("predict.ir").decode()
    broken = text.replace("matmul", "frobnicate", 1).encode()
    msg = _error(_rewrite(saved, tmp_path / "graph.nnx", entries={"predict.ir": broken}, rehash=True))
    assert "entry 'predict.ir' is not a valid graph" in msg and "frobnicate" in msg


def test_a_forged_graph_with_a_huge_value_is_refused_before_it_runs(tmp_path, saved, monkeypatch):
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "1G")
    with zipfile.ZipFile(saved) as z:
        text = z.read("predict.ir").decode()
    lines = text.splitlines()
    huge = '  %11 = broadcast_to(%2) {shape=[100000, 100000, 100]} : f32[100000,100000,100]  loc("iris.nn":6:11)'
    forged = "\n".join(lines[:-2] + [huge, lines[-2].replace("out=%10", "out=%11"), lines[-1]]) + "\n"
    msg = _error(_rewrite(saved, tmp_path / "bomb.nnx", entries={"predict.ir": forged.encode()}, rehash=True))
    assert "iris.nn:6:11: error: this value (f32[100000,100000,100]) needs 3.6 TiB, more than the 1.0 GiB of memory available" in msg


def test_exported_graphs_name_the_source_file_without_its_folders(saved):
    with zipfile.ZipFile(saved) as z:
        text = z.read("forward.ir").decode()
    assert 'loc("iris.nn":5:11)' in text and str(ROOT) not in text


@pytest.mark.parametrize("content, expected", [
    (b"not a zip at all", "not an .nnx model (cannot read it as a zip archive"),
    (None, "no such file"),
])
def test_not_an_nnx_file(tmp_path, content, expected):
    path = tmp_path / "x.nnx"
    if content is not None:
        path.write_bytes(content)
    assert expected in _error(path)


def test_the_cli_reports_a_tampered_file_without_a_traceback(tmp_path, saved, capsys):
    bad = _rewrite(saved, tmp_path / "v2.nnx", lambda meta: meta.update(version=2))
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,c,d\n1,2,3,4\n")
    assert main(["predict", str(bad), "--input", str(rows)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"{bad}: .nnx format version 2 is newer than this nncompiler reads (1); upgrade nncompiler"


def test_a_flipped_byte_anywhere_is_a_clear_error_or_harmless(tmp_path, saved):
    # every 7th byte of the file flipped in turn (the manifest, graphs, weights, zip headers):
    # loading either works (a byte zip never reads, such as a timestamp) or fails with an NNXError
    # naming the file -- never a zipfile/zlib/json traceback. The manifest's own CRC was the hole.
    data = saved.read_bytes()
    bad = tmp_path / "bad.nnx"
    refused = 0
    for at in range(0, len(data), 7):
        flipped = bytearray(data)
        flipped[at] ^= 0x55
        bad.write_bytes(bytes(flipped))
        try:
            nnc.load(str(bad))
        except NNXError as e:
            assert str(bad) in str(e)
            refused += 1
    assert refused > len(data) // 7 // 2     # most bytes matter
