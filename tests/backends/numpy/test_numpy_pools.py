"""The numpy backend's max pools in a training step: codegen pairs reduce_window max with
its select_scatter (the forward records which tap won, ir/pools.py; the gradient writes g
through it, absorbing relu's where mask when nothing else reads it). Forward values and
gradients equal torch.autograd's max_pool exactly (each gradient value is one r or 0; ties
go to the first maximum in window order in both), and the paired code gives the bits of the
reference interpreter, which computes each node on its own."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nncompiler.autodiff import grad
from nncompiler.backends.numpy import compile_graph, generate
from nncompiler.ir import Builder
from nncompiler.ir.interpret import interpret
from nncompiler.ir.shapes import TensorType

CASES = [  # x shape, window (stride = window)
    ((1, 7, 5, 1), (2, 2)),          # batch 1, odd sizes: the last row and column get no gradient
    ((3, 6, 9, 3), (2, 3)),
    ((2, 9, 8, 3), (3, 3)),
    ((2, 9, 3), (3,)),               # 1-d
    ((1, 5, 4, 6, 2), (2, 2, 3)),    # 3-d
]
_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _values(kind, shape, rng):
    if kind == "ties":
        return rng.integers(-1, 2, shape).astype(np.float32)     # many exact ties
    if kind == "equal":
        return np.full(shape, 0.5, np.float32)                   # every window one tie
    return rng.standard_normal(shape).astype(np.float32)


def _torch(x, r, window, relu):
    """(pooled [N, *O, C], d loss / dx) with loss = sum(r * maxpool(relu?(x)))."""
    n = x.ndim - 2
    tx = torch.from_numpy(x).requires_grad_(True)
    t = torch.relu(tx) if relu else tx
    p = _POOL[n](t.permute(0, n + 1, *range(1, n + 1)), window, window).permute(0, *range(2, n + 2), 1)
    (p * torch.from_numpy(r)).sum().backward()
    return p.detach().numpy(), tx.grad.numpy()


def _graph(xs, window, relu):
    b = Builder("pool")
    x = b.argument("x", "input", TensorType("f32", xs))
    zero = b.constant(0.0, "f32", ())
    a = b.where(b.gt(x, zero), x, zero) if relu else x
    p = b.reduce_window(a, kind="max", window=window, stride=window, padding=((0, 0),) * len(window))
    r = b.argument("r", "input", TensorType("f32", tuple(b.shape(p))))
    loss = b.sum(b.mul(p, r), axes=tuple(range(len(xs))), keepdims=False)
    return grad(b.build({"loss": loss, "pooled": p}), "loss", ["x"])


@pytest.mark.parametrize("xs, window", CASES)
@pytest.mark.parametrize("values", ["normal", "ties", "equal"])
def test_paired_max_pool_equals_torch_forward_and_gradient(xs, window, values):
    g = _graph(xs, window, relu=False)
    src = generate(g)
    assert "_max_pool_and_index(" in src and "_max_pool_scatter(" in src and "_select_scatter(" not in src
    rng = np.random.default_rng(3)
    x = _values(values, xs, rng)
    _check_against_torch_and_interpreter(g, x, rng, window, relu=False)


def _check_against_torch_and_interpreter(g, x, rng, window, relu):
    r = rng.standard_normal(tuple(g.arg("r").shape)).astype(np.float32)
    out = compile_graph(g)({"x": x, "r": r})
    pooled, dx = _torch(x, r, window, relu=relu)
    np.testing.assert_array_equal(out["pooled"], pooled)
    np.testing.assert_array_equal(out["grad.x"], dx)
    ref = interpret(g, {"x": x, "r": r})
    for name in out:
        np.testing.assert_array_equal(out[name], ref[name])


@pytest.mark.parametrize("xs, window", CASES[:3])
@pytest.mark.parametrize("values", ["ties", "special"])
def test_relu_and_its_mask_are_absorbed_into_the_pool_and_its_gradient(xs, window, values):
    """relu before a max pool is applied to the pooled values (no pass over the whole x), and
    where(pooled > 0, g, 0) on the pooled side (relu's mask, moved there by simplify) is no
    line of its own; windows with nothing positive, ties, NaN, inf and -0.0 keep the bits."""
    from nncompiler.passes import optimize
    g, _ = optimize(_graph(xs, window, relu=True))
    body = generate(g).split("\ndef ")[-1]          # the step function, after the prelude's helpers
    assert "where" not in body.replace("where(c, g, 0)", "") and "np.maximum(" not in body
    assert "relu=True" in next(line for line in body.splitlines() if "_max_pool_and_index(" in line)
    assert "with %" in next(line for line in body.splitlines() if "_max_pool_scatter(" in line)
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, xs).astype(np.float32)
    if values == "special":
        pick = rng.random(xs) < 0.3
        x[pick] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], np.float32), int(pick.sum()))
        r = rng.standard_normal(tuple(g.arg("r").shape)).astype(np.float32)
        with np.errstate(invalid="ignore"):            # inf * 0 in the loss
            out, ref = compile_graph(g)({"x": x, "r": r}), interpret(g, {"x": x, "r": r})
        for name in ("pooled", "grad.x"):
            assert np.asarray(out[name]).tobytes() == np.asarray(ref[name]).tobytes(), name
        return
    _check_against_torch_and_interpreter(g, x, rng, window, relu=True)


def test_an_absorbed_wheres_operands_outlive_it():
    """The where's condition is read at the select_scatter, after the where's own place: the
    memory plan must not hand its workspace to a bool computed in between (here lt(r2, 0),
    the same shape and dtype), or the gradient would read the wrong mask."""
    xs = (64, 8, 8, 32)                           # pooled values above the plan's LARGE size
    b = Builder("late")
    x = b.argument("x", "input", TensorType("f32", xs))
    r = b.argument("r", "input", TensorType("f32", (64, 4, 4, 32)))
    r2 = b.argument("r2", "input", TensorType("f32", (64, 4, 4, 32)))
    zero = b.constant(0.0, "f32", ())
    attrs = dict(window=(2, 2), stride=(2, 2), padding=((0, 0), (0, 0)))
    p = b.reduce_window(x, kind="max", **attrs)
    masked = b.where(b.gt(p, zero), r, zero)
    c2 = b.lt(r2, zero)                           # would take gt's workspace once the where is done
    other = b.where(c2, r2, r)
    s = b.select_scatter(x, masked, **attrs)
    g = b.build({"s": s, "other": other, "p": p})
    src = generate(g)
    assert "_max_pool_scatter(" in src and "with %" in src
    rng = np.random.default_rng(0)
    args = {k: rng.standard_normal(v).astype(np.float32) for k, v in
            (("x", xs), ("r", (64, 4, 4, 32)), ("r2", (64, 4, 4, 32)))}
    out, ref = compile_graph(g)(args), interpret(g, args)
    for name in ref:
        np.testing.assert_array_equal(out[name], ref[name])


def test_a_relu_read_elsewhere_stays_a_pass_of_its_own():
    """relu goes after the pool only when the pool and its gradient are its only readers."""
    from nncompiler.passes import optimize
    b = Builder("pool")
    x = b.argument("x", "input", TensorType("f32", (2, 6, 6, 3)))
    zero = b.constant(0.0, "f32", ())
    a = b.maximum(x, zero)
    p = b.reduce_window(a, kind="max", window=(2, 2), stride=(2, 2), padding=((0, 0), (0, 0)))
    r = b.argument("r", "input", TensorType("f32", (2, 3, 3, 3)))
    loss = b.sum(b.mul(p, r), axes=(0, 1, 2, 3), keepdims=False)
    g, _ = optimize(grad(b.build({"loss": loss, "relu": a}), "loss", ["x"]))
    body = generate(g).split("\ndef ")[-1]
    assert "np.maximum(" in body and "relu=True" not in body and "_max_pool_scatter(" in body
    rng = np.random.default_rng(6)
    args = {"x": rng.integers(-2, 3, (2, 6, 6, 3)).astype(np.float32),
            "r": rng.standard_normal((2, 3, 3, 3)).astype(np.float32)}
    out, ref = compile_graph(g)(args), interpret(g, args)
    for name in ref:
        np.testing.assert_array_equal(out[name], ref[name])
