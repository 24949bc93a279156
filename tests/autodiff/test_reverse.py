"""The reverse-mode driver: accumulation, zero gradients, non-differentiable paths,
symbolic batch sizes, and whole graphs (MLP + softmax cross-entropy, layer norm,
attention, a convolution from pad/slice/concat) against torch and the adjoint identity
<J.u, v> = <u, J^T.v>."""
import numpy as np
import pytest
import torch

from nncompiler.autodiff import VJP, grad
from nncompiler.backends.numpy import compile_graph
from nncompiler.errors import Loc, ShapeError
from nncompiler.ir import Builder, verify
from nncompiler.ir.shapes import TensorType

try:
    from tests.oracle import adjoint_check, run_graph, with_weighted_loss
except ImportError:  # tests/ itself is on sys.path
    from oracle import adjoint_check, run_graph, with_weighted_loss

RTOL, ATOL = 1e-4, 1e-5
NP = {"f32": np.float32, "f64": np.float64}


def T(*shape, dtype="f32"):
    return TensorType(dtype, tuple(shape))


def allsum(b, v):
    return b.sum(v, axes=tuple(range(len(b.shape(v)))), keepdims=False)


# ---- the driver's bookkeeping --------------------------------------------------------

def test_unused_argument_gets_zeros_of_its_shape_and_dtype():
    b = Builder("f")
    x = b.argument("x", "param", T(2, 3))
    unused = b.argument("u", "param", T(4, 1, 5))
    scalar = b.argument("s", "param", T(dtype="f64"))
    g = grad(b.build({"loss": allsum(b, b.mul(x, x))}), wrt=["x", "u", "s"])
    res = run_graph(g, {"x": np.ones((2, 3), np.float32), "u": np.ones((4, 1, 5), np.float32),
                        "s": np.float64(3.0)})
    assert res["grad.u"].shape == (4, 1, 5) and res["grad.u"].dtype == np.float32
    assert not res["grad.u"].any()
    assert res["grad.s"].shape == () and res["grad.s"].dtype == np.float64 and res["grad.s"] == 0
    np.testing.assert_array_equal(res["grad.x"], np.full((2, 3), 2.0))
    assert g.output("grad.u").type == T(4, 1, 5)


def test_unused_symbolic_argument_gets_zeros_of_the_runtime_shape():
    b = Builder("f")
    x = b.argument("x", "param", T("B", 3))
    u = b.argument("u", "param", T("B", 2))
    g = grad(b.build({"loss": allsum(b, x)}), wrt=["x", "u"])
    assert g.output("grad.u").type == T("B", 2)
    for n in (1, 4):
        res = run_graph(g, {"x": np.ones((n, 3), np.float32), "u": np.ones((n, 2), np.float32)})
        assert res["grad.u"].shape == (n, 2) and not res["grad.u"].any()
        np.testing.assert_array_equal(res["grad.x"], np.ones((n, 3)))


def test_value_used_twice_accumulates():
    # x feeds mul twice (same node, both operands) and y = exp(x) feeds three users
    b = Builder("f")
    x = b.argument("x", "param", T(3))
    y = b.exp(x)
    z = b.add(b.mul(y, y), b.add(y, b.mul(x, x)))
    g = grad(b.build({"loss": allsum(b, z)}), wrt=["x"])
    xv = np.array([0.1, -0.5, 0.7], np.float32)
    got = run_graph(g, {"x": xv})["grad.x"]
    xt = torch.tensor(xv, requires_grad=True)
    yt = torch.exp(xt)
    (yt * yt + (yt + xt * xt)).sum().backward()
    np.testing.assert_allclose(got, xt.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got, 2 * np.exp(2 * xv) + np.exp(xv) + 2 * xv, rtol=1e-5)


def test_argument_is_the_loss():
    b = Builder("f")
    x = b.argument("x", "param", T())
    g = grad(b.build({"loss": x}), wrt=["x"])
    assert run_graph(g, {"x": np.float32(5)})["grad.x"] == 1.0


@pytest.mark.parametrize("shape", [(3,), (1,), (2, 2)])
def test_non_scalar_loss_is_a_shape_error(shape):
    b = Builder("f")
    x = b.argument("x", "param", T(*shape))
    with pytest.raises(ShapeError, match="scalar"):
        grad(b.build({"loss": b.exp(x)}), wrt=["x"])


def test_loss_name_and_default_wrt():
    b = Builder("f")
    w = b.argument("w", "param", T(2))
    x = b.argument("x", "input", T(2))
    g = grad(b.build({"out": b.mul(w, x), "cost": allsum(b, b.mul(w, x))}), loss="cost")
    assert [name for name, _ in g.outputs] == ["out", "cost", "grad.w"]   # params only, by default
    res = run_graph(g, {"w": np.array([1, 2], np.float32), "x": np.array([3, 4], np.float32)})
    np.testing.assert_array_equal(res["grad.w"], [3, 4])
    np.testing.assert_array_equal(res["out"], [3, 8])


def test_missing_rule_is_a_shape_error(monkeypatch):
    monkeypatch.delitem(VJP, "exp")
    b = Builder("f")
    x = b.argument("x", "param", T(2))
    with pytest.raises(ShapeError, match="exp"):
        grad(b.build({"loss": allsum(b, b.exp(x))}), wrt=["x"])


def _nondiff_graph(kind):
    b = Builder("f")
    x = b.argument("x", "param", T(3, 4))
    w = b.argument("w", "param", T(3, 4))
    if kind == "argmax":
        v = b.cast(b.argmax(x, axis=1), dtype="f32")
    elif kind == "compare":
        v = b.cast(b.gt(x, w), dtype="f32")
    elif kind == "int-cast":                 # float -> int -> float rounds: no gradient
        v = b.cast(b.cast(b.mul(x, w), dtype="i32"), dtype="f32")
    elif kind == "size":
        v = b.size(x, axes=(0, 1), dtype="f32")
    elif kind == "sign":
        v = b.sign(x)
    elif kind == "stop_gradient":
        v = b.stop_gradient(b.mul(x, w))
    else:
        raise ValueError(kind)
    return b.build({"loss": allsum(b, v)})


@pytest.mark.parametrize("kind", ["argmax", "compare", "int-cast", "size", "sign", "stop_gradient"])
def test_non_differentiable_paths_get_no_gradient(kind):
    g = _nondiff_graph(kind)
    gg = grad(g, wrt=["x", "w"])
    rng = np.random.default_rng(0)
    args = {"x": rng.standard_normal((3, 4)).astype(np.float32) * 3,
            "w": rng.standard_normal((3, 4)).astype(np.float32)}
    res = run_graph(gg, args)
    for name in ("x", "w"):
        assert res[f"grad.{name}"].shape == (3, 4) and res[f"grad.{name}"].dtype == np.float32
        assert not res[f"grad.{name}"].any()
    if kind in ("argmax", "compare", "size"):
        # nothing on the path: no backward nodes beyond the seed and the two zero fills
        extra = [n.op for n in gg.nodes[len(g.nodes):]]
        assert set(extra) <= {"const", "broadcast_to"}, extra


def test_mixed_differentiable_and_not():
    # loss = sum(x * w) + sum(cast(x > 0)) + argmax: only the product contributes
    b = Builder("f")
    x = b.argument("x", "param", T(2, 3))
    w = b.argument("w", "param", T(2, 3))
    pos = allsum(b, b.cast(b.gt(x, b.scalar(0.0)), dtype="f32"))
    am = allsum(b, b.cast(b.argmax(b.mul(x, w), axis=0, keepdims=True), dtype="f32"))
    loss = b.add(b.add(allsum(b, b.mul(x, w)), pos), am)
    gg = grad(b.build({"loss": loss}), wrt=["x", "w"])
    xv = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    wv = np.ones((2, 3), np.float32) * 3
    res = run_graph(gg, {"x": xv, "w": wv})
    np.testing.assert_array_equal(res["grad.x"], wv)
    np.testing.assert_array_equal(res["grad.w"], xv)


def test_gradient_graph_is_well_formed():
    g, _ = mlp_graph("f32", batch=3)
    gg = grad(g, wrt=["w1", "b1", "w2", "b2"])
    verify(gg)
    assert gg.name == "mlp_grad"
    # the forward part is kept unchanged, in front
    assert gg.nodes[:len(g.nodes)] == g.nodes
    assert gg.outputs[:len(g.outputs)] == g.outputs
    for w in ("w1", "b1", "w2", "b2"):
        assert gg.output(f"grad.{w}").type == g.arg(w).type


def test_backward_nodes_carry_the_forward_location():
    b = Builder("f")
    x = b.argument("x", "param", T(3))
    loc = Loc("model.nn", 7, 3)
    with b.at(loc):
        y = b.tanh(x)
    g = b.build({"loss": allsum(b, y)})
    gg = grad(g, wrt=["x"])
    tanh_grad = [n for n in gg.nodes[len(g.nodes):] if n.op == "mul"]
    assert tanh_grad and all(n.loc == loc for n in tanh_grad)


# ---- whole graphs against torch -------------------------------------------------------

def softmax_xent(b, logits, onehot):
    """Per-example cross-entropy from primitives (max-shifted log-sum-exp)."""
    m = b.max(logits, axes=(1,), keepdims=True)
    z = b.sub(logits, b.stop_gradient(m))
    lse = b.log(b.sum(b.exp(z), axes=(1,), keepdims=True))
    return b.neg(b.sum(b.mul(b.sub(z, lse), onehot), axes=(1,)))


def mlp_graph(dtype, batch="B", act="tanh"):
    b = Builder("mlp")
    x = b.argument("x", "input", T(batch, 4, dtype=dtype))
    y = b.argument("y", "target", T(batch, 3, dtype=dtype))
    w1 = b.argument("w1", "param", T(4, 8, dtype=dtype))
    b1 = b.argument("b1", "param", T(8, dtype=dtype))
    w2 = b.argument("w2", "param", T(8, 3, dtype=dtype))
    b2 = b.argument("b2", "param", T(3, dtype=dtype))
    h = b.add(b.matmul(x, w1), b1)
    h = b.tanh(h) if act == "tanh" else b.maximum(h, b.scalar(0.0, dtype))
    logits = b.add(b.matmul(h, w2), b2)
    per = softmax_xent(b, logits, y)
    loss = b.div(b.sum(per, axes=(0,)), b.size(x, axes=(0,), dtype=dtype))
    return b.build({"per_example": per, "loss": loss}), ["w1", "b1", "w2", "b2"]


def mlp_args(dtype, batch, seed=0):
    rng = np.random.default_rng(seed)
    f = NP[dtype]
    labels = rng.integers(0, 3, batch)
    return {
        "x": rng.standard_normal((batch, 4)).astype(f),
        "y": np.eye(3)[labels].astype(f),
        "w1": (rng.standard_normal((4, 8)) * 0.7).astype(f),
        "b1": (rng.standard_normal(8) * 0.1).astype(f),
        "w2": (rng.standard_normal((8, 3)) * 0.7).astype(f),
        "b2": (rng.standard_normal(3) * 0.1).astype(f),
    }


def torch_mlp(args, act="tanh"):
    t = {k: torch.tensor(v, requires_grad=k not in ("y",)) for k, v in args.items()}
    h = t["x"] @ t["w1"] + t["b1"]
    h = torch.tanh(h) if act == "tanh" else torch.relu(h)
    logits = h @ t["w2"] + t["b2"]
    loss = torch.nn.functional.cross_entropy(logits, t["y"].argmax(1))
    loss.backward()
    return loss.detach().numpy(), {k: v.grad.numpy() for k, v in t.items() if v.grad is not None}


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("batch", [1, 2, 5])
def test_mlp_symbolic_batch_against_torch(act, batch):
    g, params = mlp_graph("f32", act=act)   # one graph, batch size B bound at run time
    gg = grad(g, wrt=params + ["x"])
    assert gg.output("grad.x").type == T("B", 4)
    args = mlp_args("f32", batch, seed=batch)
    res = run_graph(gg, args)
    t_loss, t_grads = torch_mlp(args, act)
    np.testing.assert_allclose(res["loss"], t_loss, rtol=RTOL, atol=ATOL)
    assert res["per_example"].shape == (batch,)
    for name in params + ["x"]:
        assert res[f"grad.{name}"].dtype == np.float32
        np.testing.assert_allclose(res[f"grad.{name}"], t_grads[name], rtol=RTOL, atol=ATOL, err_msg=name)


def test_one_compiled_gradient_graph_serves_every_batch_size():
    g, params = mlp_graph("f32")
    fn = compile_graph(grad(g, wrt=params))
    for batch in (1, 3, 8):
        args = mlp_args("f32", batch, seed=10 + batch)
        res = fn(args)
        _, t_grads = torch_mlp(args)
        np.testing.assert_allclose(res["grad.w1"], t_grads["w1"], rtol=RTOL, atol=ATOL)


def test_second_order_gradient_against_torch():
    # d/dx sum(r * d/dx sum(tanh(x) * w)): the backward graph is itself differentiable
    b = Builder("f")
    x = b.argument("x", "param", T(5, dtype="f64"))
    w = b.argument("w", "input", T(5, dtype="f64"))
    g1 = grad(b.build({"loss": allsum(b, b.mul(b.tanh(b.mul(x, x)), w))}), wrt=["x"])
    g2 = grad(with_weighted_loss(g1, "grad.x", loss="loss2"), loss="loss2", wrt=["x"])
    rng = np.random.default_rng(3)
    xv, wv, rv = rng.standard_normal(5), rng.standard_normal(5), rng.standard_normal(5)
    got = run_graph(g2, {"x": xv, "w": wv, "_v": rv})["grad.x"]
    xt = torch.tensor(xv, requires_grad=True)
    (gx,) = torch.autograd.grad((torch.tanh(xt * xt) * torch.tensor(wv)).sum(), xt, create_graph=True)
    (gx * torch.tensor(rv)).sum().backward()
    np.testing.assert_allclose(got, xt.grad.numpy(), rtol=1e-10)


# ---- <J.u, v> = <u, J^T.v> on composite graphs (float64) --------------------------------

def layernorm_graph():
    b = Builder("layernorm")
    x = b.argument("x", "input", T(3, 5, dtype="f64"))
    gamma = b.argument("gamma", "param", T(5, dtype="f64"))
    beta = b.argument("beta", "param", T(5, dtype="f64"))
    n = b.size(x, axes=(1,), dtype="f64")
    mean = b.div(b.sum(x, axes=(1,), keepdims=True), n)
    xc = b.sub(x, mean)
    var = b.div(b.sum(b.mul(xc, xc), axes=(1,), keepdims=True), n)
    y = b.div(xc, b.sqrt(b.add(var, b.scalar(1e-5, "f64"))))
    return b.build({"out": b.add(b.mul(y, gamma), beta)}), ["x", "gamma", "beta"]


def attention_graph():
    b = Builder("attention")
    q = b.argument("q", "input", T(2, 3, 4, dtype="f64"))
    k = b.argument("k", "input", T(2, 5, 4, dtype="f64"))
    v = b.argument("v", "input", T(2, 5, 6, dtype="f64"))
    s = b.div(b.matmul(q, b.transpose(k, perm=(0, 2, 1))), b.scalar(2.0, "f64"))
    e = b.exp(b.sub(s, b.max(s, axes=(-1,), keepdims=True)))     # max without stop_gradient: exact anyway
    p = b.div(e, b.sum(e, axes=(2,), keepdims=True))
    return b.build({"out": b.matmul(p, v)}), ["q", "k", "v"]


def conv_graph():
    # a width-3 1-D convolution: pad, three shifted slices, concat, matmul, strided output
    b = Builder("conv")
    x = b.argument("x", "input", T(2, 6, dtype="f64"))
    w = b.argument("w", "param", T(3, 2, dtype="f64"))
    xp = b.pad(x, lo=(0, 1), hi=(0, 1), interior=(0, 0))
    taps = [b.reshape(b.slice(xp, start=(0, i), stop=(2, i + 6), step=(1, 1)), shape=(2, 6, 1)) for i in range(3)]
    cols = b.concat(*taps, axis=2)
    y = b.matmul(cols, w)                                           # [2, 6, 2]
    y = b.slice(y, start=(0, 0, 0), stop=(2, 6, 2), step=(1, 2, 1))
    return b.build({"out": b.sigmoid(y)}), ["x", "w"]


def mlp64_graph():
    g, params = mlp_graph("f64", act="relu")
    return g, params + ["x"]


def _args_for(g, seed):
    rng = np.random.default_rng(seed)
    args = {}
    for a in g.args:
        shape = tuple(4 if isinstance(d, str) else d for d in a.shape)
        args[a.attr["name"]] = rng.standard_normal(shape)
    if "y" in args:
        args["y"] = np.eye(3)[rng.integers(0, 3, 4)]
    return args


@pytest.mark.parametrize("make,out", [(mlp64_graph, "per_example"), (mlp64_graph, "loss"),
                                      (layernorm_graph, "out"), (attention_graph, "out"),
                                      (conv_graph, "out")], ids=["mlp-per-example", "mlp-loss",
                                                                 "layernorm", "attention", "conv"])
@pytest.mark.parametrize("seed", [0, 1])
def test_adjoint_identity(make, out, seed):
    g, wrt = make()
    args = _args_for(g, seed)
    lhs, rhs = adjoint_check(g, out, wrt, args, seed=seed)
    assert lhs != 0.0


def test_adjoint_check_detects_a_wrong_rule(monkeypatch):
    # the harness itself must fail on a broken rule: make tanh's VJP forget the (1 - y^2) factor
    monkeypatch.setitem(VJP, "tanh", lambda b, n, g, x: (g,))
    b = Builder("f")
    x = b.argument("x", "param", T(4, dtype="f64"))
    g = b.build({"out": b.tanh(b.mul(x, x))})
    with pytest.raises(AssertionError):
        adjoint_check(g, "out", ["x"], {"x": np.linspace(0.3, 1.2, 4)})


# ---- movement ops over a symbolic batch axis -------------------------------------------

def test_movement_gradients_with_symbolic_batch():
    b = Builder("moves")
    x = b.argument("x", "param", T("B", 6))
    r = b.argument("r", "input", T("B", 2, 3))
    s = b.slice(x, start=(0, 1), stop=(None, 6), step=(1, 2))              # [B, 3], whole B axis
    p = b.pad(s, lo=(0, 1), hi=(0, 0), interior=(0, 1))                    # [B, 6]
    c = b.concat(p, x, axis=1)                                             # [B, 12]
    t = b.transpose(b.reshape(c, shape=("B", 3, 4)), perm=(0, 2, 1))       # [B, 4, 3]
    m = b.max(b.reshape(t, shape=("B", 2, 2, 3)), axes=(2,))               # [B, 2, 3]
    loss = allsum(b, b.mul(b.exp(m), r))
    gg = grad(b.build({"loss": loss}), wrt=["x"])
    assert gg.output("grad.x").type == T("B", 6)
    fn = compile_graph(gg)
    for batch in (1, 3):
        rng = np.random.default_rng(batch)
        xv = rng.standard_normal((batch, 6)).astype(np.float32)
        rv = rng.standard_normal((batch, 2, 3)).astype(np.float32)
        got = fn({"x": xv, "r": rv})["grad.x"]
        xt = torch.tensor(xv, requires_grad=True)
        pt = torch.zeros(batch, 6)
        pt[:, 1::2] = xt[:, 1::2]
        ct = torch.cat([pt, xt], dim=1).reshape(batch, 3, 4).permute(0, 2, 1).reshape(batch, 2, 2, 3)
        (torch.exp(ct.amax(dim=2)) * torch.tensor(rv)).sum().backward()
        np.testing.assert_allclose(got, xt.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_concat_along_symbolic_axis_is_a_shape_error():
    b = Builder("f")
    x = b.argument("x", "param", T("B", 3))
    c = b.concat(x, x, axis=0)                                             # [2*B, 3]
    with pytest.raises(ShapeError):
        grad(b.build({"loss": allsum(b, c)}), wrt=["x"])
