"""Robustness: bad data, numerical safety (NaN checks, logits of +-1e4), resource limits, and
regressions the fuzzer (tests/fuzz) found. docs/robustness.md lists every case with its message."""
from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.errors import CompileError, NNCError
from nncompiler.train import csvfile as data_module
from nncompiler.train.checkpoint import read_checkpoint
from nncompiler.train.safety import NonFiniteError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IRIS_CSV = os.path.join(ROOT, "examples", "data", "iris.csv")

IRIS = """model Iris {
    input  x: f32[B, 4]
    target y: i32[B]
    h   = dense(x, 8, activation=relu)
    out = dense(h, 3, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.01)
}
train Iris {
    data "iris.csv" (label="species")
    epochs 2
    batch 16
}
"""


def nnc_cli(*args, cwd, env=None):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    return subprocess.run([sys.executable, "-m", "nncompiler.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------- bad data

def _write(path, text):
    path.write_text(text)
    return path.name


BAD_CSV = [   # (file name, content, what the message must say)
    ("columns.csv", "a,b,c,d,species\n1,2,3,4,setosa\n1,2,3,setosa\n",
     "columns.csv:3:5: error: row has 4 values, expected 5 (missing a value for column 'species')"),
    ("extra.csv", "a,b,c,d,species\n1,2,3,4,setosa,9\n",
     "extra.csv:2:6: error: row has 6 values, expected 5 (extra value '9')"),
    ("nolabel.csv", "a,b,c,d,e\n1,2,3,4,1\n",
     "nolabel.csv:1: error: no label column 'species' in the header; the columns are a, b, c, d, e"),
    ("text.csv", "a,b,c,d,species\n1,2,x,4,setosa\n",
     "text.csv:2:3: error: non-numeric value 'x' in column 'c' (expected a number)"),
    ("nan.csv", "a,b,c,d,species\n1,2,nan,4,setosa\n",
     "nan.csv:2:3: error: NaN value 'nan' in column 'c' (expected a finite number)"),
    ("inf.csv", "a,b,c,d,species\n1,2,-inf,4,setosa\n",
     "inf.csv:2:3: error: infinite value '-inf' in column 'c' (expected a finite number)"),
    ("big.csv", "a,b,c,d,species\n1,2,1e39,4,setosa\n",
     "big.csv:2:3: error: value '1e39' in column 'c' is out of float32 range"),
    ("empty.csv", "", "empty.csv: error: empty file (expected a header row naming the columns)"),
    ("header.csv", "a,b,c,d,species\n", "header.csv:2: error: no data rows (the file holds only a header)"),
    ("blank.csv", "a,b,c,d,species\n1,2,,4,setosa\n",
     "blank.csv:2:3: error: missing value in column 'c' (expected a number)"),
    ("fewer.csv", "a,b,c,species\n1,2,3,setosa\n",
     "fewer.csv: error: 3 feature columns (a, b, c) besides the label column 'species', but input 'x' is "
     "declared f32[B,4]: expected 4 feature columns"),
    ("fraction.csv", "a,b,c,d,species\n1,2,3,4,1\n1,2,3,4,1.5\n",
     "fraction.csv: error: label column 'species' has the value 1.5 in data row 2, but target 'y' is "
     "declared i32[B] (integer class ids)"),
    ("latin1.csv", "a,b,c,d,species\n1,2,3,4,caf\xe9\n", None),   # written as latin-1 below
]


def _bad_npz(tmp_path):
    z = np.zeros
    cases = {   # name -> (arrays, message)
        "rows.npz": ({"x": z((10, 4), np.float32), "y": z(9, np.int32)},
                     "rows.npz: error: the arrays have different numbers of rows: x has 10, y has 9"),
        "shape.npz": ({"x": z((10, 5), np.float32), "y": z(10, np.int32)},
                      "shape.npz: error: input 'x': expected shape f32[B, 4], got shape (10, 5): dimension 1 is 5, "
                      "expected 4"),
        "rank.npz": ({"x": z((10, 4, 2), np.float32), "y": z(10, np.int32)},
                     "rank.npz: error: input 'x': expected shape f32[B, 4] (2 dimensions), got shape (10, 4, 2)"),
        "strings.npz": ({"x": np.full((10, 4), "a"), "y": z(10, np.int32)},
                        "strings.npz: error: input 'x': expected f32[B, 4], got <U1 data (expected numbers)"),
        "labels.npz": ({"x": z((10, 4), np.float32), "y": np.full(10, 0.5)},
                       "labels.npz: error: input 'y': expected i32[B], got f64 data with a non-integer value 0.5 "
                       "at index (0,)"),
        "nan.npz": ({"x": np.full((10, 4), np.nan, np.float32), "y": z(10, np.int32)},
                    "nan.npz: error: input 'x': NaN at index (0, 0) (expected finite numbers)"),
        "inf.npz": ({"x": np.full((10, 4), -np.inf), "y": z(10, np.int32)},
                    "inf.npz: error: input 'x': infinite value at index (0, 0) (expected finite numbers)"),
        "huge.npz": ({"x": np.full((10, 4), 1e300), "y": z(10, np.int32)},
                     "huge.npz: error: input 'x': value 1e+300 at index (0, 0) does not fit in f32"),
        "missing.npz": ({"x": z((10, 4), np.float32)},
                        "missing.npz: error: no array 'y' (model Iris's target y: i32[B]); the file holds x"),
        "unknown.npz": ({"x": z((10, 4), np.float32), "y": z(10, np.int32), "w": z(3)},
                        "unknown.npz: array 'w' is not an input or target of model Iris"),
    }
    for name, (arrays, _) in cases.items():
        np.savez(tmp_path / name, **arrays)
    (tmp_path / "garbage.npz").write_bytes(b"this is not a zip file")
    (tmp_path / "empty.npz").write_bytes(b"")
    out = {name: msg for name, (_, msg) in cases.items()}
    out["garbage.npz"] = "garbage.npz: error: not an .npz file (expected a zip archive of .npy arrays"
    out["empty.npz"] = "empty.npz: error: empty file (expected an .npz archive)"
    return out


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "iris.nn").write_text(IRIS)
    (tmp / "iris.csv").write_text(open(IRIS_CSV).read())
    cases = {}
    for name, text, message in BAD_CSV:
        if name == "latin1.csv":
            (tmp / name).write_bytes(text.encode("latin-1"))
            message = "latin1.csv:2: error: not a UTF-8 text file"
        else:
            (tmp / name).write_text(text)
        cases[name] = message
    cases.update(_bad_npz(tmp))
    return tmp, cases


def test_every_bad_data_file_is_one_clear_line_through_the_cli(bad_files, monkeypatch, capsys):
    from nncompiler.cli import main
    tmp, cases = bad_files
    monkeypatch.chdir(tmp)
    for name, message in cases.items():        # nnc run iris.nn --data NAME, in this process (fast)
        assert main(["run", "iris.nn", "--data", name]) == 1, name
        out, err = capsys.readouterr()
        assert err.startswith(message) and err.count("\n") == 1, (name, err)
    for name in ("text.csv", "rows.npz"):      # and as a command, for two of them: no traceback
        proc = nnc_cli("run", "iris.nn", "--data", name, cwd=tmp)
        assert proc.returncode == 1 and proc.stderr.startswith(cases[name]), proc.stderr
        assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_the_same_checks_through_the_api(bad_files):
    tmp, cases = bad_files
    from nncompiler.train.dataset import load_file
    m = nnc.compile(str(tmp / "iris.nn"))
    for name, message in cases.items():
        with pytest.raises(nnc.DataError) as info:
            load_file(str(tmp / name), m.lowered, "species")
        assert str(info.value).startswith(os.path.join(str(tmp), message)), (name, str(info.value))


def test_bad_arrays_through_fit():
    m = nnc.compile(IRIS.split("train")[0])
    x, y = np.zeros((10, 4), np.float32), np.zeros(10, np.int32)
    cases = [
        (dict(x=x, y=y[:9]), "arrays have different numbers of rows: x=10, y=9"),
        (dict(x=x[:, :3], y=y), "input 'x': expected shape f32[B, 4], got shape (10, 3): dimension 1 is 3, expected 4"),
        (dict(x=x.astype(str), y=y), "input 'x': expected f32[B, 4], got <U32 data (expected numbers)"),
        (dict(x=x, y=y + 0.5), "input 'y': expected i32[B], got f64 data with a non-integer value 0.5 at index (0,)"),
        (dict(x=np.where(np.eye(10, 4) > 0, np.nan, x), y=y), "input 'x': NaN at index (0, 0) (expected finite numbers)"),
        (dict(x=x), "missing training data for 'y'"),
        (dict(x=x, y=y, z=y), "model Iris has no input or target 'z'"),
        (dict(x=x, y=2**40 + y.astype(np.int64)), "input 'y': value 1099511627776 at index (0,) does not fit in i32"),
    ]
    for feeds, message in cases:
        with pytest.raises(nnc.DataError) as info:
            m.fit(epochs=1, **feeds)
        assert str(info.value).startswith(message), str(info.value)


def test_large_csv_files_are_read_in_bounded_memory(tmp_path, monkeypatch):
    """A 2 MB CSV: the strings of one block are alive at a time, never the whole file's."""
    rows, block = 50_000, 4096
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4)).round(4)
    names = np.array(["setosa", "versicolor", "virginica"])[rng.integers(0, 3, rows)]
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write("a,b,c,d,species\n")
        f.writelines(f"{a},{b},{c},{d},{n}\n" for (a, b, c, d), n in zip(x, names))
    size = os.path.getsize(path)
    assert size > 1_900_000
    monkeypatch.setattr(data_module, "BLOCK_ROWS", block)
    tracemalloc.start()
    try:
        features, labels, info = data_module.read_csv(path, label="species")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result = features.nbytes + labels.nbytes
    assert features.shape == (rows, 4) and info["classes"] == ["setosa", "versicolor", "virginica"]
    np.testing.assert_array_equal(labels, np.searchsorted(info["classes"], names))
    # the result twice (blocks, then their concatenation) plus one block of strings (~1 KB a row)
    assert peak < 2 * result + block * 1000, (peak, result, size)
    assert peak < rows * 100     # the cells of all rows as strings at once would take ~350 bytes a row


# --------------------------------------------------------------------------- numerical safety

def test_losses_and_softmax_stay_finite_for_logits_of_1e4():
    import torch
    import torch.nn.functional as F
    src = """model Big {
    input  x: f32[B, 3]
    target y: i32[B]
    target t: f32[B, 3]
    param  s: f32[] = 1.0
    z = s * x
    output p = softmax(z), q = sigmoid(z), ls = log_softmax(z), lse = logsumexp(z, axis=-1)
    loss sparse_categorical_crossentropy(softmax(z), y) + categorical_crossentropy(softmax(z), t) + binary_crossentropy(sigmoid(z), t)
    optimizer sgd(lr=0.1)
}
"""
    m = nnc.compile(src)
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3], [1e4, 1e4, -1e4]], np.float32)
    y = np.array([1, 0, 2], np.int32)
    t = np.eye(3, dtype=np.float32)[[1, 2, 0]]
    p, q, ls, lse = m.forward(x=x)
    for out in (p, q, ls, lse):
        assert np.isfinite(out).all()
    loss, grads = m.loss_and_grads(x=x, y=y, t=t)
    s = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    z = s * torch.tensor(x, dtype=torch.float64)
    ref = (F.cross_entropy(z, torch.tensor(y, dtype=torch.long))
           + F.cross_entropy(z, torch.tensor(t, dtype=torch.float64))
           + F.binary_cross_entropy_with_logits(z, torch.tensor(t, dtype=torch.float64)))
    ref.backward()
    assert np.isfinite(loss) and np.isfinite(grads["s"]).all()
    assert loss == pytest.approx(ref.item(), rel=1e-5)
    assert float(grads["s"]) == pytest.approx(s.grad.item(), rel=1e-4)
    np.testing.assert_allclose(ls, torch.log_softmax(torch.tensor(x, dtype=torch.float64), -1).numpy(), rtol=1e-6)
    # and training on them stays finite (the NaN check would stop it otherwise)
    m.fit(x=x, y=y, t=t, epochs=3, batch_size="all")


LINEFIT = """model Diverge {
    input  x: f32[N]
    target y: f32[N]
    param  slope: f32[] = 1.0
    pred = slope * x
    output pred
    loss mean((y - pred) ** 2)
    optimizer sgd(lr=LR)
}
"""


def _diverging(lr="0.5"):
    x = np.linspace(-10, 10, 40).astype(np.float32)
    return nnc.compile(LINEFIT.replace("LR", lr)), dict(x=x, y=(0.5 * x).astype(np.float32))


def test_nan_stops_training_naming_epoch_step_and_the_first_non_finite_op(tmp_path):
    m, data = _diverging()
    ckpt = str(tmp_path / "d.npz")
    with pytest.raises(NonFiniteError) as info:
        m.fit(epochs=500, batch_size=8, shuffle=False, checkpoint=ckpt, save_every=1, **data)
    e = info.value
    text = str(e)
    first = text.splitlines()[0]
    assert first.startswith("<string>:") and "error: training stopped at epoch" in first, text
    assert f"epoch {e.epoch}, step {e.step} (batch {e.batch} of 5)" in first
    assert "the first non-finite value is" in first and e.node is not None and e.node.loc is not None
    # the model keeps its last finite weights
    assert np.isfinite(m.params["slope"]).all()
    assert m.steps_taken == e.step - 1
    # the checkpoint on disk is that last good state, resumable from the failing batch
    ck = read_checkpoint(ckpt)
    assert np.isfinite(ck.params["slope"]).all() and ck.epoch == e.epoch - 1
    assert ck.meta["partial"]["epoch"] == e.epoch and ck.meta["partial"]["batches"] == e.batch - 1
    assert all(np.isfinite(v).all() for v in ck.meta["history"]["loss"]) and len(ck.meta["history"]["loss"]) == ck.epoch
    # without the check, training runs on into NaN
    m2, data = _diverging()
    hist = m2.fit(epochs=e.epoch + 2, batch_size=8, shuffle=False, nan_check=False, **data)
    assert not np.isfinite(hist["loss"][-1])


def test_a_parameter_going_nan_while_the_loss_stays_finite_is_found_at_its_step():
    # adam with epsilon=0 on a parameter whose gradient is 0: 0/0 in the update makes w NaN at
    # step 1, while where(isnan(w), ...) keeps the loss finite; found at the epoch's end and
    # replayed back to step 1
    src = """model M {
    input  x: f32[B, 2]
    target y: f32[B, 1]
    param  w: f32[] = 1.0
    out = dense(x, 1)
    output out
    loss mse(out, y) + where(isnan(w), 0.0, 0.0 * w)
    optimizer adam(lr=0.01, epsilon=0)
}
"""
    m = nnc.compile(src)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    with pytest.raises(NonFiniteError) as info:
        m.fit(x=x, y=x[:, :1], epochs=3, batch_size=4, shuffle=False)
    e = info.value
    assert (e.epoch, e.step, e.batch, e.param) == (1, 1, 1, "w"), str(e)
    assert "parameter 'w' became non-finite" in str(e) and e.node.op == "div"
    assert str(e).startswith("<string>:8:") and "optimizer adam" in str(e)    # the update's position
    assert np.isfinite(m.params["w"]) and m.steps_taken == 0


def test_nan_check_through_the_cli(tmp_path):
    x = np.linspace(-10, 10, 40).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=0.5 * x)
    (tmp_path / "d.nn").write_text(LINEFIT.replace("LR", "0.5") + 'train Diverge {\n    data "d.npz"\n'
                                   '    epochs 300\n    batch 8\n    shuffle false\n}\n')
    proc = nnc_cli("run", "d.nn", "--save", "d.ckpt.npz", "--save-every", "1", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "RuntimeWarning" not in proc.stderr
    assert proc.stderr.startswith("d.nn:"), proc.stderr
    assert "error: training stopped at epoch" in proc.stderr and "the first non-finite value is" in proc.stderr
    assert "note: saved the last good state to d.ckpt.npz" in proc.stderr
    ck = read_checkpoint(str(tmp_path / "d.ckpt.npz"))
    assert np.isfinite(ck.params["slope"])
    off = nnc_cli("run", "d.nn", "--no-nan-check", "--epochs", "150", "--quiet", cwd=tmp_path)
    assert off.returncode == 0 and "loss=nan" in off.stdout, off.stdout + off.stderr


# --------------------------------------------------------------------------- resource limits

DENSE = """model Wide {
    input  x: f32[B, IN]
    target y: f32[B, 1]
    h = dense(x, UNITS)
    output h
    loss mse(h, y)
    optimizer adam(lr=0.01)
}
"""


def test_a_model_that_cannot_fit_in_memory_is_refused_at_compile_time(monkeypatch):
    # 1000 x 1e8 parameters: 373 GiB before the optimizer's slots, on any machine
    with pytest.raises(CompileError) as info:
        nnc.compile(DENSE.replace("IN", "1000").replace("UNITS", "100000000"))
    text = str(info.value)
    assert text.startswith("<string>:4:9: error: model Wide needs about ")
    assert "TiB of memory (372.9 GiB of parameters, 745.8 GiB of optimizer state (adam: 2 slots per " \
           "parameter), and initialising), more than the" in text
    assert "the largest is 'h.kernel' (f32[1000,100000000], 372.5 GiB)" in text
    # with the memory available set low, a 1.5 GiB layer is refused too
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "2G")
    with pytest.raises(CompileError, match=r"more than the 2\.0 GiB available"):
        nnc.compile(DENSE.replace("IN", "4").replace("UNITS", "100000000"))
    with pytest.raises(CompileError, match=r"this value \(f32\[100000,100000\]\) needs 37\.3 GiB"):
        nnc.compile("graph G {\n    v = ones([100000, 100000])\n    output v\n}\n")


def test_a_batch_that_cannot_fit_is_refused_before_training(monkeypatch):
    m = nnc.compile(DENSE.replace("IN", "1000").replace("UNITS", "256"))
    x, y = np.zeros((4096, 1000), np.float32), np.zeros((4096, 1), np.float32)
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "8M")
    m.fit(x=x[:256], y=y[:256], epochs=1, batch_size=32)      # a step of 32 rows fits in 8 MiB
    with pytest.raises(NNCError) as info:
        m.fit(x=x, y=y, epochs=1, batch_size="all")
    assert str(info.value).startswith("one training step (batch of 4096 rows) needs about ")
    assert "(B = 4096; the largest array is the batch of input 'x', f32[B,1000] = 15.6 MiB), more than the " \
           "8.0 MiB available; use a smaller batch (--batch N)" in str(info.value)
    with pytest.raises(NNCError, match=r"evaluating the validation data \(2048 rows at once\) needs"):
        m.fit(x=x, y=y, epochs=1, batch_size=32, validation_split=0.5)
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "lots")
    with pytest.raises(NNCError, match="NNC_MEMORY_LIMIT: expected a size such as 4G"):
        m.fit(x=x, y=y, epochs=1, batch_size=32)


@pytest.mark.parametrize("source, position, message", [
    ("model M {\n    input x: f32[B, 2147483648]\n    output x\n}\n", "2:21",
     "dimension 2147483648 is too large (the limit is 2^31 - 1 = 2147483647)"),
    ("model M {\n    input x: f32[2147483647, 2147483647, 2147483647]\n    output x\n}\n", "2:14",
     "a tensor of shape [2147483647, 2147483647, 2147483647] has about 2^92 elements, more than 2^63 - 1"),
    ("graph G {\n    input x: f32[B, 2147483647, 2147483647]\n    output flatten(x)\n}\n", "3:12",
     "flatten: dimension 4611686014132420609 is too large"),
    ("graph G {\n    input x: f32[B, 4]\n    output dense(x, 99999999999)\n}\n", "3:12",
     "dense: dimension 99999999999 is too large"),
    ("graph G {\n    v = ones([65536, 65536, 65536])\n    output v\n}\n", "2:9",
     "ones: dimension 65536 is too large"),
])
def test_shape_arithmetic_cannot_overflow(source, position, message, monkeypatch):
    if "65536, 65536" in source:
        message = "ones: a tensor of shape [65536, 65536, 65536] has about 2^48 elements"
        monkeypatch.setenv("NNC_MEMORY_LIMIT", "1G")
    with pytest.raises(CompileError) as info:
        nnc.compile(source)
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"<string>:{position}: error: "), first
    assert message in first or ("this value" in first and "65536" in source), first


def test_a_refused_model_through_the_cli(tmp_path):
    (tmp_path / "wide.nn").write_text(DENSE.replace("IN", "4").replace("UNITS", "100000000"))
    proc = nnc_cli("compile", "wide.nn", cwd=tmp_path, env={"NNC_MEMORY_LIMIT": "1G"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("wide.nn:4:9: error: model Wide needs about 8.6 GiB of memory")


# --------------------------------------------------------------------------- fuzz regressions

def test_fuzz_regression_prelu_in_a_graph_block():
    # simplify's leaky-relu rule compared a non-constant slope (prelu's parameter) with 0
    m = nnc.compile("graph G {\n    input x0: f32[B, 1]\n    v1 = prelu(x0)\n    output v1\n}\n")
    np.testing.assert_array_equal(m.forward(x0=np.array([[-2.0], [3.0]], np.float32)), [[0.0], [3.0]])


def test_fuzz_regression_a_layer_bound_twice():
    src = "model M {\n    input x: f32[B, 2]\n    target y: f32[B, 3]\n    h = dense(x, 3)\n    h = dense(x, 3)\n" \
          "    output h\n    loss mse(h, y)\n    optimizer sgd\n}\n"
    with pytest.raises(CompileError, match=r"<string>:5:5: error: 'h' is already defined \(at line 4\)"):
        nnc.compile(src)


def test_fuzz_regression_unnamed_layers_and_bindings_share_names():
    src = "model M {\n    input x: f32[B, 2]\n    target y: f32[B, 3]\n    dense_1 = dense(x, 3)\n" \
          "    h = dense(x, 3) + dense_1\n    output h\n    loss mse(h, y)\n    optimizer sgd\n}\n"
    assert sorted(nnc.compile(src).params) == ["dense_1.bias", "dense_1.kernel", "dense_2.bias", "dense_2.kernel"]
    src2 = src.replace("    dense_1 = dense(x, 3)\n    h = dense(x, 3) + dense_1\n",
                       "    h = dense(x, 3) * 2\n    dense_1 = dense(x, 3)\n")
    with pytest.raises(CompileError, match="'dense_1' is already the name of an unnamed layer's parameters"):
        nnc.compile(src2)


def test_fuzz_regression_empty_and_blank_sources_are_programs():
    for text in ("", "   ", "\x00"):
        with pytest.raises(CompileError) as info:
            nnc.compile(text, filename="e.nn")
        assert str(info.value).startswith("e.nn:1:1: error: ")


def test_fuzz_regression_swish_of_a_scalar():
    # the numpy backend's fused swish wrote into numpy scalars (np.exp(t, out=t) on a rank-0 value)
    m = nnc.compile("graph G {\n    param w: f32[] = 0.5\n    input x: f32[B, 1]\n    output swish(w) * x\n}\n")
    x = np.ones((2, 1), np.float32)
    np.testing.assert_allclose(m.forward(x=x), 0.5 / (1 + np.exp(-0.5)) * x, rtol=1e-6)


@pytest.mark.parametrize("source, message", [
    # a 400-digit integer went on to float() (OverflowError) or numpy object arrays (AttributeError)
    ("graph G {\n    param w: f32[1] = normal(mean=1" + "0" * 400 + ", stddev=0.5)\n    output w\n}\n",
     "<string>:2:35: error: integer '100000000000...000000' (401 digits) is too large (integers must be "
     "below 2^63; a float is written with a point or an exponent, e.g. 1e20)"),
    ("graph G {\n    input x: f32[B, 1]\n    output clip(x, -1" + "0" * 30 + ", 1)\n}\n",
     "<string>:3:21: error: integer '100000000000...000000' (31 digits) is too large"),
    # a literal the dtype cannot hold: i32 overflowed in the generated code, f32 became inf
    ("graph G {\n    input x: i32[B, 1]\n    output x * 3000000000\n}\n",
     "<string>:3:16: error: integer 3000000000 does not fit in i32 (range -2147483648 to 2147483647)"),
    ("graph G {\n    input x: f32[B, 1]\n    output x * 1e39\n}\n",
     "<string>:3:16: error: number 1e+39 does not fit in f32 (the largest f32 is 3.4e+38)"),
])
def test_fuzz_regression_literals_too_large_for_their_type(source, message):
    with pytest.raises(CompileError) as info:
        nnc.compile(source)
    assert str(info.value).splitlines()[0].startswith(message), str(info.value)
    ok = nnc.compile("graph G {\n    input x: i32[B, 1]\n    output x * -2147483648\n}\n")   # the i32 limit itself
    assert ok.forward(x=np.ones((1, 1), np.int32)).tolist() == [[-2147483648]]
