"""The window primitives (conv, reduce_window, select_scatter): type rules, text form,
numpy rules and VJPs against torch.autograd on odd shapes (stride 2, dilation 2, groups,
asymmetric padding, odd sizes, batch 1, 1-d and 2-d), float32.

    conv(x [N, *S, C], w [*K, C/groups, F]) {stride, padding ((lo, hi) per axis), dilation, groups}
    reduce_window(x) {kind: sum | max, window, stride, padding}
    select_scatter(x, g) {window, stride, padding}: reduce_window max's gradient
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nncompiler.errors import ShapeError
from nncompiler.ir import Builder, parse_graph, print_graph
from nncompiler.ir.shapes import TensorType

try:
    from tests.oracle import ours
except ImportError:  # tests/ itself is on sys.path
    from oracle import ours

RTOL, ATOL = 1e-4, 1e-4


def _nchw(t):      # [N, *S, C] -> [N, C, *S]
    return t.permute(0, t.dim() - 1, *range(1, t.dim() - 1))


def _nhwc(t):
    return t.permute(0, *range(2, t.dim()), 1)


def _tpad(t, padding, value=0.0):   # t is [N, C, *S]; F.pad lists the last axis first
    flat = [v for lo_hi in reversed(padding) for v in lo_hi]
    return F.pad(t, flat, value=value)


def torch_conv(x, w, stride, padding, dilation, groups):
    n = x.dim() - 2
    wt = w.permute(n + 1, n, *range(n))                     # [*K, Cg, F] -> [F, Cg, *K]
    conv = F.conv1d if n == 1 else F.conv2d
    return _nhwc(conv(_tpad(_nchw(x), padding), wt, stride=stride, dilation=dilation, groups=groups))


def torch_window(x, kind, window, stride, padding):
    n = x.dim() - 2
    xp = _tpad(_nchw(x), padding, 0.0 if kind == "sum" else -float("inf"))
    if kind == "max":
        pool = F.max_pool1d if n == 1 else F.max_pool2d
        return _nhwc(pool(xp, window, stride))
    pool = F.avg_pool1d if n == 1 else F.avg_pool2d
    return _nhwc(pool(xp, window, stride) * float(np.prod(window)))


def _check(op, inputs, attrs, ref):
    rng = np.random.default_rng(1)
    out_ref_probe = ref(*[torch.from_numpy(a) for a in inputs])
    r = rng.standard_normal(tuple(out_ref_probe.shape)).astype(np.float32)
    out, grads = ours(op, inputs, attrs, r)
    ts = [torch.from_numpy(a.copy()).requires_grad_(True) for a in inputs]
    want = ref(*ts)
    (want * torch.from_numpy(r)).sum().backward()
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=RTOL, atol=ATOL)
    for got, t in zip(grads, ts):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=RTOL, atol=ATOL)


CONVS = [  # x shape, kernel shape, stride, padding, dilation, groups
    ((2, 7, 5, 3), (3, 3, 3, 4), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    ((1, 9, 8, 2), (3, 2, 2, 3), (2, 2), ((0, 1), (1, 0)), (1, 1), 1),      # stride 2, asymmetric pad
    ((2, 9, 7, 3), (3, 3, 3, 2), (1, 2), ((2, 2), (0, 0)), (2, 2), 1),      # dilation 2
    ((2, 8, 7, 4), (3, 3, 2, 6), (2, 1), ((1, 2), (1, 1)), (1, 2), 2),      # groups 2
    ((1, 6, 6, 3), (1, 1, 1, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 3),      # depthwise 1x1
    ((2, 5, 5, 2), (2, 2, 2, 3), (3, 3), ((0, 0), (0, 0)), (1, 1), 1),      # stride past the last tap
    ((2, 6, 5, 3), (2, 2, 3, 2), (2, 3), ((3, 2), (2, 4)), (1, 1), 1),      # padding wider than the kernel
    ((3, 11, 3), (3, 3, 5), (2,), ((1, 0),), (2,), 1),                      # 1-d, stride and dilation
    ((1, 10, 4), (4, 2, 6), (1,), ((3, 0),), (1,), 2),                      # 1-d causal, groups
    # the numpy layouts (ir/convs.py) by shape: fewer output than input channels at stride 1
    # (scatter), and fewer output positions than taps (few outputs), each with odd padding
    ((2, 7, 6, 5), (3, 2, 5, 2), (1, 1), ((2, 0), (1, 1)), (2, 1), 1),      # scatter, dilation 2
    ((1, 6, 7, 6), (3, 3, 3, 2), (1, 1), ((1, 1), (0, 2)), (1, 1), 2),      # scatter, groups, batch 1
    ((2, 6, 5, 3), (5, 4, 3, 2), (1, 1), ((1, 0), (0, 1)), (1, 1), 1),      # few outputs
    ((2, 9, 8, 2), (4, 3, 2, 3), (2, 3), ((1, 2), (0, 1)), (2, 1), 1),      # few outputs, stride and dilation
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CONVS)
def test_conv_forward_and_gradients_match_torch(xs, ws, stride, padding, dilation, groups):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    attrs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    _check("conv", [x, w], attrs, lambda a, b: torch_conv(a, b, stride, padding, dilation, groups))


WINDOWS = [  # x shape, window, stride, padding
    ((2, 6, 6, 3), (2, 2), (2, 2), ((0, 0), (0, 0))),
    ((1, 7, 5, 2), (3, 3), (2, 2), ((1, 1), (1, 1))),
    ((2, 5, 7, 1), (3, 2), (1, 2), ((0, 1), (0, 1))),                     # overlapping windows
    ((3, 9, 4), (3,), (2,), ((1, 0),)),                                    # 1-d
]


@pytest.mark.parametrize("kind", ["sum", "max"])
@pytest.mark.parametrize("xs, window, stride, padding", WINDOWS)
def test_reduce_window_forward_and_gradients_match_torch(kind, xs, window, stride, padding):
    x = np.random.default_rng(2).standard_normal(xs).astype(np.float32)
    attrs = dict(kind=kind, window=window, stride=stride, padding=padding)
    _check("reduce_window", [x], attrs, lambda a: torch_window(a, kind, window, stride, padding))


@pytest.mark.parametrize("xs, window, stride, padding", WINDOWS)
def test_max_window_ties_go_to_the_first_maximal_tap_like_torch(xs, window, stride, padding):
    x = np.random.default_rng(3).integers(-1, 2, xs).astype(np.float32)    # many exact ties
    attrs = dict(kind="max", window=window, stride=stride, padding=padding)
    _check("reduce_window", [x], attrs, lambda a: torch_window(a, "max", window, stride, padding))


def test_window_ops_print_and_parse_back():
    b = Builder("w")
    x = b.argument("x", "input", TensorType("f32", (2, 7, 5, 4)))
    w = b.argument("w", "input", TensorType("f32", (3, 3, 2, 6)))
    y = b.conv(x, w, stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2), groups=2)
    p = b.reduce_window(y, kind="max", window=(2, 2), stride=(1, 2), padding=((0, 1), (1, 0)))
    s = b.select_scatter(y, p, window=(2, 2), stride=(1, 2), padding=((0, 1), (1, 0)))
    g = b.build({"y": y, "p": p, "s": s})
    text = print_graph(g)
    assert "conv(" in text and "reduce_window(" in text and "select_scatter(" in text
    assert print_graph(parse_graph(text)) == text


@pytest.mark.parametrize("xs, ws, attrs, msg", [
    ((2, 5, 5, 4), (3, 3, 3, 4), dict(groups=1), "group"),
    ((2, 5, 5, 4), (3, 3, 2, 5), dict(groups=2), "group"),
    ((2, 2, 2, 4), (3, 3, 4, 4), dict(groups=1), "smaller than the window"),
    ((2, 5, 5, 4), (3, 3, 4, 4), dict(groups=1, stride=(0, 1)), "strides must be positive"),
    ((2, 5, 5, 4), (3, 3, 4, 4), dict(groups=1, padding=((-1, 0), (0, 0))), "non-negative"),
])
def test_conv_type_rule_rejects_bad_operands(xs, ws, attrs, msg):
    b = Builder("bad")
    x = b.argument("x", "input", TensorType("f32", xs))
    w = b.argument("w", "input", TensorType("f32", ws))
    full = dict(stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1))
    full.update(attrs)
    with pytest.raises(ShapeError, match=msg):
        b.conv(x, w, **full)


def test_second_derivatives_through_max_pooling_are_an_error_not_a_silent_zero():
    from nncompiler.autodiff import grad
    b = Builder("g2")
    x = b.argument("x", "input", TensorType("f32", (1, 4, 4, 1)))
    p = b.reduce_window(x, kind="max", window=(2, 2), stride=(2, 2), padding=((0, 0), (0, 0)))
    first = grad(b.build({"loss": b.sum(b.mul(p, p), axes=(0, 1, 2, 3), keepdims=False)}), "loss", ["x"])
    gb = Builder("g2b")
    ids = {}
    for nd in first.nodes:
        ids[nd.id] = gb.add_node(nd)
    gx = dict(first.outputs)["grad.x"]
    loss2 = gb.sum(gb.mul(gx, gx), axes=(0, 1, 2, 3), keepdims=False)
    with pytest.raises(ShapeError, match="second derivatives through max pooling"):
        grad(gb.build({"loss": loss2}), "loss", ["x"])
