"""A reference interpreter of the primitives: one numpy function per primitive, in one table.

`interpret(graph, args)` walks the nodes in order and applies `RULES[node.op]` to the
operands' values. It is what the passes evaluate through (constant folding) and what
the library uses to draw an initial value at compile time, so neither has to reach up
into a backend. It computes exactly what the numpy backend's generated code computes
(tests/ir/test_interpret.py runs every primitive through both): float32 stays float32
(constants are built in the node's dtype, reductions keep it), sigmoid is the
table's stable form (exp(-|x|), never overflowing), gathers clip their indices, and random sources
draw from numpy's generator seeded as the backend seeds it.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from . import convs, products, reductions, windows
from .graph import Graph, Node
from .primitives import norm_axes
from .shapes import NUMPY_DTYPE, Monomial, eval_shape


class Env:
    """What a rule may read besides its operands: the graph (operand types) and the
    sizes bound to the symbolic dimensions by the arguments' shapes."""

    def __init__(self, graph: Graph, sizes: dict[str, int]):
        self.graph = graph
        self.sizes = sizes

    def shape(self, dims) -> tuple[int, ...]:
        return eval_shape(dims, self.sizes)

    def rank(self, node: Node) -> int:
        return self.graph[node.inputs[0]].type.rank


def _dt(n: Node):
    return np.dtype(NUMPY_DTYPE[n.dtype])


def _axes(n: Node, env: Env) -> tuple[int, ...]:
    return norm_axes(n.attr["axes"], env.rank(n))


# ---- rules: (node, operand values, env) -> value ------------------------------------------

def _const(n, a, env):
    return np.array(n.attr["value"], dtype=_dt(n)).reshape(env.shape(n.shape))


def _sigmoid(n, a, env):
    # the table's stable form: e = exp(-|x|); (x >= 0 ? 1 : e) / (1 + e), never overflowing
    x = a[0]
    e = np.exp(-np.abs(x))
    return (np.maximum(e, x >= 0) / (e + 1)).astype(x.dtype, copy=False)


def _sum(n, a, env):
    if n.dtype in ("f32", "f64"):      # folded over many rows: reductions.py, as the numpy backend
        return reductions.add_reduce(a[0], _axes(n, env), bool(n.attr.get("keepdims")))
    return np.add.reduce(a[0], axis=_axes(n, env), keepdims=bool(n.attr.get("keepdims")), dtype=_dt(n))


def _max(n, a, env):
    return np.maximum.reduce(a[0], axis=_axes(n, env), keepdims=bool(n.attr.get("keepdims")))


def _argmax(n, a, env):
    return np.argmax(a[0], axis=n.attr["axis"], keepdims=bool(n.attr.get("keepdims"))).astype(np.int32)


def _size(n, a, env):
    return _dt(n).type(math.prod(a[0].shape[i] for i in _axes(n, env)))


def _slice(n, a, env):
    at = n.attr
    if not at["start"]:   # a rank-0 slice is the value itself
        return a[0]
    return a[0][tuple(slice(s, e, k) for s, e, k in zip(at["start"], at["stop"], at["step"]))]


def _pad(n, a, env):
    x, lo, hi, interior = a[0], n.attr["lo"], n.attr["hi"], n.attr["interior"]
    shape = tuple(l + h + m + max(m - 1, 0) * k for m, l, h, k in zip(x.shape, lo, hi, interior))
    out = np.zeros(shape, dtype=x.dtype)
    out[tuple(slice(l, l + m + max(m - 1, 0) * k, k + 1) for m, l, k in zip(x.shape, lo, interior))] = x
    return out


def _scatter_add(n, a, env):
    u, idx = a
    shape = env.shape(n.attr["shape"])
    axis = n.attr["axis"] % len(shape)
    out = np.zeros(shape, dtype=u.dtype)
    np.add.at(out, (slice(None),) * axis + (np.clip(idx, 0, shape[axis] - 1),), u)
    return out


def _iota(n, a, env):
    shape, axis = env.shape(n.shape), n.attr["axis"]
    r = np.arange(shape[axis], dtype=_dt(n)).reshape([-1 if i == axis else 1 for i in range(len(shape))])
    return np.broadcast_to(r, shape)


def _random_uniform(n, a, env):
    at = n.attr
    return np.random.default_rng(at["seed"]).uniform(at["low"], at["high"], size=env.shape(n.shape)).astype(_dt(n))


def _random_normal(n, a, env):
    at = n.attr
    return np.random.default_rng(at["seed"]).normal(at["mean"], at["stddev"], size=env.shape(n.shape)).astype(_dt(n))


def _rng_uniform(n, a, env):
    key = int(a[0]) & 0xFFFFFFFF
    return np.random.default_rng([n.attr["seed"], key]).random(env.shape(n.shape), dtype=_dt(n))


def _sparse_xent_parts(z, y):
    """The table's formula for softmax cross-entropy with integer labels: the per-row loss
    -log(softmax(z))[y] and its gradient softmax(z) - one_hot(y). A label outside [0, c)
    selects no class, so its loss and gradient are 0 (as the numpy backend's one-hot rows)."""
    c = z.shape[-1]
    hot = np.eye(c + 1, c, dtype=z.dtype)[np.where((y >= 0) & (y < c), y, c)]
    s = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(s)
    total = np.sum(e, axis=-1, keepdims=True)
    loss = -np.sum((s - np.log(total)) * hot, axis=-1)
    grad = e * (np.sum(hot, axis=-1, keepdims=True) / total) - hot
    return loss, grad


def _transpose(n, a, env):
    return a[0].transpose(tuple(n.attr["perm"]))


# ---- windows: ir/convs.py and ir/windows.py compute them for this interpreter and for the numpy backend's
# generated code alike (one implementation, so folding stays bit-identical); the backends are
# checked against torch --------------------------------------------------------------------

def _conv(n, a, env):
    at = n.attr
    return convs.conv(a[0], a[1], at["stride"], at["padding"], at["dilation"], at["groups"])


def _reduce_window(n, a, env):
    at = n.attr
    return windows.reduce_window(a[0], at["kind"], at["window"], at["stride"], at["padding"])


def _select_scatter(n, a, env):
    at = n.attr
    return windows.select_scatter(a[0], a[1], at["window"], at["stride"], at["padding"])


def _scan(n, a, env):
    """lax.scan's semantics, one body interpretation per step: a tuple of the final carries
    and the per-step outputs stacked along `axis` (scan_out picks one)."""
    at = n.attr
    nc, ns, axis, length = at["n_carry"], at["n_seq"], at["axis"], at["length"]
    body = at["body"]
    names = [x.attr["name"] for x in body.args]
    carries, seqs, inv = list(a[:nc]), a[nc:nc + ns], list(a[nc + ns:])
    lead = (slice(None),) * axis
    steps: dict[int, list] = {}
    for t in (range(length - 1, -1, -1) if at.get("reverse") else range(length)):
        out = list(interpret(body, dict(zip(names, carries + [s[lead + (t,)] for s in seqs] + inv))).values())
        carries, steps[t] = out[:nc], out[nc:]
    stacked = [np.stack([steps[t][k] for t in range(length)], axis=axis) for k in range(len(steps[0]))]
    return tuple(carries) + tuple(stacked)


RULES: dict[str, Callable] = {
    "const": _const,
    "iota": _iota,
    "random_uniform": _random_uniform,
    "random_normal": _random_normal,
    "rng_uniform": _rng_uniform,
    "neg": lambda n, a, env: -a[0],
    "exp": lambda n, a, env: np.exp(a[0]),
    "log": lambda n, a, env: np.log(a[0]),
    "log1p": lambda n, a, env: np.log1p(a[0]),
    "sqrt": lambda n, a, env: np.sqrt(a[0]),
    "tanh": lambda n, a, env: np.tanh(a[0]),
    "sigmoid": _sigmoid,
    "abs": lambda n, a, env: np.abs(a[0]),
    "sign": lambda n, a, env: np.sign(a[0]),
    "stop_gradient": lambda n, a, env: a[0],
    "add": lambda n, a, env: a[0] + a[1],
    "sub": lambda n, a, env: a[0] - a[1],
    "mul": lambda n, a, env: a[0] * a[1],
    "div": lambda n, a, env: a[0] / a[1],
    "pow": lambda n, a, env: np.power(a[0], a[1]),
    "maximum": lambda n, a, env: np.maximum(a[0], a[1]),
    "minimum": lambda n, a, env: np.minimum(a[0], a[1]),
    "lt": lambda n, a, env: a[0] < a[1],
    "le": lambda n, a, env: a[0] <= a[1],
    "gt": lambda n, a, env: a[0] > a[1],
    "ge": lambda n, a, env: a[0] >= a[1],
    "eq": lambda n, a, env: a[0] == a[1],
    "ne": lambda n, a, env: a[0] != a[1],
    "where": lambda n, a, env: np.where(a[0], a[1], a[2]),
    "cast": lambda n, a, env: a[0].astype(_dt(n)),
    "sum": _sum,
    "max": _max,
    "argmax": _argmax,
    "size": _size,
    "matmul": lambda n, a, env: products.matmul(a[0], a[1]),
    "reshape": lambda n, a, env: a[0].reshape(env.shape(n.attr["shape"])),
    "transpose": _transpose,
    "broadcast_to": lambda n, a, env: np.broadcast_to(a[0], env.shape(n.attr["shape"])),
    "slice": _slice,
    "pad": _pad,
    "concat": lambda n, a, env: np.concatenate(a, axis=n.attr["axis"]),
    "gather": lambda n, a, env: np.take(a[0], a[1], axis=n.attr["axis"], mode="clip"),
    "scatter_add": _scatter_add,
    "sparse_xent": lambda n, a, env: _sparse_xent_parts(a[0], a[1])[0],
    "sparse_xent_grad": lambda n, a, env: _sparse_xent_parts(a[0], a[1])[1],
    "conv": _conv,
    "reduce_window": _reduce_window,
    "select_scatter": _select_scatter,
    "scan": _scan,
    "scan_out": lambda n, a, env: a[0][n.attr["index"]],
}


def bind_sizes(graph: Graph, args: dict) -> dict[str, int]:
    """Symbol -> size, from the axes of the arguments declared with a bare symbol."""
    sizes: dict[str, int] = {}
    for n in graph.args:
        value = args.get(n.attr["name"])
        for axis, d in enumerate(n.shape):
            m = Monomial.parse(d)
            if value is not None and m.coef == 1 and len(m.syms) == 1 and axis < np.ndim(value):
                sizes.setdefault(m.syms[0], int(np.shape(value)[axis]))
    return sizes


def interpret(graph: Graph, args: dict | None = None) -> dict[str, np.ndarray]:
    """Run `graph` on `args` (argument name -> array); output name -> array."""
    args = args or {}
    env = Env(graph, bind_sizes(graph, args))
    values: dict[int, np.ndarray] = {}
    for n in graph.nodes:
        if n.op == "arg":
            name = n.attr["name"]
            if name not in args:
                raise KeyError(f"{graph.name}: missing argument {name!r}")
            values[n.id] = np.asarray(args[name])
            continue
        out = RULES[n.op](n, [values[i] for i in n.inputs], env)
        values[n.id] = out if n.op == "scan" else np.asarray(out)   # a scan's value: its results
    return {name: values[i] for name, i in graph.outputs}
