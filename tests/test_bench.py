"""Smoke test of the benchmark harness (bench/): `--quick` (tiny sizes, 2 repetitions) produces
the table and the JSON, and nnc's numpy backend computes the same numbers as the hand-written
numpy peer. Not a timing test."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:                      # bench/ lives at the top of the source tree
    sys.path.insert(0, ROOT)

from bench import cases, harness  # noqa: E402
from bench.peers_base import Runner  # noqa: E402
from bench.peers_nnc import NNC  # noqa: E402
from bench.peers_numpy import NumpyPeer  # noqa: E402
from bench.peers_torch import TorchPeer  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out.json"
    md = out.with_suffix(".md")
    code = harness.main(["--quick", "--reps", "2", "--impls", "numpy,nnc:numpy",
                         "--json", str(out), "--markdown", str(md)])
    return code, json.loads(out.read_text()), md.read_text()


@pytest.mark.slow   # a whole quick benchmark run: CI's slow step runs it
def test_quick_run_writes_table_and_json(quick_run):
    pytest.importorskip("torch")             # the reference of cases F and G
    code, doc, md = quick_run
    assert code == 0
    assert doc["quick"] is True
    assert doc["machine"]["cpu"] and doc["machine"]["numpy_blas"]
    keys = [c["key"] for c in doc["cases"]] + [s["key"] for s in doc["skipped_cases"]]
    assert keys == ["A", "B", "C", "D", "E", "F", "G10", "G50", "G200"]
    assert "| case | implementation | median ms |" in md
    for case in doc["cases"]:
        rows = {r["impl"]: r for r in case["rows"]}
        # torch eager is F's and G's reference; F has a hand-written numpy row too, G none
        ref = "torch" if case["key"][0] in "FG" else "numpy"
        want = {"numpy", "torch", "nnc:numpy"} if case["key"] == "F" else {ref, "nnc:numpy"}
        assert set(rows) == want, case["skipped"]
        # the best peer is the fastest non-nnc row (F's hand numpy or torch: whichever won)
        assert rows[ref]["check"].get("reference") and case["best_peer"] in want - {"nnc:numpy"}
        for r in rows.values():
            assert r["reps"] == 2 and r["median_ms"] > 0 and r["p10_ms"] <= r["p90_ms"]
            assert r["ratio_to_best_peer"] > 0
            assert r["cold_s"] > 0 and r["warm_s"] > 0
            assert f"| {case['key']} | " in md
        # nnc reports the size of the graph it runs
        assert rows["nnc:numpy"]["graph_nodes"] > 0
    nodes = {c["key"]: next(r for r in c["rows"] if r["nnc"])["graph_nodes"] for c in doc["cases"]}
    assert nodes["G50"] == nodes["G200"]   # the lstm is one scan whatever T (G10's single step is unrolled)


@pytest.mark.slow   # a whole quick benchmark run: CI's slow step runs it
def test_nnc_numpy_matches_hand_numpy(quick_run):
    _, doc, _ = quick_run
    for case in doc["cases"]:
        nnc_row = next(r for r in case["rows"] if r["impl"] == "nnc:numpy")
        check = nnc_row["check"]
        assert check["ok"], (case["key"], check)
        if case["key"][0] in "FG":           # against torch: other summation orders, max-pool ties
            assert check["loss"] == pytest.approx(check["ref_loss"], rel=1e-4)
        elif case["kind"] == "train":
            assert check["loss"] == pytest.approx(check["ref_loss"], rel=1e-5)
            assert check["update_rel_err"] < 1e-3
        else:
            assert check["max_rel_err"] < 1e-4


@pytest.mark.parametrize("key", ["A", "C", "D"])
def test_nnc_first_call_equals_hand_numpy_directly(key):
    """The same comparison without the harness: one call of each on identical inputs."""
    p = cases.make_case(key, quick=True)
    ref = np.array(NumpyPeer().setup(p).call(), copy=True)
    mine = NNC("numpy").setup(p).call()
    np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-6)


def test_hand_numpy_cnn_step_matches_torch():
    """Case F's hand-written numpy step (bench/peers_deep.py) against torch eager, its reference:
    the loss and every updated parameter after one SGD step."""
    p = cases.make_case("F", quick=True)
    mine, ref = NumpyPeer().setup(p), TorchPeer().setup(p)
    assert mine.call() == pytest.approx(ref.call(), rel=1e-5)
    got, want = mine.params(), ref.params()
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_check_catches_a_wrong_update():
    p = cases.make_case("B", quick=True)
    ref_runner = NumpyPeer().setup(p)
    ref = {"first": ref_runner.call(), "params": ref_runner.params()}
    wrong = {k: v.copy() for k, v in ref["params"].items()}
    wrong["h1.kernel"] += 0.5 * (wrong["h1.kernel"] - p.params["h1.kernel"])   # a 1.5x update
    assert harness.check(p, ref["first"], ref["params"], ref)["ok"]
    bad = harness.check(p, ref["first"], wrong, ref)
    assert not bad["ok"] and bad["worst_param"] == "h1.kernel"
    assert not harness.check(p, ref["first"] * 1.01, ref["params"], ref)["ok"]


class _Paced(NumpyPeer):
    """Hand-written numpy that sleeps `pause` seconds per call and records, for the runner each
    setup returns, how many calls it got: a fast and a slow implementation of the same case."""

    def __init__(self, name: str, pause: float):
        self.name, self.pause, self.calls = name, pause, []

    def setup(self, p):
        inner, count = super().setup(p), [0]
        self.calls.append(count)

        def call():
            count[0] += 1
            time.sleep(self.pause)
            return inner.call()
        return Runner(call, inner.params)


def _paced_run(monkeypatch, key: str, reps: int = 0):
    fast, slow = _Paced("fast", 0.0), _Paced("slow", 0.02)
    monkeypatch.setattr(harness, "all_impls", lambda: [fast, slow])
    p = cases.make_case(key, quick=True)
    p.reference, p.target_s, p.min_reps, p.max_reps, p.warmup = "fast", 0.1, 2, 12, 2
    args = harness.parse_args(["--rounds", "3", "--reps", str(reps)])
    result = harness.run_case(p, [fast, slow], args, lambda s: None)
    return {r["impl"]: r for r in result["rows"]}, fast, slow


def test_training_case_times_the_same_steps_on_every_implementation(monkeypatch):
    """A training step's cost depends on the training state (case G's backward values decay into
    slow denormals over the first steps): every implementation must time the same steps, not
    as many as its own speed buys. Its first (setup's) runner made exactly as many calls."""
    rows, fast, slow = _paced_run(monkeypatch, "B")
    assert rows["fast"]["own_reps"] == 12 and rows["slow"]["own_reps"] <= 5   # 0.1 s at >= 20 ms a call
    assert rows["fast"]["reps"] == rows["slow"]["reps"] == 12
    # first call + 2 warm-up + one untimed call a round + 12 timed; each impl's second runner
    # (the warm compile time) made one call
    assert fast.calls[0][0] == slow.calls[0][0] == 1 + 2 + 3 + 12
    assert fast.calls[1][0] == slow.calls[1][0] == 1


def test_inference_case_keeps_each_implementations_own_count(monkeypatch):
    rows, fast, slow = _paced_run(monkeypatch, "C")
    assert rows["fast"]["reps"] == 12 and rows["slow"]["reps"] <= 5
    assert "own_reps" not in rows["fast"]


def test_reps_flag_is_the_count_for_everyone(monkeypatch):
    rows, fast, slow = _paced_run(monkeypatch, "B", reps=4)
    assert rows["fast"]["reps"] == rows["slow"]["reps"] == 4 and "own_reps" not in rows["slow"]


def test_command_line_runs_as_a_module(tmp_path):
    out = tmp_path / "d.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--cases", "D", "--reps", "1",
                           "--impls", "numpy,nnc:numpy", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| D | **nnc:numpy** |" in proc.stdout
    assert json.loads(out.read_text())["cases"][0]["key"] == "D"


@pytest.mark.slow   # a whole quick benchmark run: CI's slow step runs it
def test_case_group_g_runs_every_sequence_length(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "g.json"
    assert harness.main(["--quick", "--cases", "g", "--reps", "1", "--impls", "nnc:numpy",
                         "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [c["key"] for c in doc["cases"]] == ["G10", "G50", "G200"]
    assert [c["rows"][0]["impl"] for c in doc["cases"]] == ["torch"] * 3       # the reference


def test_unknown_case_or_implementation_is_an_error(capsys):
    assert harness.main(["--quick", "--cases", "Z"]) == 2
    assert harness.main(["--quick", "--impls", "numpi"]) == 2
    assert "unknown" in capsys.readouterr().err
