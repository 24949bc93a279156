"""The IREE side: the on-disk module cache, the two drivers, device arrays, and `auto`."""
from __future__ import annotations

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.backends import get_backend, resolve_auto
from nncompiler.backends.mlir import Backend, runtime
from nncompiler.cli import main
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType

from mlir_testlib import EXAMPLES, example_path, requires_iree

TINY = """
graph Tiny {
    input x: f32[B, 3]
    output tanh(x) * 2.0 + 1.0
}
"""


def tiny_graph(scale: float = 2.0):
    b = Builder("predict")
    x = b.argument("x", "input", TensorType("f32", ("B", 3)))
    return b.build({"y": b.add(b.mul(b.tanh(x), b.scalar(scale)), b.scalar(1.0))})


# ---- the module cache ------------------------------------------------------------------------

@requires_iree
def test_modules_are_cached_on_disk_by_text_and_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(runtime, "_MEMO", {})
    monkeypatch.setattr(runtime, "STATS", {"compiled": 0, "disk_hits": 0, "memory_hits": 0})
    g = tiny_graph(3.25)      # a module no other test compiles
    x = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)
    want = np.tanh(x) * 3.25 + 1
    y = Backend().to_numpy(Backend().compile(g)({"x": x})["y"])
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    files = list((tmp_path / "mlir").iterdir())
    assert [f.suffix for f in files] == [".vmfb"]                    # no temp file left behind
    assert runtime.STATS["compiled"] == 1
    runtime._MEMO.clear()                                             # a new process: from disk
    y = Backend().to_numpy(Backend().compile(g)({"x": x})["y"])
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    assert runtime.STATS == {"compiled": 1, "disk_hits": 1, "memory_hits": 0}
    # the key covers the text, the flags, IREE's version and the host CPU
    text = Backend().emit(g)
    assert runtime.cache_key(text, runtime.FLAGS) != runtime.cache_key(text, runtime.FLAGS + ("--x",))
    assert runtime.cache_key(text, runtime.FLAGS) != runtime.cache_key(text + " ", runtime.FLAGS)
    assert files[0].name == runtime.cache_key(text, runtime.FLAGS) + ".vmfb"


@requires_iree
def test_an_unwritable_cache_only_costs_recompiles(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("NNC_CACHE_DIR", str(blocked))
    monkeypatch.setattr(runtime, "_MEMO", {})
    x = np.ones((1, 3), np.float32)
    y = Backend().to_numpy(Backend().compile(tiny_graph())({"x": x})["y"])
    np.testing.assert_allclose(y, np.tanh(x) * 2 + 1, rtol=1e-5, atol=1e-6)


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("NNC_CACHE_DIR", raising=False)
    assert runtime.cache_dir().parts[-3:] == (".cache", "nncompiler", "mlir")
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path))
    assert runtime.cache_dir() == tmp_path / "mlir"


# ---- drivers and device arrays --------------------------------------------------------------

@requires_iree
def test_small_calls_run_inline_big_ones_on_the_thread_pool(monkeypatch):
    fn = Backend().compile(tiny_graph())
    x = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
    want = np.tanh(x) * 2 + 1
    monkeypatch.setattr(runtime, "FORCED_DRIVER", None)
    np.testing.assert_allclose(Backend().to_numpy(fn({"x": x})["y"]), want, rtol=1e-5, atol=1e-6)
    assert fn.last_driver == "local-sync"
    monkeypatch.setattr(runtime, "TASK_WORK", 100)
    monkeypatch.setattr(runtime, "TASK_WORK_PER_OP", 10)
    monkeypatch.setattr(runtime, "TASK_MIN_CORES", 1)
    y = fn({"x": x})["y"]
    assert fn.last_driver == "local-task"
    np.testing.assert_allclose(Backend().to_numpy(y), want, rtol=1e-5, atol=1e-6)
    # arrays move freely between the drivers
    monkeypatch.setattr(runtime, "FORCED_DRIVER", "local-sync")
    z = fn({"x": y})["y"]
    assert fn.last_driver == "local-sync"
    np.testing.assert_allclose(Backend().to_numpy(z), np.tanh(want) * 2 + 1, rtol=1e-5, atol=1e-6)


def _conv_graph(n=64, hw=32, c=32, f=64):
    b = Builder("conv")
    x = b.argument("x", "input", TensorType("f32", (n, hw, hw, c)))
    w = b.argument("w", "param", TensorType("f32", (3, 3, c, f)))
    y = b.conv(x, w, stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    return b.build({"y": b.tanh(y)})


def _long_scan_graph(T=200, units=16):
    s = Builder("cell")
    c = s.argument("c", "carry", TensorType("f32", ("B", units)))
    x = s.argument("x", "input", TensorType("f32", ("B", units)))
    w = s.argument("w", "param", TensorType("f32", (units, units)))
    h = s.tanh(s.add(s.matmul(c, w), x))
    body = s.build({"c": h})
    b = Builder("rnn")
    c0 = b.argument("c0", "param", TensorType("f32", ("B", units)))
    xs = b.argument("xs", "param", TensorType("f32", ("B", T, units)))
    w = b.argument("w", "param", TensorType("f32", (units, units)))
    (hT,) = b.loop(body, [c0], [xs], [w], axis=1)
    return b.build({"h": hT})


def test_work_counts_a_conv_by_its_products_and_a_scan_per_step():
    from nncompiler.backends.mlir.plan import op_count, work, work_terms
    g = _conv_graph()
    assert work(work_terms(g), {}) == 64 * 32 * 32 * 64 * (3 * 3 * 32 + 1)   # conv + tanh, both counted
    assert op_count(g) == 2
    g = _long_scan_graph(T=200)
    per_step = 32 * 16 * 16 + 2 * 32 * 16            # matmul products, add, tanh
    assert work(work_terms(g), {"B": 32}) == 200 * per_step + 32 * 16      # + the scan_out
    assert op_count(g) == 200 * 3 + 1


def test_the_thread_pool_takes_big_dispatches_not_many_small_ones():
    from nncompiler.backends.mlir.plan import op_count, work, work_terms
    conv, scan = _conv_graph(), _long_scan_graph(T=2000)
    conv_work, scan_work = work(work_terms(conv), {}), work(work_terms(scan), {"B": 32})
    assert scan_work > runtime.TASK_WORK                       # as much work in all as a big call ...
    assert runtime.choose_driver(conv_work, op_count(conv), cores=2) == "local-task"
    assert runtime.choose_driver(scan_work, op_count(scan), cores=2) == "local-sync"   # ... in tiny steps
    assert runtime.choose_driver(conv_work, op_count(conv), cores=1) == "local-sync"
    small = _conv_graph(n=1, hw=8, c=3, f=4)
    assert runtime.choose_driver(work(work_terms(small), {}), op_count(small), cores=2) == "local-sync"


@requires_iree
def test_scalars_are_uploaded_once():
    be = Backend()
    assert be.to_device(np.float32(0.01)) is be.to_device(np.float32(0.01))
    assert be.to_device(np.float32(0.01)) is not be.to_device(np.float32(0.02))
    assert float(be.to_numpy(be.to_device(np.int32(7)))) == 7


@requires_iree
def test_results_are_device_arrays_that_float_like_numpy_scalars():
    fn = Backend().compile(tiny_graph())
    out = fn({"x": np.zeros((2, 3), np.float32)})
    from iree.runtime import DeviceArray
    assert isinstance(out["y"], DeviceArray)
    assert float(Backend().compile(_sum_graph())({"x": np.ones((2, 3), np.float32)})["s"]) == 6.0


def _sum_graph():
    b = Builder("total")
    x = b.argument("x", "input", TensorType("f32", ("B", 3)))
    return b.build({"s": b.sum(x, axes=(0, 1), keepdims=False)})


@requires_iree
def test_emit_vmfb_for_a_named_cpu(tmp_path):
    out = tmp_path / "tiny.vmfb"
    src = tmp_path / "tiny.nn"
    src.write_text(TINY)
    assert main(["compile", str(src), "--backend", "mlir", "--emit", "vmfb", "--target", "x86-64-v3",
                 "-o", str(out)]) == 0
    data = out.read_bytes()
    assert data[:2] == b"PK" and b"IREE" in data            # a vmfb archive around the flatbuffer


@requires_iree
@pytest.mark.slow
def test_dropout_noise_is_numpys(example_pair):
    """rng_uniform is drawn on the host by numpy's generator: training with dropout matches."""
    if "residual" not in EXAMPLES:
        pytest.skip("no example with dropout")
    p = example_pair("residual")
    g = p.mlir.graph("train_step")
    assert any(n.op == "rng_uniform" for n in g.nodes)
    fn = p.mlir.compiled("train_step")
    assert fn.rng and all(r.name.startswith("rng") for r in fn.rng)


# ---- auto ---------------------------------------------------------------------------------------

def test_auto_picks_mlir_for_big_models_numpy_for_small_ones(monkeypatch):
    monkeypatch.setattr(runtime, "_AVAILABLE", True)
    small = nnc.compile(example_path("iris")).lowered
    big = nnc.compile(example_path("digits")).lowered
    assert resolve_auto() == "numpy"                 # nothing to measure
    assert resolve_auto(small) == "numpy"
    assert resolve_auto(big) == "mlir"
    assert resolve_auto(big.forward) == "mlir"
    monkeypatch.setattr(runtime, "_AVAILABLE", False)  # no IREE: numpy whatever the size
    assert resolve_auto(big) == "numpy"
    assert type(get_backend("auto")).__module__ == "nncompiler.backends.numpy"


def test_auto_threshold_is_100k_elements_of_forward_work(monkeypatch):
    monkeypatch.setattr(runtime, "_AVAILABLE", True)
    for n, want in ((3000, "numpy"), (3200, "mlir")):    # 32 rows x n columns, ~1 op each
        b = Builder("forward")
        x = b.argument("x", "input", TensorType("f32", ("B", n)))
        assert resolve_auto(b.build({"y": b.neg(x)})) == want


# ---- a cache that cannot be poisoned (issue 13, finding 3) -----------------------------------

@requires_iree
def test_a_flipped_byte_in_a_cached_vmfb_is_detected_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(runtime, "_MEMO", {})
    monkeypatch.setattr(runtime, "STATS", {"compiled": 0, "disk_hits": 0, "memory_hits": 0})
    g = tiny_graph(1.75)
    x = np.ones((1, 3), np.float32)
    Backend().compile(g)
    (entry,) = (tmp_path / "mlir").iterdir()
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0x40                                      # native code, one bit changed
    entry.write_bytes(bytes(data))
    runtime._MEMO.clear()
    with pytest.warns(UserWarning, match="failed its integrity check"):
        y = Backend().to_numpy(Backend().compile(g)({"x": x})["y"])
    np.testing.assert_allclose(y, np.tanh(x) * 1.75 + 1, rtol=1e-5, atol=1e-6)
    assert runtime.STATS["compiled"] == 2 and runtime.STATS["disk_hits"] == 0
    assert entry.read_bytes() != bytes(data)                          # rebuilt in place


def test_the_mlir_cache_directory_is_private(tmp_path, monkeypatch):
    import os
    import stat
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path / "new"))
    path = runtime.cache_dir()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o700
    os.chmod(tmp_path / "new", 0o770)
    with pytest.raises(nnc.NNCError, match=r"writable by group or others .*chmod go-w"):
        runtime.cache_dir()
