#!/usr/bin/env python3
"""nncompiler's Triton backend on a CUDA GPU, against PyTorch eager and torch.compile, in one run.

  1. examples   every examples/*.nn trained (or evaluated) with backend="triton": wall time,
                final metrics, kernels per step from the fusion plan
  2. MLP step   one training step of an MLP 784-512-512-10, batch 256, Adam, sparse softmax
                crossentropy: median ms, and CUDA kernels launched per step (torch profiler)
  3. CNN step   the same for examples/digits_cnn.nn (conv 3x3x16 + relu, maxpool 2, dense 10)
                at batch 256, against the same network in torch
  4. bandwidth  a fused elementwise chain y = swish(leaky_relu(x*a + b)) over 16M floats (one
                kernel for nnc): achieved GB/s against device-to-device copy bandwidth

nnc's step rows call the compiled train_step graph directly with device tensors (parameters,
Adam state, batch already on the GPU; outputs fed back as the next step's state), like the
torch rows; a second row times `Model.step`, which also checks and uploads the batch.
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
    input  x: f32[B, 784]
    target y: i32[B]
    h1  = dense(x, 512, activation=relu)
    h2  = dense(h1, 512, activation=relu)
    out = dense(h2, 10, activation=softmax)
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


def parse_args():
    import torch
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu runs nnc's kernels in the Triton interpreter: a smoke test only")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions (smoke test)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--iters", type=int, default=50, help="timed steps per row")
    ap.add_argument("--epochs", type=int, default=None, help="cap the examples' epochs (default: theirs, max 30)")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: examples,mlp,cnn,bandwidth")
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    ap.add_argument("--json", help="write every figure to this file")
    a = ap.parse_args()
    if a.quick:
        a.batch, a.iters, a.epochs = min(a.batch, 16), min(a.iters, 3), a.epochs or 1
    if a.device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    return a


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
    """CUDA kernels (and memcpy/memset ops) per call, from the torch profiler (CUPTI)."""
    if dev != "cuda":
        return None
    import torch
    from torch.profiler import ProfilerActivity, profile
    fn()
    sync(dev)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        sync(dev)
    kernels = 0
    for e in prof.events():
        if getattr(e, "device_type", None) is not None and e.device_type.name == "CUDA":
            kernels += 1
    return kernels / calls


# ---- nnc ------------------------------------------------------------------------------------

class NncStep:
    """The compiled train_step graph called with device tensors; state fed back each step."""

    def __init__(self, model, batch):
        self.m = model
        self.cg = model.compiled("train_step")
        self.args = model.arguments("train_step", batch, ("input", "target"))

    def __call__(self):
        out = self.cg(self.args)
        for k, v in out.items():
            if k.startswith("new."):
                self.args[k[4:]] = v
        return out["loss"]


def nnc_plan_kernels(model, kind="train_step"):
    return model.backend.plan(model.graph(kind)).launches()


# ---- torch peers ------------------------------------------------------------------------------

def torch_mlp(dev, batch):
    import torch
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                              torch.nn.ReLU(), torch.nn.Linear(512, 10)).to(dev)
    x = torch.randn(batch, 784, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    return net, x, y


class TorchCNN:
    @staticmethod
    def make(dev, batch):
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(1, 16, 3, padding=1)
                self.fc = torch.nn.Linear(256, 10)

            def forward(self, x):
                h = x.view(-1, 1, 8, 8) / 16.0
                h = torch.nn.functional.max_pool2d(torch.relu(self.conv(h)), 2)
                return self.fc(h.permute(0, 2, 3, 1).reshape(h.shape[0], -1))    # NHWC flatten, like nnc

        torch.manual_seed(0)
        net = Net().to(dev)
        x = torch.rand(batch, 64, device=dev) * 16
        y = torch.randint(0, 10, (batch,), device=dev)
        return net, x, y


def torch_step(net, x, y, compiled, lr):
    import torch
    import torch.nn.functional as F
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss
    return torch.compile(step) if compiled else step


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


def step_rows(a, out, key, title, nn_source, torch_make, lr):
    import numpy as np

    import nncompiler as nnc
    dev = a.device
    rows = []
    iters = a.iters
    # nnc
    try:
        t0 = time.perf_counter()
        m = nnc.compile(nn_source, backend="triton")
        rng = np.random.default_rng(0)
        x_shape = [t for t in m.lowered.inputs.values()][0].shape
        feat = [d for d in x_shape if isinstance(d, int)]
        xs = (rng.random((a.batch, *feat)) * 16).astype(np.float32)
        ys = rng.integers(0, 10, a.batch).astype(np.int32)
        step = NncStep(m, {"x": xs, "y": ys})
        step()
        sync(dev)
        first = time.perf_counter() - t0
        t = timeit(step, dev, warmup=3, iters=iters)
        k = cuda_kernels_per_call(step, dev)
        rows.append({"impl": "nnc triton (compiled train_step)", **t, "kernels": k,
                     "plan_kernels": nnc_plan_kernels(m), "first_s": first})
        t = timeit(lambda: m.step(x=xs, y=ys), dev, warmup=2, iters=iters)
        rows.append({"impl": "nnc triton (Model.step: + feed checks, upload)", **t, "kernels": None,
                     "plan_kernels": nnc_plan_kernels(m), "first_s": None})
    except Exception as e:
        traceback.print_exc()
        rows.append({"impl": f"nnc triton: {type(e).__name__}: {e}"[:100]})
    for name, compiled in (("torch eager", False), ("torch.compile", True)):
        if compiled and a.no_compile:
            continue
        try:
            net, x, y = torch_make(dev, a.batch)
            fn = torch_step(net, x, y, compiled, lr)
            t0 = time.perf_counter()
            fn()
            sync(dev)
            first = time.perf_counter() - t0
            t = timeit(fn, dev, warmup=3, iters=iters)
            rows.append({"impl": name, **t, "kernels": cuda_kernels_per_call(fn, dev), "plan_kernels": None,
                         "first_s": first})
        except Exception as e:
            traceback.print_exc()
            rows.append({"impl": f"{name}: {type(e).__name__}: {e}"[:100]})
    out[key] = rows
    print(f"\n### {title}, batch {a.batch}\n")
    print("| impl | step ms (median) | min | max | CUDA kernels / step (profiler) | planned kernels | first call s |")
    print("|---|---|---|---|---|---|---|")
    f = lambda v, spec: "—" if v is None else format(v, spec)  # noqa: E731
    for r in rows:
        if "median_ms" not in r:
            print(f"| {r['impl']} | failed | | | | | |")
            continue
        print(f"| {r['impl']} | {f(r['median_ms'], '.3f')} | {f(r['min_ms'], '.3f')} | {f(r['max_ms'], '.3f')} "
              f"| {f(r['kernels'], '.0f')} | {f(r['plan_kernels'], 'd')} | {f(r['first_s'], '.2f')} |")


def section_bandwidth(a, out):
    import numpy as np
    import torch

    import nncompiler as nnc
    dev = a.device
    n = (1 << 16) if a.quick else (16 << 20)
    rows = []
    x = torch.randn(n, device=dev)
    nbytes = 2 * n * 4                                   # read x, write y
    try:
        m = nnc.compile(CHAIN_NN, backend="triton")
        cg = m.compiled("predict")
        args = {"x": x}
        want = cg(args)
        ref = nnc.compile(CHAIN_NN).forward(x=x[:4096].cpu().numpy())
        np.testing.assert_allclose(want[m.lowered.output_names[0]][:4096].cpu().numpy(), ref, rtol=1e-5, atol=1e-6)
        t = timeit(lambda: cg(args), dev, iters=a.iters)
        rows.append({"impl": "nnc triton (1 fused kernel)", **t, "GBps": nbytes / (t["median_ms"] / 1e3) / 1e9,
                     "kernels": cuda_kernels_per_call(lambda: cg(args), dev),
                     "plan_kernels": nnc_plan_kernels(m, "predict")})
    except Exception as e:
        traceback.print_exc()
        rows.append({"impl": f"nnc triton: {type(e).__name__}: {e}"[:100]})

    def chain(t):
        u = t * 1.5 + 0.25
        v = torch.where(u > 0, u, 0.1 * u)
        return v * torch.sigmoid(v)
    for name, compiled in (("torch eager", False), ("torch.compile", True)):
        if compiled and a.no_compile:
            continue
        try:
            f = torch.compile(chain) if compiled else chain
            f(x)
            t = timeit(lambda: f(x), dev, iters=a.iters)
            rows.append({"impl": name, **t, "GBps": nbytes / (t["median_ms"] / 1e3) / 1e9,
                         "kernels": cuda_kernels_per_call(lambda: f(x), dev), "plan_kernels": None})
        except Exception as e:
            traceback.print_exc()
            rows.append({"impl": f"{name}: {type(e).__name__}: {e}"[:100]})
    src = torch.empty(n * 4, device=dev)
    dst = torch.empty_like(src)
    t = timeit(lambda: dst.copy_(src), dev, iters=a.iters)
    copy = 2 * src.numel() * 4 / (t["median_ms"] / 1e3) / 1e9
    out["bandwidth"] = {"rows": rows, "copy_GBps": copy, "elements": n}
    print(f"\n### fused elementwise chain over {n} floats (swish(leaky_relu(x*1.5+0.25)))\n")
    print(f"device-to-device copy: {copy:.0f} GB/s (read + write)\n")
    print("| impl | ms (median) | GB/s | % of copy | CUDA kernels / call | planned kernels |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "median_ms" not in r:
            print(f"| {r['impl']} | failed | | | | |")
            continue
        k = "—" if r["kernels"] is None else f"{r['kernels']:.0f}"
        pk = "—" if r["plan_kernels"] is None else r["plan_kernels"]
        print(f"| {r['impl']} | {r['median_ms']:.3f} | {r['GBps']:.0f} | {100 * r['GBps'] / copy:.0f}% | {k} | {pk} |")


def main():
    a = parse_args()
    import torch
    import triton

    import nncompiler
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    out = {"device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu (Triton interpreter)",
           "torch": torch.__version__, "triton": triton.__version__, "nncompiler": nncompiler.__version__,
           "cuda_graphs": os.environ.get("NNC_CUDA_GRAPHS", "1") != "0",
           "autotune": os.environ.get("NNC_AUTOTUNE") == "1", "batch": a.batch}
    print(f"# nncompiler triton backend on {out['device']}")
    print(f"torch {out['torch']}, triton {out['triton']}, nncompiler {out['nncompiler']}, "
          f"CUDA graphs {'on' if out['cuda_graphs'] else 'off'}, autotune {'on' if out['autotune'] else 'off'}")
    if "examples" not in skip:
        section_examples(a, out)
    if "mlp" not in skip:
        step_rows(a, out, "mlp", "MLP 784-512-512-10 Adam training step", MLP_NN,
                  lambda dev, b: torch_mlp(dev, b), 1e-3)
    if "cnn" not in skip:
        with open(os.path.join(ROOT, "examples", "digits_cnn.nn")) as f:
            cnn_src = f.read()
        step_rows(a, out, "cnn", "CNN (digits_cnn.nn: conv3x3x16, maxpool2, dense10) Adam training step",
                  cnn_src, TorchCNN.make, 3e-3)
    if "bandwidth" not in skip:
        section_bandwidth(a, out)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
    main()
