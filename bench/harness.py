"""Run the cases on every available implementation, check them against hand-written numpy,
time them, and report a markdown table and JSON.

Per (case, implementation):
  1. set up (nnc: `nnc.compile(source, backend=...)` + `set_params`; peers build their model
     from the same initial weights), timed as `setup_s`;
  2. the first call (compilation for nnc/jit peers), timed as `first_ms`, whose result is
     checked against the hand-numpy reference: for a training step the loss and the
     parameter update (new - initial) of every parameter; otherwise the outputs;
  3. warm-up calls, whose times set `reps` from the case's time budget (unless `--reps`); a
     training case's implementations all get the largest of their counts (`same_steps`), so
     that they time the same steps of the same training run;
  4. once every implementation of the case is ready, the timed calls, interleaved: `--rounds`
     rounds (default 5), each running every implementation in turn (rotating the order) for
     reps/rounds calls after one untimed call, so that a change in the machine's background
     load hits every implementation alike; gc is disabled while timing, as timeit does.
The table reports the median, the p10-p90 spread, the minimum, and the ratio of the median to
the best peer's median (peers: every implementation that is not nnc).
"""
from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import json
import math
import os
import platform
import pstats
import sys
import time

import numpy as np

from . import cases as cases_mod
from .peers import all_impls
from .peers_base import Unsupported, configure_threads

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
              "OPENBLAS_L2_SIZE", "OMP_WAIT_POLICY", "XLA_FLAGS", "TF_NUM_INTRAOP_THREADS",
              "TF_NUM_INTEROP_THREADS", "KERAS_BACKEND")

LOSS_RTOL = 1e-4          # first-step loss vs hand numpy (relative)
OUT_RTOL, OUT_ATOL = 1e-4, 1e-6


# ---- the machine --------------------------------------------------------------------------------

def _cpuinfo() -> dict:
    out = {"cpu": platform.processor() or "unknown"}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return out
    fields = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = (s.strip() for s in line.split(":", 1))
            fields.setdefault(k, v)
    out["cpu"] = fields.get("model name", out["cpu"])
    for key, name in (("cpu family", "family"), ("model", "model"), ("stepping", "stepping")):
        if key in fields:
            out[name] = fields[key]
    flags = set(fields.get("flags", "").split())
    out["simd"] = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    out["logical_cpus"] = text.count("processor\t:") or os.cpu_count()
    return out


def _numpy_blas() -> str:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        extra = " ".join(blas.get("openblas configuration", "").split())
        return f"{blas.get('name')} {blas.get('version')}" + (f" ({extra})" if extra else "")
    except Exception as e:                          # pragma: no cover - old numpy
        return f"unknown ({e})"


def _threadpools() -> list[dict] | str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    keep = ("user_api", "internal_api", "version", "num_threads", "threading_layer", "architecture")
    return [{**{k: d.get(k) for k in keep if d.get(k) is not None},
             "library": os.path.basename(d.get("filepath", ""))} for d in threadpool_info()]


def nnc_source_state() -> str | None:
    """The nncompiler source the run measured: git commit, and whether nncompiler/ had local changes."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cases_mod.ROOT,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "nncompiler"], cwd=cases_mod.ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not head:
        return None
    return f"git {head}" + (" + uncommitted changes in nncompiler/" if dirty else "")


def machine_info(env: dict | None = None) -> dict:
    """The machine; `env`: the thread-related environment variables as the run found them."""
    info = _cpuinfo()
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:                         # pragma: no cover - not Linux
        info["usable_cpus"] = os.cpu_count()
    info["platform"] = platform.platform()
    info["python"] = platform.python_version()
    info["numpy"] = np.__version__
    info["numpy_blas"] = _numpy_blas()
    info["threadpools"] = _threadpools()
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
    info["env"] = env if env is not None else {k: os.environ.get(k) for k in THREAD_ENV}
    return info


def machine_lines(info: dict) -> list[str]:
    """The machine as a few markdown lines."""
    cpu = info["cpu"]
    if "family" in info:
        cpu += f" (family {info['family']} model {info['model']})"
    lines = [f"- CPU: {cpu}; {info['logical_cpus']} logical CPUs, {info['usable_cpus']} usable; "
             f"SIMD: {', '.join(info.get('simd', [])) or '?'}",
             f"- {info['platform']}, Python {info['python']}",
             f"- numpy {info['numpy']}, BLAS: {info['numpy_blas']}"]
    if info.get("threads_flag"):
        lines.append("- set by --threads: " + ", ".join(f"{k}={v}" for k, v in info["threads_flag"].items())
                     + "; torch.set_num_threads, tf.config.threading intra/inter-op, threadpoolctl limits")
    pools = info["threadpools"]
    if isinstance(pools, list):
        desc = [f"{p.get('internal_api')} {p.get('version', '')} {p.get('num_threads')} threads"
                + (f" arch {p['architecture']}" if p.get("architecture") else "") + f" [{p['library']}]"
                for p in pools]
        lines.append("- thread pools (threadpoolctl): " + "; ".join(desc))
    else:
        lines.append(f"- thread pools: {pools}")
    if "torch_threads" in info:
        lines.append(f"- torch threads: {info['torch_threads']} intra-op, {info['torch_interop_threads']} inter-op")
    env = ", ".join(f"{k}={v if v is not None else 'unset'}" for k, v in info["env"].items())
    lines.append(f"- environment at start: {env}")
    return lines


# ---- checking -----------------------------------------------------------------------------------

def _copy(result):
    return result if isinstance(result, float) else np.array(result, copy=True)


def check(p: cases_mod.Problem, first, params: dict | None, ref: dict) -> dict:
    """Compare an implementation's first call (and, for training, its updated parameters) with
    the hand-numpy reference."""
    if p.kind == "train":
        loss = float(first)
        err = abs(loss - ref["first"])
        out = {"loss": loss, "ref_loss": ref["first"], "loss_rel_err": err / max(abs(ref["first"]), 1e-30)}
        ok = err <= LOSS_RTOL * abs(ref["first"]) + 1e-7
        worst, worst_name = 0.0, None
        for name, init in p.params.items():
            mine = np.asarray(params[name], dtype=np.float64) - init
            theirs = np.asarray(ref["params"][name], dtype=np.float64) - init
            if mine.shape != theirs.shape:
                return {**out, "ok": False, "error": f"{name}: shape {mine.shape} vs {theirs.shape}"}
            rel = float(np.max(np.abs(mine - theirs))) / max(float(np.max(np.abs(theirs))), 1e-30)
            if rel > worst or worst_name is None:
                worst, worst_name = rel, name
        out["update_rel_err"], out["worst_param"] = worst, worst_name
        out["ok"] = bool(ok and worst <= p.update_rtol and math.isfinite(loss))
        return out
    got, want = np.asarray(first), ref["first"]
    if got.shape != want.shape:
        return {"ok": False, "error": f"shape {got.shape} vs {want.shape}"}
    diff = np.abs(got.astype(np.float64) - want)
    return {"ok": bool(np.allclose(got, want, rtol=OUT_RTOL, atol=OUT_ATOL)),
            "max_abs_err": float(diff.max()) if diff.size else 0.0,
            "max_rel_err": float((diff / np.maximum(np.abs(want), 1e-30)).max()) if diff.size else 0.0}


# ---- timing -------------------------------------------------------------------------------------

def _timed(call, n: int) -> list[float]:
    times = []
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
    finally:
        if enabled:
            gc.enable()
    return times


def _stats(times: list[float]) -> dict:
    ms = np.asarray(times) * 1e3
    return {"median_ms": float(np.median(ms)), "p10_ms": float(np.percentile(ms, 10)),
            "p90_ms": float(np.percentile(ms, 90)), "min_ms": float(ms.min()), "max_ms": float(ms.max()),
            "mean_ms": float(ms.mean())}


def _profile(call, n: int, top: int = 15) -> str:
    """Where one implementation's time goes, over n calls: cProfile's top functions by own time
    (the Python around the generated code: argument checks, state handling), then a line
    profile of nnc's generated numpy code (one line per IR op), when there is any."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        call()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    text = "cProfile, by own time (numpy's C functions count in their caller's own time):\n"
    text += "\n".join(ln for ln in buf.getvalue().splitlines() if ln.strip() and not ln.startswith("   Ordered"))
    lines = _line_profile(call, n)
    if lines:
        text += "\n\n" + lines
    return text


GENERATED_PREFIX = "<nnc-"        # the numpy backend's generated modules' filenames ("<nnc-numpy:...>")


def _line_profile(call, n: int, top: int = 20) -> str:
    """Time per line of nnc's generated code (sys.settrace; each line also pays ~1 us of tracing)."""
    totals: dict = {}
    state = {"last": None, "t": 0.0}

    def local(frame, event, arg):
        now = time.perf_counter()
        if state["last"] is not None:
            totals[state["last"]] = totals.get(state["last"], 0.0) + now - state["t"]
        if event == "return":
            back = frame.f_back
            state["last"] = ((back.f_code.co_filename, back.f_lineno)
                             if back is not None and back.f_code.co_filename.startswith(GENERATED_PREFIX) else None)
        else:
            state["last"] = (frame.f_code.co_filename, frame.f_lineno)
        state["t"] = time.perf_counter()
        return local

    def global_trace(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(GENERATED_PREFIX) else None

    t0 = time.perf_counter()
    sys.settrace(global_trace)
    try:
        for _ in range(n):
            call()
    finally:
        sys.settrace(None)
    wall = time.perf_counter() - t0
    if not totals:
        return ""
    import linecache
    inside = sum(totals.values())
    out = [f"line profile of the generated code: {inside / n * 1e3:.3f} ms per call inside it, of "
           f"{wall / n * 1e3:.3f} ms per call traced (tracing inflates both)",
           f"{'ms/call':>9} {'%':>5}  line"]
    for (fname, lineno), t in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
        src = linecache.getline(fname, lineno).strip()
        out.append(f"{t / n * 1e3:9.4f} {100 * t / inside:5.1f}  {src}")
    return "\n".join(out)


def _prepare(impl, p: cases_mod.Problem, ref: dict, args) -> tuple[dict, object]:
    """Set up one implementation, check its first call, warm it up; returns (row, runner)."""
    row = {"impl": impl.name, "nnc": impl.is_nnc}
    if impl.name == ref["impl"]:                 # the reference: already set up and called once
        runner = ref["runner"]
        row["setup_s"], row["first_ms"] = ref["setup_s"], ref["first_ms"]
        row["check"] = {"ok": True, "reference": True}
    else:
        t0 = time.perf_counter()
        runner = impl.setup(p)
        row["setup_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        first = runner.call()
        row["first_ms"] = (time.perf_counter() - t0) * 1e3
        row["check"] = check(p, first, runner.params() if runner.params else None, ref)
    if runner.info:
        row["info"] = runner.info
    if runner.graph_nodes is not None:
        row["graph_nodes"] = runner.graph_nodes
    # compile time: cold = the first setup + first call in this process; warm = the same again
    # (in-process and on-disk caches filled); for the lazy compilers the first call compiles
    row["cold_s"] = row["setup_s"] + row["first_ms"] / 1e3
    t0 = time.perf_counter()
    impl.setup(p).call()
    row["warm_s"] = time.perf_counter() - t0
    row["warmup"] = 1 if args.quick else p.warmup
    est = _timed(runner.call, row["warmup"])
    if args.reps:
        reps = args.reps
    elif args.quick:
        reps = 2
    else:
        per_call = max(float(np.median(est)), 1e-7)
        reps = int(min(max(math.ceil(p.target_s / per_call), p.min_reps), p.max_reps))
    row["reps"] = reps
    return row, runner


def same_steps(p: cases_mod.Problem, rows: list[dict], args) -> None:
    """A training case times the same steps of the same training run on every implementation:
    one repetition count for all of them (the largest of their adaptive counts, each already
    within the case's min_reps..max_reps), so that, with the same first call, warm-up calls and
    rounds, the k-th timed call of each is the same optimizer step. A step's cost depends on
    the state it trains: in case G the LSTM's backward values decay into denormal floats over
    the first ~60 steps, which x86 computes far slower, and medians over different windows of
    that trajectory would compare different work. Each row keeps its own count as `own_reps`."""
    if p.kind != "train" or args.reps or args.quick or not rows:
        return
    reps = max(row["reps"] for row in rows)
    for row in rows:
        row["own_reps"], row["reps"] = row["reps"], reps


def run_case(p: cases_mod.Problem, impls, args, log) -> dict:
    """Check and warm up every implementation, then time them interleaved: `rounds` rounds, each
    running every implementation (in a rotating order) for a block of reps/rounds calls after one
    untimed call, so that a change in the machine's background load hits all of them alike."""
    result = {"key": p.key, "title": p.title, "kind": p.kind, "note": p.note, "rows": [], "skipped": [],
              "loadavg_start": list(os.getloadavg())}
    ref_impl = next(i for i in all_impls() if i.name == p.reference)
    reason = ref_impl.unavailable()
    if reason:
        raise Unsupported(f"its reference {p.reference} is unavailable: {reason}")
    t0 = time.perf_counter()
    ref_runner = ref_impl.setup(p)
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = _copy(ref_runner.call())
    ref = {"impl": ref_impl.name, "first": first, "params": ref_runner.params() if ref_runner.params else None,
           "runner": ref_runner, "setup_s": setup_s, "first_ms": (time.perf_counter() - t0) * 1e3}

    ready = []                                   # (impl, row, runner)
    if all(i.name != ref_impl.name for i in impls):
        impls = [ref_impl] + list(impls)         # the reference's row is always shown
    for impl in impls:
        reason = impl.unavailable()
        if reason:
            result["skipped"].append({"impl": impl.name, "reason": reason})
            continue
        try:
            row, runner = _prepare(impl, p, ref, args)
        except Unsupported as e:
            result["skipped"].append({"impl": impl.name, "reason": str(e)})
            continue
        except Exception as e:                   # a peer that breaks must not stop the run
            text = str(e).strip()
            msg = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"[:300]
            result["skipped"].append({"impl": impl.name, "reason": f"failed: {msg}"})
            log(f"  {p.key} {impl.name}: FAILED {msg}")
            continue
        ok = "ok" if row["check"]["ok"] else f"CHECK FAILED {row['check']}"
        log(f"  {p.key} {impl.name:14s} setup {row['setup_s']:.2f} s, first call {row['first_ms']:.1f} ms, "
            f"{row['reps']} reps  {ok}")
        ready.append((impl, row, runner))

    same_steps(p, [row for _, row, _ in ready], args)
    if any("own_reps" in row for _, row, _ in ready):
        log(f"  {p.key}: every implementation times the same {ready[0][1]['reps']} steps (a training case)")
    rounds = max(1, min(args.rounds, min((row["reps"] for _, row, _ in ready), default=1)))
    times: dict[str, list[float]] = {row["impl"]: [] for _, row, _ in ready}
    for r in range(rounds):
        order = ready[r % len(ready):] + ready[:r % len(ready)] if ready else []
        for entry in order:
            impl, row, runner = entry
            n = row["reps"] // rounds + (1 if r < row["reps"] % rounds else 0)
            try:
                if rounds > 1:
                    runner.call()                # untimed: let the previous block's threads settle
                times[row["impl"]] += _timed(runner.call, n)
            except Exception as e:               # broke after its check: drop it, keep the run
                text = str(e).strip()
                msg = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"[:300]
                result["skipped"].append({"impl": impl.name, "reason": f"failed while timed: {msg}"})
                log(f"  {p.key} {impl.name}: FAILED while timed: {msg}")
                ready.remove(entry)
    for impl, row, runner in ready:
        row["rounds"] = rounds
        row.update(_stats(times[row["impl"]]))
        if args.profile and impl.is_nnc:
            # about 1 s of calls under each profiler, so that one preemption cannot dominate
            row["profile_calls"] = max(1, min(row["reps"], math.ceil(1.0e3 / row["median_ms"])))
            row["profile"] = _profile(runner.call, row["profile_calls"])
        log(f"  {p.key} {impl.name:14s} median {row['median_ms']:10.3f} ms  "
            f"p10-p90 {row['p10_ms']:.3f}-{row['p90_ms']:.3f}")
        result["rows"].append(row)
    result["loadavg_end"] = list(os.getloadavg())

    peers = [r for r in result["rows"] if not r["nnc"]]
    best = min(peers, key=lambda r: r["median_ms"]) if peers else None
    result["best_peer"] = best["impl"] if best else None
    for r in result["rows"]:
        r["ratio_to_best_peer"] = r["median_ms"] / best["median_ms"] if best else None
    return result


# ---- reporting ----------------------------------------------------------------------------------

def _fmt_ms(v: float) -> str:
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def table(results: list[dict]) -> str:
    lines = ["| case | implementation | median ms | p10–p90 ms | min ms | × best peer | reps | first call ms | check "
             "| compile cold / warm s | graph nodes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for res in results:
        for r in res["rows"]:
            ratio = r["ratio_to_best_peer"]
            ratio_s = "—" if ratio is None else f"{ratio:.2f}×"
            if res["best_peer"] == r["impl"]:
                ratio_s = f"**{ratio_s}** (best)"
            c = r["check"]
            if c.get("reference"):
                chk = "reference"
            elif c["ok"]:
                chk = "ok"
            else:
                chk = "**FAIL** " + (c.get("error") or ", ".join(f"{k}={v:.2g}" for k, v in c.items()
                                                                 if k.endswith("err")))
                if c.get("worst_param"):
                    chk += f" (worst: {c['worst_param']})"
            name = f"**{r['impl']}**" if r["nnc"] else r["impl"]
            lines.append(f"| {res['key']} | {name} | {_fmt_ms(r['median_ms'])} | "
                         f"{_fmt_ms(r['p10_ms'])}–{_fmt_ms(r['p90_ms'])} | {_fmt_ms(r['min_ms'])} | "
                         f"{ratio_s} | {r['reps']} | {_fmt_ms(r['first_ms'])} | {chk} | "
                         f"{r['cold_s']:.2f} / {r['warm_s']:.2f} | {r.get('graph_nodes', '—')} |")
    return "\n".join(lines)


def notes(results: list[dict], skipped_cases: list[dict]) -> list[str]:
    out = []
    for res in results:
        out.append(f"- {res['key']}: {res['title']}" + (f" — {res['note']}" if res["note"] else ""))
    for s in skipped_cases:
        out.append(f"- {s['key']}: skipped — {s['reason']}")
    seen = {}
    for res in results:
        for s in res["skipped"]:
            seen.setdefault((s["impl"], s["reason"]), []).append(res["key"])
    for (impl, reason), keys in seen.items():
        out.append(f"- not run: {impl} in {','.join(keys)} — {reason}")
    return out


def _jsonable(o):
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return None if o.size > 16 else o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return o


# ---- the command --------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 2 repetitions: a smoke test, not a benchmark")
    ap.add_argument("--cases", default=",".join(cases_mod.CASE_KEYS), help="comma-separated case keys (default: all)")
    ap.add_argument("--reps", type=int, default=0, help="timed repetitions per implementation (default: adaptive)")
    ap.add_argument("--impls", default="", help="comma-separated implementations to run (default: all available): "
                    + ", ".join(i.name for i in all_impls()))
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--markdown", metavar="FILE", help="write the report (machine, table, notes) as markdown")
    ap.add_argument("--profile", action="store_true", help="cProfile nnc's calls after timing them; print the top functions")
    ap.add_argument("--rounds", type=int, default=5, help="interleave the implementations' timed calls in this "
                    "many rounds (default 5; 1 = one block per implementation)")
    ap.add_argument("--threads", type=int, default=None, help="limit every library to N threads "
                    "(default: each library's own default; see bench/README.md)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the data and initial weights")
    args = ap.parse_args(argv)
    if args.reps < 0:
        ap.error("--reps must be positive")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    keys = [k.strip().upper() for k in args.cases.split(",") if k.strip()]
    keys = [g for k in keys for g in cases_mod.CASE_GROUPS.get(k, (k,))]
    for k in keys:
        if k not in cases_mod.CASE_KEYS:
            print(f"unknown case '{k}' (known: {', '.join(cases_mod.CASE_KEYS)})", file=sys.stderr)
            return 2
    env_at_start = {k: os.environ.get(k) for k in THREAD_ENV}
    configure_threads(args.threads)
    impls = all_impls()
    if args.impls:
        wanted = [s.strip() for s in args.impls.split(",") if s.strip()]
        known = {i.name for i in impls}
        bad = [w for w in wanted if w not in known]
        if bad:
            print(f"unknown implementation(s) {', '.join(bad)} (known: {', '.join(sorted(known))})", file=sys.stderr)
            return 2
        impls = [i for i in impls if i.name in wanted]

    started = datetime.datetime.now().astimezone()
    load_start = os.getloadavg()
    results, skipped_cases = [], []
    t_run = time.perf_counter()
    for key in keys:
        if key == "E":
            reason = cases_mod.has_conv_layers()
            if reason:
                skipped_cases.append({"key": key, "reason": reason})
                log(f"case E skipped: {reason}")
                continue
        p = cases_mod.make_case(key, quick=args.quick, seed=args.seed)
        log(f"case {key}: {p.title}")
        try:
            results.append(run_case(p, impls, args, log))
        except Unsupported as e:
            skipped_cases.append({"key": key, "reason": str(e)})
            log(f"case {key} skipped: {e}")
    elapsed = time.perf_counter() - t_run

    info = machine_info(env_at_start)
    if args.threads:
        info["threads_flag"] = {k: os.environ.get(k) for k in THREAD_ENV if os.environ.get(k) != env_at_start.get(k)}
    info["loadavg_start"], info["loadavg_end"] = list(load_start), list(os.getloadavg())
    versions = {}
    source = nnc_source_state()
    for impl in impls:
        if not impl.unavailable():
            try:
                versions.update(impl.versions())
            except Exception as e:                 # pragma: no cover
                versions[impl.name] = f"? ({e})"
    header = [f"nnc benchmark, {started:%Y-%m-%d %H:%M %Z}" + (" (--quick: tiny sizes, not a benchmark)" if args.quick else "")
              + (f", --threads {args.threads}" if args.threads else ""),
              "", *machine_lines(info),
              "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())
              + (f"; nncompiler source: {source}" if source else ""),
              "- load average (1/5/15 min) at start: " + " ".join(f"{v:.2f}" for v in load_start)
              + ", at end: " + " ".join(f"{v:.2f}" for v in info["loadavg_end"])
              + f" ({info['usable_cpus']} CPUs: a load near or above that means other processes competed for them)", ""]
    report = "\n".join(header) + "\n" + table(results) + "\n\n" + "\n".join(notes(results, skipped_cases)) + "\n"
    report += f"\n(run time {elapsed:.0f} s)\n"
    print(report)
    if args.profile:
        for res in results:
            for r in res["rows"]:
                if r.get("profile"):
                    print(f"### profile: case {res['key']}, {r['impl']} ({r['profile_calls']} calls)\n")
                    print(r["profile"])
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report)
    if args.json:
        doc = {"date": started.isoformat(timespec="seconds"), "quick": args.quick, "seed": args.seed,
               "threads": args.threads,
               "argv": sys.argv[1:] if argv is None else list(argv), "run_time_s": elapsed,
               "machine": info, "versions": versions, "nnc_source": source, "cases": results, "skipped_cases": skipped_cases}
        with open(args.json, "w") as f:
            json.dump(_jsonable(doc), f, indent=1, default=str)
    failed = [(res["key"], r["impl"]) for res in results for r in res["rows"] if not r["check"]["ok"]]
    if failed:
        log("check failed: " + ", ".join(f"{k} {i}" for k, i in failed))
    return 1 if failed else 0
