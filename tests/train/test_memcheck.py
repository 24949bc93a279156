"""Memory checks for predict, evaluate and graph blocks (nncompiler.train.memcheck):
a clear error before the allocation, never a MemoryError traceback."""
from __future__ import annotations

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.cli import main
from nncompiler.train.memory import ResourceError

OUTER = """
graph G {
    input x: f32[N]
    y = expand_dims(x, -1) * expand_dims(x, 0)
    output y
}
"""
WIDE = """
model W {
    input  x: f32[B, 4]
    target y: f32[B, 1]
    h = dense(x, 4096)
    out = dense(h, 1)
    output out
    loss mse(out, y)
    optimizer sgd(lr=0.1)
}
"""


def test_graph_block_too_big_is_refused_through_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "64M")
    (tmp_path / "g.nn").write_text(OUTER)
    np.save(tmp_path / "x.npy", np.ones(10000, np.float32))     # 40 KB in, 381 MiB out
    assert main(["run", str(tmp_path / "g.nn"), "--feed", f"x={tmp_path / 'x.npy'}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("running graph G needs about 381.5 MiB of memory (N = 10000; the largest array "
                          "is mul at "), err
    assert "more than the 64.0 MiB available; feed smaller arrays" in err
    np.save(tmp_path / "x.npy", np.arange(3, dtype=np.float32))  # small: runs, and the values are right
    assert main(["run", str(tmp_path / "g.nn"), "--feed", f"x={tmp_path / 'x.npy'}"]) == 0
    assert "[[0. 0. 0.]\n [0. 1. 2.]\n [0. 2. 4.]]" in capsys.readouterr().out


def test_predict_checks_a_chunk_and_names_the_batch_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "8M")
    (tmp_path / "w.nn").write_text(WIDE)
    np.save(tmp_path / "x.npy", np.ones((4096, 4), np.float32))  # h: 4096 x 4096 f32 = 64 MiB
    argv = ["predict", str(tmp_path / "w.nn"), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.npy")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("predicting 4096 rows at once needs about "), err
    assert "use a smaller --batch" in err and not (tmp_path / "p.npy").exists()
    assert main(argv + ["--batch", "64"]) == 0                  # 64 rows a chunk fit
    assert np.load(tmp_path / "p.npy").shape == (4096, 1)


def test_evaluate_is_checked(monkeypatch):
    m = nnc.compile(WIDE)
    x, y = np.ones((4096, 4), np.float32), np.zeros((4096, 1), np.float32)
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "8M")
    with pytest.raises(ResourceError, match=r"evaluating 4096 rows at once needs about .* more than the 8\.0 MiB"):
        m.evaluate(x=x, y=y)
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "1G")
    record = m.evaluate(x=x[:8], y=y[:8])
    pred = m.predict(x=x[:8])
    assert record["loss"] == pytest.approx(float(np.mean(pred ** 2)), rel=1e-5)


def test_predict_through_the_python_api_is_refused_before_allocating(monkeypatch):
    import tracemalloc
    m = nnc.compile(WIDE)
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "64M")
    huge = np.broadcast_to(np.ones(4, np.float32), (10 ** 9, 4))   # a view: 16 bytes of data
    tracemalloc.start()
    try:
        for call in (m.predict, m.forward, m):          # the estimate is remembered: refused each time
            # the hidden layer alone: 1e9 * 4096 * 4 bytes = 14.9 TiB
            with pytest.raises(ResourceError, match=r"^predicting 1000000000 rows at once needs about "
                                                    r"\d+\.\d TiB of memory \(B = 1000000000; the largest array is "
                                                    r"matmul at .*, f32\[B,4096\] = 14\.9 TiB\), more than the "
                                                    r"64\.0 MiB available; give predict a batch_size$"):
                call(x=huge)
        assert tracemalloc.get_traced_memory()[1] < 1 << 20     # nothing near the batch's size was allocated
    finally:
        tracemalloc.stop()
    x = np.arange(32, dtype=np.float32).reshape(8, 4) / 10
    p = m.params
    want = (x @ p["h.kernel"] + p["h.bias"]) @ p["out.kernel"] + p["out.bias"]
    np.testing.assert_allclose(m.predict(x=x), want, rtol=1e-5)     # a batch that fits runs


def test_graph_blocks_through_the_python_api_are_checked(monkeypatch):
    m = nnc.compile(OUTER)
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "64M")
    with pytest.raises(ResourceError, match=r"^running graph G needs about 381\.5 MiB .* feed smaller arrays$"):
        m.forward(x=np.ones(10000, np.float32))
    np.testing.assert_array_equal(m.forward(x=np.arange(3, dtype=np.float32)), np.outer([0, 1, 2], [0, 1, 2]))
