"""`conv` as an implicit-GEMM Triton kernel (plan_conv.py, codegen_conv.py, kernels/conv.py):
forward, input gradient and kernel gradient against torch (F.conv1d / 2d / 3d and autograd) on
odd shapes -- stride 2, dilation 2, asymmetric padding, odd sizes, batch 1, one and three input
channels, float64 -- through the generated kernels (the Triton interpreter without a GPU); the
bias + relu epilogue in the conv's own kernel; split-K over a kernel gradient's long reduction,
with the bias gradient as the column sums of its operand; grouped and depthwise convs, one GEMM
per group; and the kernels lowered to PTX for sm_90."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nncompiler.autodiff import grad
from nncompiler.backends.triton import Backend, aot
from nncompiler.backends.triton.cache import write_module
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType as T

RTOL, ATOL = 1e-4, 1e-5

# (x shape, kernel shape, stride, padding, dilation): NHWC / NWC, kernel [*window, C, F]
CASES = [
    ((1, 7, 6, 3), (3, 2, 3, 4), (2, 1), ((1, 0), (2, 1)), (1, 2)),     # batch 1, C 3, asymmetric
    ((3, 9, 7, 1), (3, 3, 1, 5), (2, 2), ((1, 2), (0, 1)), (2, 1)),     # C 1, stride 2 both ways
    ((2, 9, 1), (3, 1, 2), (2,), ((2, 1),), (2,)),                      # 1-d, stride 2, dilation 2
    ((1, 8, 3), (2, 3, 3), (1,), ((0, 0),), (1,)),                      # 1-d, no padding
    ((1, 6, 5, 2), (2, 2, 2, 3), (3, 2), ((3, 0), (0, 3)), (1, 1)),     # padding past the window: dx crops g
]


def _conv_graph(xs, ws, stride, padding, dilation, groups=1, bias=False, dtype="f32"):
    """y = conv(x, w) (+ bias) and loss = sum(y * r), differentiated for x and w (grad.x, grad.w;
    grad.bias with a bias)."""
    b = Builder("conv")
    x = b.argument("x", "input", T(dtype, ("B",) + tuple(xs[1:])))
    w = b.argument("w", "param", T(dtype, ws))
    y = b.conv(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    if bias:
        y = b.add(y, b.argument("bias", "param", T("f32", ws[-1:])))
    yt = b.type_of(y)
    r = b.argument("r", "input", yt)
    loss = b.sum(b.mul(y, r), axes=tuple(range(yt.rank)), keepdims=False)
    return grad(b.build({"y": y, "loss": loss}), "loss", ["x", "w"] + (["bias"] if bias else [])), tuple(yt.shape[1:])


def _torch(xv, wv, rv, stride, padding, dilation, groups=1):
    """(y, dx, dw) by torch: channels moved to axis 1, the kernel to [F, C, *window]."""
    sp = xv.ndim - 2
    x = torch.from_numpy(xv).requires_grad_()
    w = torch.from_numpy(wv).requires_grad_()
    xp = F.pad(x.movedim(-1, 1), [v for p in reversed(padding) for v in p])
    y = getattr(F, f"conv{sp}d")(xp, w.movedim(-1, 0).movedim(-1, 1), stride=stride, dilation=dilation,
                                 groups=groups).movedim(1, -1)
    (y * torch.from_numpy(rv)).sum().backward()
    return y.detach().numpy(), x.grad.numpy(), w.grad.numpy()


def _run(be, g, xs, ws, ys, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    args = {"x": rng.standard_normal(xs).astype(dtype), "w": rng.standard_normal(ws).astype(dtype),
            "r": rng.standard_normal((xs[0],) + ys).astype(dtype)}
    out = {k: be.to_numpy(v) for k, v in be.compile(g)(args).items()}
    return args, out


@pytest.mark.parametrize("xs,ws,stride,padding,dilation", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_conv_and_both_gradients_match_torch(xs, ws, stride, padding, dilation):
    g, ys = _conv_graph(xs, ws, stride, padding, dilation)
    be = Backend()
    plan = be.plan(g)
    convs = [k for k in plan.kernels if any(plan.graph[n].op == "conv" for n in k.nodes)]
    # the forward conv, the input gradient and the kernel gradient: three implicit-GEMM kernels
    assert len(convs) == 3 and all(k.kind == "matmul" and k.name.startswith("nnc_conv") for k in convs)
    if any(lo or hi for lo, hi in padding) or any(s > 1 for s in stride):
        # the input gradient reads the dilated, padded cotangent through its loads, not a copy
        assert "folded into its loads" in plan.describe()
    # ... and the flipped, channel-swapped kernel in place too (negative strides), not a copy
    w_id = plan.graph.arg("w").id
    for k in convs:
        cv = next(n for n in k.nodes if plan.graph[n].op == "conv")
        if plan.graph[cv].shape[1:] == tuple(xs[1:]):          # the input gradient: [B, *S, C]
            view = plan.operand_views[(cv, 1)]
            assert view.base == w_id and any(isinstance(st, int) and st < 0 for st in view.strides)
    args, out = _run(be, g, xs, ws, ys)
    y, dx, dw = _torch(args["x"], args["w"], args["r"], stride, padding, dilation)
    for name, want in (("y", y), ("grad.x", dx), ("grad.w", dw)):
        assert out[name].shape == want.shape, name
        np.testing.assert_allclose(out[name], want, rtol=RTOL, atol=ATOL, err_msg=name)


def test_3d_float64_conv_and_both_gradients_match_torch():
    # three spatial axes (the kernel gradient's output transpose rides in its epilogue), float64
    xs, ws, stride, padding, dilation = (2, 5, 4, 6, 2), (2, 3, 2, 2, 3), (2, 1, 2), ((1, 0), (1, 1), (0, 1)), (1, 1, 2)
    g, ys = _conv_graph(xs, ws, stride, padding, dilation, dtype="f64")
    be = Backend()
    assert sum(k.name.startswith("nnc_conv") for k in be.plan(g).kernels) == 3
    args, out = _run(be, g, xs, ws, ys, dtype=np.float64)
    y, dx, dw = _torch(args["x"], args["w"], args["r"], stride, padding, dilation)
    for name, want in (("y", y), ("grad.x", dx), ("grad.w", dw)):
        assert out[name].dtype == np.float64
        np.testing.assert_allclose(out[name], want, rtol=1e-12, atol=1e-12, err_msg=name)


def _bias_relu_graph():
    b = Builder("conv_bias_relu")
    x = b.argument("x", "input", T("f32", ("B", 6, 5, 3)))
    w = b.argument("w", "param", T("f32", (3, 3, 3, 4)))
    bias = b.argument("bias", "param", T("f32", (4,)))
    y = b.conv(x, w, stride=(1, 2), padding=((1, 1), (0, 2)), dilation=(1, 1), groups=1)
    return b.build({"y": b.maximum(b.add(y, bias), b.scalar(0.0))})


def test_conv_bias_relu_is_one_kernel():
    g = _bias_relu_graph()
    be = Backend()
    plan = be.plan(g)
    assert plan.launches() == 1
    (k,) = plan.kernels
    assert k.name == "nnc_conv_add_maximum_0" and "2-op epilogue" in plan.describe()
    rng = np.random.default_rng(3)
    xv = rng.standard_normal((2, 6, 5, 3)).astype(np.float32)
    wv = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    bv = rng.standard_normal(4).astype(np.float32)
    got = be.to_numpy(be.compile(g)({"x": xv, "w": wv, "bias": bv})["y"])
    y = F.conv2d(F.pad(torch.from_numpy(xv).movedim(-1, 1), [0, 2, 1, 1]),
                 torch.from_numpy(wv).permute(3, 2, 0, 1), stride=(1, 2)).movedim(1, -1).numpy()
    np.testing.assert_allclose(got, np.maximum(y + bv, 0), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("split", [1, 3])
def test_kernel_gradient_splits_its_long_reduction_and_carries_the_bias_gradient(split):
    # the kernel gradient contracts over batch x output pixels (K = 5 * 4 * 4 = 80 here): pinned to
    # 16-wide K blocks split three ways, the last split sums the partials and runs the epilogue;
    # the bias gradient, sum(g) over all but the channel, is the column sum of its B operand g^T
    xs, ws, stride, padding, dilation = (5, 7, 7, 2), (3, 3, 2, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)
    g, ys = _conv_graph(xs, ws, stride, padding, dilation, bias=True)
    be = Backend()
    cg = be.compile(g)
    plan = be.plan(g)
    wgrad = next(k for k in plan.kernels if any(plan.graph[n].op == "conv" and plan.graph[n].shape[0] == 2
                                                for n in k.nodes))
    assert wgrad.name.startswith("nnc_conv") and "colsum" in wgrad.name and len(wgrad.colsums) == 1
    assert not any(k.kind == "reduction" and len(plan.graph[k.nodes[0]].shape) == 1 for k in plan.kernels)
    cg.pin(wgrad.name, ({"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "SPLIT_K": split, "GROUP_M": 8}, 4, None))
    rng = np.random.default_rng(5)
    args = {"x": rng.standard_normal(xs).astype(np.float32), "w": rng.standard_normal(ws).astype(np.float32),
            "bias": rng.standard_normal(ws[-1]).astype(np.float32),
            "r": rng.standard_normal((xs[0],) + ys).astype(np.float32)}
    _, _, dw = _torch(args["x"], args["w"], args["r"], stride, padding, dilation)
    for _ in range(2):      # the second call reuses the tile counters the first one reset
        got = {k: be.to_numpy(v) for k, v in cg(args).items()}
        np.testing.assert_allclose(got["grad.w"], dw, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(got["grad.bias"], args["r"].sum(axis=(0, 1, 2)), rtol=RTOL, atol=ATOL)


def test_the_table_splits_a_kernel_gradient_over_k_on_an_h100():
    from nncompiler.backends.triton.tuning import launch_table
    g, _ = _conv_graph((1, 28, 28, 1), (3, 3, 1, 16), (1, 1), ((1, 1), (1, 1)), (1, 1))
    _, _, kernels = Backend().generated(g)
    rows = {r["kernel"]: r for r in launch_table(kernels, {"B": 256}, 90)}
    wgrad = [n for n in rows if n.startswith("nnc_conv")][-1]     # [1, 3, 3, 16]: M = 9, K = 28 * 28 * 256
    assert rows[wgrad]["blocks"]["SPLIT_K"] > 1


GROUPED = [
    ((2, 5, 4, 4), (2, 2, 2, 6), (1, 1), ((1, 0), (0, 1)), (1, 1), 2),   # 2 groups of 2 -> 3 channels
    ((1, 7, 3), (3, 1, 3), (2,), ((1, 1),), (2,), 3),                     # depthwise: a group per channel
]


@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", GROUPED, ids=["groups2", "depthwise"])
def test_grouped_conv_runs_a_gemm_per_group_and_matches_torch(xs, ws, stride, padding, dilation, groups):
    g, ys = _conv_graph(xs, ws, stride, padding, dilation, groups=groups)
    be = Backend()
    plan, _, kernels = be.generated(g)
    assert not any(k.kind == "fallback" for k in plan.kernels)
    grouped = {ks.name: next(plan.graph[n] for n in ks.group.nodes if plan.graph[n].op == "conv") for ks in kernels
               if any(plan.graph[n].op == "conv" and plan.graph[n].attr["groups"] == groups for n in ks.group.nodes)}
    # the forward conv and the input gradient: the group on the grid's batch, N its output channels
    assert len(grouped) == 2
    for ks in kernels:
        if ks.name in grouped:
            assert ks.info["batch"] == groups and ks.info["N"] == grouped[ks.name].shape[-1] // groups
    args, out = _run(be, g, xs, ws, ys)
    y, dx, dw = _torch(args["x"], args["w"], args["r"], stride, padding, dilation, groups=groups)
    for name, want in (("y", y), ("grad.x", dx), ("grad.w", dw)):
        np.testing.assert_allclose(out[name], want, rtol=RTOL, atol=ATOL, err_msg=name)


def test_conv_kernels_compile_to_ptx_for_sm_90_with_no_im2col_buffer(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path / "cache"))
    g, _ = _conv_graph(*CASES[0])
    be = Backend()
    plan, text, kernels = be.generated(g)
    convs = [ks for ks in kernels if ks.name.startswith("nnc_conv")]
    assert len(convs) == 3
    for ks in convs:
        # the kernel's buffers are its operands and what it stores: no [M, K] column matrix
        bufs = {p.ref for p in ks.params if p.kind == "buf"}
        assert bufs <= set(ks.group.reads) | set(ks.group.stores)
        mm = next(n for n in ks.group.nodes if plan.graph[n].op == "conv")
        assert bufs >= {plan.operand_views[(mm, 0)].base, plan.operand_views[(mm, 1)].base}
    # the forward conv, the kernel gradient, and a grouped conv (one GEMM per group)
    gg, _ = _conv_graph(*GROUPED[0][:5], groups=GROUPED[0][5])
    _, gtext, gkernels = be.generated(gg)
    items = [(write_module(g.name, text), [convs[0], convs[-1]]), (write_module(gg.name, gtext), gkernels[:1])]
    res = aot.compile_all(items, aot.parse_target("sm_90"))
    for (_, kss), r in zip(items, res):
        for ks in kss:
            ptx = r[ks.name]["ptx"]
            assert ks.name.startswith("nnc_conv") and ".target sm_90" in ptx and f".entry {ks.name}" in ptx
            assert "fma.rn.f32" in ptx            # IEEE float32 products (no TF32), as the numpy reference
