"""backends/mlir/windows.py's fast forms, against torch.autograd: a reduction-heavy conv
(more window taps than output positions, as every kernel gradient is) lowered as im2col +
one matmul per input channel (a batch_matmul, then the sum over the channels; with a static
channel count), or one matmul per row of taps (a symbolic one, or more filters than taps), or
one matmul, and max pooling's select_scatter over non-overlapping windows lowered as one
elementwise map. Inputs and kernels hold small integers, so every conv output is exact in
float32 in any summation order and the pooling windows are full of ties: the first maximal
tap must win in both implementations."""
from __future__ import annotations

import numpy as np
import pytest

from mlir_testlib import requires_iree
from nncompiler.autodiff import grad
from nncompiler.backends import get_backend
from nncompiler.backends.mlir.emit import emit_function
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType

torch = pytest.importorskip("torch")

# (x shape without batch, kernel shape, stride, dilation, padding, groups, pooling window)
CASES = {
    "2d same, odd sizes, pool 2 with leftover": ((7, 9, 3), (3, 3, 3, 4), (1, 1), (1, 1), ((1, 1), (1, 1)), 1, (2, 2)),
    "2d stride 2, dilation 2, pool 3": ((13, 12, 2), (3, 2, 2, 5), (2, 2), (2, 1), ((1, 1), (0, 1)), 1, (3, 2)),
    "2d groups 2": ((8, 8, 4), (3, 3, 2, 6), (1, 1), (1, 1), ((1, 1), (1, 1)), 2, (2, 2)),
    "2d reduction-heavy forward": ((8, 7, 3), (5, 4, 3, 2), (1, 1), (1, 1), ((0, 0), (0, 0)), 1, (2, 2)),
    "2d reduction-heavy strided": ((9, 9, 2), (4, 4, 2, 3), (2, 2), (2, 2), ((0, 0), (0, 0)), 1, (2, 1)),
    "2d reduction-heavy, more filters than taps": ((5, 6, 2), (4, 4, 2, 20), (1, 1), (1, 1), ((0, 0), (0, 0)), 1, (1, 1)),
    "2d reduction-heavy, by tap rows": ((4, 4, 4), (3, 3, 4, 12), (1, 1), (1, 1), ((0, 0), (0, 0)), 1, (1, 1)),
    "1d": ((11, 2), (3, 2, 3), (1,), (1,), ((1, 1),), 1, (2,)),
    "3d": ((4, 5, 6, 2), (2, 2, 2, 2, 3), (1, 1, 1), (1, 1, 1), ((1, 0), (0, 1), (1, 0)), 1, (2, 2, 2)),
}


def _graph(batch, case):
    xs, ws, stride, dilation, padding, groups, window = case
    b = Builder("windows")
    x = b.argument("x", "input", TensorType("f32", (batch,) + xs))
    w = b.argument("w", "param", TensorType("f32", ws))
    y = b.conv(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    p = b.reduce_window(y, kind="max", window=window, stride=window, padding=((0, 0),) * len(window))
    r = b.argument("r", "input", TensorType("f32", b.shape(p)))   # weights every pooled value
    loss = b.sum(b.mul(p, r), axes=tuple(range(len(xs) + 1)), keepdims=False)
    return grad(b.build({"loss": loss, "y": y, "p": p}), "loss", ["x", "w"])


def _args(g, case):
    rng = np.random.default_rng(7)
    shapes = {k: g.arg(k).shape for k in ("x", "w", "r")}
    return {"x": rng.integers(-2, 3, shapes["x"]).astype(np.float32),
            "w": rng.integers(-1, 2, shapes["w"]).astype(np.float32),
            "r": rng.standard_normal(shapes["r"]).astype(np.float32)}


def _torch(args, case):
    """The same loss and gradients with torch (channels-first; asymmetric padding by F.pad)."""
    _, _, stride, dilation, padding, groups, window = case
    F = torch.nn.functional
    sp = len(stride)
    x = torch.tensor(args["x"], requires_grad=True)
    w = torch.tensor(args["w"], requires_grad=True)
    to_first = (0, sp + 1) + tuple(range(1, sp + 1))
    xc = x.permute(*to_first)
    wc = w.permute(sp + 1, sp, *range(sp))
    xc = F.pad(xc, [p for lo_hi in reversed(padding) for p in lo_hi])
    y = getattr(F, f"conv{sp}d")(xc, wc, stride=stride, dilation=dilation, groups=groups)
    p = getattr(F, f"max_pool{sp}d")(y, window, window)
    to_last = (0,) + tuple(range(2, sp + 2)) + (1,)
    y, p = y.permute(*to_last), p.permute(*to_last)
    loss = (p * torch.tensor(args["r"])).sum()
    loss.backward()
    return {"loss": loss, "y": y, "p": p, "grad.x": x.grad, "grad.w": w.grad}


@requires_iree
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", list(CASES))
def test_conv_and_tiled_max_pool_gradients_match_torch(name, batch):
    case = CASES[name]
    g = _graph(batch, case)
    args = _args(g, case)
    be = get_backend("mlir")
    out = be.compile(g)({k: be.to_device(v) for k, v in args.items()})
    want = _torch(args, case)
    for k, v in want.items():
        np.testing.assert_allclose(np.asarray(be.to_numpy(out[k])), v.detach().numpy(),
                                   rtol=1e-5, atol=1e-5, err_msg=f"{name}: {k}")


def test_kernel_gradients_are_matmuls_and_tiled_pooling_needs_no_gather():
    """The forms the cases above check are the ones emitted (the general forms would pass too)."""
    text, _ = emit_function(_graph(4, CASES["2d same, odd sizes, pool 2 with leftover"]))
    # the kernel gradient: one matmul per image (its input channel), reading x and g through
    # the VJP's transposes, which are not emitted (the one left puts dw in the kernel's layout)
    assert "im2col" in text and "linalg.batch_matmul" in text and "linalg.matmul" not in text
    assert "as a matmul per input channel, reading" in text and text.count("linalg.transpose") == 1
    # col[c, t.., o.., b] reads x[c, o + t, .., b]: x^T's permutation composed into the map
    assert "affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d3 * 1 + d1 * 1, d4 * 1 + d2 * 1, d5)>" in text
    assert "spread = " in text and "wmax" not in text        # the select_scatter: no index pass
    text, _ = emit_function(_graph(4, CASES["2d reduction-heavy forward"]))
    # no transpose to fold: the kernel is copied to [c, t.., f] once
    assert text.count("im2col = ") >= 1 and "by_channel = linalg.transpose" in text
    assert "linalg.conv_2d_nhwc_hwcf" in text   # the input gradient is not heavy
    text, _ = emit_function(_graph(4, CASES["2d reduction-heavy, more filters than taps"]))
    assert "linalg.matmul ins(%collapsed" in text   # any partial sums would outgrow the copy
    text, _ = emit_function(_graph(4, CASES["2d reduction-heavy, by tap rows"]))
    # 12 filters > 9 taps, but no more than a row of taps (3) times the channels (4): batched over
    # the first tap axis, w read in its own layout
    assert "%part = linalg.batch_matmul ins(%collapsed, %expanded" in text or \
        "%part = linalg.batch_matmul ins(%collapsed, %collapsed" in text
    assert "as a matmul per input channel" not in text


@requires_iree
def test_kernel_gradient_with_a_symbolic_batch():
    """One compiled function serves any batch size; the kernel gradient, whose channel count is
    the batch, is batched over its first row of taps."""
    case = CASES["2d stride 2, dilation 2, pool 3"]
    xs, ws, stride, dilation, padding, groups, window = case
    b = Builder("windows")
    x = b.argument("x", "input", TensorType("f32", ("B",) + xs))
    w = b.argument("w", "param", TensorType("f32", ws))
    y = b.conv(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    loss = b.sum(b.mul(y, y), axes=tuple(range(len(xs) + 1)), keepdims=False)
    g = grad(b.build({"loss": loss}), "loss", ["x", "w"])
    text = emit_function(g)[0]
    # the kernel gradient's channels are the batch: batched over its first tap axis (static
    # partial sums), reading the VJP's transposes as they are, not per channel
    assert "tensor<?x" in text and "%part = linalg.batch_matmul ins(" in text
    assert "as a matmul per input channel" not in text and "linalg.transpose" in text
    be = get_backend("mlir")
    fn = be.compile(g)
    rng = np.random.default_rng(3)
    for batch in (3, 1):
        xv = rng.integers(-2, 3, (batch,) + xs).astype(np.float32)
        wv = rng.integers(-1, 2, ws).astype(np.float32)
        out = fn({"x": be.to_device(xv), "w": be.to_device(wv)})
        xt = torch.tensor(xv, requires_grad=True)
        wt = torch.tensor(wv, requires_grad=True)
        xc = torch.nn.functional.pad(xt.permute(0, 3, 1, 2), [p for lo_hi in reversed(padding) for p in lo_hi])
        yt = torch.nn.functional.conv2d(xc, wt.permute(3, 2, 0, 1), stride=stride, dilation=dilation)
        (yt * yt).sum().backward()
        np.testing.assert_allclose(np.asarray(be.to_numpy(out["grad.w"])), wt.grad.numpy(), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(be.to_numpy(out["grad.x"])), xt.grad.numpy(), rtol=1e-6)


def test_overlapping_or_padded_windows_keep_the_general_select_scatter():
    b = Builder("overlap")
    x = b.argument("x", "input", TensorType("f32", (2, 6, 6, 3)))
    p = b.reduce_window(x, kind="max", window=(2, 2), stride=(1, 1), padding=((0, 0), (0, 0)))
    loss = b.sum(p, axes=(0, 1, 2, 3), keepdims=False)
    text, _ = emit_function(grad(b.build({"loss": loss}), "loss", ["x"]))
    assert "spread = " not in text and "wmax" in text


def _biased(batch, case):
    """conv + bias -> max pool -> weighted sum, gradients for x, w and the bias: the bias's is a
    sum of select_scatter's result over the batch and every pixel (rewrite.py reads its g)."""
    xs, ws, stride, dilation, padding, groups, window = case
    b = Builder("biased")
    x = b.argument("x", "input", TensorType("f32", (batch,) + xs))
    w = b.argument("w", "param", TensorType("f32", ws))
    c = b.argument("c", "param", TensorType("f32", (ws[-1],)))
    y = b.add(b.conv(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups), c)
    p = b.reduce_window(y, kind="max", window=window, stride=window, padding=((0, 0),) * len(window))
    r = b.argument("r", "input", TensorType("f32", b.shape(p)))
    loss = b.sum(b.mul(p, r), axes=tuple(range(len(xs) + 1)), keepdims=False)
    return grad(b.build({"loss": loss}), "loss", ["x", "w", "c"])


@requires_iree
@pytest.mark.parametrize("name", ["2d same, odd sizes, pool 2 with leftover", "2d stride 2, dilation 2, pool 3",
                                  "2d groups 2", "1d", "3d"])
def test_symbolic_batch_kernel_and_bias_gradients_match_torch(name):
    """One function for every batch (batch 1 included): the kernel gradient batched over its
    first row of taps, and the bias gradient summing the pooling's g, not its scattered result."""
    from nncompiler.backends.mlir.rewrite import rewrite
    case = CASES[name]
    xs, ws, stride, dilation, padding, groups, window = case
    g = _biased("B", case)
    rg = rewrite(g)
    assert not [n for n in rg.nodes if n.op == "sum" and rg[n.inputs[0]].op == "select_scatter"]
    be = get_backend("mlir")
    fn = be.compile(g)
    rng = np.random.default_rng(11)
    for batch in (3, 1):
        args = _args(_graph(batch, case), case)
        args["c"] = rng.integers(-2, 3, (ws[-1],)).astype(np.float32)
        out = fn({k: be.to_device(v) for k, v in args.items()})
        F = torch.nn.functional
        sp = len(stride)
        x = torch.tensor(args["x"], requires_grad=True)
        w = torch.tensor(args["w"], requires_grad=True)
        c = torch.tensor(args["c"], requires_grad=True)
        xc = F.pad(x.permute(0, sp + 1, *range(1, sp + 1)), [q for lo_hi in reversed(padding) for q in lo_hi])
        y = getattr(F, f"conv{sp}d")(xc, w.permute(sp + 1, sp, *range(sp)), bias=c, stride=stride,
                                     dilation=dilation, groups=groups)
        p = getattr(F, f"max_pool{sp}d")(y, window, window).permute(0, *range(2, sp + 2), 1)
        (p * torch.tensor(args["r"])).sum().backward()
        for k, want in (("grad.x", x.grad), ("grad.w", w.grad), ("grad.c", c.grad)):
            np.testing.assert_allclose(np.asarray(be.to_numpy(out[k])), want.numpy(), rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name}, batch {batch}: {k}")


def _pooled_bias(window, stride, padding, after_conv=False):
    """x + bias (after a conv when after_conv) -> max pool -> sum; gradients for x and the bias."""
    b = Builder("pooled")
    x = b.argument("x", "input", TensorType("f32", ("B", 7, 6, 3)))
    c = b.argument("c", "param", TensorType("f32", (3,)))
    y = b.add(x, c)
    p = b.reduce_window(y, kind="max", window=window, stride=stride, padding=padding)
    if after_conv:   # the pooling's g is then the next conv's input gradient
        k = b.argument("k", "param", TensorType("f32", (2, 2, 3, 2)))
        p = b.conv(p, k, stride=(1, 1), padding=((1, 0), (0, 1)), dilation=(1, 1), groups=1)
    r = b.argument("r", "input", TensorType("f32", b.shape(p)))
    loss = b.sum(b.mul(p, r), axes=(0, 1, 2, 3), keepdims=False)
    return grad(b.build({"loss": loss}), "loss", ["x", "c"])


@requires_iree
@pytest.mark.parametrize("window, stride, padding, rewritten", [
    ((2, 2), (2, 2), ((0, 0), (0, 0)), True),       # tiles, with a leftover row
    ((3, 2), (2, 1), ((0, 0), (0, 0)), True),       # overlapping windows: each still picks one tap
    ((2, 2), (2, 2), ((1, 0), (0, 1)), False),      # padded: a window's tap may be padding
])
def test_bias_gradient_under_max_pooling_sums_g(window, stride, padding, rewritten):
    from nncompiler.backends.mlir.rewrite import rewrite
    g = _pooled_bias(window, stride, padding)
    rg = rewrite(g)
    sums = [n for n in rg.nodes if n.op == "sum" and tuple(n.attr["axes"]) == (0, 1, 2)]
    assert len(sums) == 1
    assert (rg[sums[0].inputs[0]].op != "select_scatter") == rewritten
    be = get_backend("mlir")
    fn = be.compile(g)
    rng = np.random.default_rng(5)
    for batch in (4, 1):
        xv = rng.integers(-2, 3, (batch, 7, 6, 3)).astype(np.float32)   # ties in every window
        cv = rng.standard_normal(3).astype(np.float32)
        x = torch.tensor(xv, requires_grad=True)
        c = torch.tensor(cv, requires_grad=True)
        y = torch.nn.functional.pad((x + c).permute(0, 3, 1, 2), [padding[1][0], padding[1][1], padding[0][0],
                                                                  padding[0][1]], value=-np.inf)
        p = torch.nn.functional.max_pool2d(y, window, stride).permute(0, 2, 3, 1)
        rv = rng.standard_normal(tuple(p.shape)).astype(np.float32)
        (p * torch.tensor(rv)).sum().backward()
        out = fn({"x": be.to_device(xv), "c": be.to_device(cv), "r": be.to_device(rv)})
        np.testing.assert_allclose(np.asarray(be.to_numpy(out["grad.c"])), c.grad.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(be.to_numpy(out["grad.x"])), x.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_bias_gradient_keeps_the_scatter_when_g_comes_from_a_conv():
    """IREE fuses a conv's output and the scatter into one dispatch; a second reader of g would
    split them and add an intermediate (case F's first conv: past the 64 MiB line), unless the
    pool records its winning taps (windows that tile), which frees more than that costs."""
    from nncompiler.backends.mlir.rewrite import rewrite
    g = _pooled_bias((3, 2), (2, 1), ((0, 0), (0, 0)), after_conv=True)   # overlapping windows
    assert rewrite(g) is g
    g = _pooled_bias((2, 2), (2, 2), ((0, 0), (0, 0)), after_conv=True)
    rg = rewrite(g)
    sums = [n for n in rg.nodes if n.op == "sum" and tuple(n.attr["axes"]) == (0, 1, 2)]
    assert len(sums) == 1 and rg[sums[0].inputs[0]].op != "select_scatter"


def _pooled(window, stride, batch=3, xs=(7, 6, 2), after_conv=False):
    """x -> max pool (-> a conv) -> weighted sum; the gradient for x (select_scatter) and the
    pooled value."""
    b = Builder("pool")
    x = b.argument("x", "input", TensorType("f32", (batch,) + xs))
    p = b.reduce_window(x, kind="max", window=window, stride=stride, padding=((0, 0),) * len(window))
    if after_conv:   # the pooling's g is then the conv's input gradient
        k = b.argument("k", "param", TensorType("f32", (2, 2, xs[-1], 2)))
        p = b.conv(p, k, stride=(1, 1), padding=((1, 0), (0, 1)), dilation=(1, 1), groups=1)
    r = b.argument("r", "input", TensorType("f32", b.shape(p)))
    loss = b.sum(b.mul(p, r), axes=tuple(range(len(xs) + 1)), keepdims=False)
    return grad(b.build({"loss": loss, "p": p}), "loss", ["x"])


def test_a_max_pool_records_its_winning_taps_for_its_gradient():
    """Windows that tile, g from a conv: the pool yields each window's winning tap as an i8, and
    the gradient reads those instead of the pool's input (which is then free after the
    forward). Not where g comes from elsewhere (linalg.pooling is faster, rewrite.recorded_pools)."""
    text, _ = emit_function(_pooled((2, 2), (2, 2), after_conv=True))
    assert "reduce_window max, with each window's first maximal tap for" in text
    assert "linalg.pooling" not in text and ":2 = linalg.generic" in text
    scatter = text[text.index("select_scatter over non-overlapping windows"):]
    spread = next(line for line in scatter.split("\n") if "spread = linalg.generic" in line)
    assert "xi8>, tensor<3x3x3x2xf32>) outs(" in spread             # the taps, then g
    assert "%tap" not in scatter.split("spread")[0]      # no slice of x for the gradient
    for g in (_pooled((2, 2), (1, 1), after_conv=True), _pooled((2, 2), (2, 2))):   # overlapping; g not a conv's
        text, _ = emit_function(g)
        assert "linalg.pooling_nhwc_max" in text and "xi8>" not in text


def _nan_inputs(g, rng):
    x = rng.integers(-2, 3, g.arg("x").shape).astype(np.float32)     # ties in every window
    x.reshape(-1)[rng.choice(x.size, x.size // 5, replace=False)] = np.nan
    x.reshape(-1)[:: 7] = -0.0
    return {"x": x, "r": rng.standard_normal(g.arg("r").shape).astype(np.float32)}


@requires_iree
@pytest.mark.parametrize("recorded", [True, False])
@pytest.mark.parametrize("window", [(2, 2), (3, 2), (1, 2)])
def test_tiled_max_pool_gradient_with_nans_and_ties_is_the_numpy_backends(window, recorded, monkeypatch):
    """The winner with ties and NaNs is the numpy backend's (ir/pools.py: a later tap wins where
    it is greater than the running max, which a NaN makes NaN), bit for bit, whether the pool
    records the winners or the gradient recomputes them from x (either, whatever feeds g)."""
    from nncompiler.backends.mlir import emit, rewrite, windows
    pools = windows.pool_pairs if recorded else (lambda graph: {})
    monkeypatch.setattr(emit, "recorded_pools", pools)
    monkeypatch.setattr(rewrite, "recorded_pools", pools)
    g = _pooled(window, window)
    text, _ = emit_function(g)
    assert ("xi8>" in text) == recorded
    args = _nan_inputs(g, np.random.default_rng(11))
    ref, be = get_backend("numpy"), get_backend("mlir")
    want = ref.compile(g)({k: ref.to_device(v) for k, v in args.items()})
    got = be.compile(g)({k: be.to_device(v) for k, v in args.items()})
    for k in ("p", "grad.x"):
        w, o = np.asarray(ref.to_numpy(want[k])), np.asarray(be.to_numpy(got[k]))
        assert (np.isnan(w).any() if k == "p" else (w != 0).any())     # the inputs test something
        np.testing.assert_array_equal(o, w, err_msg=k)
    # g's bits go to the winner (the pooled max's zeros may differ in sign: arith.maximumf, as
    # linalg.pooling's, gives +0 for -0 and +0 where np.maximum gives its second operand)
    np.testing.assert_array_equal(np.signbit(o), np.signbit(w))


def _case_f_step():
    from bench.cases import make_case
    from nncompiler import compile as nnc_compile
    return nnc_compile(make_case("F").source, backend="numpy").graph("train_step")


def test_case_f_bias_gradients_sum_g_and_its_first_pool_records_its_winners():
    """Bench case F (conv-relu-pool twice, dense): the first pool, whose g is the second conv's
    input gradient, records its winning taps, and both bias gradients sum the pooling's g, the
    first conv's too (rewrite.py)."""
    text, _ = emit_function(_case_f_step())
    assert text.count("reduce_window max, with each window's first maximal tap for") == 1
    assert "linalg.pooling_nhwc_max" in text and "tensor<?x16x16x32xi8>" in text
    import re
    sums = re.findall(r"ins\(%\w+ : tensor<(\?x[0-9x]+)xf32>\) outs\(%init_\d+ : tensor<(32|64)xf32>\)", text)
    assert sorted(sums) == [("?x16x16x32", "32"), ("?x8x8x64", "64")]    # g, not [B, 32, 32, 32]


def _transient_bytes(stream_ir: str, batch: int) -> int:
    """The size of the transient block `stream.resource.alloca` takes in IREE's stream IR (a sum
    of `util.align`ed terms, each a constant or the batch times a constant), at `batch`."""
    import re
    consts = dict(re.findall(r"(%c\w+) = arith.constant (\d+) : index", stream_ir))
    dim = re.search(r"(%\d+) = hal.buffer_view.dim<%\w+ : !hal.buffer_view>\[0\]", stream_ir)
    muls = {a: int(consts[c]) for a, b, c in re.findall(r"(%\d+) = arith.muli (%\w+), (%c\w+) : index", stream_ir)
            if dim is None or b == dim.group(1)}
    align = dict(re.findall(r"(%\d+) = util.align (%\w+), %c64 : index", stream_ir))
    adds = {a: (b, c) for a, b, c in re.findall(r"(%\d+) = arith.addi (%\w+), (%\w+) : index", stream_ir)}
    total = re.search(r"stream.resource<transient>\{(%\w+)\}", stream_ir).group(1)

    def value(v):
        if v in adds:
            return value(adds[v][0]) + value(adds[v][1])
        v = align.get(v, v)
        if v in muls:
            return -(-batch * muls[v] // 64) * 64
        return int(consts[v])
    return value(total)


@requires_iree
def test_case_f_transient_block_stays_under_local_tasks_remap_line():
    """IREE 3.13's local-task maps and unmaps a call's transient block on every call where it is
    over 64 MiB (docs/mlir.md): case F at batch 64 was 62.3 MiB, 64.3 with the first conv's bias
    gradient summing g; recording the first pool's winners frees its [B, 32, 32, 32] input
    (56.8 MiB)."""
    from iree import compiler as ic
    from nncompiler.backends.mlir.runtime import FLAGS
    text, _ = emit_function(_case_f_step())
    stream = ic.compile_str("module {\n" + text + "\n}\n", target_backends=["llvm-cpu"],
                            extra_args=list(FLAGS) + ["--compile-to=stream"])
    size = _transient_bytes(stream.decode() if isinstance(stream, bytes) else stream, 64)
    assert size < 58 * 2 ** 20, size / 2 ** 20
