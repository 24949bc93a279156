"""Data-parallel training (nncompiler/train/distributed.py) over gloo on the CPU: two ranks
equal single-process training with the global batch fixed, ranks stay identical, and a rank
that dies or hangs makes the others fail with one clear error instead of hanging."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler import cli
from nncompiler.train.dataset import training_data

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

ROOT = pathlib.Path(__file__).resolve().parents[2]
IRIS = str(ROOT / "examples" / "iris.nn")
RESIDUAL = str(ROOT / "examples" / "residual.nn")
LINEFIT = str(ROOT / "examples" / "linefit.nn")


FAULTS = str(pathlib.Path(__file__).resolve().parent / "faults")   # sitecustomize: NNC_TEST_RANK_FAULT


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNC_DIST_")}
    first = [FAULTS] if "NNC_TEST_RANK_FAULT" in extra else []
    env["PYTHONPATH"] = os.pathsep.join([*first, str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def _iris_fit(m):
    data = training_data(m.lowered, m.lowered.train, None)
    return m.fit(epochs=3, batch_size=13, validation_split=0.2, seed=0, **data)


# A rank of the API form: init_process_group, then Model.fit as usual.
WORKER = textwrap.dedent(r"""
    import datetime, json, sys
    import numpy as np
    import torch.distributed as dist
    import nncompiler as nnc
    from nncompiler.errors import NNCError
    from nncompiler.train.dataset import training_data
    rank, world, store, mode, out, timeout = sys.argv[1:7]
    MAX_LOSS = '''model M {
        input x: f32[B, 2]
        target y: f32[B]
        p = dense(x, 1)
        output p
        loss max((reshape(p, [B]) - y) ** 2)
        optimizer sgd(lr=0.01)
    }'''
    rank, world = int(rank), int(world)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=float(timeout)))
    if mode == "train":
        m = nnc.compile(sys.argv[7])                      # iris: compared with single-process training
        data = training_data(m.lowered, m.lowered.train, None)
        hist = m.fit(epochs=3, batch_size=13, validation_split=0.2, seed=0, **data)
        r = nnc.compile(sys.argv[8])                      # batchnorm and dropout: ranks stay identical
        rdata = {k: v[:300] for k, v in training_data(r.lowered, r.lowered.train, None).items()}
        rhist = r.fit(epochs=1, batch_size=32, validation_split=0.2, seed=0, **rdata)
        arrays = {**{"iris/" + k: v for k, v in {**m.params, **m.opt_state}.items()},
                  **{"res/" + k: v for k, v in {**r.params, **r.buffers, **r.opt_state}.items()}}
        s = nnc.compile(sys.argv[9])                      # loss sum(...): the gradients add up
        shist = s.fit(epochs=20, batch_size="all", seed=0, **training_data(s.lowered, s.lowered.train, None))
        arrays.update({"line/" + k: v for k, v in s.params.items()})
        try:                                              # neither a mean nor a sum: refused
            nnc.compile(MAX_LOSS).fit(x=np.arange(12, dtype=np.float32).reshape(6, 2),
                                      y=np.ones(6, np.float32), epochs=1, batch_size=6)
            refused = None
        except NNCError as e:
            refused = str(e)
        try:                                              # float64 state: refused, not rounded
            nnc.compile(MAX_LOSS.replace("f32", "f64").replace("p = dense(x, 1)", "param w: f64[2, 1] = 0.5\n p = x @ w")
                        .replace("max(", "mean(")).fit(x=np.ones((6, 2)), y=np.ones(6), epochs=1, batch_size=6)
            refused64 = None
        except NNCError as e:
            refused64 = str(e)
        np.savez(f"{out}.{rank}.npz", **arrays)
        with open(f"{out}.{rank}.json", "w") as f:
            json.dump({"iris": hist, "res": rhist, "line": shist, "refused": refused,
                       "refused64": refused64, "steps": [m.steps_taken, r.steps_taken]}, f)
    else:
        m = nnc.compile(sys.argv[7])
        data = training_data(m.lowered, m.lowered.train, None)
        try:
            m.fit(epochs=50, batch_size=8, seed=0, **data)
        except NNCError as e:
            with open(f"{out}.{rank}.err", "w") as f:
                f.write(str(e))
            sys.exit(1)
""")


def _spawn(tmp_path, mode: str, world: int = 2, timeout: float = 30, env=None, files=(IRIS, RESIDUAL, LINEFIT)):
    store = tmp_path / f"store-{mode}"
    out = tmp_path / mode
    return [subprocess.Popen([sys.executable, "-c", WORKER, str(r), str(world), str(store), mode, str(out),
                              str(timeout), *files], env=_env(**(env or {})), cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for r in range(world)], out


def _wait(procs, limit: float):
    results = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        results.append((p.returncode, stdout, stderr))
    return results


def test_grad_step_then_apply_update_is_the_fused_train_step():
    """The split step (what every rank runs) computes exactly what train_step does."""
    for path in (IRIS, RESIDUAL):
        fused, split = nnc.compile(path), nnc.compile(path)
        data = training_data(fused.lowered, fused.lowered.train, None)
        batch = {k: v[:24] for k, v in data.items()}
        for _ in range(3):
            stats = fused.step(**batch)
            out = split.run("grad_step", batch, ("input", "target"))
            args = split.arguments("apply_update", {}, ())
            args.update({k: v for k, v in out.items() if k.startswith("grad.")})
            split.state.take_outputs(split.run("apply_update", {}, args=args), "new.")
            split.state.take_outputs(out, "update.")
            split.steps_taken += 1
            assert float(out["loss"]) == stats["loss"]
        g = split.graph("apply_update")
        assert {a.attr["name"] for a in g.args_with_role("grad")} == {f"grad.{p}" for p in split.lowered.params}
        for name, value in {**fused.params, **fused.buffers, **fused.opt_state}.items():
            other = {**split.params, **split.buffers, **split.opt_state}[name]
            np.testing.assert_array_equal(value, other, err_msg=f"{path}: {name}")


def test_two_ranks_equal_single_process_training_api(tmp_path):
    """fit() in an initialised process group: 2 ranks, 120 rows in batches of 13 (the last of 3
    rows splits 1/2), equal single-process training; so does a loss summed over the rows (3
    rows, 1/2); a batchnorm+dropout model stays identical on both ranks; a loss that is neither
    a mean nor a sum over the rows is refused, and so is float64 state (the buckets are float32)."""
    procs, out = _spawn(tmp_path, "train")
    single = nnc.compile(IRIS)
    hist = _iris_fit(single)
    line = nnc.compile(LINEFIT)
    line_hist = line.fit(epochs=20, batch_size="all", seed=0, **training_data(line.lowered, line.lowered.train, None))
    for code, stdout, stderr in _wait(procs, 90):
        assert code == 0, stderr
    ranks = [np.load(f"{out}.{r}.npz") for r in range(2)]
    meta = [json.loads(pathlib.Path(f"{out}.{r}.json").read_text()) for r in range(2)]
    for name, value in {**single.params, **single.opt_state}.items():
        np.testing.assert_allclose(ranks[0][f"iris/{name}"], value, rtol=1e-5, atol=1e-6, err_msg=name)
    for name in ranks[0].files:   # identical on every rank, bit for bit
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=name)
    assert meta[0] == meta[1]
    assert meta[0]["steps"][0] == single.steps_taken == 3 * 10
    for key, values in hist.items():
        np.testing.assert_allclose(meta[0]["iris"][key], values, rtol=1e-5, atol=1e-6, err_msg=key)
    assert all(np.isfinite(v).all() for v in meta[0]["res"].values())
    for name, value in line.params.items():
        np.testing.assert_allclose(ranks[0][f"line/{name}"], value, rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(meta[0]["line"]["loss"], line_hist["loss"], rtol=1e-5)
    assert meta[0]["refused"].startswith("model M: its loss is neither a mean nor a sum over the batch's rows")
    assert meta[0]["refused64"] == ("data-parallel training keeps float32 state only; model M declares "
                                    "w (float64), opt.velocity.w (float64): train it in one process")


def test_nnc_run_nproc_2_equals_single_process(tmp_path):
    """`nnc run --nproc 2` through torch's launcher: the checkpoint (parameters, optimizer state)
    equals single-process training's; only rank 0 prints and saves."""
    args = ["run", IRIS, "--epochs", "4", "--batch", "13", "--json"]
    proc = subprocess.run([sys.executable, "-m", "nncompiler", *args, "--nproc", "2", "--save",
                           str(tmp_path / "dist.npz")], env=_env(), cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    single_out = tmp_path / "single.txt"
    with open(single_out, "w") as f:
        old, sys.stdout = sys.stdout, f
        try:
            assert cli.main([*args, "--save", str(tmp_path / "single.npz")]) == 0
        finally:
            sys.stdout = old
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    expected = [json.loads(line) for line in single_out.read_text().splitlines()]
    assert len(lines) == len(expected) == 4               # rank 0 alone prints
    for got, want in zip(lines, expected):
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[k] for k in got], [want[k] for k in want], rtol=1e-5, atol=1e-6)
    assert proc.stderr.count("saved") == 1
    d, s = np.load(tmp_path / "dist.npz"), np.load(tmp_path / "single.npz")
    assert sorted(d.files) == sorted(s.files)
    for name in d.files:
        if name != "__meta__":
            np.testing.assert_allclose(d[name], s[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.slow       # four processes and a 3 s collective timeout; the launcher test below covers a dead rank
def test_a_killed_or_hung_rank_makes_the_other_fail_clearly(tmp_path):
    """Two 2-rank groups side by side: in one, rank 1 dies at step 5 and rank 0 stops at once
    (gloo: connection closed); in the other, rank 1 stops answering at step 2 and rank 0 gives
    up after the collective timeout (3 s). Each time one NNCError on one line, no hang."""
    t0 = time.monotonic()
    (tmp_path / "killed").mkdir()
    (tmp_path / "hung").mkdir()
    killed, kout = _spawn(tmp_path / "killed", "fail", env={"NNC_TEST_RANK_FAULT": "1:5"}, timeout=30,
                          files=(IRIS,))
    hung, hout = _spawn(tmp_path / "hung", "fail", env={"NNC_TEST_RANK_FAULT": "1:2:hang"}, timeout=3,
                        files=(IRIS,))
    try:
        (code0, _, err0), (code1, _, _) = _wait(killed, 60)
        hcode0, _, herr0 = _wait(hung[:1], 60)[0]
    finally:
        hung[1].kill()
        hung[1].communicate()
    assert code1 == 1 and code0 == 1, err0
    message = pathlib.Path(f"{kout}.0.err").read_text()
    assert message.startswith("rank 0/2: distributed training failed during the gradient all-reduce (step 5): "
                              "another rank exited or did not answer within 30s: "), message
    assert hcode0 == 1, herr0
    message = pathlib.Path(f"{hout}.0.err").read_text()
    assert message.startswith("rank 0/2: distributed training failed during the gradient all-reduce (step 2): "
                              "another rank exited or did not answer within 3s: "), message
    assert "\n" not in message
    assert time.monotonic() - t0 < 60


def test_nnc_run_nproc_reports_a_failed_rank_on_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nncompiler", "run", IRIS, "--epochs", "5", "--nproc", "2"],
                          env=_env(NNC_TEST_RANK_FAULT="1:3"), cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        "nnc run --nproc 2: rank 1 failed (exit status 1); the other ranks were stopped"


def test_nproc_flag_errors(capsys):
    assert cli.main(["run", IRIS, "--nproc", "0"]) == 1
    assert "--nproc must be >= 1" in capsys.readouterr().err


def test_single_process_fit_has_no_trainer():
    from nncompiler.train.distributed import running, trainer_for
    assert running() is None and trainer_for(nnc.compile(IRIS)) is None


AUC_MODEL = """model M {
    input x: f32[B, 3]
    target y: f32[B, 1]
    p = dense(x, 1, activation=sigmoid)
    output p
    loss binary_crossentropy(p, y)
    metrics auc, precision
    optimizer sgd(lr=0.1)
}"""

AUC_WORKER = textwrap.dedent(r"""
    import datetime, json, sys
    import numpy as np
    import torch.distributed as dist
    import nncompiler as nnc
    rank, store, out, src = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=30))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(45, 3)).astype(np.float32)
    y = (x[:, :1] + rng.normal(size=(45, 1)) > 0).astype(np.float32)
    hist = nnc.compile(src).fit(x=x, y=y, epochs=2, batch_size=8, validation_split=0.2, seed=0)
    with open(f"{out}.{rank}.json", "w") as f:
        json.dump(hist, f)
    dist.destroy_process_group()
""")


def test_two_ranks_sum_the_per_threshold_counts_of_auc(tmp_path):
    """auc's parts are vectors (a count per threshold): the ranks' all-reduce carries them, so the
    epoch's and the validation's AUC equal single-process training's."""
    procs = [subprocess.Popen([sys.executable, "-c", AUC_WORKER, str(r), str(tmp_path / "store"),
                               str(tmp_path / "auc"), AUC_MODEL], env=_env(), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    for code, _, stderr in _wait(procs, 90):
        assert code == 0, stderr
    rng = np.random.default_rng(3)
    x = rng.normal(size=(45, 3)).astype(np.float32)
    y = (x[:, :1] + rng.normal(size=(45, 1)) > 0).astype(np.float32)
    single = nnc.compile(AUC_MODEL).fit(x=x, y=y, epochs=2, batch_size=8, validation_split=0.2, seed=0)
    ranks = [json.loads((tmp_path / f"auc.{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1]
    assert set(single) == {"loss", "auc", "precision", "val_loss", "val_auc", "val_precision"}
    for key, values in single.items():
        np.testing.assert_allclose(ranks[0][key], values, rtol=1e-5, atol=1e-6, err_msg=key)
