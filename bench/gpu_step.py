#!/usr/bin/env python3
"""nncompiler's Triton backend on a CUDA GPU, against PyTorch eager and torch.compile, in one run.

  1. examples   every examples/*.nn trained (or evaluated) with backend="triton": wall time,
                final metrics, kernels per step from the fusion plan
  2. MLP step   one training step of an MLP 784-512-512-10, batch 256, Adam, sparse softmax
                crossentropy: median ms, and CUDA kernels launched per step (torch profiler,
                memcpy/memset counted apart)
  3. CNN step   the same for examples/digits_cnn.nn (conv 3x3x16 + relu, maxpool 2, dense 10)
                at batch 256, against the same network in torch
  4. rnn        an LSTM training step at T = 20 and 60 with its scans as loops (the default)
                and unrolled, against torch eager's cuDNN LSTM (bench/gpu_rnn.py)
  5. bandwidth  a fused elementwise chain y = swish(leaky_relu(x*a + b)) over 16M floats (one
                kernel for nnc): achieved GB/s against device-to-device copy bandwidth

Fair by construction: every row runs on the same GPU in the same process at the same
precision (--precision sets torch's TF32 flags, or autocast for bf16, and nnc's mode where
this build has one); torch.compile runs in its default mode, "max-autotune-no-cudagraphs"
and "reduce-overhead" (CUDA graphs, like nnc); the batch is already on the device for every
step row (nnc keeps it in its captured graph's own input buffers: no copy); the bandwidth
rows move the same bytes (nnc's launch reads the caller's tensor, no input copy).
Prints markdown tables; --json FILE writes every figure. See bench/gpu_README.md.

    python bench/gpu_step.py                  # on a CUDA machine, from the repository root
    python bench/gpu_step.py --quick --device cpu   # smoke test of the script without a GPU
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MLP_NN = """
model MLP {
    input  x: f32[B, $i]
    target y: i32[B]
    h1  = dense(x, $h1, activation=relu)
    h2  = dense(h1, $h2, activation=relu)
    out = dense(h2, $o, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.001)
}
"""

CHAIN_NN = """
graph Chain {
    input x: f32[N]
    u = x * 1.5 + 0.25
    v = where(u > 0.0, u, 0.1 * u)
    output v * sigmoid(v)
}
"""


COMPILE_MODES = ("default", "max-autotune-no-cudagraphs", "reduce-overhead")


def parse_args(argv=None):
    import torch
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu runs nnc's kernels in the Triton interpreter: a smoke test only")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions (smoke test)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--iters", type=int, default=50, help="timed steps per row")
    ap.add_argument("--epochs", type=int, default=None, help="cap the examples' epochs (default: theirs, max 30)")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: examples,mlp,cnn,rnn,bandwidth")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"),
                    help="the same on both sides: fp32 is IEEE float32 matmuls (torch's default)")
    ap.add_argument("--modes", default=",".join(COMPILE_MODES),
                    help="torch.compile modes to run (comma list; empty: none)")
    ap.add_argument("--cnn-modes", default=None,
                    help="torch.compile modes of the CNN section (default: --modes); gpu_check.sh keeps one for time")
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    ap.add_argument("--json", help="write every figure to this file")
    ap.add_argument("--md", help="write the markdown tables to this file")
    a = ap.parse_args(argv)
    a.modes = [] if a.no_compile else [m for m in a.modes.split(",") if m]
    a.cnn_modes = a.modes if a.cnn_modes is None or a.no_compile else [m for m in a.cnn_modes.split(",") if m]
    a.dims = (784, 512, 512, 10)
    if a.quick:
        a.batch, a.iters, a.epochs = min(a.batch, 16), min(a.iters, 3), a.epochs or 1
    if a.quick and a.device == "cpu":   # the interpreter runs a 784x512 matmul in seconds: shrink it
        a.dims = (48, 32, 32, 10)
    if a.device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    return a


def set_precision(precision: str):
    """torch's side of --precision (nnc's side is nnc_compile's)."""
    import torch
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32      # torch's default is True for convolutions: not fp32


def autocast(a):
    import contextlib

    import torch
    if a.precision == "bf16":
        return torch.autocast(a.device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def nnc_compile(source, a):
    """nnc.compile at --precision; None where this build has no such mode (the row says so)."""
    import inspect

    import nncompiler as nnc
    if a.precision == "fp32":
        return nnc.compile(source, backend="triton")
    if "precision" not in inspect.signature(nnc.compile).parameters:
        return None
    return nnc.compile(source, backend="triton", precision=a.precision)


# ---- timing and kernel counting ---------------------------------------------------------------

def sync(dev):
    import torch
    if dev == "cuda":
        torch.cuda.synchronize()


def timeit(fn, dev, warmup=5, iters=30):
    for _ in range(warmup):
        fn()
    sync(dev)
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        ts.append(time.perf_counter() - t0)
    return {"median_ms": statistics.median(ts) * 1e3, "min_ms": min(ts) * 1e3, "max_ms": max(ts) * 1e3}


def cuda_kernels_per_call(fn, dev, calls=3):
    """(kernels, memcpy/memset ops) per call on the GPU, from the torch profiler (CUPTI)."""
    if dev != "cuda":
        return None, None
    from torch.profiler import ProfilerActivity, profile
    fn()
    sync(dev)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        sync(dev)
    kernels = copies = 0
    for e in prof.events():
        if getattr(e, "device_type", None) is None or e.device_type.name != "CUDA":
            continue
        if e.name.startswith(("Memcpy", "Memset", "memcpy", "memset")):
            copies += 1
        else:
            kernels += 1
    return kernels / calls, copies / calls


# ---- nnc ------------------------------------------------------------------------------------

class NncStep:
    """The compiled train_step graph with the batch on the device; state fed back each step.

    Once the step is captured (its second call), the batch lives in the graph's own input
    buffers (`static_inputs`), as a data loader writing into them would leave it: a replay
    then copies nothing, like the torch rows whose batch sits on the device."""

    def __init__(self, model, batch):
        self.m = model
        self.cg = model.compiled("train_step")
        self.args = model.arguments("train_step", batch, ("input", "target"))
        for k in batch:
            self.args[k] = model.backend.to_device(self.args[k])
        self.batch = list(batch)

    def __call__(self):
        out = self.cg(self.args)
        for k, v in out.items():
            if k.startswith("new."):
                self.args[k[4:]] = v
        static = self.cg.static_inputs(self.args)
        if static is not None and any(self.args[k] is not static[k] for k in self.batch):
            for k in self.batch:
                static[k].copy_(self.args[k])
                self.args[k] = static[k]
        return out["loss"]


def nnc_plan_kernels(model, kind="train_step"):
    return model.backend.plan(model.graph(kind)).launches()


# ---- torch peers ------------------------------------------------------------------------------

def torch_mlp(dev, batch, dims=(784, 512, 512, 10)):
    import torch
    torch.manual_seed(0)
    i, h1, h2, o = dims
    net = torch.nn.Sequential(torch.nn.Linear(i, h1), torch.nn.ReLU(), torch.nn.Linear(h1, h2),
                              torch.nn.ReLU(), torch.nn.Linear(h2, o)).to(dev)
    x = torch.randn(batch, i, device=dev)
    y = torch.randint(0, o, (batch,), device=dev)
    return net, x, y


def torch_cnn(dev, batch):
    """examples/digits_cnn.nn in torch: conv 3x3x16 same + relu, maxpool 2, dense 10 over the
    NHWC flattening (nnc's layout), on [batch, 64] pixels 0..16."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 16, 3, padding=1)
            self.fc = torch.nn.Linear(256, 10)

        def forward(self, x):
            h = x.view(-1, 1, 8, 8) / 16.0
            h = torch.nn.functional.max_pool2d(torch.relu(self.conv(h)), 2)
            return self.fc(h.permute(0, 2, 3, 1).reshape(h.shape[0], -1))

    torch.manual_seed(0)
    net = Net().to(dev)
    x = torch.rand(batch, 64, device=dev) * 16
    y = torch.randint(0, 10, (batch,), device=dev)
    return net, x, y


def mlp_source(dims):
    import string
    return string.Template(MLP_NN).substitute(dict(zip(("i", "h1", "h2", "o"), map(str, dims))))


def torch_step(net, x, y, mode, lr, a):
    """One Adam step; mode None is eager, else a torch.compile mode ("default": no mode given)."""
    import torch
    import torch.nn.functional as F
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(a):
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss
    if mode is None:
        return step
    return torch.compile(step) if mode == "default" else torch.compile(step, mode=mode)


# ---- sections -------------------------------------------------------------------------------------

def section_examples(a, out):
    import numpy as np

    import nncompiler as nnc
    from nncompiler.program import TrainConfig
    from nncompiler.train.dataset import training_data
    rows = []
    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "*.nn"))):
        name = os.path.basename(path)[:-3]
        try:
            t0 = time.perf_counter()
            m = nnc.compile(path, backend="triton")
            low = m.lowered
            if low.kind == "graph":
                feeds = {k: np.ones(tuple(d if isinstance(d, int) else 4 for d in t.shape),
                                    dtype=np.float32 if t.dtype == "f32" else np.int32)
                         for k, t in low.inputs.items()}
                m.forward(**feeds)
                rows.append({"example": name, "what": "forward", "s": time.perf_counter() - t0,
                             "kernels": nnc_plan_kernels(m, "predict"), "result": "ok"})
                continue
            cfg = low.train or TrainConfig()
            old = os.getcwd()
            os.chdir(ROOT)
            try:
                data = training_data(low, cfg, None)
            finally:
                os.chdir(old)
            epochs = min(cfg.epochs, a.epochs or 30)
            if a.quick:
                data = {k: v[:64] for k, v in data.items()}
            hist = m.fit(epochs=epochs, batch_size=cfg.batch, shuffle=cfg.shuffle,
                         validation_split=cfg.validate, seed=cfg.seed, **data)
            last = {k: round(v[-1], 4) for k, v in hist.items()}
            rows.append({"example": name, "what": f"fit {epochs} epochs", "s": time.perf_counter() - t0,
                         "kernels": nnc_plan_kernels(m), "result": last})
        except Exception as e:      # keep going: report the failure in the table
            rows.append({"example": name, "what": "error", "s": None, "kernels": None,
                         "result": f"{type(e).__name__}: {e}"[:120]})
            traceback.print_exc()
    out["examples"] = rows
    print("\n### examples trained with backend=\"triton\"\n")
    print("| example | run | wall s (incl. compile) | kernels / step | final |")
    print("|---|---|---|---|---|")
    for r in rows:
        s = "—" if r["s"] is None else f"{r['s']:.1f}"
        print(f"| {r['example']} | {r['what']} | {s} | {r['kernels'] if r['kernels'] is not None else '—'} | {r['result']} |")


def timed_row(name, fn, a, first=None, plan=None):
    """A table row for `fn`: its times, its CUDA kernels and copies per call, the planned
    kernels and the first call's seconds (gpu_rnn.py's rows too)."""
    t = timeit(fn, a.device, warmup=3, iters=a.iters)
    kernels, copies = cuda_kernels_per_call(fn, a.device)
    return {"impl": name, **t, "kernels": kernels, "memcpys": copies, "plan_kernels": plan, "first_s": first}


def step_rows(a, out, key, title, nn_source, torch_make, lr, modes=None):
    import numpy as np
    dev = a.device
    rows = []
    try:
        t0 = time.perf_counter()
        m = nnc_compile(nn_source, a)
        if m is None:
            raise NotImplementedError(f"this nncompiler has no --precision {a.precision}")
        rng = np.random.default_rng(0)
        x_shape = [t for t in m.lowered.inputs.values()][0].shape
        feat = [d for d in x_shape if isinstance(d, int)]
        xs = (rng.random((a.batch, *feat)) * 16).astype(np.float32)
        ys = rng.integers(0, 10, a.batch).astype(np.int32)
        step = NncStep(m, {"x": xs, "y": ys})
        step()
        sync(dev)
        first = time.perf_counter() - t0
        plan = nnc_plan_kernels(m)
        rows.append(timed_row("nnc triton (CUDA graph; batch in its input buffers)", step, a, first, plan))
        rows.append(timed_row("nnc Model.step_on_device (host batch: pinned upload)",
                         lambda: m.step_on_device(x=xs, y=ys), a, None, plan))
    except Exception as e:
        traceback.print_exc()
        rows.append({"impl": f"nnc triton: {type(e).__name__}: {e}"[:100]})
    for mode in [None, *(a.modes if modes is None else modes)]:
        name = "torch eager" if mode is None else f"torch.compile {mode}"
        try:
            net, x, y = torch_make(dev, a.batch)
            fn = torch_step(net, x, y, mode, lr, a)
            t0 = time.perf_counter()
            fn()
            sync(dev)
            rows.append(timed_row(name, fn, a, time.perf_counter() - t0))
        except Exception as e:
            traceback.print_exc()
            rows.append({"impl": f"{name}: {type(e).__name__}: {e}"[:100]})
    out[key] = rows
    emit(out, table([f"\n### {title}, batch {a.batch}, {a.precision}\n"],
                    ["impl", "step ms (median)", "min", "max", "kernels / step", "memcpy+memset / step",
                     "planned kernels", "first call s"], rows,
                    lambda r: [cell(r["median_ms"], ".3f"), cell(r["min_ms"], ".3f"), cell(r["max_ms"], ".3f"),
                               cell(r["kernels"], ".0f"), cell(r["memcpys"], ".0f"),
                               cell(r["plan_kernels"], "d"), cell(r["first_s"], ".2f")]))


def table(heading: list[str], columns: list[str], rows: list[dict], cells, lead=("impl",)) -> list[str]:
    """Markdown lines: `heading`, then a table of `columns` with a line per row: the row's `lead`
    keys, then cells(row) where it was timed, or 'failed' where it raised."""
    def line(values):
        return "|" + "|".join(f" {v} " if v else " " for v in values) + "|"
    lines = heading + [line(columns), "|" + "---|" * len(columns)]
    for r in rows:
        rest = cells(r) if "median_ms" in r else ["failed"] + [""] * (len(columns) - len(lead) - 1)
        lines.append(line([str(r[k]) for k in lead] + rest))
    return lines


def cell(v, spec: str) -> str:
    """A table cell: v formatted, or a dash where it was not measured."""
    return "—" if v is None else format(v, spec)


def emit(out, lines):
    print("\n".join(lines))
    out.setdefault("markdown", []).extend(lines)


def section_bandwidth(a, out):
    import numpy as np
    import torch

    import nncompiler as nnc
    dev = a.device
    n = (1 << 16) if a.quick else (16 << 20)
    rows = []
    x = torch.randn(n, device=dev)
    nbytes = 2 * n * 4                                   # read x, write y: the same for every row
    try:
        m = nnc.compile(CHAIN_NN, backend="triton")
        cg = m.compiled("predict")
        args = {"x": x}
        want = cg.run(args)
        ref = nnc.compile(CHAIN_NN).forward(x=x[:4096].cpu().numpy())
        np.testing.assert_allclose(want[m.lowered.output_names[0]][:4096].cpu().numpy(), ref, rtol=1e-5, atol=1e-6)
        # CompiledGraph.run: the kernel reads the caller's x where it lies (a captured graph
        # would first copy x into its input buffer: 64 MB the torch rows do not move)
        r = timed_row("nnc triton (1 fused kernel)", lambda: cg.run(args), a, None, nnc_plan_kernels(m, "predict"))
        rows.append({**r, "GBps": nbytes / (r["median_ms"] / 1e3) / 1e9})
    except Exception as e:
        traceback.print_exc()
        rows.append({"impl": f"nnc triton: {type(e).__name__}: {e}"[:100]})

    def chain(t):
        u = t * 1.5 + 0.25
        v = torch.where(u > 0, u, 0.1 * u)
        return v * torch.sigmoid(v)
    for mode in [None, *[m for m in a.modes if m != "reduce-overhead"]]:
        name = "torch eager" if mode is None else f"torch.compile {mode}"
        try:
            f = chain if mode is None else torch.compile(chain) if mode == "default" else torch.compile(chain, mode=mode)
            f(x)
            r = timed_row(name, lambda: f(x), a)
            rows.append({**r, "GBps": nbytes / (r["median_ms"] / 1e3) / 1e9})
        except Exception as e:
            traceback.print_exc()
            rows.append({"impl": f"{name}: {type(e).__name__}: {e}"[:100]})
    src = torch.empty(n * 4, device=dev)
    dst = torch.empty_like(src)
    t = timeit(lambda: dst.copy_(src), dev, iters=a.iters)
    copy = 2 * src.numel() * 4 / (t["median_ms"] / 1e3) / 1e9
    out["bandwidth"] = {"rows": rows, "copy_GBps": copy, "elements": n}
    emit(out, table([f"\n### fused elementwise chain over {n} floats (swish(leaky_relu(x*1.5+0.25)))\n",
                     f"device-to-device copy: {copy:.0f} GB/s (read + write)\n"],
                    ["impl", "ms (median)", "GB/s", "% of copy", "kernels / call", "memcpy+memset / call",
                     "planned kernels"], rows,
                    lambda r: [f"{r['median_ms']:.3f}", f"{r['GBps']:.0f}", f"{100 * r['GBps'] / copy:.0f}%",
                               cell(r["kernels"], ".0f"), cell(r["memcpys"], ".0f"), cell(r["plan_kernels"], "d")]))


def main(argv=None):
    a = parse_args(argv)
    import torch
    import triton

    import nncompiler
    set_precision(a.precision)
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    out = {"device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu (Triton interpreter)",
           "torch": torch.__version__, "triton": triton.__version__, "nncompiler": nncompiler.__version__,
           "cuda_graphs": os.environ.get("NNC_CUDA_GRAPHS", "1") != "0",
           "autotune": os.environ.get("NNC_AUTOTUNE") == "1", "batch": a.batch, "precision": a.precision,
           "compile_modes": a.modes}
    emit(out, [f"# nncompiler triton backend on {out['device']}",
               f"torch {out['torch']}, triton {out['triton']}, nncompiler {out['nncompiler']}, "
               f"precision {a.precision}, CUDA graphs {'on' if out['cuda_graphs'] else 'off'}, "
               f"autotune {'on' if out['autotune'] else 'off'}"])
    if "examples" not in skip:
        section_examples(a, out)
    if "mlp" not in skip:
        dims = "-".join(map(str, a.dims))
        step_rows(a, out, "mlp", f"MLP {dims} Adam training step", mlp_source(a.dims),
                  lambda dev, b: torch_mlp(dev, b, a.dims), 1e-3)
    if "cnn" not in skip:
        with open(os.path.join(ROOT, "examples", "digits_cnn.nn")) as f:
            cnn_src = f.read()
        step_rows(a, out, "cnn", "CNN (digits_cnn.nn: conv3x3x16, maxpool2, dense10) Adam training step",
                  cnn_src, torch_cnn, 3e-3, a.cnn_modes)
    if "rnn" not in skip:
        from bench.gpu_rnn import section_rnn
        section_rnn(sys.modules[__name__], a, out)
    if "bandwidth" not in skip:
        section_bandwidth(a, out)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    if a.md:
        with open(a.md, "w") as f:
            f.write("\n".join(out["markdown"]) + "\n")
    return out


if __name__ == "__main__":
    main()
