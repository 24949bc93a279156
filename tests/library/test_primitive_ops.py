"""The one-primitive tensor functions (library/primitive_ops.py) and variadic concat, through the
language, against torch: forward values and, where differentiable, every operand's gradient
(loss sum(out * r) with a fixed random r). Each call must lower to exactly its primitive, and a
wrong argument is an error at the call's FILE:LINE:COL."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nncompiler as nnc
from nncompiler.errors import CompileError

rng = np.random.default_rng(7)
NN = {np.dtype("float32"): "f32", np.dtype("int32"): "i32", np.dtype("int64"): "i64"}


def _decl(kind, name, v):
    return f"    {kind} {name}: {NN[v.dtype]}[{', '.join(map(str, v.shape))}]"


def check(expr: str, params: dict, torch_fn, data: dict | None = None, op: str | None = None):
    """`out = expr` with `params` trainable and `data` as inputs: forward and gradients vs torch;
    `op`: the one primitive (besides arguments) the expression must lower to."""
    data = data or {}
    ts = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    ts.update({k: torch.tensor(v) for k, v in data.items()})
    want = torch_fn(ts)
    r = rng.uniform(0.5, 1.5, tuple(want.shape)).astype(np.float32)
    src = "\n".join(["model T {", *(_decl("param", k, v) for k, v in params.items()),
                     *(_decl("input", k, v) for k, v in data.items()), _decl("target", "r", r),
                     f"    out = {expr}", "    output out", "    loss sum(out * r)", "    optimizer sgd()", "}"])
    m = nnc.compile(src)
    if op is not None:
        ops = [n.op for n in m.lowered.forward.nodes if n.op not in ("arg", "const")]
        assert ops[0] == op, ops
    m.set_params(params)
    out = m.forward(**data)
    assert out.dtype == np.float32 and out.shape == tuple(want.shape)
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=1e-5, atol=1e-5)
    _, grads = m.loss_and_grads(**data, r=r)
    (want * torch.tensor(r)).sum().backward()
    for k in params:
        np.testing.assert_allclose(grads[k], ts[k].grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)


def nhwc(t):
    return t.permute(0, 2, 3, 1)


def nchw(t):
    return t.permute(0, 3, 1, 2)


def test_conv_with_groups_stride_dilation_and_asymmetric_padding_matches_torch():
    x, w = rng.normal(size=(2, 7, 6, 4)).astype(np.float32), rng.normal(size=(3, 2, 2, 6)).astype(np.float32)

    def ref(t):   # torch's weight is [F, C/groups, kh, kw]; the pad goes first (it is asymmetric)
        xp = F.pad(nchw(t["x"]), (0, 1, 1, 2))    # W: (0, 1), H: (1, 2)
        return nhwc(F.conv2d(xp, t["w"].permute(3, 2, 0, 1), stride=(2, 1), dilation=(1, 2), groups=2))
    check("conv(x, w, stride=[2, 1], padding=[[1, 2], [0, 1]], dilation=[1, 2], groups=2)",
          {"x": x, "w": w}, ref, op="conv")


def test_conv_of_one_spatial_axis_with_int_arguments():
    x, w = rng.normal(size=(3, 9, 2)).astype(np.float32), rng.normal(size=(3, 2, 4)).astype(np.float32)
    check("conv(x, w, stride=2, padding=1)", {"x": x, "w": w},
          lambda t: F.conv1d(t["x"].permute(0, 2, 1), t["w"].permute(2, 1, 0), stride=2, padding=1).permute(0, 2, 1),
          op="conv")


def test_reduce_window_max_pads_with_minus_infinity_and_sum_with_zero():
    x = rng.normal(size=(2, 5, 4, 3)).astype(np.float32) - 5.0       # all negative: a 0 pad would win a max
    check("reduce_window(x, kind=max, window=[2, 3], stride=[2, 1], padding=[[1, 0], 1])", {"x": x},
          lambda t: nhwc(F.max_pool2d(F.pad(nchw(t["x"]), (1, 1, 1, 0), value=-np.inf), (2, 3), stride=(2, 1))),
          op="reduce_window")
    check("reduce_window(x, kind=sum, window=2, padding=[0, [1, 1]])", {"x": x},
          lambda t: nhwc(F.avg_pool2d(F.pad(nchw(t["x"]), (1, 1, 0, 0)), 2, stride=1) * 4), op="reduce_window")


def test_pad_with_pairs_and_interior_zeros():
    x = rng.normal(size=(2, 3)).astype(np.float32)

    def ref(t):
        inner = torch.zeros(2, 5)
        inner = inner.index_put((torch.arange(2)[:, None], torch.tensor([0, 2, 4])[None, :]), t["x"])
        return F.pad(inner, (0, 3, 1, 2))
    check("pad(x, [[1, 2], [0, 3]], interior=[0, 1])", {"x": x}, ref, op="pad")
    check("pad(x, 1)", {"x": x}, lambda t: F.pad(t["x"], (1, 1, 1, 1)), op="pad")


def test_gather_clamps_indices_where_take_counts_from_the_end():
    x = rng.normal(size=(4, 3)).astype(np.float32)
    ids = np.array([[3, -1], [7, 0]], np.int32)
    check("gather(x, ids, axis=0)", {"x": x}, lambda t: t["x"][t["ids"].clamp(0, 3).long()], {"ids": ids},
          op="gather")


def test_scatter_add_accumulates_repeated_indices():
    u = rng.normal(size=(2, 4)).astype(np.float32)
    ids = np.array([1, 0, 1, 2], np.int32)
    check("scatter_add(u, ids, [2, 3], axis=1)", {"u": u},
          lambda t: torch.zeros(2, 3).index_add(1, t["ids"].long(), t["u"]), {"ids": ids}, op="scatter_add")


def test_concat_takes_any_number_of_tensors_as_one_primitive():
    ps = {f"p{i}": rng.normal(size=(2, i + 1)).astype(np.float32) for i in range(6)}
    check("concat(p0, p1, p2, p3, p4, p5, axis=1)", ps, lambda t: torch.cat([t[f"p{i}"] for i in range(6)], 1),
          op="concat")


def test_iota_size_and_typed_constants():
    x = np.zeros((5, 2, 3), np.float32)
    m = nnc.compile("graph G {\n  input x: f32[B, 2, 3]\n"
                    "  output i = iota([B, 3], axis=1, dtype=f32), n = size(x, axis=[0, 2]), "
                    "a = size(x, dtype=f32), c = constant([1, 2], dtype=i64), d = constant(0.1, dtype=f64), "
                    "e = constant([true, false]), f = constant(2)\n}\n")
    i, n, a, c, d, e, f = m.forward(x=x)
    np.testing.assert_array_equal(i, np.broadcast_to(np.arange(3, dtype=np.float32), (5, 3)))
    assert n.dtype == np.int32 and n == 15 and a.dtype == np.float32 and a == 30.0
    assert c.dtype == np.int64 and c.tolist() == [1, 2]
    assert d.dtype == np.float64 and d == 0.1                  # not rounded through f32
    assert e.dtype == np.bool_ and e.tolist() == [True, False] and f.dtype == np.int32


@pytest.mark.parametrize("call, message", [
    ("conv(x, w, padding=[1, 1, 1])", r"padding needs one entry per axis \(2\), got 3"),
    ("conv(x, w, padding=[[1, 2, 3], 0])", r"argument 'padding' must be an int or a list"),
    ("conv(x, w, stride=0)", r"stride must be an int >= 1"),
    ("conv(x, w, groups=0)", r"groups must be a positive int"),
    ("reduce_window(x, kind=min, window=2)", r"kind must be one of sum, max, got 'min'"),
    ("pad(x, [[0, -1], 0, 0, 0])", r"padding must be non-negative"),
    ("iota([-1, 2])", r"must have rank >= 1 and positive dimensions"),
    ("size(x, dtype=bool)", r"size counts"),
    ("constant(1.5, dtype=i32)", r"float literal where a i32 value is expected"),
    ("constant(3000000000, dtype=i32)", r"does not fit in i32"),
    ("gather(x, [0.5])", r"indices must be i32 or i64"),
])
def test_a_bad_argument_is_an_error_at_the_call(call, message):
    src = f"graph G {{\n  input x: f32[2, 5, 5, 4]\n  input w: f32[3, 3, 4, 2]\n  output y = {call}\n}}\n"
    with pytest.raises(CompileError) as info:
        nnc.compile(src)
    text = str(info.value)
    assert re.match(r"<string>:4:\d+: error: ", text), text
    assert re.search(message, text), text
