"""Core layers (library/core_layers.py) built through the language and compared with PyTorch,
parameters copied across: dropout, the merge layers of non-sequential models (add, subtract,
multiply, average, concat), embedding (vs torch.nn.Embedding), batchnorm (vs
torch.nn.BatchNorm1d, training step, moving statistics and inference) and layernorm (vs
torch.nn.LayerNorm), plus their regularizers and the residual example.

Keras's conventions are checked where torch differs: batchnorm's momentum is the complement
of torch's, and its moving variance is updated with the biased batch variance (torch uses
the unbiased one).
"""
from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nncompiler as nnc
from nncompiler.backends.numpy import compile_graph
from nncompiler.errors import CompileError
from library.helpers import check, ours
from nncompiler.library import LAYERS, Initializer, Regularizer, Tensor, Value
from nncompiler.library.context import Indices

RTOL, ATOL = 1e-4, 1e-5
rng = np.random.default_rng(99)


def normal(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def cotangent(shape, seed=1234):
    g = np.random.default_rng(seed)
    return (g.uniform(0.5, 1.5, shape) * g.choice([-1.0, 1.0], shape)).astype(np.float32)


def close(a, b, what="", rtol=RTOL, atol=ATOL):
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert np.shape(a) == b.shape, (what, np.shape(a), b.shape)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


def training_outputs(m, **feeds) -> dict:
    """Every output of the training-mode forward graph (batch statistics, dropout active,
    `update.<buffer>`), evaluated on the model's current state and step key."""
    return m.run_graph(m.lowered.forward, **feeds)


def compile_error(src: str) -> str:
    with pytest.raises(CompileError) as info:
        nnc.compile(src)
    return info.value.render()


# ---- dropout ------------------------------------------------------------------------------------

DROPOUT = """
model D {
    input  x: f32[B, 2000]
    param  w: f32[2000] = 1.0
    d = dropout(x * w, 0.3)
    output d
    loss sum(d)
    optimizer sgd(lr=0.001)
}"""
ONES = np.ones((1, 2000), np.float32)


def _mask(m) -> np.ndarray:
    """d = dropout(x * w) with x = 1: d loss / d w is the mask scaled by 1 / (1 - rate)."""
    _, grads = m.loss_and_grads(x=ONES)
    return grads["w"]


def test_dropout_is_the_identity_at_inference():
    m = nnc.compile(DROPOUT)
    x = normal(3, 2000)
    np.testing.assert_array_equal(m.forward(x=x), x)
    assert "rng_uniform" not in m.graph("predict").op_counts()


def test_dropout_keeps_one_minus_rate_scaled_by_its_inverse():
    g = _mask(nnc.compile(DROPOUT))
    kept = g != 0
    assert abs(kept.mean() - 0.7) < 0.04
    np.testing.assert_allclose(g[kept], np.float32(1 / 0.7), rtol=1e-6)


def test_dropout_training_output_and_gradient_match_torch_with_the_same_mask():
    m = nnc.compile(DROPOUT)
    x = normal(3, 2000)
    w = normal(2000)
    m.set_params({"w": w})
    d = training_outputs(m, x=x)["d"]
    mask = torch.tensor(d != 0)
    tw = torch.tensor(w, requires_grad=True)
    ref = torch.tensor(x) * tw * mask / 0.7
    close(d, ref, "training output")
    ref.sum().backward()
    _, grads = m.loss_and_grads(x=x)
    close(grads["w"], tw.grad, "grad of w")


def test_dropout_masks_change_every_step_and_repeat_with_the_seed():
    a = nnc.compile(DROPOUT, seed=5)
    first = _mask(a) != 0
    np.testing.assert_array_equal(_mask(a) != 0, first)           # same step, same mask
    a.step(x=ONES)
    second = _mask(a) != 0
    assert 0.45 < (first == second).mean() < 0.75                 # independent draws agree ~58% of the time
    b = nnc.compile(DROPOUT, seed=5)
    np.testing.assert_array_equal(_mask(b) != 0, first)           # same seed, same masks
    b.step(x=ONES)
    np.testing.assert_array_equal(_mask(b) != 0, second)
    c = nnc.compile(DROPOUT, seed=6)
    assert (_mask(c) != 0).tolist() != first.tolist()


def test_dropout_rate_zero_and_bad_rates():
    m = nnc.compile(DROPOUT.replace("0.3", "0.0"))
    np.testing.assert_array_equal(_mask(m), 1.0)
    text = compile_error(DROPOUT.replace("0.3", "1.0"))
    assert text.startswith("<string>:5:9: error: dropout: rate must be in [0, 1), got 1.0"), text


# ---- merges and residual blocks --------------------------------------------------------------------

RESIDUAL = """
model R {
    input  x: f32[B, 5]
    target y: f32[B, 3]
    h   = dense(x, 6, activation=relu)
    h2  = relu(h + dense(h, 6))
    h3  = add(h2, h, dense(x, 6))
    c   = concat(h3, x)
    out = dense(c, 3)
    output out
    loss mse(out, y)
    optimizer sgd()
}"""


def test_residual_block_matches_torch():
    m = nnc.compile(RESIDUAL)
    assert list(m.params) == ["h.kernel", "h.bias", "dense_1.kernel", "dense_1.bias", "dense_2.kernel",
                              "dense_2.bias", "out.kernel", "out.bias"]
    params = {k: normal(*v.shape) for k, v in m.params.items()}
    m.set_params(params)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    for n in (1, 4):
        x, y = normal(n, 5), normal(n, 3)
        tx = torch.tensor(x)
        h = F.relu(tx @ p["h.kernel"] + p["h.bias"])
        h2 = F.relu(h + h @ p["dense_1.kernel"] + p["dense_1.bias"])
        h3 = h2 + h + tx @ p["dense_2.kernel"] + p["dense_2.bias"]
        out = torch.cat([h3, tx], -1) @ p["out.kernel"] + p["out.bias"]
        close(m.forward(x=x), out, "forward")
        for t in p.values():
            t.grad = None
        F.mse_loss(out, torch.tensor(y)).backward()
        loss, grads = m.loss_and_grads(x=x, y=y)
        for k in params:
            close(grads[k], p[k].grad, f"grad of {k}")


def _merge_check(expr, operands, torch_fn):
    ts = {k: torch.tensor(v, requires_grad=True) for k, v in operands.items()}
    ref = torch_fn(ts)
    r = cotangent(tuple(ref.shape))
    decls = "\n".join(f"    param {k}: f32[{', '.join(map(str, v.shape))}]" for k, v in operands.items())
    m = nnc.compile(f"model M {{\n{decls}\n    target r: f32[{', '.join(map(str, r.shape))}]\n"
                    f"    out = {expr}\n    output out\n    loss sum(out * r)\n    optimizer sgd()\n}}\n")
    m.set_params(operands)
    close(m.forward(), ref, "forward")
    (ref * torch.tensor(r)).sum().backward()
    _, grads = m.loss_and_grads(r=r)
    for k in operands:
        want = ts[k].grad if ts[k].grad is not None else np.zeros(operands[k].shape, np.float32)  # unused
        close(grads[k], want, f"grad of {k}")


A, B, C = normal(2, 3), normal(1, 3), normal(2, 1)


@pytest.mark.parametrize("expr,torch_fn", [
    ("add(a, b)", lambda t: t["a"] + t["b"]),
    ("add(a, b, c, a)", lambda t: t["a"] + t["b"] + t["c"] + t["a"]),
    ("subtract(a, c)", lambda t: t["a"] - t["c"]),
    ("multiply(a, b, c)", lambda t: t["a"] * t["b"] * t["c"]),
    ("average(a, b, c)", lambda t: (t["a"] + t["b"] + t["c"]) / 3),
    ("concat(a, b, axis=0)", lambda t: torch.cat([t["a"], t["b"]], 0)),
    ("concat(a, c, a)", lambda t: torch.cat([t["a"], t["c"], t["a"]], -1)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_merge_layers_match_torch(expr, torch_fn):
    _merge_check(expr, {"a": A, "b": B, "c": C}, torch_fn)


def test_merge_shape_errors_are_positioned():
    text = compile_error("graph G {\n    input a: f32[2, 3]\n    input b: f32[3, 3]\n"
                         "    y = concat(a, b)\n    output y\n}\n")
    assert text.startswith("<string>:4:9: error: concat:"), text
    text = compile_error("graph G {\n    input a: f32[2, 3]\n    input b: f32[2, 4]\n"
                         "    y = add(a, b)\n    output y\n}\n")
    assert text.startswith("<string>:4:9: error: add:") and "cannot be broadcast" in text, text


# ---- embedding ---------------------------------------------------------------------------------

EMBED = """
model E {
    input  ids: i32[B, T]
    target r: f32[B, T, 4]
    e = embedding(ids, 10, 4)
    output e
    loss sum(e * r)
    optimizer sgd()
}"""


def _torch_embedding(m, name="e.embeddings"):
    emb = torch.nn.Embedding(*m.params[name].shape)
    m.set_params({name: emb.weight.detach().numpy()})
    return emb


def test_embedding_declares_keras_param_and_init():
    m = nnc.compile(EMBED)
    assert list(m.params) == ["e.embeddings"]
    w = m.params["e.embeddings"]
    assert w.shape == (10, 4) and w.dtype == np.float32
    assert np.abs(w).max() <= 0.05 and w.std() > 0.01            # uniform(-0.05, 0.05), as Keras


@pytest.mark.parametrize("ids", [
    np.array([[1, 3, 3], [3, 0, 9]], np.int32),               # repeated ids accumulate gradients
    np.array([[7]], np.int32),                                # batch 1, length 1
    np.array([[2, 2, 2, 2, 2]], np.int32),
])
def test_embedding_matches_torch(ids):
    m = nnc.compile(EMBED)
    emb = _torch_embedding(m)
    ref = emb(torch.tensor(ids, dtype=torch.long))
    close(m.forward(ids=ids), ref, "forward")
    r = cotangent(ref.shape)
    (ref * torch.tensor(r)).sum().backward()
    _, grads = m.loss_and_grads(ids=ids, r=r)
    close(grads["e.embeddings"], emb.weight.grad, "grad of embeddings")


def test_embedding_of_rank1_ids_and_float_ids_in_a_model():
    src = """
model E {
    input  ids: f32[B]
    target y: f32[B, 1]
    e   = embedding(ids, 6, 3, embeddings_regularizer=l2(0.1))
    out = dense(e, 1)
    output out
    loss mse(out, y)
    optimizer adam()
}"""
    m = nnc.compile(src)
    emb = _torch_embedding(m)
    kernel = torch.tensor(m.params["out.kernel"], requires_grad=True)
    bias = torch.tensor(m.params["out.bias"], requires_grad=True)
    ids = np.array([5.0, 0.0, 5.0, 2.0], np.float32)
    y = normal(4, 1)
    out = emb(torch.tensor(ids).long()) @ kernel + bias
    close(m.forward(ids=ids), out, "forward")
    loss_t = F.mse_loss(out, torch.tensor(y)) + 0.1 * (emb.weight ** 2).sum()
    loss_t.backward()
    loss, grads = m.loss_and_grads(ids=ids, y=y)
    assert loss == pytest.approx(loss_t.item(), rel=1e-5)
    close(grads["e.embeddings"], emb.weight.grad, "grad of embeddings")
    close(grads["out.kernel"], kernel.grad, "grad of kernel")


def test_embedding_gradient_is_a_scatter_not_a_one_hot_matmul():
    m = nnc.compile(EMBED.replace("10, 4", "50000, 4"))
    counts = m.graph("gradients").op_counts()
    assert counts.get("gather") == 1 and counts.get("scatter_add") == 1 and "matmul" not in counts


def test_embedding_clamps_out_of_range_ids():
    m = nnc.compile(EMBED)
    w = m.params["e.embeddings"]
    np.testing.assert_array_equal(m.forward(ids=np.array([[12, -1]], np.int32)), w[[[9, 0]]])


# ---- batchnorm --------------------------------------------------------------------------------

BATCHNORM = """
model N {
    input  x: f32[B, 3]
    target r: f32[B, 3]
    n = batchnorm(x)
    output n
    loss sum(n * r)
    optimizer sgd(lr=0.1)
}"""


def _torch_bn(m, features, momentum=0.99, eps=1e-3):
    bn = torch.nn.BatchNorm1d(features, momentum=1 - momentum, eps=eps)   # torch's momentum is 1 - Keras's
    gamma, beta = normal(features), normal(features)
    m.set_params({"n.gamma": gamma, "n.beta": beta})
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    return bn


def test_batchnorm_declares_params_and_buffers():
    m = nnc.compile(BATCHNORM)
    assert list(m.params) == ["n.gamma", "n.beta"]
    np.testing.assert_array_equal(m.params["n.gamma"], 1.0)
    np.testing.assert_array_equal(m.params["n.beta"], 0.0)
    assert list(m.buffers) == ["n.moving_mean", "n.moving_variance"]
    np.testing.assert_array_equal(m.buffers["n.moving_mean"], 0.0)
    np.testing.assert_array_equal(m.buffers["n.moving_variance"], 1.0)


@pytest.mark.parametrize("shape,kw,momentum,eps", [
    ((6, 3), "", 0.99, 1e-3),
    ((2, 3), "", 0.99, 1e-3),
    ((4, 5, 3), "momentum=0.9, epsilon=0.00001", 0.9, 1e-5),   # [B, T, F]: statistics over B and T
    ((1, 4, 3), "", 0.99, 1e-3),                              # batch 1
])
def test_batchnorm_training_step_matches_torch(shape, kw, momentum, eps):
    dims = ", ".join(["B"] + [str(d) for d in shape[1:]])
    src = BATCHNORM.replace("f32[B, 3]", f"f32[{dims}]").replace("batchnorm(x)", f"batchnorm(x{', ' + kw if kw else ''})")
    m = nnc.compile(src)
    bn = _torch_bn(m, 3, momentum, eps)
    x, r = normal(*shape) * 2 + 1, cotangent(shape)
    bn.train()
    tx = torch.tensor(x)
    ref = bn(tx) if len(shape) == 2 else bn(tx.transpose(1, 2)).transpose(1, 2)     # torch wants [N, C, L]

    outs = training_outputs(m, x=x, r=r)
    close(outs["n"], ref, "training output")
    (ref * torch.tensor(r)).sum().backward()
    _, grads = m.loss_and_grads(x=x, r=r)
    close(grads["n.gamma"], bn.weight.grad, "grad of gamma")
    close(grads["n.beta"], bn.bias.grad, "grad of beta")

    m.step(x=x, r=r)
    flat = x.reshape(-1, 3).astype(np.float64)
    n = flat.shape[0]
    close(m.buffers["n.moving_mean"], bn.running_mean, "moving mean")
    # Keras updates with the biased batch variance, torch with the unbiased one
    np.testing.assert_allclose(bn.running_var.numpy(), momentum + (1 - momentum) * flat.var(0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(m.buffers["n.moving_variance"], momentum + (1 - momentum) * flat.var(0), rtol=1e-5)
    np.testing.assert_allclose(m.buffers["n.moving_variance"],
                               momentum + (bn.running_var.numpy() - momentum) * (n - 1) / n, rtol=1e-5)


def test_batchnorm_inference_uses_the_moving_statistics():
    m = nnc.compile(BATCHNORM)
    bn = _torch_bn(m, 3)
    x, r = normal(8, 3) * 3 - 2, cotangent((8, 3))
    for _ in range(3):
        m.step(x=x, r=r)
    params, buffers = m.params, m.buffers
    assert not np.allclose(buffers["n.moving_mean"], 0.0)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(params["n.gamma"]))
        bn.bias.copy_(torch.tensor(params["n.beta"]))
        bn.running_mean.copy_(torch.tensor(buffers["n.moving_mean"]))
        bn.running_var.copy_(torch.tensor(buffers["n.moving_variance"]))
    bn.eval()
    x1 = normal(1, 3)                                          # a batch of one: no batch statistics needed
    close(m.forward(x=x1), bn(torch.tensor(x1)), "inference output")
    want = ((x1 - buffers["n.moving_mean"]) / np.sqrt(buffers["n.moving_variance"] + 1e-3) * params["n.gamma"]
            + params["n.beta"])
    close(m.forward(x=x1), want, "inference formula")


def test_batchnorm_options_and_regularizers():
    src = BATCHNORM.replace("batchnorm(x)", "batchnorm(x, center=false, gamma_regularizer=l2(0.5))")
    m = nnc.compile(src)
    assert list(m.params) == ["n.gamma"]
    gamma = normal(3)
    m.set_params({"n.gamma": gamma})
    x, r = normal(5, 3), cotangent((5, 3))
    tg = torch.tensor(gamma, requires_grad=True)
    ref = F.batch_norm(torch.tensor(x), None, None, tg, None, training=True, eps=1e-3)
    loss_t = (ref * torch.tensor(r)).sum() + 0.5 * (tg ** 2).sum()
    loss_t.backward()
    loss, grads = m.loss_and_grads(x=x, r=r)
    assert loss == pytest.approx(loss_t.item(), rel=1e-5)
    close(grads["n.gamma"], tg.grad, "grad of gamma")
    assert list(nnc.compile(BATCHNORM.replace("batchnorm(x)", "batchnorm(x, scale=false)")).params) == ["n.beta"]


@pytest.mark.parametrize("decl,call,message", [
    ("f32[B]", "batchnorm(x)", "batchnorm: the input must have rank >= 2"),
    ("f32[B, 3]", "batchnorm(x, momentum=1.5)", "momentum must be in [0, 1]"),
    ("i32[B, 3]", "batchnorm(x)", "batchnorm expects a float tensor, got i32"),
    ("f32[B, 3]", "layernorm(x, epsilon=-1.0)", "epsilon must be >= 0"),
    ("f32[B, 3]", "embedding(x, 0, 4)", "vocab and dim must be > 0"),
])
def test_layer_errors_are_positioned(decl, call, message):
    text = compile_error(f"graph G {{\n    input x: {decl}\n    y = {call}\n    output y\n}}\n")
    assert text.startswith("<string>:3:9: error:") and message in text, text


# ---- layernorm --------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 5), (1, 5), (2, 3, 5), (1, 1, 5)])
def test_layernorm_matches_torch(shape):
    dims = ", ".join(["B"] + [str(d) for d in shape[1:]])
    m = nnc.compile(f"""
model L {{
    input  x: f32[{dims}]
    target r: f32[{dims}]
    n = layernorm(x)
    output n
    loss sum(n * r)
    optimizer sgd()
}}""")
    assert list(m.params) == ["n.gamma", "n.beta"]
    ln = torch.nn.LayerNorm(5, eps=1e-3)
    gamma, beta = normal(5), normal(5)
    m.set_params({"n.gamma": gamma, "n.beta": beta})
    with torch.no_grad():
        ln.weight.copy_(torch.tensor(gamma))
        ln.bias.copy_(torch.tensor(beta))
    x, r = normal(*shape) * 3 + 1, cotangent(shape)
    ref = ln(torch.tensor(x))
    close(m.forward(x=x), ref, "forward")
    close(training_outputs(m, x=x, r=r)["n"], ref, "training output (the same)")
    (ref * torch.tensor(r)).sum().backward()
    _, grads = m.loss_and_grads(x=x, r=r)
    close(grads["n.gamma"], ln.weight.grad, "grad of gamma")
    close(grads["n.beta"], ln.bias.grad, "grad of beta")


def test_layernorm_input_gradient_matches_torch():
    m = nnc.compile("""
model L {
    param  p: f32[2, 4]
    target r: f32[2, 4]
    n = layernorm(p, epsilon=0.01, center=false, scale=false)
    output n
    loss sum(n * r)
    optimizer sgd()
}""")
    assert list(m.params) == ["p"]
    p, r = normal(2, 4), cotangent((2, 4))
    m.set_params({"p": p})
    tp = torch.tensor(p, requires_grad=True)
    ref = F.layer_norm(tp, (4,), eps=0.01)
    close(m.forward(), ref, "forward")
    (ref * torch.tensor(r)).sum().backward()
    close(m.loss_and_grads(r=r)[1]["p"], tp.grad, "grad of the input")


# ---- input gradients and finite differences, at the library level (library/helpers.py) -------------

def _bn_params(features):
    return {"layer.gamma": normal(features), "layer.beta": normal(features),
            "layer.moving_mean": np.zeros(features), "layer.moving_variance": np.ones(features)}


@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3), (1, 2, 3)])
def test_batchnorm_training_gradients_wrt_input_and_finite_differences(shape):
    x = normal(*shape) * 2 + 0.5

    def ref(t):
        xt = t["x"] if len(shape) == 2 else t["x"].transpose(1, 2)
        y = F.batch_norm(xt, None, None, t["layer.gamma"], t["layer.beta"], training=True, eps=1e-3)
        return y if len(shape) == 2 else y.transpose(1, 2)
    check(lambda ctx, ids: LAYERS["batchnorm"](ctx, Value(ids["x"])), ref, {"x": x}, _bn_params(3))


@pytest.mark.parametrize("shape", [(4, 6), (1, 1, 6)])
def test_layernorm_gradients_wrt_input_and_finite_differences(shape):
    params = {"layer.gamma": normal(6), "layer.beta": normal(6)}
    check(lambda ctx, ids: LAYERS["layernorm"](ctx, Value(ids["x"]), epsilon=1e-2),
          lambda t: F.layer_norm(t["x"], (6,), t["layer.gamma"], t["layer.beta"], eps=1e-2),
          {"x": normal(*shape)}, params)


def test_embedding_at_the_library_level():
    # the table is f32 whatever the graph's float type (its input is integer), so no float64
    # twin here; gather / scatter_add are checked against finite differences in test_vjp_gather.py
    ids = np.array([[4, 1, 4], [0, 4, 2]], np.int32)
    check(lambda ctx, i: LAYERS["embedding"](ctx, Value(i["ids"]), 5, 3),
          lambda t: F.embedding(t["ids"].long(), t["layer.embeddings"]),
          {"ids": ids}, {"layer.embeddings": normal(5, 3)}, fd=False)


def test_dropout_gradient_and_finite_differences_with_a_fixed_key():
    x = normal(4, 50)

    def build(ctx, ids):
        ctx.state.rng_key = ids["key"]             # the step's key, here an ordinary input
        return LAYERS["dropout"](ctx, Value(ids["x"]), 0.4)
    inputs = {"x": x, "key": np.array(3, np.int32)}
    out, _, _ = ours(build, inputs)
    mask = torch.tensor(out != 0)
    assert 0.4 < mask.float().mean() < 0.8
    check(build, lambda t: t["x"] * mask / 0.6, inputs)


# ---- registry, signatures, the example ------------------------------------------------------------

def test_layer_signatures_are_the_language_contract():
    for name in ("dropout", "add", "subtract", "multiply", "average", "concat", "embedding", "batchnorm",
                 "layernorm"):
        assert name in LAYERS, name
        params = list(inspect.signature(LAYERS[name]).parameters.values())
        assert params[0].name == "ctx"
        for p in params[1:]:
            assert p.annotation not in (inspect.Parameter.empty, None), (name, p.name)
    emb = inspect.signature(LAYERS["embedding"]).parameters
    assert emb["ids"].annotation in ("Indices", Indices)  # integer ids: a literal list becomes i32
    assert emb["embeddings_regularizer"].annotation in ("Regularizer", Regularizer)
    assert emb["embeddings_initializer"].annotation in ("Initializer", Initializer)


def test_residual_example_reaches_095_validation_accuracy(capsys):
    from nncompiler.cli import main
    assert main(["run", "examples/residual.nn", "--quiet"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    metrics = dict(re.findall(r"(\w+)=([-\d.e]+)", line))
    assert float(metrics["val_accuracy"]) >= 0.95, line


def test_tensors_example_runs(capsys):
    from nncompiler.cli import main
    assert main(["run", "examples/tensors.nn"]) == 0
    out = capsys.readouterr().out
    assert "backwards = [5 4 3 2 1 0]" in out and "picked = [[2. 0.]" in out
