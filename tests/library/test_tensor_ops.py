"""The tensor toolkit of the language (library/tensor_*.py and frontend/indexing.py), built
through the language (`nnc.compile(source)`) and compared with the same computation in torch.

Differentiable cases declare their operands as parameters, so one compiled model gives the
forward value (`m.forward()`) and the gradient of every operand (`m.loss_and_grads(r=...)`
of the loss sum(out * r), r a fixed random cotangent weight); torch runs the same expression
on the same float32 values. Integer/bool results are compared forward only (graph blocks).
Shapes are deliberately odd: batch 1, size-1 axes, negative axes.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import nncompiler as nnc
from nncompiler.errors import CompileError

RTOL, ATOL = 1e-4, 1e-5
rng = np.random.default_rng(2024)


def normal(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def pos(*shape):
    return rng.uniform(0.5, 2.0, shape).astype(np.float32)


def away0(*shape):
    return (rng.uniform(0.3, 2.0, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32)


def cotangent(shape, seed=1234):
    g = np.random.default_rng(seed)
    return (g.uniform(0.5, 1.5, shape) * g.choice([-1.0, 1.0], shape)).astype(np.float32)


_NN_DTYPE = {np.dtype("float32"): "f32", np.dtype("int32"): "i32", np.dtype("int64"): "i64",
             np.dtype("bool"): "bool", np.dtype("float64"): "f64"}


def _decl(kind, name, value):
    value = np.asarray(value)
    return f"    {kind} {name}: {_NN_DTYPE[value.dtype]}[{', '.join(map(str, value.shape))}]"


def language_check(expr: str, params: dict, torch_fn, data: dict | None = None,
                   rtol=RTOL, atol=ATOL):
    """`out = expr` with `params` as trainable operands and `data` as inputs: forward and every
    operand's gradient against torch."""
    data = data or {}
    ts = {k: torch.tensor(np.asarray(v, np.float32), requires_grad=True) for k, v in params.items()}
    ts.update({k: torch.tensor(np.asarray(v)) for k, v in data.items()})
    t_out = torch_fn(ts)
    r = cotangent(tuple(t_out.shape))
    src = "\n".join(["model T {"] + [_decl("param", k, np.asarray(v, np.float32)) for k, v in params.items()]
                    + [_decl("input", k, v) for k, v in data.items()]
                    + [_decl("target", "r", r), f"    out = {expr}", "    output out",
                       "    loss sum(out * r)", "    optimizer sgd()", "}"])
    m = nnc.compile(src)
    m.set_params(params)
    out = m.forward(**data)
    assert out.dtype == np.float32, out.dtype
    assert out.shape == tuple(t_out.shape), (out.shape, tuple(t_out.shape))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward vs torch")
    loss, grads = m.loss_and_grads(**data, r=r)
    (t_out * torch.tensor(r)).sum().backward()
    for name in params:
        want = ts[name].grad
        want = np.zeros(np.shape(params[name]), np.float32) if want is None else want.numpy()
        assert grads[name].shape == want.shape, name
        np.testing.assert_allclose(grads[name], want, rtol=rtol, atol=atol, err_msg=f"grad of {name} vs torch")
    return out, grads


def evaluate(src_body: str, **data):
    """Run a graph block (`output` lines in src_body) on `data`; a tuple of outputs."""
    decls = [_decl("input", k, v) for k, v in data.items()]
    m = nnc.compile("graph G {\n" + "\n".join(decls) + "\n" + src_body + "\n}\n")
    out = m.forward(**data)
    return out if isinstance(out, tuple) else (out,)


def compile_error(src: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        nnc.compile(src)
    return info.value


# ---- differentiable ops against torch ----------------------------------------------------------

X = normal(2, 1, 3)
P = pos(2, 1, 3)
A = normal(1, 4)
B4 = normal(3, 1)
Q = normal(4)
M = normal(2, 3)
N = normal(3, 5)
IDS = np.array([[2, 0], [2, -1]], np.int32)     # repeated and negative indices

CASES = [
    # reductions (axis=, keepdims=, negative axes, size-1 axes)
    ("sum-all", "sum(x)", {"x": X}, lambda t: t["x"].sum()),
    ("sum-neg-axis", "sum(x, axis=-1)", {"x": X}, lambda t: t["x"].sum(-1)),
    ("sum-axes-keepdims", "sum(x, axis=[0, 2], keepdims=true)", {"x": X}, lambda t: t["x"].sum((0, 2), keepdim=True)),
    ("sum-size1-axis", "sum(x, axis=1)", {"x": X}, lambda t: t["x"].sum(1)),
    ("mean-all", "mean(x)", {"x": X}, lambda t: t["x"].mean()),
    ("mean-axis0-keepdims", "mean(x, axis=0, keepdims=true)", {"x": X}, lambda t: t["x"].mean(0, keepdim=True)),
    ("var-neg-axis", "var(x, axis=-1)", {"x": X}, lambda t: t["x"].var(-1, correction=0)),
    ("var-all", "var(x)", {"x": X}, lambda t: t["x"].var(correction=0)),
    ("std-axes", "std(x, axis=[0, -1], keepdims=true)", {"x": X},
     lambda t: t["x"].std((0, 2), correction=0, keepdim=True)),
    ("max-axis", "max(x, axis=-1)", {"x": X}, lambda t: t["x"].amax(-1)),
    ("max-all", "max(x)", {"x": X}, lambda t: t["x"].amax()),
    ("min-axis-keepdims", "min(x, axis=0, keepdims=true)", {"x": X}, lambda t: t["x"].amin(0, keepdim=True)),
    ("logsumexp-axis", "logsumexp(x, axis=-1)", {"x": X}, lambda t: torch.logsumexp(t["x"], -1)),
    ("logsumexp-keepdims", "logsumexp(x, axis=[0, 1], keepdims=true)", {"x": X},
     lambda t: torch.logsumexp(t["x"], (0, 1), keepdim=True)),
    ("logsumexp-large", "logsumexp(x * 1000.0, axis=-1)", {"x": X},
     lambda t: torch.logsumexp(t["x"] * 1000.0, -1)),
    # elementwise
    ("exp", "exp(x)", {"x": X}, lambda t: torch.exp(t["x"])),
    ("log", "log(p)", {"p": P}, lambda t: torch.log(t["p"])),
    ("log1p", "log1p(p)", {"p": P}, lambda t: torch.log1p(t["p"])),
    ("sqrt", "sqrt(p)", {"p": P}, lambda t: torch.sqrt(t["p"])),
    ("abs", "abs(v)", {"v": away0(3, 1)}, lambda t: torch.abs(t["v"])),
    ("sign-times", "sign(v) * v", {"v": away0(1, 3)}, lambda t: torch.sign(t["v"]) * t["v"]),
    ("square", "square(x)", {"x": X}, lambda t: torch.square(t["x"])),
    ("pow-bcast", "pow(p, e)", {"p": P, "e": normal(3)}, lambda t: torch.pow(t["p"], t["e"])),
    ("pow-literal", "pow(p, 3)", {"p": P}, lambda t: torch.pow(t["p"], 3.0)),
    ("maximum-bcast", "maximum(a, w)", {"a": A, "w": B4}, lambda t: torch.maximum(t["a"], t["w"])),
    ("minimum-literal", "minimum(a, 0.25)", {"a": A}, lambda t: torch.clamp(t["a"], max=0.25)),
    ("clip", "clip(x, -0.5, 0.5)", {"x": X}, lambda t: torch.clamp(t["x"], -0.5, 0.5)),
    ("where-compare", "where(a > w, a, w * 2.0)", {"a": A, "w": B4},
     lambda t: torch.where(t["a"] > t["w"], t["a"], t["w"] * 2.0)),
    ("where-fn-compare", "where(greater_equal(a, 0.0), a, zeros_like(a))", {"a": A},
     lambda t: torch.where(t["a"] >= 0, t["a"], torch.zeros_like(t["a"]))),
    ("stop_gradient", "stop_gradient(a) * a", {"a": A}, lambda t: t["a"].detach() * t["a"]),
    ("cast-f64-roundtrip", "cast(cast(a, f64) * 2.0, f32)", {"a": A}, lambda t: (t["a"].double() * 2).float()),
    ("matmul-fn", "matmul(m, n)", {"m": M, "n": N}, lambda t: t["m"] @ t["n"]),
    ("matmul-vector", "matmul(q, transpose(a))", {"q": Q, "a": A}, lambda t: t["q"] @ t["a"].T),
    # shapes
    ("reshape-infer", "reshape(x, [3, -1])", {"x": X}, lambda t: t["x"].reshape(3, -1)),
    ("transpose-default", "transpose(x)", {"x": X}, lambda t: t["x"].permute(2, 1, 0)),
    ("transpose-perm", "transpose(x, [2, 0, 1])", {"x": X}, lambda t: t["x"].permute(2, 0, 1)),
    ("transpose-neg-perm", "transpose(x, [-1, 0, -2])", {"x": X}, lambda t: t["x"].permute(2, 0, 1)),
    ("permute", "permute(x, [1, 2, 0])", {"x": X}, lambda t: t["x"].permute(1, 2, 0)),
    ("squeeze-axis", "squeeze(x, axis=1)", {"x": X}, lambda t: t["x"].squeeze(1)),
    ("squeeze-all", "squeeze(w)", {"w": B4}, lambda t: t["w"].squeeze()),
    ("expand_dims-neg", "expand_dims(x, -1)", {"x": X}, lambda t: t["x"].unsqueeze(-1)),
    ("expand_dims-0", "expand_dims(q, 0)", {"q": Q}, lambda t: t["q"].unsqueeze(0)),
    ("broadcast_to", "broadcast_to(w, [2, 3, 4])", {"w": B4}, lambda t: t["w"].broadcast_to(2, 3, 4)),
    ("concat-default-last", "concat(m, m2)", {"m": M, "m2": normal(2, 1)}, lambda t: torch.cat([t["m"], t["m2"]], -1)),
    ("concat-axis0-three", "concat(m, m2, m3, axis=0)", {"m": M, "m2": normal(1, 3), "m3": normal(2, 3)},
     lambda t: torch.cat([t["m"], t["m2"], t["m3"]], 0)),
    ("concat-list", "concat([m, m2], axis=0)", {"m": M, "m2": normal(2, 3)},
     lambda t: torch.cat([t["m"], t["m2"]], 0)),
    ("concat-list-neg-axis", "concat([x, x2], axis=-1)", {"x": X, "x2": normal(2, 1, 3)},
     lambda t: torch.cat([t["x"], t["x2"]], -1)),
    ("concat-one-sequence", "concat(x, axis=1)", {"x": X}, lambda t: torch.cat(list(t["x"]), 1)),
    ("stack-two-neg-axis", "stack(m, m2, axis=-1)", {"m": M, "m2": normal(2, 3)},
     lambda t: torch.stack([t["m"], t["m2"]], -1)),
    ("stack-list-axis1", "stack([m, m2], axis=1)", {"m": M, "m2": normal(2, 3)},
     lambda t: torch.stack([t["m"], t["m2"]], 1)),
    ("stack-four", "stack(q, q2, q, q2)", {"q": Q, "q2": normal(4)},
     lambda t: torch.stack([t["q"], t["q2"], t["q"], t["q2"]], 0)),
    ("flip-two-axes", "flip(x, axis=[0, -1])", {"x": X}, lambda t: torch.flip(t["x"], (0, 2))),
    ("flip-all", "flip(m)", {"m": M}, lambda t: torch.flip(t["m"], (0, 1))),
    ("take-repeated-negative", "take(m, ids, axis=1)", {"m": M}, lambda t: t["m"][:, torch.tensor([[2, 0], [2, 2]])],
     {"ids": IDS}),
    ("take-axis0-scalar-index", "take(m, k)", {"m": M}, lambda t: t["m"][1], {"k": np.array(1, np.int32)}),
    # indexing
    ("index-int", "x[1]", {"x": X}, lambda t: t["x"][1]),
    ("index-negative", "x[-1, 0]", {"x": X}, lambda t: t["x"][-1, 0]),
    ("index-slice-step", "n[:, 1::2]", {"n": N}, lambda t: t["n"][:, 1::2]),
    ("index-ellipsis", "x[..., -1]", {"x": X}, lambda t: t["x"][..., -1]),
    ("index-reverse", "n[::-1]", {"n": N}, lambda t: torch.flip(t["n"], (0,))),
    ("index-reverse-step", "n[:, 4:0:-2]", {"n": N}, lambda t: t["n"][:, [4, 2]]),
    ("index-reverse-ellipsis", "x[..., ::-2]", {"x": X}, lambda t: t["x"][..., [2, 0]]),
    ("index-mixed", "n[-1, ::-1]", {"n": N}, lambda t: torch.flip(t["n"][-1], (0,))),
    ("index-list", "n[[0, 2, 2, -1]]", {"n": N}, lambda t: t["n"][[0, 2, 2, 2]]),
    ("index-list-2d", "n[:, [[1, 1], [0, 4]]]", {"n": N}, lambda t: t["n"][:, torch.tensor([[1, 1], [0, 4]])]),
    ("index-tensor", "n[ids]", {"n": N}, lambda t: t["n"][torch.tensor([[2, 0], [2, 2]])], {"ids": IDS}),
    ("index-tensor-then-int", "x[ids, 0]", {"x": X}, lambda t: t["x"][t["ids"].long() % 2, 0],
     {"ids": np.array([1, 0, 1], np.int32)}),
    ("index-separated-advanced", "x[0, :, ids]", {"x": X}, lambda t: t["x"][0, :, t["ids"].long()].T,  # numpy order
     {"ids": np.array([2, 0], np.int32)}),
    ("index-adjacent-advanced", "x[:, 0, ids]", {"x": X}, lambda t: t["x"][:, 0, t["ids"].long()],
     {"ids": np.array([2, 2, 1], np.int32)}),
    ("index-chained", "n[1:][ids]", {"n": N}, lambda t: t["n"][1:][[1, 0]], {"ids": np.array([1, -2], np.int32)}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_matches_torch(case):
    _, expr, params, torch_fn, *rest = case
    language_check(expr, params, torch_fn, rest[0] if rest else None)


def test_symbolic_batch_and_batch_of_one():
    src = """
model T {
    input  x: f32[B, 3]
    target y: f32[B]
    param  w: f32[3] = [0.5, -1.0, 2.0]
    h = x * w
    out = sum(h, axis=-1) + mean(h, axis=1) - max(h, axis=1) + std(h, axis=-1)
    output out
    loss mean((out - y) ** 2)
    optimizer sgd()
}"""
    m = nnc.compile(src)
    for n in (1, 4):
        x = normal(n, 3)
        y = normal(n)
        w = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
        h = torch.tensor(x) * w
        out = h.sum(-1) + h.mean(1) - h.amax(1) + h.std(-1, correction=0)
        np.testing.assert_allclose(m.forward(x=x), out.detach().numpy(), rtol=RTOL, atol=ATOL)
        ((out - torch.tensor(y)) ** 2).mean().backward()
        _, grads = m.loss_and_grads(x=x, y=y)
        np.testing.assert_allclose(grads["w"], w.grad.numpy(), rtol=RTOL, atol=ATOL)


# ---- integer and bool results (forward only) ------------------------------------------------

def test_argmax_argmin_keepdims_and_ties():
    x = np.array([[[1.0, 3.0, 3.0]], [[-2.0, -2.0, 0.0]]], np.float32)      # [2, 1, 3], ties
    outs = evaluate("    output argmax(x), argmin(x, axis=-1), argmax(x, axis=0, keepdims=true), "
                    "argmin(x, axis=1, keepdims=true)", x=x)
    want = [x.argmax(-1), x.argmin(-1), x.argmax(0)[None], x.argmin(1)[:, None]]
    for o, w in zip(outs, want):
        assert o.dtype == np.int32
        np.testing.assert_array_equal(o, w)


def test_comparisons_and_logic():
    a = np.array([[1.0, -2.0, 0.0]], np.float32)
    b = np.array([0.0, -2.0, 3.0], np.float32)
    with np.errstate(all="ignore"):   # a / b divides by zero on purpose (isnan)
        outs = evaluate("    output equal(a, b), not_equal(a, b), less(a, b), less_equal(a, b), greater(a, b), "
                        "greater_equal(a, b), logical_and(a > 0.0, b == 0.0), logical_or(a, b), "
                        "logical_not(a), any(a > 0.0), all(a > -3.0, axis=0), any(a, axis=-1, keepdims=true), "
                        "isnan(a / b)", a=a, b=b)
    with np.errstate(all="ignore"):
        want = [a == b, a != b, a < b, a <= b, a > b, a >= b, (a > 0) & (b == 0), (a != 0) | (b != 0), a == 0,
                np.any(a > 0), np.all(a > -3, axis=0), np.any(a != 0, axis=-1, keepdims=True), np.isnan(a / b)]
    for o, w in zip(outs, want):
        assert o.dtype == np.bool_
        np.testing.assert_array_equal(o, w)


def test_sum_of_bools_counts_and_casts():
    x = np.array([[0.5, -1.5, 2.7], [-0.2, 0.0, 3.9]], np.float32)
    cnt, ints, mean_int, as_bool = evaluate(
        "    output sum(x > 0.0), cast(x, i32), mean(cast(x, i32), axis=0), cast(x, bool)", x=x)
    assert cnt.dtype == np.int32 and cnt == 3
    np.testing.assert_array_equal(ints, x.astype(np.int32))              # truncates toward zero
    assert mean_int.dtype == np.float32
    np.testing.assert_allclose(mean_int, x.astype(np.int32).mean(0))
    np.testing.assert_array_equal(as_bool, x != 0)


def test_one_hot_and_take_of_integers():
    ids = np.array([[0, 2], [3, 1]], np.int32)
    hot, taken = evaluate("    output one_hot(ids, 3), take(range(10, 14), ids)", ids=ids)
    np.testing.assert_array_equal(hot, np.eye(3, dtype=np.float32)[[[0, 2], [0, 1]]] * (ids < 3)[..., None])
    np.testing.assert_array_equal(taken, np.arange(10, 14)[ids])


def test_take_clamps_out_of_range_indices():
    x = np.arange(4, dtype=np.float32)
    (out,) = evaluate("    output take(x, ids)", x=x, ids=np.array([7, 3, -5], np.int32))
    np.testing.assert_array_equal(out, [3.0, 3.0, 0.0])       # -5 + 4 = -1: clamped to 0


# ---- creating tensors ------------------------------------------------------------------------

def test_creation_functions_match_numpy():
    outs = evaluate("""
    output zeros([2, 1]), ones([3], dtype=i32), fill([1, 2], 2.5), zeros_like(x), ones_like(x)
    output range(5), range(2, 9, 3), range(5, -4, -2), range(4, dtype=f32), linspace(0.0, 1.0, 7)
    output linspace(-1.0, 1.0, 1), eye(3), eye(2, 4, k=1), eye(3, k=-1, dtype=i32)""",
                    x=np.zeros((2, 3), np.float32))
    want = [np.zeros((2, 1), np.float32), np.ones(3, np.int32), np.full((1, 2), 2.5, np.float32),
            np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32),
            np.arange(5), np.arange(2, 9, 3), np.arange(5, -4, -2), np.arange(4, dtype=np.float32),
            np.linspace(0, 1, 7, dtype=np.float32), np.linspace(-1, 1, 1, dtype=np.float32),
            np.eye(3, dtype=np.float32), np.eye(2, 4, k=1, dtype=np.float32), np.eye(3, k=-1, dtype=np.int32)]
    for o, w in zip(outs, want):
        assert o.dtype == w.dtype or (w.dtype == np.int64 and o.dtype == np.int32), (o.dtype, w.dtype)
        np.testing.assert_array_equal(o, w)


def test_random_functions_are_seeded_and_have_the_right_statistics():
    outs = evaluate("""
    output normal([200, 50], seed=1), normal([200, 50], seed=1), normal([200, 50], seed=2)
    output normal([10000], mean=3.0, stddev=0.5, seed=4), uniform([10000], low=-2.0, high=1.0, seed=5)
    output uniform([3], seed=6), glorot_uniform([30, 70], seed=7), he_normal([400, 50], seed=8)
    output truncated_normal([5000], stddev=2.0, seed=9), normal([2, 2], dtype=f64, seed=1)""")
    a, a2, b, n, u, u01, g, h, tn, f64 = outs
    np.testing.assert_array_equal(a, a2)                       # same seed, same numbers
    assert not np.allclose(a, b)
    assert abs(a.mean()) < 0.05 and abs(a.std() - 1.0) < 0.05   # defaults N(0, 1), as np.random.normal
    assert abs(n.mean() - 3.0) < 0.03 and abs(n.std() - 0.5) < 0.03
    assert u.min() >= -2.0 and u.max() < 1.0 and abs(u.mean() + 0.5) < 0.05
    assert np.all((0 <= u01) & (u01 < 1))
    limit = np.sqrt(6 / (30 + 70))
    assert np.abs(g).max() <= limit and np.abs(g).max() > 0.9 * limit
    assert abs(h.std() - np.sqrt(2 / 400)) < 0.01 * np.sqrt(2 / 400) * 10
    assert np.abs(tn).max() <= 4.0 + 1e-6
    assert f64.dtype == np.float64
    assert all(o.dtype == np.float32 for o in outs[:-1])


def test_unseeded_random_calls_differ_by_position_and_follow_the_model_seed():
    src = "graph G {\n    a = normal([4])\n    b = normal([4])\n    output a, b\n}\n"
    a, b = nnc.compile(src).forward()
    a2, b2 = nnc.compile(src).forward()
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(b, b2)


def test_initializer_names_still_initialise_params():
    """`normal(...)` as a param's initial value is the initializer (Keras's stddev 0.05 default,
    here 0.1); in a binding it is the tensor function (stddev 1 by default)."""
    src = """
model T {
    input x: f32[B, 3]
    param w: f32[3, 300] = normal(stddev=0.1)
    param v: f32[3, 300] = glorot_uniform()
    z = normal([3, 300], seed=1)
    out = x @ (w + v + 0.0 * z)
    output out, z
    loss mean(out)
    optimizer sgd()
}"""
    m = nnc.compile(src)
    assert list(m.params) == ["w", "v"]
    assert abs(m.params["w"].std() - 0.1) < 0.01
    assert np.abs(m.params["v"]).max() <= np.sqrt(6 / 303)
    _, z = m.forward(x=np.ones((1, 3), np.float32))
    assert abs(z.std() - 1.0) < 0.05


# ---- errors point at the source ---------------------------------------------------------------

@pytest.mark.parametrize("body,where,message", [
    ("    y = reshape(x, [4, 4])", (3, 9), "reshape: cannot reshape"),
    ("    y = concat(x, transpose(x), axis=0)", (3, 9), "concat: .*differ off axis"),
    ("    y = stack(x, x[0])", (3, 9), "stack: stack needs tensors of one shape"),
    ("    y = squeeze(x, axis=0)", (3, 9), "cannot squeeze axis 0 of size 2"),
    ("    y = transpose(x, [0])", (3, 9), "needs 2 axes"),
    ("    y = sum(x, axis=2)", (3, 9), "axis 2 is out of range"),
    ("    y = x[::0]", (3, 13), "step must not be zero"),
    ("    y = x[x > 0.0]", (3, 11), "boolean masks are not supported"),
    ("    y = x[[0, 5]]", (3, 11), "index 5 is out of range for axis 0 of size 2"),
    ("    y = x[cast(x, i32), cast(x, i32)]", (3, 25), "only one tensor"),
    ("    y = x[x]", (3, 11), "must be i32 or i64"),
    ("    y = range(3, 3)", (3, 9), "is empty"),
    ("    y = take(x, x)", (3, 9), "indices must be integers"),
    ("    y = normal([2], stddev=-1.0)", (3, 9), "stddev must be >= 0"),
    ("    y = glorot_uniform([B, 2])", (3, 9), "needs a static shape"),
])
def test_shape_errors_point_at_the_call(body, where, message):
    err = compile_error(f"graph G {{\n    input x: f32[2, 3]\n{body}\n    output y\n}}\n")
    text = err.render()
    assert text.startswith(f"<string>:{where[0]}:{where[1]}: error:"), text
    assert re.search(message, text), text


def test_where_with_a_literal_branch():
    x = np.array([-1.0, 2.0], np.float32)
    (out,) = evaluate("    output where(x > 0.0, x, 0.0)", x=x)
    np.testing.assert_array_equal(out, [0.0, 2.0])
