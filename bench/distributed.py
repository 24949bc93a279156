"""Data-parallel training throughput: samples per second of `Model.fit` on the digits CNN
(examples/digits_cnn.nn, 1797 rows of 8x8 digits) for 1 and 2 ranks on this machine, and the
scaling efficiency. See docs/distributed.md for measured numbers.

    python -m bench.distributed                       # batches 32 and 256, 3 rounds
    python -m bench.distributed --batches 32 --epochs 5 --rounds 5 --json out.json

Configurations, each in fresh processes (so every one pays the same start-up and runs with
the thread count it names; OMP/OpenBLAS/MKL threads are set in the environment):

    1 rank x 1 thread    single-process fit (the fused train_step), one BLAS thread
    1 rank x 2 threads   the same with a BLAS thread per core (the whole machine, one process)
    2 ranks x 1 thread   torch.distributed over gloo: grad_step -> all-reduce -> apply_update

Each run trains one untimed warm-up epoch (graph derivation, optimisation, compilation), then
`--epochs` timed epochs (no validation), between barriers; samples/s = epochs * rows / time.
Scaling efficiency = (2-rank samples/s) / (2 x 1-rank-1-thread samples/s). The rounds
interleave the configurations so that background load on a shared machine hits them alike;
the table gives the median and the range over rounds. Because wall-clock numbers on a busy
machine say more about the neighbours than about nnc, the table also gives the CPU time per
sample summed over the ranks (`time.process_time`, every thread of every rank) and the CPU
efficiency = (1-rank CPU per sample) / (2-rank CPU per sample): the share of the 2-rank CPU
time that is the single-process work, the rest being the cost of distribution (the split
step, bucketing, the all-reduce). Perfect scaling on an idle machine would need both at 100%.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "examples", "digits_cnn.nn")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CONFIGS = (("1 rank x 1 thread", 1, 1), ("1 rank x 2 threads", 1, 2), ("2 ranks x 1 thread", 2, 1))


def worker(rank: int, world: int, store: str, batch: int, epochs: int) -> None:
    import datetime
    import nncompiler as nnc
    from nncompiler.train.dataset import training_data
    dist = None
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=120))
    m = nnc.compile(MODEL)
    data = training_data(m.lowered, m.lowered.train, None)
    rows = len(next(iter(data.values())))
    m.fit(epochs=1, batch_size=batch, seed=0, **data)            # warm-up: derive, optimise, compile
    if dist:
        dist.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    hist = m.fit(epochs=epochs, batch_size=batch, seed=1, **data)
    cpu = time.process_time() - c0
    if dist:
        dist.barrier()
    elapsed = time.perf_counter() - t0
    print(json.dumps({"elapsed": elapsed, "cpu": cpu, "samples": rows * epochs, "loss": hist["loss"][-1]}),
          flush=True)
    if dist:
        dist.destroy_process_group()


def run_config(world: int, threads: int, batch: int, epochs: int) -> dict:
    env = dict(os.environ, **{k: str(threads) for k in THREAD_VARS})
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        procs = [subprocess.Popen([sys.executable, "-m", "bench.distributed", "--worker", str(r), str(world), store,
                                   str(batch), str(epochs)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for r in range(world)]
        outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        if p.returncode != 0:
            raise SystemExit(f"a worker failed (exit {p.returncode}):\n{err}")
    ranks = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    result = ranks[0]
    result["samples_per_s"] = result["samples"] / result["elapsed"]
    result["cpu_ms_per_sample"] = 1e3 * sum(r["cpu"] for r in ranks) / result["samples"]
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.distributed", description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="32,256", help="global batch sizes (default 32,256)")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per run (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        rank, world, store, batch, epochs = args.worker
        worker(int(rank), int(world), store, int(batch), int(epochs))
        return 0
    batches = [int(b) for b in args.batches.split(",")]
    results: dict = {b: {name: [] for name, _, _ in CONFIGS} for b in batches}
    cpu: dict = {b: {name: [] for name, _, _ in CONFIGS} for b in batches}
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for rnd in range(args.rounds):
        for batch in batches:
            order = CONFIGS[rnd % len(CONFIGS):] + CONFIGS[:rnd % len(CONFIGS)]   # rotate the order
            for name, world, threads in order:
                r = run_config(world, threads, batch, args.epochs)
                results[batch][name].append(r["samples_per_s"])
                cpu[batch][name].append(r["cpu_ms_per_sample"])
                print(f"round {rnd + 1} batch {batch} {name}: {r['samples_per_s']:.0f} samples/s", file=sys.stderr)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"digits CNN (examples/digits_cnn.nn), {args.epochs} timed epochs x 1797 rows, {args.rounds} rounds, "
          f"{os.cpu_count()} CPUs, load average {load0:.1f} before and {load:.1f} after\n")
    print("| global batch | configuration | samples/s (median) | range | scaling efficiency "
          "| CPU ms per sample (all ranks) | CPU efficiency |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for batch in batches:
        med = {name: statistics.median(v) for name, v in results[batch].items()}
        cmed = {name: statistics.median(v) for name, v in cpu[batch].items()}
        base, cbase = med["1 rank x 1 thread"], cmed["1 rank x 1 thread"]
        for name, _, _ in CONFIGS:
            v = results[batch][name]
            two = name.startswith("2 ranks")
            eff = f"{med[name] / (2 * base):.0%}" if two else ""
            ceff = f"{cbase / cmed[name]:.0%}" if two else ""
            print(f"| {batch} | {name} | {med[name]:.0f} | {min(v):.0f}-{max(v):.0f} | {eff} "
                  f"| {cmed[name]:.3f} | {ceff} |")
        summary[batch] = {"median": med, "all": results[batch], "cpu_ms_per_sample": cmed,
                          "efficiency": med["2 ranks x 1 thread"] / (2 * base),
                          "cpu_efficiency": cbase / cmed["2 ranks x 1 thread"]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"epochs": args.epochs, "rounds": args.rounds, "cpus": os.cpu_count(), "load": load,
                       "results": summary}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
