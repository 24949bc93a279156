#!/usr/bin/env python3
"""Every example on the Triton backend against the numpy backend (the reference), a few steps each.

On a GPU this is the interpreter-free check: the kernels run compiled for the device, with
CUDA graphs, pinned uploads and donated state as training runs them. Per example:

  model blocks  forward, loss and gradients on one batch; then `--steps` optimizer steps
                (losses step by step, parameters after the last)
  graph blocks  forward on random inputs

Tolerances (float32 on both sides; the GPU sums in another order than numpy):
  forward, loss       rtol 1e-4, atol 1e-5
  gradients           rtol 1e-3, atol 1e-5
  losses of steps     rtol 1e-3, atol 1e-5
  parameters after    rtol 1e-3, atol 1e-4; residual (batchnorm + Adam) atol 2 * lr * steps:
                      batchnorm cancels some gradients to rounding noise, and Adam divides noise
                      by its own square root, so such a weight may move by lr either way per step
The residual example's dropout draws numpy's random stream on the host (host_rng) so both
backends drop the same units. Examples run in parallel processes (`--jobs`); prints a
markdown table, `--json FILE` writes the figures; exit status 1 if any example fails.

    python bench/gpu_parity.py                          # on a CUDA machine
    python bench/gpu_parity.py --device cpu --quick     # Triton interpreter, tiny batches
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TOL = {"forward": (1e-4, 1e-5), "loss": (1e-4, 1e-5), "grad": (1e-3, 1e-5), "steps": (1e-3, 1e-5),
       "params": (1e-3, 1e-4)}
QUICK = ("iris", "linefit", "basics")


def _err(got, want, rtol, atol) -> tuple[float, bool]:
    """(max |got - want| / (atol + rtol |want|), within tolerance): 1.0 is the tolerance's edge."""
    import numpy as np
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf"), False
    if got.size == 0:
        return 0.0, True
    ratio = np.abs(got - want) / (atol + rtol * np.abs(want))
    worst = float(np.nanmax(ratio)) if not np.isnan(ratio).all() else float("inf")
    same_nan = np.array_equal(np.isnan(got), np.isnan(want))
    return worst, same_nan and worst <= 1.0


def check_example(path: str, rows: int, steps: int) -> dict:
    import functools

    import numpy as np

    import nncompiler as nnc
    import nncompiler.backends.triton as triton_backend
    from nncompiler.ir.shapes import NUMPY_DTYPE
    name = os.path.basename(path)[:-3]
    if name == "residual":      # dropout: numpy's stream on both sides
        triton_backend.Backend = functools.partial(triton_backend.Backend, host_rng=True)
    t0 = time.perf_counter()
    mt = nnc.compile(path, backend="triton")
    mn = nnc.compile(path)
    worst: dict[str, float] = {}
    ok = True

    def check(what, got, want, tol=None):
        nonlocal ok
        rtol, atol = tol or TOL[what]
        e, good = _err(got, want, rtol, atol)
        worst[what] = max(worst.get(what, 0.0), e)
        ok = ok and good

    rng = np.random.default_rng(0)
    if mn.lowered.kind == "graph":
        feeds = {}
        for k, t in mn.lowered.inputs.items():
            shape = tuple(d if isinstance(d, int) else 3 for d in t.shape)
            feeds[k] = rng.standard_normal(shape).astype(NUMPY_DTYPE[t.dtype]) if t.dtype.startswith("f") \
                else rng.integers(0, 2, shape).astype(NUMPY_DTYPE[t.dtype])
        yt, yn = mt.forward(**feeds), mn.forward(**feeds)
        for a, b in zip(yt if isinstance(yt, tuple) else (yt,), yn if isinstance(yn, tuple) else (yn,)):
            check("forward", a, b)
        return {"example": name, "kind": "graph", "ok": ok, "worst": worst, "s": time.perf_counter() - t0}

    from nncompiler.program import TrainConfig
    from nncompiler.train.dataset import training_data
    cwd = os.getcwd()
    os.chdir(ROOT)      # the train blocks name their data relative to the repository
    try:
        data = training_data(mn.lowered, mn.lowered.train or TrainConfig(), None)
    finally:
        os.chdir(cwd)
    batches = [{k: v[i * rows:(i + 1) * rows] for k, v in data.items()} for i in range(steps)]
    batch = batches[0]
    inputs = {k: v for k, v in batch.items() if k in mn.lowered.inputs}
    check("forward", mt.forward(**inputs), mn.forward(**inputs))
    lt, gt = mt.loss_and_grads(**batch)
    ln, gn = mn.loss_and_grads(**batch)
    check("loss", lt, ln)
    for k in gn:
        check("grad", gt[k], gn[k])
    for b in batches:
        st, sn = mt.step(**b), mn.step(**b)
        check("steps", st["loss"], sn["loss"])
    rtol, atol = TOL["params"]
    if name == "residual":
        atol = 2 * mn.lr * steps
    for k, v in mn.params.items():
        check("params", mt.params[k], v, (rtol, atol))
    # on sm_90 the matmuls whose operands qualify load them through TMA descriptors
    launched = mt.compiled("train_step").launch_configs().values()
    tma = sum(1 for blocks in launched if blocks.get("TMA"))
    return {"example": name, "kind": "model", "ok": ok, "worst": worst, "tma_matmuls": tma,
            "s": time.perf_counter() - t0}


def _run_one(args):
    path, rows, steps = args
    try:
        return check_example(path, rows, steps)
    except Exception as e:
        traceback.print_exc()
        return {"example": os.path.basename(path)[:-3], "ok": False, "error": f"{type(e).__name__}: {e}"[:200]}


def main(argv=None) -> int:
    import torch
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help=f"tiny batches, the examples {', '.join(QUICK)}")
    ap.add_argument("--examples", default="", help="comma list (default: every example, or --quick's)")
    ap.add_argument("--rows", type=int, default=64, help="rows per batch")
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per model")
    ap.add_argument("--jobs", type=int, default=0, help="parallel processes (default: 8 on a GPU, 1 on CPU)")
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("--md", help="write the markdown table to this file")
    a = ap.parse_args(argv)
    if a.device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    elif not torch.cuda.is_available():
        ap.error("--device cuda, but torch sees no GPU")
    if a.quick:
        a.rows, a.steps = min(a.rows, 8), min(a.steps, 2)
    paths = sorted(glob.glob(os.path.join(ROOT, "examples", "*.nn")))
    wanted = [w for w in a.examples.split(",") if w] or (list(QUICK) if a.quick else None)
    if wanted:
        paths = [p for p in paths if os.path.basename(p)[:-3] in wanted]
    jobs = a.jobs or (8 if a.device == "cuda" else 1)
    work = [(p, a.rows, a.steps) for p in paths]
    t0 = time.perf_counter()
    if jobs > 1:    # each example compiles its own kernels: spread the JIT over the cores
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(min(jobs, len(work)), maxtasksperchild=1) as pool:
            results = pool.map(_run_one, work, chunksize=1)
    else:
        results = [_run_one(w) for w in work]
    lines = [f"### parity against numpy on {a.device} ({a.rows} rows a batch, {a.steps} steps; "
             f"worst error as a fraction of its tolerance)\n",
             "| example | result | forward | loss | grads | step losses | params | TMA matmuls | s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        w = r.get("worst", {})
        cells = [f"{w[k]:.2g}" if k in w else "—" for k in ("forward", "loss", "grad", "steps", "params")]
        verdict = "ok" if r["ok"] else f"FAIL {r.get('error', '')}"
        lines.append(f"| {r['example']} | {verdict} | {' | '.join(cells)} | {r.get('tma_matmuls', '—')} "
                     f"| {r.get('s', 0):.1f} |")
    lines.append(f"\nall {len(results)} in {time.perf_counter() - t0:.0f} s; tolerances: {TOL}")
    print("\n".join(lines))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": a.device, "rows": a.rows, "steps": a.steps, "tolerances": TOL,
                       "results": results}, f, indent=1)
    if a.md:
        with open(a.md, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
