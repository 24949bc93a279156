"""The torch fallback as a rule table: primitive -> one torch call on whole tensors.

Ops in `ops.TORCH_FALLBACK` always run here; any other op does when named in the
plan's `fallback_ops` (a debugging aid: bisect a wrong kernel by moving ops out of
it). Each rule follows the primitive table's `formula` where one is given
(sigmoid's stable form, numpy's power and sign), so moving an op here never
changes what it computes.

`run_fallback` runs one fallback group at run time, and `constant_tensor` puts a constant
(a `const` or seeded `random_*` node) on the device: computed by the numpy backend, the
reference, so every backend starts from the same numbers.
"""
from __future__ import annotations

import numpy as np

from ...ir.graph import Builder
from ...ir.primitives import norm_axes
from ...ir.shapes import NUMPY_DTYPE, numel
from .index import eval_dim, eval_shape


def torch_dtype(dt: str):
    import torch
    return {"f32": torch.float32, "f64": torch.float64, "i32": torch.int32, "i64": torch.int64,
            "bool": torch.bool}[dt]


def _axes(n, g):
    return norm_axes(n.attr.get("axes"), len(g[n.inputs[0]].shape))


def _t_pad(x, lo, hi, interior):
    shape = [a + b + n + max(n - 1, 0) * k for n, a, b, k in zip(x.shape, lo, hi, interior)]
    out = x.new_zeros(shape)
    out[tuple(slice(a, a + n + max(n - 1, 0) * k, k + 1) for n, a, k in zip(x.shape, lo, interior))] = x
    return out


def _t_sum(x, axes, keep, dtype):
    import torch
    if not axes:
        return x.to(dtype)
    if dtype == torch.bool:
        return torch.amax(x.to(torch.int32), dim=axes, keepdim=keep) != 0
    return torch.sum(x, dim=axes, keepdim=keep, dtype=dtype)


def _t_matmul(a, b):
    import torch
    if a.dtype == torch.bool:
        return torch.matmul(a.double(), b.double()) > 0
    if a.dtype in (torch.int32, torch.int64) and a.device.type == "cuda":
        return torch.matmul(a.double(), b.double()).to(a.dtype)   # exact below 2**53
    return torch.matmul(a, b)


def _t_iota(n, g, dev):
    import torch
    shape = tuple(n.shape)
    axis = n.attr["axis"] % len(shape)
    r = torch.arange(shape[axis], device=dev).reshape([-1 if i == axis else 1 for i in range(len(shape))])
    return r.expand(shape).to(torch_dtype(n.dtype))


def _t_rng(n, key, dev, shape):
    """numpy's stream, exactly as the reference backend draws it (Backend(host_rng=True)): generated
    on the host and uploaded -- a host-side random source, no device data comes back."""
    import torch
    rng = np.random.default_rng([int(n.attr["seed"]), int(key) & 0xFFFFFFFF])
    arr = rng.random(shape, dtype=np.dtype(NUMPY_DTYPE[n.dtype]))
    return torch.from_numpy(arr).to(dev)


def sizes_shape(n, a):
    """The output shape of a gather from its operands' actual shapes."""
    axis = n.attr["axis"] % a[0].dim()
    return tuple(a[0].shape[:axis]) + tuple(a[1].shape) + tuple(a[0].shape[axis + 1:])


def _t_sigmoid(x):
    # the table's formula (torch.sigmoid flushes x < -88 to 0 in float32)
    import torch
    e = torch.exp(-torch.abs(x))
    return torch.where(x >= 0, torch.ones_like(e), e) / (1 + e)


def _t_sign(x):
    import torch
    return x if x.dtype == torch.bool else torch.where(x > 0, 1, torch.where(x < 0, -1, x)).to(x.dtype)


def _t_slice(n, x):
    a = n.attr
    if not a["start"]:
        return x
    return x[tuple(slice(s, e, st) for s, e, st in zip(a["start"], a["stop"], a["step"]))]


def _t_gather(n, a):
    axis = n.attr["axis"] % a[0].dim()
    idx = a[1].reshape(-1).clamp(0, a[0].shape[axis] - 1).long()
    return a[0].index_select(axis, idx).reshape(tuple(sizes_shape(n, a)))


def _t_scatter_add(n, a, sizes):
    import torch
    u, idx = a
    shape = tuple(int(d) for d in eval_shape(n.attr["shape"], sizes or {}))
    axis = n.attr["axis"] % len(shape)
    flat = idx.reshape(-1).clamp(0, shape[axis] - 1).long()
    u = u.reshape(shape[:axis] + (flat.numel(),) + shape[axis + 1:])
    out = torch.zeros(shape, dtype=u.dtype, device=u.device)
    return out.index_add_(axis, flat, u)


def _t_padded(x, padding, fill):
    """x [N, *S, C] padded on its spatial axes with `fill` (F.pad lists the last axis first)."""
    import torch.nn.functional as F
    if not any(lo or hi for lo, hi in padding):
        return x
    flat = [0, 0] + [v for p in reversed(padding) for v in p]
    return F.pad(x, flat, value=fill)


def _t_windows(x, window, stride):
    """The [N, *O, C, *window] view of x [N, *S, C] (Tensor.unfold per spatial axis)."""
    for a, (k, s) in enumerate(zip(window, stride)):
        x = x.unfold(1 + a, k, s)
    return x


def _t_conv(n, x, w):
    import torch.nn.functional as F
    a, sp = n.attr, x.dim() - 2
    to_first = (0, sp + 1) + tuple(range(1, sp + 1))
    y = getattr(F, f"conv{sp}d")(_t_padded(x, a["padding"], 0.0).permute(*to_first),
                                 w.permute(sp + 1, sp, *range(sp)), stride=tuple(a["stride"]),
                                 dilation=tuple(a["dilation"]), groups=a["groups"])
    return y.permute(0, *range(2, sp + 2), 1).contiguous()


def _t_reduce_window(n, x):
    # pooling is a generated kernel (codegen_window.py); this rule and the next serve
    # Backend(fallback_ops=("reduce_window", "select_scatter")), the debugging path
    import torch
    a, sp = n.attr, x.dim() - 2
    fill = 0.0 if a["kind"] == "sum" else -float("inf")
    v = _t_windows(_t_padded(x, a["padding"], fill), a["window"], a["stride"])
    dims = tuple(range(sp + 2, 2 * sp + 2))
    return (torch.sum(v, dim=dims) if a["kind"] == "sum" else torch.amax(v, dim=dims)).contiguous()


def _t_select_scatter(n, x, g):
    """Each window's g to its first maximal tap (torch.argmax returns the first), one strided add per tap."""
    import torch
    a, sp = n.attr, x.dim() - 2
    xp = _t_padded(x, a["padding"], -float("inf"))
    v = _t_windows(xp, a["window"], a["stride"])
    taps = int(np.prod(a["window"]))
    idx = torch.argmax(v.reshape(tuple(v.shape[:sp + 2]) + (taps,)), dim=-1)
    out = torch.zeros_like(xp)
    for t in range(taps):
        at = np.unravel_index(t, tuple(a["window"]))
        dst = (slice(None),) + tuple(slice(int(p), int(p) + (o - 1) * s + 1, s)
                                     for p, o, s in zip(at, g.shape[1:-1], a["stride"]))
        out[dst] += torch.where(idx == t, g, torch.zeros_like(g))
    keep = (slice(None),) + tuple(slice(lo, lo + d) for d, (lo, _) in zip(x.shape[1:-1], a["padding"]))
    return out[keep].contiguous()


def _t(name):
    """A rule calling torch.<name> on the operands."""
    def rule(n, a, g, dev, sizes):
        import torch
        return getattr(torch, name)(*a)
    return rule


def _keep(n) -> bool:
    return bool(n.attr.get("keepdims"))


def _t_max(n, a, g):
    import torch
    ax = _axes(n, g)
    return torch.amax(a[0], dim=ax, keepdim=_keep(n)) if ax else a[0]


# primitive -> rule(node, operand tensors, graph, device, sizes of the symbolic dims) -> tensor
TORCH_RULES = {
    "neg": lambda n, a, g, dev, sizes: -a[0],
    "exp": _t("exp"), "log": _t("log"), "log1p": _t("log1p"), "sqrt": _t("sqrt"), "tanh": _t("tanh"),
    "sigmoid": lambda n, a, g, dev, sizes: _t_sigmoid(a[0]),
    "abs": _t("abs"),
    "sign": lambda n, a, g, dev, sizes: _t_sign(a[0]),
    "stop_gradient": lambda n, a, g, dev, sizes: a[0],
    "add": lambda n, a, g, dev, sizes: a[0] + a[1], "sub": lambda n, a, g, dev, sizes: a[0] - a[1],
    "mul": lambda n, a, g, dev, sizes: a[0] * a[1], "div": lambda n, a, g, dev, sizes: a[0] / a[1],
    "pow": _t("pow"), "maximum": _t("maximum"), "minimum": _t("minimum"),
    "lt": lambda n, a, g, dev, sizes: a[0] < a[1], "le": lambda n, a, g, dev, sizes: a[0] <= a[1],
    "gt": lambda n, a, g, dev, sizes: a[0] > a[1], "ge": lambda n, a, g, dev, sizes: a[0] >= a[1],
    "eq": lambda n, a, g, dev, sizes: a[0] == a[1], "ne": lambda n, a, g, dev, sizes: a[0] != a[1],
    "where": _t("where"),
    "cast": lambda n, a, g, dev, sizes: (a[0] != 0) if n.dtype == "bool" else a[0].to(torch_dtype(n.dtype)),
    "matmul": lambda n, a, g, dev, sizes: _t_matmul(a[0], a[1]),
    "sum": lambda n, a, g, dev, sizes: _t_sum(a[0], _axes(n, g), _keep(n), torch_dtype(n.dtype)),
    "max": lambda n, a, g, dev, sizes: _t_max(n, a, g),
    "argmax": lambda n, a, g, dev, sizes: __import__("torch").argmax(
        a[0], dim=n.attr["axis"], keepdim=_keep(n)).to(torch_dtype("i32")),
    # shapes through eval_shape: an operand view of a fallback op may have a symbolic batch
    "reshape": lambda n, a, g, dev, sizes: a[0].reshape(tuple(int(d) for d in eval_shape(n.shape, sizes or {}))),
    "transpose": lambda n, a, g, dev, sizes: a[0].permute(*n.attr["perm"]) if n.attr["perm"] else a[0],
    "broadcast_to": lambda n, a, g, dev, sizes: a[0].broadcast_to(
        tuple(int(d) for d in eval_shape(n.shape, sizes or {}))),
    "slice": lambda n, a, g, dev, sizes: _t_slice(n, a[0]),
    "pad": lambda n, a, g, dev, sizes: _t_pad(a[0], n.attr["lo"], n.attr["hi"], n.attr["interior"]),
    "concat": lambda n, a, g, dev, sizes: __import__("torch").cat(list(a), dim=n.attr["axis"]),
    "gather": lambda n, a, g, dev, sizes: _t_gather(n, a),
    "scatter_add": lambda n, a, g, dev, sizes: _t_scatter_add(n, a, sizes),
    "conv": lambda n, a, g, dev, sizes: _t_conv(n, *a),
    "reduce_window": lambda n, a, g, dev, sizes: _t_reduce_window(n, a[0]),
    "select_scatter": lambda n, a, g, dev, sizes: _t_select_scatter(n, *a),
    "iota": lambda n, a, g, dev, sizes: _t_iota(n, g, dev),
    "rng_uniform": lambda n, a, g, dev, sizes: _t_rng(n, a[0].item(), dev, eval_shape(n.shape, sizes or {})),
}


def torch_op(n, a, g, dev, sizes=None):
    rule = TORCH_RULES.get(n.op)
    if rule is None:
        raise NotImplementedError(f"no torch rule for '{n.op}'")
    return rule(n, a, g, dev, sizes)


def run_fallback(g, nodes, bufs: dict, sizes: dict, device: str) -> None:
    """Run a fallback group's ops through torch on the device, reading their operands through
    torch views; each result lands in `bufs`. An operand not in `bufs` (a view the planner left
    unstored, an inline scalar, a constant) is computed here once."""
    import torch
    memo: dict = {}

    def value(i):
        if i in bufs:
            return bufs[i]
        if i in memo:
            return memo[i]
        n = g[i]
        if n.op == "const":
            v = constant_tensor(n, device)
        elif n.op == "size":
            total = eval_dim(numel([g[n.inputs[0]].shape[a] for a in _axes(n, g)]), sizes)
            v = torch.tensor(total, dtype=torch_dtype(n.dtype), device=device)
        else:
            v = torch_op(n, [value(x) for x in n.inputs], g, device, sizes)
        memo[i] = v
        return v

    for nid in nodes:
        n = g[nid]
        out = torch_op(n, [value(x) for x in n.inputs], g, device, sizes)
        bufs[nid] = out.to(torch_dtype(n.dtype)).contiguous().reshape(eval_shape(n.shape, sizes))


def constant_tensor(node, device: str):
    """A constant tensor (const, seeded random_*) through the numpy backend, the reference."""
    import torch

    from ..numpy import evaluate
    b = Builder("const")
    out = b.emit(node.op, (), **node.attr)
    value = evaluate(b.build({"v": out}))["v"]
    return torch.from_numpy(np.ascontiguousarray(value)).to(device)
