"""Convolution and pooling layers (NHWC) against PyTorch (NCHW), forward and every gradient.

torch is channels-first with conv weights [out, in, kh, kw]; ours is channels-last with
kernels [kh, kw, in, out] (Keras), so inputs are permuted to NCHW and kernels with
permute(3, 2, 0, 1) before calling torch. TensorFlow's `same` padding (ceil(in / stride)
outputs, the odd padding pixel at the end) is applied on the torch side explicitly with
F.pad, from `tf_same_pads` below, an independent statement of the rule.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nncompiler as nnc
from library.helpers import check, ours, torch_ref
from nncompiler.errors import CompileError
from nncompiler.library import LAYERS, Value

rng = np.random.default_rng(7)


# ---- torch side ------------------------------------------------------------------------

def tf_same_pads(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pairs(v, n):
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


def _pad_nchw(x, sizes, kernel, stride, dilation, padding, value=0.0):
    """Pad the spatial axes of a channels-first tensor as `padding` asks (valid: nothing)."""
    if padding == "valid":
        return x
    pads = []
    for size, k, s, d in zip(sizes, kernel, stride, dilation):
        pads.append(((k - 1) * d, 0) if padding == "causal" else tf_same_pads(size, k, s, d))
    flat = []
    for lo, hi in reversed(pads):          # F.pad lists the last axis first
        flat += [lo, hi]
    return F.pad(x, flat, value=value)


def torch_conv(t, n, kernel, stride, dilation, padding, act=lambda y: y):
    x = t["x"]
    perm_in, perm_out = (0, n + 1) + tuple(range(1, n + 1)), (0,) + tuple(range(2, n + 2)) + (1,)
    x = x.permute(*perm_in)
    x = _pad_nchw(x, x.shape[2:], kernel, stride, dilation, padding)
    w = t["layer.kernel"].permute(*((n + 1, n) + tuple(range(n))))      # -> [out, in, *k]
    conv = F.conv2d if n == 2 else F.conv1d
    y = conv(x, w, t.get("layer.bias"), stride=stride, dilation=dilation)
    return act(y).permute(*perm_out)


def _nchw(x):
    return x.permute(0, 3, 1, 2)


def _nhwc(x):
    return x.permute(0, 2, 3, 1)


# ---- conv2d ------------------------------------------------------------------------------

CONV2D_CASES = [
    # x shape, filters, kernel, stride, dilation, padding, activation, use_bias, fd
    ((1, 5, 6, 2), 3, (3, 2), 1, 1, "valid", "tanh", True, True),          # batch 1, non-square kernel
    ((2, 7, 9, 3), 4, 3, 2, 1, "valid", "linear", True, False),            # stride 2, odd sizes
    ((2, 7, 8, 2), 3, (2, 3), (1, 2), (2, 1), "valid", "relu", True, False),  # dilation, mixed stride
    ((2, 5, 5, 3), 2, 3, 1, 1, "same", "linear", False, False),            # symmetric same, no bias
    ((1, 7, 8, 2), 3, (3, 4), 2, 1, "same", "tanh", True, True),           # asymmetric same + stride 2
    ((2, 9, 6, 2), 3, 3, 2, 2, "same", "linear", True, False),             # same + stride 2 + dilation 2
    ((2, 6, 7, 3), 4, (4, 2), (3, 2), 1, "same", "sigmoid", True, False),  # even kernel, stride 3
    ((3, 4, 5, 3), 2, 1, 1, 1, "valid", "linear", True, False),            # 1x1 kernel: one tap
]


@pytest.mark.parametrize("shape,filters,kernel,stride,dilation,padding,activation,use_bias,fd", CONV2D_CASES)
def test_conv2d_matches_torch(shape, filters, kernel, stride, dilation, padding, activation, use_bias, fd):
    k2, s2, d2 = _pairs(kernel, 2), _pairs(stride, 2), _pairs(dilation, 2)
    x = rng.normal(size=shape)
    params = {"layer.kernel": rng.normal(size=k2 + (shape[-1], filters)) * 0.4}
    if use_bias:
        params["layer.bias"] = rng.normal(size=(filters,))
    acts = {"linear": lambda y: y, "relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}

    def build(ctx, ids):
        return LAYERS["conv2d"](ctx, Value(ids["x"]), filters, kernel=kernel, stride=stride,
                                dilation=dilation, padding=padding, activation=activation, use_bias=use_bias)

    out, _ = check(build, lambda t: torch_conv(t, 2, k2, s2, d2, padding, acts[activation]),
                   {"x": x}, params, fd=fd)
    if padding == "same":
        assert out.shape[1:3] == tuple(math.ceil(n / s) for n, s in zip(shape[1:3], s2))


def test_conv2d_same_stride1_agrees_with_torch_same_padding_module():
    """For stride 1 and an odd kernel TF's same is symmetric: torch's own padding='same'."""
    conv = torch.nn.Conv2d(3, 5, (3, 5), padding="same")
    x = rng.normal(size=(2, 6, 7, 3))
    params = {"layer.kernel": conv.weight.detach().numpy().transpose(2, 3, 1, 0),
              "layer.bias": conv.bias.detach().numpy()}
    out, grads, r = ours(lambda ctx, ids: LAYERS["conv2d"](ctx, Value(ids["x"]), 5, kernel=[3, 5], padding="same"),
                         {"x": x}, params)
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    yt = _nhwc(conv(_nchw(xt)))
    (yt * torch.tensor(r, dtype=torch.float32)).sum().backward()
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["x"], xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["layer.kernel"], conv.weight.grad.numpy().transpose(2, 3, 1, 0),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["layer.bias"], conv.bias.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_conv2d_and_pools_are_one_window_primitive_each():
    from nncompiler.ir import Builder
    from nncompiler.ir.shapes import TensorType
    from nncompiler.library import LayerContext
    b = Builder("t")
    ctx = LayerContext(b, "c", {}, None)
    x = b.argument("x", "input", TensorType("f32", ("B", 9, 9, 2)))
    y = LAYERS["conv2d"](ctx, Value(x), 4, kernel=[3, 2], padding="same")
    assert b.shape(y.id) == ("B", 9, 9, 4)
    ops = b.build({"y": y.id}).op_counts()
    # one conv with TF's asymmetric same padding folded into it: no slices, no pad, no im2col
    assert ops["conv"] == 1 and not {"slice", "pad", "concat", "matmul"} & set(ops)
    node = [n for n in b.build({"y": y.id}).nodes if n.op == "conv"][0]
    assert node.attr["padding"] == ((1, 1), (0, 1))
    p = LAYERS["maxpool2d"](ctx, y, 3, padding="same")
    assert b.shape(p.id) == ("B", 3, 3, 4)
    assert b.build({"p": p.id}).op_counts()["reduce_window"] == 1
    assert list(ctx.params) == ["c.kernel", "c.bias"]


def test_conv2d_symbolic_batch_runs_any_batch_size():
    src = """
graph C {
    input x: f32[B, 6, 5, 2]
    c = conv2d(x, 3, kernel=[3, 2], stride=2, padding=same)
    output c
}"""
    m = nnc.compile(src)
    x = rng.normal(size=(4, 6, 5, 2)).astype(np.float32)
    full = m.forward(x=x)
    assert full.shape == (4, 3, 3, 3)
    for n in (1, 3):
        np.testing.assert_allclose(m.forward(x=x[:n]), full[:n], rtol=1e-6)


# ---- conv1d ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,filters,kernel,stride,dilation,padding,fd", [
    ((1, 7, 2), 3, 3, 1, 1, "valid", True),
    ((2, 9, 3), 2, 4, 2, 1, "same", False),
    ((2, 8, 2), 3, 3, 1, 2, "causal", True),
    ((3, 10, 1), 2, 2, 3, 2, "same", False),
    ((2, 11, 2), 4, 3, 2, 1, "causal", False),
])
def test_conv1d_matches_torch(shape, filters, kernel, stride, dilation, padding, fd):
    x = rng.normal(size=shape)
    params = {"layer.kernel": rng.normal(size=(kernel, shape[-1], filters)) * 0.4,
              "layer.bias": rng.normal(size=(filters,))}

    def build(ctx, ids):
        return LAYERS["conv1d"](ctx, Value(ids["x"]), filters, kernel=kernel, stride=stride,
                                dilation=dilation, padding=padding)

    out, _ = check(build, lambda t: torch_conv(t, 1, (kernel,), (stride,), (dilation,), padding),
                   {"x": x}, params, fd=fd)
    if padding in ("same", "causal"):
        assert out.shape[1] == math.ceil(shape[1] / stride)


# ---- max pooling -----------------------------------------------------------------------

def torch_maxpool2d(pool, stride, padding):
    def fn(t):
        x = _nchw(t["x"])
        x = _pad_nchw(x, x.shape[2:], pool, stride, (1, 1), padding, value=-math.inf)
        return _nhwc(F.max_pool2d(x, pool, stride))
    return fn


MAXPOOL_CASES = [
    # x shape, pool, stride, padding
    ((1, 4, 6, 1), 2, None, "valid"),
    ((2, 7, 9, 3), (3, 2), (2, 1), "valid"),       # odd sizes, non-square, overlapping rows
    ((2, 7, 6, 2), 3, 2, "same"),                 # asymmetric same padding
    ((1, 5, 5, 2), 3, 1, "same"),                 # heavily overlapping windows
    ((2, 5, 7, 2), 2, None, "same"),              # odd sizes, pad at the end only
]


@pytest.mark.parametrize("shape,pool,stride,padding", MAXPOOL_CASES)
def test_maxpool2d_matches_torch(shape, pool, stride, padding):
    p2 = _pairs(pool, 2)
    s2 = p2 if stride is None else _pairs(stride, 2)
    x = rng.normal(size=shape)
    check(lambda ctx, ids: LAYERS["maxpool2d"](ctx, Value(ids["x"]), pool=pool, stride=stride, padding=padding),
          torch_maxpool2d(p2, s2, padding), {"x": x}, fd=False)


@pytest.mark.parametrize("values", ["equal", "repeated"])
@pytest.mark.parametrize("pool,stride,padding", [(2, None, "valid"), (3, 1, "valid"), (3, 2, "same"),
                                                 ((2, 3), (1, 2), "same")])
def test_maxpool2d_ties_go_to_the_first_maximum_like_torch(values, pool, stride, padding):
    shape = (2, 6, 7, 2)
    x = np.full(shape, 0.5) if values == "equal" else rng.integers(0, 3, size=shape).astype(np.float64)
    p2 = _pairs(pool, 2)
    s2 = p2 if stride is None else _pairs(stride, 2)
    out, grads = check(lambda ctx, ids: LAYERS["maxpool2d"](ctx, Value(ids["x"]), pool=pool, stride=stride,
                                                           padding=padding),
                       torch_maxpool2d(p2, s2, padding), {"x": x}, fd=False)
    if values == "equal":
        # one element per window receives the window's whole cotangent: no spreading
        nonzero = np.count_nonzero(grads["x"])
        assert nonzero <= out.size and nonzero < x.size


def test_maxpool2d_gradient_is_exactly_one_hot_per_window():
    x = np.zeros((1, 4, 4, 1))
    out, grads, _ = ours(lambda ctx, ids: LAYERS["maxpool2d"](ctx, Value(ids["x"]), 2), {"x": x},
                         r=np.ones((1, 2, 2, 1)))
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1.0                       # the top-left (first) element of each window
    np.testing.assert_array_equal(grads["x"][0, :, :, 0], expected)


@pytest.mark.parametrize("shape,pool,stride,padding", [((2, 9, 3), 2, None, "valid"),
                                                       ((1, 8, 2), 3, 2, "same"),
                                                       ((2, 7, 2), 3, 1, "valid")])
def test_maxpool1d_and_avgpool1d_match_torch(shape, pool, stride, padding):
    s = pool if stride is None else stride
    x = rng.integers(0, 4, size=shape).astype(np.float64)       # with ties

    def t_max(t):
        xx = _pad_nchw(t["x"].permute(0, 2, 1), [shape[1]], (pool,), (s,), (1,), padding, value=-math.inf)
        return F.max_pool1d(xx, pool, s).permute(0, 2, 1)

    def t_avg(t):
        xx = t["x"].permute(0, 2, 1)
        ones = torch.ones_like(xx)
        summed = F.avg_pool1d(_pad_nchw(xx, [shape[1]], (pool,), (s,), (1,), padding), pool, s) * pool
        count = F.avg_pool1d(_pad_nchw(ones, [shape[1]], (pool,), (s,), (1,), padding), pool, s) * pool
        return (summed / count).permute(0, 2, 1)

    check(lambda ctx, ids: LAYERS["maxpool1d"](ctx, Value(ids["x"]), pool, stride=stride, padding=padding),
          t_max, {"x": x}, fd=False)
    check(lambda ctx, ids: LAYERS["avgpool1d"](ctx, Value(ids["x"]), pool, stride=stride, padding=padding),
          t_avg, {"x": rng.normal(size=shape)}, fd=True)


# ---- average pooling -----------------------------------------------------------------

def torch_avgpool2d_keras(pool, stride, padding):
    """Keras's average: the sum over a window's real pixels divided by their number."""
    def fn(t):
        x = _nchw(t["x"])
        sizes = x.shape[2:]
        summed = F.avg_pool2d(_pad_nchw(x, sizes, pool, stride, (1, 1), padding), pool, stride, divisor_override=1)
        ones = torch.ones_like(x[:1, :1])
        count = F.avg_pool2d(_pad_nchw(ones, sizes, pool, stride, (1, 1), padding), pool, stride,
                             divisor_override=1)
        return _nhwc(summed / count)
    return fn


@pytest.mark.parametrize("shape,pool,stride,padding,fd", [
    ((1, 4, 6, 2), 2, None, "valid", True),
    ((2, 7, 9, 3), (3, 2), (2, 1), "valid", False),
    ((2, 7, 6, 2), 3, 2, "same", True),
    ((2, 5, 7, 2), 2, None, "same", False),
])
def test_avgpool2d_matches_torch(shape, pool, stride, padding, fd):
    p2 = _pairs(pool, 2)
    s2 = p2 if stride is None else _pairs(stride, 2)
    check(lambda ctx, ids: LAYERS["avgpool2d"](ctx, Value(ids["x"]), pool=pool, stride=stride, padding=padding),
          torch_avgpool2d_keras(p2, s2, padding), {"x": rng.normal(size=shape)}, fd=fd)


def test_avgpool2d_same_excludes_padding_like_torch_count_include_pad_false():
    """Where TF's same padding is symmetric, torch's count_include_pad=False is the same average."""
    x = rng.normal(size=(2, 5, 7, 3))
    check(lambda ctx, ids: LAYERS["avgpool2d"](ctx, Value(ids["x"]), 3, stride=1, padding="same"),
          lambda t: _nhwc(F.avg_pool2d(_nchw(t["x"]), 3, 1, padding=1, count_include_pad=False)),
          {"x": x}, fd=False)


def test_global_avgpool2d_matches_torch():
    check(lambda ctx, ids: LAYERS["global_avgpool2d"](ctx, Value(ids["x"])),
          lambda t: F.adaptive_avg_pool2d(_nchw(t["x"]), 1).flatten(1),
          {"x": rng.normal(size=(2, 5, 3, 4))}, fd=True)


# ---- through the language -----------------------------------------------------------------

NET = """
model Net {
    input  x: f32[B, 7, 9, 2]
    target y: f32[B, 3]
    c = conv2d(x, 4, kernel=[3, 2], stride=2, padding=same, dilation=[1, 2], activation=tanh)
    p = maxpool2d(c, [2, 3], stride=1)
    a = avgpool2d(p, 2, padding=same)
    g = global_avgpool2d(a)
    s = conv1d(reshape(x, [B, 7, 18]), 2, kernel=3, padding=causal, dilation=2)
    m = maxpool1d(s, 2)
    out = dense(g, 3) + dense(flatten(m), 3)
    output out
    loss mse(out, y)
    optimizer sgd()
}"""


def torch_net(p, x):
    c = torch.tanh(torch_conv({"x": x, "layer.kernel": p["c.kernel"], "layer.bias": p["c.bias"]},
                              2, (3, 2), (2, 2), (1, 2), "same"))
    pm = _nhwc(F.max_pool2d(_nchw(c), (2, 3), 1))
    a = torch_avgpool2d_keras((2, 2), (2, 2), "same")({"x": pm})
    g = a.mean((1, 2))
    s = torch_conv({"x": x.reshape(x.shape[0], 7, 18), "layer.kernel": p["s.kernel"], "layer.bias": p["s.bias"]},
                   1, (3,), (1,), (2,), "causal")
    m = F.max_pool1d(s.permute(0, 2, 1), 2).permute(0, 2, 1)
    d1 = g @ p["dense_1.kernel"] + p["dense_1.bias"]
    d2 = m.flatten(1) @ p["dense_2.kernel"] + p["dense_2.bias"]
    return d1 + d2


def test_model_through_the_language_matches_torch():
    m = nnc.compile(NET)
    assert {k: v.shape for k, v in m.params.items()} == {
        "c.kernel": (3, 2, 2, 4), "c.bias": (4,), "s.kernel": (3, 18, 2), "s.bias": (2,),
        "dense_1.kernel": (4, 3), "dense_1.bias": (3,), "dense_2.kernel": (6, 3), "dense_2.bias": (3,)}
    m.set_params({"c.bias": rng.normal(size=4), "s.bias": rng.normal(size=2)})   # not just zeros
    x = rng.normal(size=(3, 7, 9, 2)).astype(np.float32)
    y = rng.normal(size=(3, 3)).astype(np.float32)

    p = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    out_t = torch_net(p, torch.tensor(x))
    loss_t = F.mse_loss(out_t, torch.tensor(y))
    loss_t.backward()

    np.testing.assert_allclose(m.forward(x=x), out_t.detach().numpy(), rtol=1e-4, atol=1e-5)
    loss, grads = m.loss_and_grads(x=x, y=y)
    assert loss == pytest.approx(loss_t.item(), rel=1e-5)
    assert set(grads) == set(p)
    for k, v in p.items():
        np.testing.assert_allclose(grads[k], v.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)


def test_conv_kernel_uses_glorot_fans_over_the_receptive_field():
    m = nnc.compile("""
graph K {
    input x: f32[B, 8, 8, 3]
    c = conv2d(x, 16, kernel=[3, 2])
    output c
}""")
    k = m.params["c.kernel"]
    limit = math.sqrt(6 / (3 * 2 * 3 + 3 * 2 * 16))
    assert k.shape == (3, 2, 3, 16) and k.dtype == np.float32
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.9 * limit
    np.testing.assert_array_equal(m.params["c.bias"], 0)


@pytest.mark.parametrize("decl,call,message", [
    ("f32[B, H, 8, 1]", "conv2d(x, 2)", "must be static"),
    ("f32[B, 8, 8, 1]", "conv2d(x, 2, padding=samee)", "did you mean 'same'"),
    ("f32[B, 8, 8, 1]", "conv2d(x, 2, kernel=[3, 3, 3])", "kernel must be an int or a list of 2 ints"),
    ("f32[B, 2, 8, 1]", "conv2d(x, 2)", "spatial size 2 is smaller than the window 3"),
    ("f32[B, 8, 1]", "conv2d(x, 2)", r"expects a rank-4 input \[B, H, W, C\]"),
    ("f32[B, 8, 8, 1]", "maxpool2d(x, stride=0)", "stride must be positive"),
    ("f32[B, 8, 8, 1]", "conv2d(x, 2, padding=causal)", "unknown padding 'causal'"),
    ("f32[B, 8, 8, 1]", "conv2d(x, 2, kernel=2.5)", "3:29: error: .*'kernel' must be an integer"),
])
def test_bad_arguments_are_positioned_errors(decl, call, message):
    src = f"graph G {{\n    input x: {decl}\n    c = {call}\n    output c\n}}\n"
    with pytest.raises(CompileError) as info:
        nnc.compile(src)
    text = info.value.render()
    column = 29 if "kernel=2.5" in call else 9      # the argument, or the layer's name
    assert text.startswith(f"<string>:3:{column}: error: "), text
    assert re.search(message, text), text


# ---- the example --------------------------------------------------------------------------

def test_digits_cnn_reaches_097_validation_accuracy(capsys):
    from nncompiler.cli import main
    assert main(["run", "examples/digits_cnn.nn", "--quiet"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch=")][-1]
    metrics = {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.e]+)", line)}
    assert metrics["val_accuracy"] >= 0.97, line
