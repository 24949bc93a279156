"""Shared checks for the library tests: our stack against torch and finite differences.

`ours(build, inputs)` builds a graph with a Builder and a LayerContext, calls
`build(ctx, ids)` (ids: input name -> node id), differentiates it with `grad`
and runs it on the numpy backend. A non-scalar output `out` is reduced to the
loss sum(out * r) with a fixed random cotangent weight `r` (so the cotangent
reaching the function is not all ones); a scalar output is the loss itself.

`check(build, torch_fn, inputs)` compares the forward value and the gradient of
every float input (and every parameter the build declared) with torch.autograd
on the same float32 values, then — unless fd=False — the float64 twin of the
graph against central differences.

Import as `from library.helpers import ...` (tests/ is on sys.path through
tests/conftest.py), so a `helpers` module elsewhere in tests/ cannot shadow it.
"""
from __future__ import annotations

import numpy as np
import torch

from nncompiler.autodiff import grad
from nncompiler.backends.numpy import compile_graph
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType
from nncompiler.library import LayerContext, Value

RTOL, ATOL = 1e-4, 1e-5            # float32 against torch
FD_RTOL, FD_ATOL = 1e-6, 1e-8      # float64 against central differences
_DTYPES = {np.dtype("float32"): "f32", np.dtype("float64"): "f64", np.dtype("int32"): "i32",
           np.dtype("int64"): "i64", np.dtype("bool"): "bool"}


def is_float(a) -> bool:
    return np.asarray(a).dtype.kind == "f"


def _as(a, float_dtype):
    a = np.asarray(a)
    return a.astype(float_dtype) if a.dtype.kind == "f" else a


def cotangent(shape, seed: int = 1234) -> np.ndarray:
    """Random weights in +-[0.5, 1.5] for reducing a tensor output to a scalar loss."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float64)


class Built:
    """A graph built from `build`, differentiated and compiled; call it with input values."""

    def __init__(self, build, inputs: dict, params: dict, dtype: str = "f32", shapes: dict | None = None):
        self.dtype = dtype
        b = Builder("test")
        ctx = LayerContext(b, "layer", {}, None)
        ids = {}
        for name, a in inputs.items():
            a = np.asarray(a)
            dt = dtype if a.dtype.kind == "f" else _DTYPES[a.dtype]
            shape = (shapes or {}).get(name, a.shape)
            ids[name] = b.argument(name, "input", TensorType(dt, tuple(shape)))
        result = build(ctx, ids)
        out = result.id if isinstance(result, Value) else result
        self.out_shape = tuple(b.shape(out))     # () for a scalar output: it is the loss
        outputs = {"out": out}
        if self.out_shape == ():
            loss = out
        else:   # sum(out * r)
            r = b.argument("r", "input", b.type_of(out))
            loss = b.sum(b.mul(out, r), axes=tuple(range(len(self.out_shape))))
        outputs["loss"] = loss
        self.params = ctx.params
        self.penalties = ctx.penalties
        missing = set(ctx.params) - set(params)
        assert not missing, f"test gives no value for declared parameter(s) {sorted(missing)}"
        self.wrt = [n for n, a in inputs.items() if is_float(a)] + list(ctx.params)
        graph = b.build(outputs)
        self.graph = grad(graph, "loss", self.wrt) if self.wrt else graph
        self.forward = compile_graph(graph)
        self.fn = compile_graph(self.graph)

    def __call__(self, args: dict) -> dict:
        return {k: np.asarray(v) for k, v in self.fn(args).items()}


def ours(build, inputs: dict, params: dict | None = None, dtype: str = "f32", r=None, shapes=None):
    """(forward output, {name: gradient}, r) from our stack; float values cast to `dtype`.
    `r` defaults to `cotangent(output shape)` (static shapes only)."""
    params = params or {}
    fdt = np.float32 if dtype == "f32" else np.float64
    built = Built(build, inputs, params, dtype, shapes)
    args = {k: _as(v, fdt) for k, v in {**inputs, **params}.items()}
    if built.out_shape:
        r = cotangent(built.out_shape) if r is None else r
        args["r"] = _as(r, fdt)
    res = built(args)
    return res["out"], {w: res[f"grad.{w}"] for w in built.wrt}, r


def torch_ref(torch_fn, inputs: dict, params: dict, r=None):
    """torch_fn(tensors: dict) -> tensor; returns (output, {name: gradient}) in float32."""
    ts = {}
    for k, v in {**inputs, **params}.items():
        t = torch.tensor(np.asarray(v).astype(np.float32) if is_float(v) else np.asarray(v))
        if is_float(v):
            t.requires_grad_(True)
        ts[k] = t
    out = torch_fn(ts)
    loss = out if out.dim() == 0 else (out * torch.tensor(np.asarray(r, dtype=np.float32))).sum()
    if loss.requires_grad:
        loss.backward()
    grads = {k: (t.grad.numpy() if t.grad is not None else np.zeros(t.shape, np.float32))
             for k, t in ts.items() if t.requires_grad}
    return out.detach().numpy(), grads


def finite_differences(build, inputs: dict, params: dict, r=None, eps: float = 1e-6, shapes=None):
    """{name: d loss / d name} by central differences on the float64 graph."""
    built = Built(build, inputs, params, "f64", shapes)
    args = {k: _as(v, np.float64) for k, v in {**inputs, **params}.items()}
    if built.out_shape:
        args["r"] = np.asarray(r, dtype=np.float64)
    out = {}
    for name in built.wrt:
        x = args[name].copy()
        g = np.zeros_like(x)
        flat, gflat = x.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            vals = []
            for v in (old + eps, old - eps):
                flat[i] = v
                vals.append(float(built.forward({**args, name: x})["loss"]))
            flat[i] = old
            gflat[i] = (vals[0] - vals[1]) / (2 * eps)
        out[name] = g
    return out


def check(build, torch_fn, inputs: dict, params: dict | None = None, fd: bool = True,
          rtol: float = RTOL, atol: float = ATOL, fd_inputs: dict | None = None, shapes=None):
    """Forward + every gradient vs torch (float32); float64 gradients vs finite differences.

    `fd_inputs` replaces `inputs` for the finite-difference check (to stay away
    from kinks where a central difference is meaningless)."""
    params = params or {}
    out, grads, r = ours(build, inputs, params, "f32", shapes=shapes)
    t_out, t_grads = torch_ref(torch_fn, inputs, params, r)

    assert out.dtype == np.float32, out.dtype
    assert out.shape == t_out.shape, (out.shape, t_out.shape)
    assert np.all(np.isfinite(out)), "non-finite forward value"
    np.testing.assert_allclose(out, t_out, rtol=rtol, atol=atol, err_msg="forward vs torch")
    for name, g in grads.items():
        assert g.shape == np.shape({**inputs, **params}[name]), name
        assert np.all(np.isfinite(g)), f"non-finite gradient for {name}"
        np.testing.assert_allclose(g, t_grads[name], rtol=rtol, atol=atol, err_msg=f"grad.{name} vs torch")

    if fd:
        fin = fd_inputs if fd_inputs is not None else inputs
        _, g64, _ = ours(build, fin, params, "f64", r=r, shapes=shapes)
        num = finite_differences(build, fin, params, r, shapes=shapes)
        for name, g in g64.items():
            assert g.dtype == np.float64
            np.testing.assert_allclose(g, num[name], rtol=FD_RTOL, atol=FD_ATOL,
                                       err_msg=f"f64 grad.{name} vs finite differences")
    return out, grads
