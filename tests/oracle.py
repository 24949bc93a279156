"""Test oracle: run small graphs through our stack and compare with torch and finite differences.

The pieces, used by tests/autodiff and tests/backends:

* `op_graph(op, in_types, attrs)` builds a one-primitive graph
  `out = op(x0, x1, ...)`, `loss = sum(out * r)` where `r` is an extra argument
  (a fixed random cotangent weight, so the cotangent reaching `op` is not all ones).
* `ours(op, inputs, attrs, r)` differentiates that graph with `grad` and runs it
  on the numpy backend: forward output and one gradient per float input.
* `torch_ref(op, inputs, attrs, r)` does the same computation with torch.autograd.
* `finite_differences(op, inputs, attrs, r)` computes the gradient of the loss by
  central differences in float64 (the graph is rebuilt with f64 arguments).
* `check_op(...)` does all three comparisons.
* `adjoint_check(graph, out, wrt, args)` checks <J.u, v> = <u, J^T.v> for any graph,
  with J.u from central differences of the forward graph and J^T.v from `grad`.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from nncompiler.autodiff import grad
from nncompiler.backends.numpy import compile_graph
from nncompiler.ir import PRIMITIVES, Builder, Graph
from nncompiler.ir.shapes import NUMPY_DTYPE, TensorType

FLOAT = ("f32", "f64")
_IR_DTYPE = {np.dtype(v): k for k, v in NUMPY_DTYPE.items()}


def ir_dtype(a) -> str:
    return _IR_DTYPE[np.asarray(a).dtype]


def np_dtype(dt: str) -> np.dtype:
    return np.dtype(NUMPY_DTYPE[dt])


def type_of(a) -> TensorType:
    a = np.asarray(a)
    return TensorType(ir_dtype(a), a.shape)


def is_float(a) -> bool:
    return ir_dtype(a) in FLOAT


def to_f64(a):
    a = np.asarray(a)
    return a.astype(np.float64) if is_float(a) else a


def attrs_f64(attrs: dict) -> dict:
    """The same attributes for the float64 twin of a graph (a cast to a float type casts to f64)."""
    out = dict(attrs)
    if out.get("dtype") in FLOAT:
        out["dtype"] = "f64"
    return out


# ---- input generation --------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """How to draw one operand: a shape, a dtype and a value distribution."""

    shape: tuple
    kind: str = "normal"
    dtype: str = "f32"

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        s = self.shape
        k = self.kind
        if k == "normal":
            v = rng.standard_normal(s)
        elif k == "pos":            # positive, away from 0 (log, sqrt, pow base, divisors)
            v = rng.uniform(0.5, 2.0, s)
        elif k == "gt-1":           # log1p's domain, away from -1
            v = rng.uniform(-0.6, 2.0, s)
        elif k == "away0":          # |x| >= 0.3 with both signs (abs, sign, divisors)
            v = rng.uniform(0.3, 2.0, s) * rng.choice([-1.0, 1.0], s)
        elif k == "large":          # saturating sigmoid / tanh
            v = rng.uniform(12.0, 40.0, s) * rng.choice([-1.0, 1.0], s)
        elif k == "ties":           # small integers: many exact ties
            v = rng.integers(-1, 2, s).astype(np.float64)
        elif k == "const":          # all equal: a tie everywhere
            v = np.full(s, 0.75)
        elif k == "bool":
            v = rng.random(s) < 0.5
        elif k == "int":
            v = rng.integers(-5, 6, s)
        else:
            raise ValueError(k)
        return np.asarray(v).astype(np_dtype(self.dtype))


def S(*shape, kind="normal", dtype=None) -> Spec:
    return Spec(tuple(shape), kind, dtype or {"bool": "bool", "int": "i32"}.get(kind, "f32"))


# ---- our stack -----------------------------------------------------------------------

def op_graph(op: str, in_types, attrs: dict, name: str = "op", weight: bool = True) -> Graph:
    """`out = op(x0, x1, ...)` and, with `weight`, `loss = sum(out * r)` over all axes."""
    b = Builder(name)
    ids = [b.argument(f"x{i}", "input", t) for i, t in enumerate(in_types)]
    out = b.emit(op, tuple(ids), **attrs)
    outputs = {"out": out}
    if weight:
        ot = b.type_of(out)
        r = b.argument("r", "input", ot)
        outputs["loss"] = b.sum(b.mul(out, r), axes=tuple(range(ot.rank)), keepdims=False)
    return b.build(outputs)


def _args(inputs, r=None) -> dict:
    args = {f"x{i}": np.asarray(a) for i, a in enumerate(inputs)}
    if r is not None:
        args["r"] = np.asarray(r)
    return args


def ours(op: str, inputs, attrs: dict, r) -> tuple[np.ndarray, list]:
    """(forward output, [gradient or None per input]) from `grad` + the numpy backend."""
    g = op_graph(op, [type_of(a) for a in inputs], attrs)
    wrt = [f"x{i}" for i, a in enumerate(inputs) if is_float(a)]
    gg = grad(g, "loss", wrt)
    res = compile_graph(gg)(_args(inputs, r))
    grads = [np.asarray(res[f"grad.x{i}"]) if is_float(a) else None for i, a in enumerate(inputs)]
    return np.asarray(res["out"]), grads


def run_graph(g: Graph, args: dict) -> dict:
    return {k: np.asarray(v) for k, v in compile_graph(g)(args).items()}


def every_primitive_graph() -> Graph:
    """One node of every primitive, every node an output named after its op (f32 floats,
    an i32 sum, a bool condition). Used by the text round trip and the codegen dtype tests;
    `missing_primitives` says what a new primitive still needs here."""
    b = Builder("every")
    x = b.argument("x", "input", TensorType("f32", (2, 3)))
    y = b.argument("y", "input", TensorType("f32", (2, 3)))
    p = b.argument("p", "input", TensorType("f32", (2, 3)))          # positive
    c = b.argument("c", "input", TensorType("bool", (2, 3)))
    i = b.argument("i", "input", TensorType("i32", (2, 3)))
    m = b.argument("m", "input", TensorType("f32", (3, 4)))
    key = b.argument("rng.key", "rng", TensorType("i32", ()))
    im = b.argument("im", "input", TensorType("f32", (2, 5, 4, 2)))      # NHWC
    k = b.argument("k", "input", TensorType("f32", (2, 3, 1, 4)))        # [kh, kw, C/groups, F]
    outs = {}
    for op in ("neg", "exp", "tanh", "sigmoid", "abs", "sign", "stop_gradient"):
        outs[op] = b.emit(op, (x,))
    for op in ("log", "log1p", "sqrt"):
        outs[op] = b.emit(op, (p,))
    for op in ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "lt", "le", "gt", "ge", "eq", "ne"):
        outs[op] = b.emit(op, (p, y))
    outs["where"] = b.where(c, x, y)
    outs["cast"] = b.cast(x, dtype="f64")
    outs["sum"] = b.sum(i, axes=(1,), keepdims=True)
    outs["max"] = b.max(x, axes=(0, 1))
    outs["argmax"] = b.argmax(x, axis=1, keepdims=False)
    outs["size"] = b.size(x, axes=(0,), dtype="f32")
    outs["matmul"] = b.matmul(x, m)
    outs["reshape"] = b.reshape(x, shape=(3, 2))
    outs["transpose"] = b.transpose(x, perm=(1, 0))
    outs["broadcast_to"] = b.broadcast_to(x, shape=(4, 2, 3))
    outs["slice"] = b.slice(x, start=(0, 1), stop=(2, None), step=(1, 2))
    outs["pad"] = b.pad(x, lo=(1, 0), hi=(0, 2), interior=(1, 1))
    outs["concat"] = b.concat(x, y, p, axis=0)
    outs["gather"] = b.gather(m, i, axis=0)
    outs["scatter_add"] = b.scatter_add(x, i, axis=0, shape=(4,))
    labels = b.reshape(b.slice(i, start=(0, 0), stop=(None, 1), step=(1, 1)), shape=(2,))  # some out of range
    outs["sparse_xent"] = b.sparse_xent(x, labels)
    outs["sparse_xent_grad"] = b.sparse_xent_grad(x, labels)
    outs["conv"] = b.conv(im, k, stride=(2, 1), padding=((1, 0), (1, 1)), dilation=(1, 2), groups=2)
    outs["reduce_window"] = b.reduce_window(im, kind="max", window=(2, 2), stride=(2, 1), padding=((0, 1), (1, 0)))
    outs["select_scatter"] = b.select_scatter(im, outs["reduce_window"], window=(2, 2), stride=(2, 1),
                                              padding=((0, 1), (1, 0)))
    outs["const"] = b.constant(((1.0, -2.5), (3.0, 4.0)), "f32", (2, 2))
    outs["iota"] = b.iota(axis=1, dtype="i32", shape=(2, 5))
    outs["random_uniform"] = b.random_uniform(low=-1.0, high=1.0, seed=7, dtype="f32", shape=(3,))
    outs["random_normal"] = b.random_normal(mean=0.0, stddev=0.5, seed=8, dtype="f64", shape=(2, 2))
    # a cumulative product along axis 1, carrying the running product (a scan and its results)
    step = Builder("cumprod")
    acc = step.argument("acc", "carry", TensorType("f32", (2,)))
    col = step.argument("col", "input", TensorType("f32", (2,)))
    prod = step.mul(acc, col)
    final, running = b.loop(step.build({"acc": prod, "running": prod}),
                            [b.broadcast_to(b.scalar(1.0), shape=(2,))], [p], axis=1)
    outs["scan"], outs["scan_out"] = final, running
    if "rng_uniform" in PRIMITIVES:
        outs["rng_uniform"] = b.rng_uniform(key, seed=9, dtype="f32", shape=(2, 2))
    return b.build(outs)


def every_primitive_args(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return {"x": f(2, 3), "y": f(2, 3), "p": rng.uniform(0.5, 2, (2, 3)).astype(np.float32),
            "c": rng.random((2, 3)) < 0.5, "i": rng.integers(-5, 5, (2, 3)).astype(np.int32),
            "m": f(3, 4), "rng.key": np.int32(3), "im": f(2, 5, 4, 2), "k": f(2, 3, 1, 4)}


def missing_primitives(g: Graph) -> set[str]:
    return set(PRIMITIVES) - {"arg"} - {n.op for n in g.nodes}


# ---- torch ----------------------------------------------------------------------------

_TORCH_DTYPE = {"f32": torch.float32, "f64": torch.float64, "i32": torch.int32, "i64": torch.int64,
                "bool": torch.bool}


def _dims(axes, rank):
    if axes is None:
        return tuple(range(rank))
    if isinstance(axes, int):
        axes = (axes,)
    return tuple(a % rank for a in axes) if rank else ()


def _t_sum(x, axes, keepdims=False):
    dims = _dims(axes, x.dim())
    return torch.sum(x, dim=dims, keepdim=keepdims) if dims else x   # torch: dim=() means all axes


def _t_amax(x, axes, keepdims=False):
    dims = _dims(axes, x.dim())
    return torch.amax(x, dim=dims, keepdim=keepdims) if dims else x


def _t_slice(x, start, stop, step):
    return x[tuple(slice(a, b, s) for a, b, s in zip(start, stop, step))]


def _t_pad(x, lo, hi, interior):
    shape = [l + h + n + max(n - 1, 0) * k for n, l, h, k in zip(x.shape, lo, hi, interior)]
    out = x.new_zeros(shape)
    out[tuple(slice(l, l + n + max(n - 1, 0) * k, k + 1) for n, l, k in zip(x.shape, lo, interior))] = x
    return out


TORCH_OPS = {
    "neg": lambda t, a: -t[0],
    "exp": lambda t, a: torch.exp(t[0]),
    "log": lambda t, a: torch.log(t[0]),
    "log1p": lambda t, a: torch.log1p(t[0]),
    "sqrt": lambda t, a: torch.sqrt(t[0]),
    "tanh": lambda t, a: torch.tanh(t[0]),
    "sigmoid": lambda t, a: torch.sigmoid(t[0]),
    "abs": lambda t, a: torch.abs(t[0]),
    "sign": lambda t, a: torch.sign(t[0]),
    "stop_gradient": lambda t, a: t[0].detach(),
    "add": lambda t, a: t[0] + t[1],
    "sub": lambda t, a: t[0] - t[1],
    "mul": lambda t, a: t[0] * t[1],
    "div": lambda t, a: t[0] / t[1],
    "pow": lambda t, a: torch.pow(t[0], t[1]),
    "maximum": lambda t, a: torch.maximum(t[0], t[1]),
    "minimum": lambda t, a: torch.minimum(t[0], t[1]),
    "where": lambda t, a: torch.where(t[0], t[1], t[2]),
    "cast": lambda t, a: t[0].to(_TORCH_DTYPE[a["dtype"]]),
    "sum": lambda t, a: _t_sum(t[0], a["axes"], a.get("keepdims", False)),
    "max": lambda t, a: _t_amax(t[0], a["axes"], a.get("keepdims", False)),
    "matmul": lambda t, a: torch.matmul(t[0], t[1]),
    "reshape": lambda t, a: t[0].reshape(tuple(a["shape"])),
    "transpose": lambda t, a: t[0].permute(*a["perm"]) if a["perm"] else t[0],
    "broadcast_to": lambda t, a: t[0].broadcast_to(tuple(a["shape"])),
    "slice": lambda t, a: _t_slice(t[0], a["start"], a["stop"], a["step"]),
    "pad": lambda t, a: _t_pad(t[0], a["lo"], a["hi"], a["interior"]),
    "concat": lambda t, a: torch.cat(list(t), dim=a["axis"]),
}


def torch_ref(op: str, inputs, attrs: dict, r) -> tuple[np.ndarray, list]:
    ts = []
    for a in inputs:
        t = torch.from_numpy(np.array(a))
        if is_float(a):
            t.requires_grad_(True)
        ts.append(t)
    out = TORCH_OPS[op](ts, attrs)
    loss = (out * torch.from_numpy(np.array(r))).sum()
    if loss.requires_grad:
        loss.backward()
    grads = []
    for a, t in zip(inputs, ts):
        if not is_float(a):
            grads.append(None)
        elif t.grad is None:   # not reached (detach): a zero gradient
            grads.append(np.zeros_like(np.asarray(a)))
        else:
            grads.append(t.grad.numpy())
    return out.detach().numpy(), grads


# ---- finite differences -------------------------------------------------------------

def numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar function f at x (float64)."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = f(x)
        flat[i] = old - eps
        lo = f(x)
        flat[i] = old
        gflat[i] = (hi - lo) / (2 * eps)
    return g


def finite_differences(op: str, inputs, attrs: dict, r, eps: float = 1e-6) -> list:
    """Gradient of sum(op(inputs) * r) by central differences, all floats in f64."""
    inputs = [to_f64(a) for a in inputs]
    r = to_f64(r)
    g = op_graph(op, [type_of(a) for a in inputs], attrs_f64(attrs))
    fn = compile_graph(g)
    grads = []
    for i, a in enumerate(inputs):
        if not is_float(a):
            grads.append(None)
            continue

        def loss(v, i=i):
            args = _args(inputs, r)
            args[f"x{i}"] = v
            return float(fn(args)["loss"])

        grads.append(numeric_grad(loss, a, eps))
    return grads


def ours_f64(op: str, inputs, attrs: dict, r) -> list:
    """Our gradients from the float64 twin of the one-op graph."""
    _, grads = ours(op, [to_f64(a) for a in inputs], attrs_f64(attrs), to_f64(r))
    return grads


# ---- the whole check ----------------------------------------------------------------

@dataclass
class OpCase:
    """One row of the VJP table: an op, operand specs, attributes and what to check."""

    id: str
    op: str
    specs: tuple
    attrs: dict = field(default_factory=dict)
    fd: bool = True           # False at non-differentiable points (ties): compare with torch only
    seed: int = 0

    def inputs(self):
        rng = np.random.default_rng([zlib.crc32(self.id.encode()), self.seed])  # stable across runs
        return [s.draw(rng) for s in self.specs]


def draw_cotangent_weight(out_shape, dtype: str, seed: int = 1234) -> np.ndarray:
    """A random weight in +-[0.5, 1.5]: the cotangent reaching the op is neither ones nor tiny."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 1.5, out_shape) * rng.choice([-1.0, 1.0], out_shape)
    return np.asarray(w).astype(np_dtype(dtype))


RTOL, ATOL = 1e-4, 1e-5           # float32 against torch
FD_RTOL, FD_ATOL = 1e-6, 1e-8     # float64 against central differences


def check_op(case: OpCase):
    inputs = case.inputs()
    g = op_graph(case.op, [type_of(a) for a in inputs], case.attrs, weight=False)
    out_t = g.output("out").type
    r = draw_cotangent_weight(tuple(out_t.shape), out_t.dtype)

    out, grads = ours(case.op, inputs, case.attrs, r)
    t_out, t_grads = torch_ref(case.op, inputs, case.attrs, r)

    # (a) forward output, dtype included
    assert out.dtype == np_dtype(out_t.dtype), f"output dtype {out.dtype}, IR says {out_t.dtype}"
    assert out.shape == tuple(out_t.shape)
    np.testing.assert_allclose(out, t_out, rtol=RTOL, atol=ATOL, err_msg="forward output vs torch")

    # (b) every input gradient against torch
    for i, (a, gi, ti) in enumerate(zip(inputs, grads, t_grads)):
        if gi is None:
            assert ti is None
            continue
        assert gi.shape == a.shape, f"grad.x{i} has shape {gi.shape}, input has {a.shape}"
        assert gi.dtype == a.dtype, f"grad.x{i} has dtype {gi.dtype}, input has {a.dtype}"
        np.testing.assert_allclose(gi, ti, rtol=RTOL, atol=ATOL, err_msg=f"grad.x{i} vs torch")

    # (c) float64 gradients against central differences
    if case.fd:
        g64 = ours_f64(case.op, inputs, case.attrs, r)
        fd = finite_differences(case.op, inputs, case.attrs, r)
        for i, (gi, fi) in enumerate(zip(g64, fd)):
            if gi is None:
                continue
            assert gi.dtype == np.float64
            np.testing.assert_allclose(gi, fi, rtol=FD_RTOL, atol=FD_ATOL,
                                       err_msg=f"f64 grad.x{i} vs finite differences")


# ---- <J.u, v> = <u, J^T.v> -------------------------------------------------------------

def with_weighted_loss(graph: Graph, out: str, loss: str = "_loss") -> Graph:
    """`graph` plus an argument `_v` shaped like output `out` and `loss = sum(out * _v)`."""
    b = Builder(graph.name, start_id=max(n.id for n in graph.nodes) + 1)
    for n in graph.nodes:
        b.add_node(n)
    o = dict(graph.outputs)[out]
    v = b.argument("_v", "input", b.type_of(o))
    ls = b.sum(b.mul(o, v), axes=tuple(range(b.type_of(o).rank)), keepdims=False)
    return b.build(list(graph.outputs) + [(loss, ls)])


def adjoint_check(graph: Graph, out: str, wrt: list[str], args: dict, seed: int = 0,
                  eps: float = 1e-6, rtol: float = 1e-6) -> tuple[float, float]:
    """Check <J.u, v> = <u, J^T.v> for the map (wrt args) -> output `out` (graph must be f64).

    J.u is a central difference of the forward graph along a random direction u;
    J^T.v comes from `grad` of sum(out * v). Returns both inner products.
    """
    rng = np.random.default_rng(seed)
    fwd = compile_graph(graph)
    out_node = graph.output(out)
    v = rng.standard_normal(tuple(np.shape(fwd(args)[out]))).astype(np.float64)
    u = {w: rng.standard_normal(np.shape(args[w])) for w in wrt}

    def at(sign):
        moved = dict(args)
        for w in wrt:
            moved[w] = args[w] + sign * eps * u[w]
        return np.asarray(fwd(moved)[out], dtype=np.float64)

    ju = (at(+1) - at(-1)) / (2 * eps)
    lhs = float(np.sum(ju * v))

    gg = grad(with_weighted_loss(graph, out), "_loss", wrt)
    res = compile_graph(gg)({**args, "_v": v.astype(np_dtype(out_node.dtype))})
    rhs = float(sum(np.sum(u[w] * np.asarray(res[f"grad.{w}"])) for w in wrt))
    scale = max(abs(lhs), abs(rhs), 1.0)
    assert abs(lhs - rhs) <= rtol * scale, f"<J.u, v> = {lhs!r} but <u, J^T.v> = {rhs!r}"
    return lhs, rhs
