"""Pooling as generated Triton kernels (codegen_window.py): `reduce_window` (max and sum) and
`select_scatter` (max pooling's gradient) forward and gradient against torch (F.max_pool1d /
max_pool2d / avg_pool2d and autograd) on odd shapes -- overlapping windows (window 3, stride 2),
a stride wider than the window, asymmetric padding, odd sizes, batch 1 -- and ties (torch's and
the reference's first maximal tap); NaNs as the numpy backend; elementwise prologues recomputed
at the taps and epilogues in the same kernel; no torch call left in a CNN's training step; the
kernels lowered to PTX for sm_90. Runs through the Triton interpreter without a GPU."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nncompiler as nnc
from nncompiler.autodiff import grad
from nncompiler.backends import get_backend
from nncompiler.backends.triton import Backend, aot
from nncompiler.backends.triton.cache import write_module
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType as T

RTOL, ATOL = 1e-5, 1e-6
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples")

# (x shape NHWC / NWC, kind, window, stride, padding, small integers: many tied maxima)
CASES = [
    ((2, 7, 6, 3), "max", (3, 3), (2, 2), ((1, 1), (0, 1)), False),   # overlapping, asymmetric padding
    ((1, 7, 5, 2), "max", (3, 2), (2, 1), ((1, 0), (0, 1)), True),    # overlapping, ties, batch 1
    ((2, 8, 6, 3), "max", (2, 2), (2, 2), ((0, 0), (0, 0)), True),    # tiled windows (the usual pool), ties
    ((1, 7, 3), "max", (2,), (3,), ((1, 0),), True),                  # 1-d, stride past the window: gaps
    ((2, 9, 4), "max", (3,), (2,), ((0, 2),), False),                 # 1-d, overlapping, padded past the end
    ((2, 7, 6, 3), "sum", (3, 2), (2, 1), ((1, 1), (0, 1)), False),   # average pooling's sum, padded
]


def _pool_graph(xs, kind, window, stride, padding):
    """y = reduce_window(x) and loss = sum(y * r), differentiated for x (grad.x)."""
    b = Builder("pool")
    x = b.argument("x", "param", T("f32", xs))
    y = b.reduce_window(x, kind=kind, window=window, stride=stride, padding=padding)
    yt = b.type_of(y)
    r = b.argument("r", "input", yt)
    loss = b.sum(b.mul(y, r), axes=tuple(range(yt.rank)), keepdims=False)
    return grad(b.build({"y": y, "loss": loss}), "loss", ["x"]), tuple(yt.shape)


def _torch(xv, rv, kind, window, stride, padding):
    """(y, dx) by torch: the input padded by hand (-inf for max, 0 for the sum: avg_pool's
    count_include_pad times the window size)."""
    sp = xv.ndim - 2
    x = torch.from_numpy(xv).requires_grad_()
    fill = -float("inf") if kind == "max" else 0.0
    xp = F.pad(x.movedim(-1, 1), [v for p in reversed(padding) for v in p], value=fill)
    if kind == "max":
        y = getattr(F, f"max_pool{sp}d")(xp, window, stride)
    else:
        y = getattr(F, f"avg_pool{sp}d")(xp, window, stride) * float(np.prod(window))
    y = y.movedim(1, -1)
    (y * torch.from_numpy(rv)).sum().backward()
    return y.detach().numpy(), x.grad.numpy()


def _inputs(xs, ys, ties, seed=0):
    rng = np.random.default_rng(seed)
    xv = (rng.integers(-2, 3, xs) if ties else rng.standard_normal(xs)).astype(np.float32)
    return xv, rng.standard_normal(ys).astype(np.float32)


@pytest.mark.parametrize("xs,kind,window,stride,padding,ties", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_pool_and_its_gradient_match_torch(xs, kind, window, stride, padding, ties):
    g, ys = _pool_graph(xs, kind, window, stride, padding)
    be = Backend()
    plan = be.plan(g)
    assert not any(k.kind == "fallback" for k in plan.kernels), plan.describe()
    wins = [k for k in plan.kernels if any(plan.graph[n].op in ("reduce_window", "select_scatter") for n in k.nodes)]
    # the forward pool, and the gradient (select_scatter, or the sum's transposed window)
    assert len(wins) == 2 and all(k.kind == "pointwise" for k in wins)
    xv, rv = _inputs(xs, ys, ties)
    out = {k: be.to_numpy(v) for k, v in be.compile(g)({"x": xv, "r": rv}).items()}
    y, dx = _torch(xv, rv, kind, window, stride, padding)
    np.testing.assert_allclose(out["y"], y, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["grad.x"], dx, rtol=RTOL, atol=ATOL)
    if ties:    # the first maximal tap takes a window's gradient: exactly g there, 0 at its ties
        np.testing.assert_array_equal(out["grad.x"] == 0, dx == 0)


def test_the_torch_rules_still_serve_fallback_ops():
    # Backend(fallback_ops=...) sends pooling to fallback.TORCH_RULES (a debugging aid): same numbers
    xs, kind, window, stride, padding, ties = CASES[1]
    g, ys = _pool_graph(xs, kind, window, stride, padding)
    xv, rv = _inputs(xs, ys, ties)
    be = Backend(fallback_ops=("reduce_window", "select_scatter"))
    assert sum(k.kind == "fallback" for k in be.plan(g).kernels) == 2
    out = {k: be.to_numpy(v) for k, v in be.compile(g)({"x": xv, "r": rv}).items()}
    y, dx = _torch(xv, rv, kind, window, stride, padding)
    np.testing.assert_allclose(out["y"], y, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["grad.x"], dx, rtol=RTOL, atol=ATOL)


def test_the_cotangent_and_the_pad_are_recomputed_at_the_taps():
    # max pooling's gradient reads g * r (its cotangent) at each window: that product is its
    # prologue, not a stored buffer; the sum's gradient reads the dilated, padded g * r likewise
    for case, op in ((CASES[0], "select_scatter"), (CASES[5], "reduce_window")):
        g, _ = _pool_graph(*case[:5])
        plan = Backend().plan(g)
        k = plan.kernels[-1]            # the gradient's window kernel
        assert any(plan.graph[n].op == op for n in k.nodes)
        assert len(plan.kernels) == 3
        assert "recomputed at each tap" in plan.describe()
        mul = next(n for n in k.nodes if plan.graph[n].op == "mul")
        assert mul in k.space.tapped and mul not in k.stores


def test_relu_prologue_and_tanh_epilogue_share_the_pool_kernel():
    b = Builder("fused_pool")
    x = b.argument("x", "input", T("f32", ("B", 7, 5, 3)))
    c = b.argument("c", "param", T("f32", (3,)))
    z = b.add(x, c)
    relu = b.maximum(z, b.scalar(0.0))
    p = b.reduce_window(relu, kind="max", window=(3, 2), stride=(2, 2), padding=((1, 1), (0, 1)))
    g = b.build({"y": b.tanh(p)})
    be = Backend()
    plan = be.plan(g)
    assert len(plan.kernels) == 1 and plan.kernels[0].kind == "pointwise", plan.describe()
    rng = np.random.default_rng(3)
    xv, cv = rng.standard_normal((2, 7, 5, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    got = be.to_numpy(be.compile(g)({"x": xv, "c": cv})["y"])
    xt = torch.relu(torch.from_numpy(xv + cv)).movedim(-1, 1)
    want = torch.tanh(F.max_pool2d(F.pad(xt, [0, 1, 1, 1], value=-float("inf")), (3, 2), (2, 2))).movedim(1, -1)
    np.testing.assert_allclose(got, want.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", [0, 2])
def test_nans_pool_as_the_numpy_backend(case):
    # a NaN is a window's max and stops later taps from winning its gradient (numpy's maximum
    # and strict comparison, ir/windows.py): the same bits from both backends
    xs, kind, window, stride, padding, _ = CASES[case]
    g, ys = _pool_graph(xs, kind, window, stride, padding)
    xv, rv = _inputs(xs, ys, True, seed=1)
    xv.reshape(-1)[::7] = np.nan
    want = {k: np.asarray(v) for k, v in get_backend("numpy").compile(g)({"x": xv, "r": rv}).items()}
    be = Backend()
    got = {k: be.to_numpy(v) for k, v in be.compile(g)({"x": xv, "r": rv}).items()}
    assert np.isnan(want["y"]).any() and np.isnan(want["grad.x"]).sum() < xv.size
    for k in ("y", "grad.x"):
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_a_cnn_training_step_calls_no_torch_op():
    m = nnc.compile(os.path.join(EXAMPLES, "digits_cnn.nn"), backend="triton")
    for graph, count in (("predict", 5), ("train_step", 10)):
        plan = m.backend.plan(m.graph(graph))
        assert not any(k.kind == "fallback" for k in plan.kernels), plan.describe()
        assert len(plan.kernels) == count
        ops = {plan.graph[n].op: k for k in plan.kernels for n in k.nodes}
        assert ops["reduce_window"].kind == "pointwise"
    # the backward: the relu mask on the pooled cotangent, recomputed inside max pooling's gradient
    ss = ops["select_scatter"]
    assert ss.kind == "pointwise" and any(plan.graph[n].op == "where" for n in ss.space.tapped)


def test_pool_kernels_compile_to_ptx_for_sm_90(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path / "cache"))
    items = []
    for case in (CASES[0], CASES[2], CASES[5]):     # overlapping and tiled select_scatter, sum windows
        g, _ = _pool_graph(*case[:5])
        _, text, kernels = Backend().generated(g)
        wins = [ks for ks in kernels if "reduce_window" in ks.name or "select_scatter" in ks.name]
        items.append((write_module(g.name, text), wins))
    assert sum(len(ks) for _, ks in items) == 6
    for (_, kss), r in zip(items, aot.compile_all(items, aot.parse_target("sm_90"))):
        for ks in kss:
            ptx = r[ks.name]["ptx"]
            assert ".target sm_90" in ptx and f".entry {ks.name}" in ptx
            assert "atom." not in ptx and "red." not in ptx.replace("red.f", "")    # a gather, no atomics
