"""scan: text round trip, verifier, numpy loop vs unrolled, and its VJP (a reverse scan)
against torch.autograd in float32 and central differences in float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nncompiler.autodiff import grad
from nncompiler.backends.numpy.codegen import compile_graph
from nncompiler.errors import ShapeError
from nncompiler.ir import Builder, TensorType, parse_graph, print_graph, verify
from nncompiler.passes import optimize, unroll


def _rnn_graph(dtype="f32", T=5, reverse=False, axis=1):
    """h_t = tanh(h_{t-1} @ w + x_t); y_t = h_t * h_{t-1}; loss = sum(y^2) + sum(h_T)."""
    s = Builder("cell")
    c = s.argument("c", "carry", TensorType(dtype, ("B", 3)))
    x = s.argument("x", "input", TensorType(dtype, ("B", 3)))
    w = s.argument("w", "param", TensorType(dtype, (3, 3)))
    h = s.tanh(s.add(s.matmul(c, w), x))
    body = s.build({"c": h, "y": s.mul(h, c)})
    b = Builder("rnn")
    c0 = b.argument("c0", "param", TensorType(dtype, ("B", 3)))
    seq_shape = ("B", T, 3) if axis == 1 else (T, "B", 3)
    xs = b.argument("xs", "param", TensorType(dtype, seq_shape))
    w = b.argument("w", "param", TensorType(dtype, (3, 3)))
    hT, ys = b.loop(body, [c0], [xs], [w], axis=axis, reverse=reverse)
    loss = b.add(b.sum(b.mul(ys, ys), axes=(0, 1, 2)), b.sum(hT, axes=(0, 1)))
    return b.build({"loss": loss, "ys": ys})


def _torch_rnn(a, reverse, axis):
    t = {k: torch.tensor(v, requires_grad=True) for k, v in a.items()}
    c, ys = t["c0"], {}
    steps = range(a["xs"].shape[axis])
    for i in (reversed(steps) if reverse else steps):
        h = torch.tanh(c @ t["w"] + t["xs"].select(axis, i))
        ys[i] = h * c
        c = h
    y = torch.stack([ys[i] for i in steps], axis)
    loss = (y * y).sum() + c.sum()
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in t.items()}


def _args(dtype, axis, T=5, seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *s: (rng.standard_normal(s) * 0.7).astype(dtype)  # noqa: E731
    return {"c0": f(2, 3), "xs": f(2, T, 3) if axis == 1 else f(T, 2, 3), "w": f(3, 3)}


def test_text_round_trip_prints_the_body_as_a_region():
    g = _rnn_graph()
    text = print_graph(g)
    assert "body=graph cell(" in text
    assert print_graph(parse_graph(text)) == text


def test_verifier_rejects_a_body_that_does_not_fit_its_operands():
    s = Builder("cell")
    c = s.argument("c", "carry", TensorType("f32", (4,)))   # the operand is f32[3]
    body = s.build({"c": c})
    b = Builder("g")
    c0 = b.argument("c0", "input", TensorType("f32", (3,)))
    with pytest.raises(ShapeError, match="scan body takes"):
        b.loop(body, [c0], [], length=2)


@pytest.mark.parametrize("reverse,axis", [(False, 1), (True, 1), (False, 0)])
def test_gradient_matches_torch_float32(reverse, axis):
    g = optimize(grad(_rnn_graph(reverse=reverse, axis=axis)))[0]
    verify(g)
    assert "scan" in g.op_counts()          # the backward pass is a loop too
    a = _args(np.float32, axis)
    loss, want = _torch_rnn(a, reverse, axis)
    for graph in (g, unroll(g)[0]):
        out = compile_graph(graph)(a)
        assert out["loss"] == pytest.approx(loss, rel=1e-5)
        for k in a:
            np.testing.assert_allclose(out[f"grad.{k}"], want[k], rtol=1e-4, atol=1e-5)


def test_gradient_matches_central_differences_float64():
    g = optimize(grad(_rnn_graph("f64", T=4)))[0]
    a = _args(np.float64, 1, T=4, seed=1)
    fn = compile_graph(g)
    got = fn(a)
    eps = 1e-6
    for k, v in a.items():
        for idx in [(0, 0), (1, 2)] if v.ndim == 2 else [(0, 1, 2), (1, 3, 0)]:
            hi, lo = {**a, k: v.copy()}, {**a, k: v.copy()}
            hi[k][idx] += eps
            lo[k][idx] -= eps
            fd = (fn(hi)["loss"] - fn(lo)["loss"]) / (2 * eps)
            assert got[f"grad.{k}"][idx] == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_cumulative_product_gradient_matches_torch():
    # a hand-written scan with no invariants and a per-step output that is the carry itself
    s = Builder("step")
    acc = s.argument("acc", "carry", TensorType("f32", (4,)))
    x = s.argument("x", "input", TensorType("f32", (4,)))
    p = s.mul(acc, x)
    b = Builder("cumprod")
    xs = b.argument("xs", "param", TensorType("f32", (6, 4)))
    final, running = b.loop(s.build({"acc": p, "p": p}), [b.broadcast_to(b.scalar(1.0), shape=(4,))], [xs])
    loss = b.add(b.sum(b.mul(running, running), axes=(0, 1)), b.sum(final, axes=(0,)))
    g = optimize(grad(b.build({"loss": loss, "running": running})))[0]
    xv = np.random.default_rng(2).uniform(0.5, 1.5, (6, 4)).astype(np.float32)
    out = compile_graph(g)({"xs": xv})
    t = torch.tensor(xv, requires_grad=True)
    r = torch.cumprod(t, 0)
    ((r * r).sum() + r[-1].sum()).backward()
    np.testing.assert_allclose(out["running"], r.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(out["grad.xs"], t.grad.numpy(), rtol=1e-4)


def test_passes_optimise_inside_the_body():
    s = Builder("cell")
    c = s.argument("c", "carry", TensorType("f32", (3,)))
    one = s.scalar(1.0)
    body = s.build({"c": s.mul(s.add(c, s.scalar(0.0)), one)})   # c + 0, then * 1: both identities
    b = Builder("g")
    c0 = b.argument("c0", "input", TensorType("f32", (3,)))
    (final,) = b.loop(body, [c0], [], length=3)
    g, records = optimize(b.build({"c": final}))
    inner = [n for n in g.nodes if n.op == "scan"][0].attr["body"]
    assert inner.op_counts() == {}, print_graph(inner)
    assert any(r.name == "bodies" and r.changed for r in records)


def _body_named(g, suffix):
    return [n.attr["body"] for n in g.nodes if n.op == "scan" and n.attr["body"].name.endswith(suffix)][0]


def test_reverse_scan_reads_the_saved_activations_instead_of_recomputing_the_step():
    g = optimize(grad(_rnn_graph()))[0]
    forward, backward = _body_named(g, "cell"), _body_named(g, "cell_vjp")
    tanh = [n.id for n in forward.nodes if n.op == "tanh"]
    assert tanh and tanh[0] in [i for _, i in forward.outputs]   # stacked for the reverse scan
    assert "tanh" not in backward.op_counts(), print_graph(backward)
    a = _args(np.float32, 1)
    loss, want = _torch_rnn(a, False, 1)
    out = compile_graph(g)(a)
    assert out["loss"] == pytest.approx(loss, rel=1e-5)
    for k in a:
        np.testing.assert_allclose(out[f"grad.{k}"], want[k], rtol=1e-4, atol=1e-5)


def test_gradient_through_a_scan_nested_in_a_scan_body_matches_torch():
    # each outer step runs two inner steps c <- tanh(c @ w + x_t) from c = h; the outer body
    # keeps recomputing its step (its nested scan's residuals are not saved by the outer scan)
    inner = Builder("inner")
    c = inner.argument("c", "carry", TensorType("f32", ("B", 3)))
    xi = inner.argument("x", "param", TensorType("f32", ("B", 3)))
    wi = inner.argument("w", "param", TensorType("f32", (3, 3)))
    inner_body = inner.build({"c": inner.tanh(inner.add(inner.matmul(c, wi), xi))})
    outer = Builder("outer")
    h = outer.argument("h", "carry", TensorType("f32", ("B", 3)))
    x = outer.argument("x", "input", TensorType("f32", ("B", 3)))
    w = outer.argument("w", "param", TensorType("f32", (3, 3)))
    (c2,) = outer.loop(inner_body, [h], [], [x, w], length=2)
    outer_body = outer.build({"h": c2, "y": outer.mul(c2, h)})
    b = Builder("nested")
    c0 = b.argument("c0", "param", TensorType("f32", ("B", 3)))
    xs = b.argument("xs", "param", TensorType("f32", ("B", 5, 3)))
    wv = b.argument("w", "param", TensorType("f32", (3, 3)))
    hT, ys = b.loop(outer_body, [c0], [xs], [wv], axis=1)
    loss = b.add(b.sum(b.mul(ys, ys), axes=(0, 1, 2)), b.sum(hT, axes=(0, 1)))
    g = optimize(grad(b.build({"loss": loss})))[0]
    a = _args(np.float32, 1, seed=3)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in a.items()}
    hc, ys_t = t["c0"], []
    for i in range(5):
        cc = hc
        for _ in range(2):
            cc = torch.tanh(cc @ t["w"] + t["xs"][:, i])
        ys_t.append(cc * hc)
        hc = cc
    y = torch.stack(ys_t, 1)
    ref = (y * y).sum() + hc.sum()
    ref.backward()
    out = compile_graph(g)(a)
    assert out["loss"] == pytest.approx(float(ref.detach()), rel=1e-5)
    for k in a:
        np.testing.assert_allclose(out[f"grad.{k}"], t[k].grad.numpy(), rtol=1e-4, atol=1e-5)
