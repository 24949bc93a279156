"""bench/gpu_check.sh's dry run on the CPU (`--device cpu --quick`): the same scripts a GPU
machine runs, with the kernels in the Triton interpreter on tiny batches. Checks what they
write, not how fast anything is."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

pytest.importorskip("torch")
pytest.importorskip("triton")

from bench.gpu_parity import _err  # noqa: E402


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    env = {**os.environ, "PYTHON": sys.executable, "NNC_WHEELS": "/nonexistent"}   # lark is installed here
    proc = subprocess.run(["bash", os.path.join(ROOT, "bench", "gpu_check.sh"), "--device", "cpu", "--quick",
                           str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return proc, out


@pytest.mark.slow   # runs gpu_check.sh end to end (~30 s): CI's slow step runs it
def test_dry_run_checks_parity_and_writes_the_benchmark(dry_run):
    proc, out = dry_run
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    parity = json.loads((out / "parity.json").read_text())
    assert {r["example"] for r in parity["results"]} == {"iris", "linefit", "basics"}
    assert all(r["ok"] for r in parity["results"])
    iris = next(r for r in parity["results"] if r["example"] == "iris")
    assert set(iris["worst"]) == {"forward", "loss", "grad", "steps", "params"}
    bench = json.loads((out / "gpu_step.json").read_text())
    impls = [r["impl"] for r in bench["mlp"]]
    assert any(i.startswith("nnc triton") for i in impls) and "torch eager" in impls
    assert all(r["median_ms"] > 0 for r in bench["mlp"]), bench["mlp"]
    assert bench["precision"] == "fp32"
    cnn = {r["impl"]: r for r in bench["cnn"]}       # the digits CNN step: convs and pooling are kernels
    nnc_cnn = next(r for i, r in cnn.items() if i.startswith("nnc triton"))
    assert nnc_cnn["median_ms"] > 0 and nnc_cnn["plan_kernels"] == 10 and "torch eager" in cnn
    assert bench["bandwidth"]["rows"][0]["plan_kernels"] == 1
    loop, unrolled = (next(r for r in bench["rnn"] if r["impl"].startswith(f"nnc triton, scans {w}"))
                      for w in ("as loops", "unrolled"))
    assert loop["median_ms"] > 0 and unrolled["median_ms"] > 0
    assert loop["plan_kernels"] < unrolled["plan_kernels"]      # bodies generated once, not per step
    summary = (out / "summary.md").read_text()
    assert "| iris | ok |" in summary and "Adam training step" in summary


def test_errors_are_measured_against_the_tolerance():
    assert _err([1.0, 2.0], [1.0, 2.0], 1e-4, 1e-5) == (0.0, True)
    worst, ok = _err([1.001], [1.0], 1e-4, 1e-5)
    assert not ok and worst == pytest.approx(1e-3 / (1e-5 + 1e-4), rel=1e-6)
    assert _err([np.nan], [1.0], 1e-4, 1e-5)[1] is False
    assert _err([1.0, 2.0], [1.0], 1e-4, 1e-5)[1] is False     # shapes differ
