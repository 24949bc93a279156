"""gpu_step.py's `rnn` section: an LSTM training step on the Triton backend with its scans run
as host loops over the body's kernels (backends/triton/loops.py) against the same step
unrolled (at the shorter length only: the longer one unrolled is minutes of JIT compiles),
and against torch eager (cuDNN's LSTM), at two sequence lengths.

The loop and the unrolled rows are the same model compiled twice in this process, interleaved
with torch, so their ratio is fair: both replay one CUDA graph per step (the loop's holds every
step's launches), and `planned kernels` (kernels generated, scan bodies included) is the
compile cost that the loop keeps constant in T. On the CPU (`--device cpu --quick`) it is a
smoke test of the section in the Triton interpreter, at T = 8.
"""
from __future__ import annotations

import time
import traceback

LSTM_NN = """
model Seq {
    input  x: f32[B, $T, $F]
    target y: f32[B]
    h    = lstm(x, $U)
    pred = dense(h, 1)
    output pred
    loss mse(pred, y)
    optimizer adam(lr=0.001)
}
"""


class TorchLSTM:
    @staticmethod
    def make(dev, batch, steps, features, units):
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = torch.nn.LSTM(features, units, batch_first=True)
                self.out = torch.nn.Linear(units, 1)

            def forward(self, x):
                return self.out(self.rnn(x)[1][0][0]).squeeze(1)

        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, steps, features, generator=g).to(dev)
        y = torch.randn(batch, generator=g).to(dev)
        return Net().to(dev), x, y


def _torch_step(net, x, y, lr=1e-3):
    import torch
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def _nnc_row(gs, a, name, source, batch, unrolled: bool):
    """One nnc row; `unrolled` compiles every scan unrolled (loops.LOOP_MIN_LENGTH out of reach)."""
    from nncompiler.backends.triton import loops
    saved = loops.LOOP_MIN_LENGTH
    if unrolled:
        loops.LOOP_MIN_LENGTH = 1 << 30       # read when the graph is generated, on the first call
    try:
        t0 = time.perf_counter()
        m = gs.nnc_compile(source, a)
        if m is None:
            raise NotImplementedError(f"this nncompiler has no --precision {a.precision}")
        step = gs.NncStep(m, batch)
        step()
        gs.sync(a.device)
        first = time.perf_counter() - t0
        planned = m.backend.kernel_count(m.graph("train_step"))
    finally:
        loops.LOOP_MIN_LENGTH = saved
    return gs.timed_row(name, step, a, first, planned)


def section_rnn(gs, a, out):
    """gs: the gpu_step module (its timing, kernel counting and NncStep)."""
    import numpy as np
    quick_cpu = a.quick and a.device == "cpu"
    features, units = (2, 4) if quick_cpu else (32, 128)
    lengths = (8,) if quick_cpu else (20, 60)
    batch = min(a.batch, 4) if quick_cpu else a.batch
    rows = []
    for steps in lengths:
        source = LSTM_NN.replace("$T", str(steps)).replace("$F", str(features)).replace("$U", str(units))
        rng = np.random.default_rng(0)
        data = {"x": rng.standard_normal((batch, steps, features)).astype(np.float32),
                "y": rng.standard_normal(batch).astype(np.float32)}
        variants = [("nnc triton, scans as loops (CUDA graph)", False)]
        if steps == lengths[0]:     # unrolled at the longer T: ~250 kernels to JIT, minutes of device time
            variants.append(("nnc triton, scans unrolled (CUDA graph)", True))
        for name, unrolled in variants:
            try:
                rows.append({"T": steps, **_nnc_row(gs, a, name, source, data, unrolled)})
            except Exception as e:
                traceback.print_exc()
                rows.append({"T": steps, "impl": f"{name}: {type(e).__name__}: {e}"[:100]})
        try:
            net, x, y = TorchLSTM.make(a.device, batch, steps, features, units)
            fn = _torch_step(net, x, y)
            t0 = time.perf_counter()
            fn()
            gs.sync(a.device)
            rows.append({"T": steps, **gs.timed_row("torch eager (cuDNN LSTM)", fn, a, time.perf_counter() - t0)})
        except Exception as e:
            traceback.print_exc()
            rows.append({"T": steps, "impl": f"torch eager: {type(e).__name__}: {e}"[:100]})
    out["rnn"] = rows
    gs.emit(out, gs.table(
        [f"\n### LSTM {features}->{units} + dense 1, Adam training step, batch {batch}, {a.precision}\n"],
        ["impl", "T", "step ms (median)", "min", "kernels / step", "planned kernels", "first call s"], rows,
        lambda r: [gs.cell(r["median_ms"], ".3f"), gs.cell(r["min_ms"], ".3f"), gs.cell(r["kernels"], ".0f"),
                   gs.cell(r["plan_kernels"], "d"), gs.cell(r["first_s"], ".2f")], lead=("impl", "T")))
