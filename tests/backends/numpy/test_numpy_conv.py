"""The numpy backend's conv training path: a forward conv and its kernel gradient share one
im2col (codegen pairs them; `_conv_from_cols` reads the forward's columns), the gradients
equal torch.autograd's, and the reuse gives the same bits as computing the kernel gradient's
conv on its own (the reference interpreter does that)."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nncompiler.autodiff import grad
from nncompiler.backends.numpy import compile_graph, generate
from nncompiler.ir import Builder
from nncompiler.ir.interpret import interpret
from nncompiler.ir.shapes import TensorType
from nncompiler.passes import optimize

CASES = [  # x shape, kernel shape, stride, padding, dilation
    ((3, 9, 8, 3), (3, 3, 3, 5), (1, 1), ((1, 1), (1, 1)), (1, 1)),       # same padding
    ((2, 11, 9, 2), (3, 2, 2, 4), (2, 1), ((0, 1), (2, 0)), (2, 1)),      # stride, dilation, odd padding
    ((1, 8, 8, 4), (2, 2, 4, 3), (2, 2), ((0, 0), (0, 0)), (1, 1)),       # batch 1, valid, F < C
    ((4, 32, 33, 3), (3, 3, 3, 8), (1, 1), ((1, 1), (1, 1)), (1, 1)),     # kernel gradient in 256-row blocks
]


def _graph(xs, ws, stride, padding, dilation):
    """loss = sum(r * relu(conv(x, w))), with its gradients with respect to x and w."""
    b = Builder("g")
    x = b.argument("x", "input", TensorType("f32", xs))
    w = b.argument("w", "param", TensorType("f32", ws))
    y = b.conv(x, w, stride=stride, padding=padding, dilation=dilation, groups=1)
    r = b.argument("r", "input", TensorType("f32", tuple(b.shape(y))))
    a = b.maximum(y, b.constant(0.0, "f32", ()))
    loss = b.sum(b.mul(a, r), axes=tuple(range(len(xs))), keepdims=False)
    g, _ = optimize(grad(b.build({"loss": loss}), "loss", ["x", "w"]))
    return g


@pytest.mark.parametrize("xs, ws, stride, padding, dilation", CASES)
def test_kernel_gradient_reuses_the_forward_im2col_and_matches_torch(xs, ws, stride, padding, dilation):
    g = _graph(xs, ws, stride, padding, dilation)
    assert "_conv_from_cols(cols" in generate(g)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    y_shape = tuple(d for n in g.nodes if n.op == "arg" and n.attr["name"] == "r" for d in n.shape)
    r = rng.standard_normal(y_shape).astype(np.float32)
    out = compile_graph(g)({"x": x, "w": w, "r": r})
    assert all(np.asarray(v).dtype == np.float32 for v in out.values())

    tx, tw = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(w).requires_grad_(True)
    flat = [v for lo_hi in reversed(padding) for v in lo_hi]
    ty = F.conv2d(F.pad(tx.permute(0, 3, 1, 2), flat), tw.permute(3, 2, 0, 1), stride=stride, dilation=dilation)
    (torch.relu(ty.permute(0, 2, 3, 1)) * torch.from_numpy(r)).sum().backward()
    np.testing.assert_allclose(out["grad.w"], tw.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["grad.x"], tx.grad.numpy(), rtol=1e-4, atol=1e-4)

    ref = interpret(g, {"x": x, "w": w, "r": r})     # the kernel gradient's conv on its own
    np.testing.assert_array_equal(out["grad.w"], ref["grad.w"])
    np.testing.assert_array_equal(out["grad.x"], ref["grad.x"])


@pytest.mark.parametrize("window, stride, padding", [((2, 2), (2, 2), ((0, 0), (0, 0))),
                                                     ((3, 2), (2, 1), ((1, 0), (0, 1)))])   # overlapping, padded
def test_relu_then_max_pool_gradient_matches_torch_with_ties(window, stride, padding):
    """conv -> relu -> max pool: simplify moves relu's mask onto the pooled gradient; with
    integer operands (many exact ties and exact zeros) the gradients must still be torch's."""
    xs, ws = (2, 8, 7, 3), (3, 3, 3, 4)
    b = Builder("g")
    x = b.argument("x", "input", TensorType("f32", xs))
    w = b.argument("w", "param", TensorType("f32", ws))
    y = b.conv(x, w, stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    zero = b.constant(0.0, "f32", ())
    a = b.where(b.gt(y, zero), y, zero)
    p = b.reduce_window(a, kind="max", window=window, stride=stride, padding=padding)
    r = b.argument("r", "input", TensorType("f32", tuple(b.shape(p))))
    loss = b.sum(b.mul(p, r), axes=(0, 1, 2, 3), keepdims=False)
    g, _ = optimize(grad(b.build({"loss": loss}), "loss", ["x", "w"]))
    scatters = [n for n in g.nodes if n.op == "select_scatter"]
    assert scatters and all(g[n.inputs[1]].op == "where" for n in scatters)     # the mask on the pooled side
    rng = np.random.default_rng(4)
    xv = rng.integers(-1, 2, xs).astype(np.float32)
    wv = rng.integers(-1, 2, ws).astype(np.float32)
    rv = rng.standard_normal(tuple(g[n.inputs[1]].shape for n in scatters)[0]).astype(np.float32)
    out = compile_graph(g)({"x": xv, "w": wv, "r": rv})

    tx, tw = torch.from_numpy(xv).requires_grad_(True), torch.from_numpy(wv).requires_grad_(True)
    ty = torch.relu(F.conv2d(tx.permute(0, 3, 1, 2), tw.permute(3, 2, 0, 1), padding=1))
    flat = [v for lo_hi in reversed(padding) for v in lo_hi]
    tp = F.max_pool2d(F.pad(ty, flat, value=-float("inf")), window, stride)
    want = (tp.permute(0, 2, 3, 1) * torch.from_numpy(rv)).sum()
    want.backward()
    np.testing.assert_allclose(out["loss"], want.item(), rtol=1e-5)
    np.testing.assert_allclose(out["grad.w"], tw.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["grad.x"], tx.grad.numpy(), rtol=1e-4, atol=1e-4)


def _layer_graph(xs, ws, floor_first=False, tap=False, stride=2):
    """loss = sum(r * max_pool(maximum(conv(x, w) + b, 0))) and its gradients (a conv layer with
    relu, then a 2x2 max pool of that stride: simplify makes relu maximum(sum, 0) and moves its
    mask onto the pooled gradient, so nothing else reads the sum; pooling.py applies a relu
    after a pool of stride 2 to the pooled values); floor_first: maximum(0, sum) (not the
    epilogue's order; its gradient reads the sum); tap: the conv's y is an output too."""
    b = Builder("layer")
    x = b.argument("x", "input", TensorType("f32", xs))
    w = b.argument("w", "param", TensorType("f32", ws))
    bias = b.argument("b", "param", TensorType("f32", (ws[-1],)))
    y = b.conv(x, w, stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    zero = b.constant(0.0, "f32", ())
    z = b.add(y, bias)
    a = b.maximum(zero, z) if floor_first else b.where(b.gt(z, zero), z, zero)     # relu as the library's
    p = b.reduce_window(a, kind="max", window=(2, 2), stride=(stride, stride), padding=((0, 0), (0, 0)))
    r = b.argument("r", "input", TensorType("f32", tuple(b.shape(p))))
    loss = b.sum(b.mul(p, r), axes=(0, 1, 2, 3), keepdims=False)
    outs = {"loss": loss}
    if tap:
        outs["y"] = y
    return optimize(grad(b.build(outs), "loss", ["x", "w", "b"]))[0]


@pytest.mark.parametrize("xs, ws", [((3, 16, 40, 3), (3, 3, 3, 4)),    # planar columns: a blocked product per chunk
                                    ((3, 8, 40, 8), (3, 3, 8, 8)),     # row columns
                                    ((3, 8, 6, 8), (3, 3, 8, 5))])     # scatter layout: the epilogue after it
@pytest.mark.parametrize("chunks, stride", [("one", 1), ("many", 1), ("many", 2)])
def test_bias_and_relu_run_in_the_convs_chunks_with_the_same_bits(monkeypatch, xs, ws, chunks, stride):
    """Overlapping pool windows (stride 1): the conv adds the bias and applies relu; stride 2:
    it adds the bias, and the pool applies relu to the pooled values (pooling.py)."""
    from nncompiler.ir import convs
    if chunks == "many":      # 256 rows of y per chunk
        monkeypatch.setattr(convs, "Y_ROWS", 256)
    g = _layer_graph(xs, ws, stride=stride)
    src = generate(g)
    if stride == 1:
        assert re.search(r"_conv(_and_cols)?\([^\n]*a_b, c\d+\)  # %\d+ conv, with %\d+ add and %\d+ maximum", src)
    else:
        assert re.search(r"_conv(_and_cols)?\([^\n]*a_b\)  # %\d+ conv, with %\d+ add$", src, re.M)
        assert "relu=True" in src
    rng = np.random.default_rng(6)
    pooled = (xs[0], (xs[1] - 2) // stride + 1, (xs[2] - 2) // stride + 1, ws[-1])
    feeds = {"x": rng.standard_normal(xs).astype(np.float32), "w": rng.standard_normal(ws).astype(np.float32),
             "b": rng.standard_normal(ws[-1]).astype(np.float32), "r": rng.standard_normal(pooled).astype(np.float32)}
    out = compile_graph(g)(feeds)
    ref = interpret(g, feeds)
    for k in ("loss", "grad.x", "grad.w", "grad.b"):
        np.testing.assert_array_equal(out[k], ref[k])
    tx, tw, tb = (torch.from_numpy(feeds[k]).requires_grad_(True) for k in ("x", "w", "b"))
    ty = F.max_pool2d(torch.relu(F.conv2d(tx.permute(0, 3, 1, 2), tw.permute(3, 2, 0, 1), tb, padding=1)), 2, stride)
    (ty.permute(0, 2, 3, 1) * torch.from_numpy(feeds["r"])).sum().backward()
    for k, t in (("grad.x", tx), ("grad.w", tw), ("grad.b", tb)):
        np.testing.assert_allclose(out[k], t.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("floor_first, tap, fused", [(True, False, "add"), (False, True, None)])
def test_conv_epilogue_only_where_nothing_else_reads_the_values_it_overwrites(floor_first, tap, fused):
    """maximum(0, z) keeps its own line (its operand order decides which zero a -0.0 gives), and a
    conv whose y is also an output keeps its add and maximum apart."""
    xs, ws = (2, 6, 4, 3), (3, 3, 3, 4)
    g = _layer_graph(xs, ws, floor_first, tap)
    src = generate(g)
    if fused == "add":
        assert re.search(r"a_b\)  # %\d+ conv, with %\d+ add$", src, re.M) and "np.maximum(c" in src
    else:
        assert "conv, with %" not in src
    rng = np.random.default_rng(7)
    feeds = {"x": rng.integers(-2, 3, xs).astype(np.float32), "w": rng.integers(-1, 2, ws).astype(np.float32),
             "b": np.array([0.0, -0.0, 1.0, -1.0], np.float32), "r": rng.standard_normal((2, 3, 2, 4)).astype(np.float32)}
    out, ref = compile_graph(g)(feeds), interpret(g, feeds)
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k])


def test_conv_epilogue_takes_a_constant_bias_made_after_the_conv():
    """A bias that is a constant (folded, say) may come after the conv in the graph's order;
    constants are module-level in the generated code, so the conv's line may name it."""
    b = Builder("constbias")
    x = b.argument("x", "input", TensorType("f32", (2, 5, 4, 3)))
    w = b.argument("w", "param", TensorType("f32", (3, 3, 3, 2)))
    y = b.conv(x, w, stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    bias = b.constant((0.5, -0.0), "f32", (2,))
    g = b.build({"z": b.add(y, bias)})
    assert [n.op for n in g.nodes].index("const") > [n.op for n in g.nodes].index("conv")
    src = generate(g)
    assert re.search(r"_conv\([^\n]*, c\d+\)  # %\d+ conv, with %\d+ add", src)
    xv = np.random.default_rng(8).standard_normal((2, 5, 4, 3)).astype(np.float32)
    wv = np.random.default_rng(9).standard_normal((3, 3, 3, 2)).astype(np.float32)
    np.testing.assert_array_equal(compile_graph(g)({"x": xv, "w": wv})["z"], interpret(g, {"x": xv, "w": wv})["z"])
