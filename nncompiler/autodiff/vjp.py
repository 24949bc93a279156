"""One vector-Jacobian rule per differentiable primitive, kept in one table.

A rule receives the builder, the forward node and the cotangent `g` of the
node's output (a node id), and returns one cotangent per operand (or None when
that operand gets no gradient). Rules emit ordinary IR, so the backward pass
prints, optimises and compiles like the forward one. Broadcasting in binary
ops is undone by `unbroadcast` (sum over the broadcast axes).

Tie-breaking follows PyTorch so parity tests can be exact: `maximum`/`minimum`
split the gradient evenly between equal operands, `max` (amax) spreads it
evenly over all maximal elements, `where` sends it to the chosen branch only.
"""
from __future__ import annotations

from ..errors import ShapeError
from ..ir.graph import Builder, Node
from ..ir.primitives import norm_axes


def unbroadcast(b: Builder, g: int, shape) -> int:
    """Sum `g` down to `shape`, undoing numpy broadcasting."""
    gshape = b.shape(g)
    if tuple(gshape) == tuple(shape):
        return g
    lead = len(gshape) - len(shape)
    axes = list(range(lead))
    axes += [lead + i for i, d in enumerate(shape) if d == 1 and gshape[lead + i] != 1]
    if axes:
        g = b.sum(g, axes=tuple(axes), keepdims=True)
    return b.reshape(g, shape=tuple(shape)) if tuple(b.shape(g)) != tuple(shape) else g


def _zero(b: Builder, like: int) -> int:
    return b.scalar(0.0, b.dtype(like))


def _scalar(b: Builder, v: float, like: int) -> int:
    return b.scalar(v, b.dtype(like))


def _keepdims(b: Builder, g: int, n: Node, src) -> int:
    """Reshape the cotangent of a reduction so it broadcasts against the reduced operand."""
    axes = norm_axes(n.attr["axes"], len(src.shape))
    if n.attr.get("keepdims"):
        return g
    kept = tuple(1 if i in axes else d for i, d in enumerate(src.shape))
    return b.reshape(g, shape=kept)


def _matmul(b: Builder, n: Node, g: int, x, y):
    def t(v):  # swap the last two axes
        r = len(b.shape(v))
        return b.transpose(v, perm=tuple(range(r - 2)) + (r - 1, r - 2))
    gx = unbroadcast(b, b.matmul(g, t(y.id)), x.shape)
    gy = unbroadcast(b, b.matmul(t(x.id), g), y.shape)
    return gx, gy


def _minmax(b: Builder, n: Node, g: int, x, y, x_loses: str, y_loses: str):
    # torch: a tie gives g/2 to each, a loser 0, everything else (incl. NaN comparisons) g
    half = b.mul(g, _scalar(b, 0.5, g))
    tie = b.eq(x.id, y.id)
    zero = _zero(b, g)
    gx = b.where(tie, half, b.where(b.emit(x_loses, (x.id, y.id)), zero, g))
    gy = b.where(tie, half, b.where(b.emit(y_loses, (x.id, y.id)), zero, g))
    return unbroadcast(b, gx, x.shape), unbroadcast(b, gy, y.shape)


def _pow(b: Builder, n: Node, g: int, x, y):
    # torch's conventions at a zero base: d/dx is 0 where y == 0, d/dy is 0 where x == 0 and y >= 0
    zero = _zero(b, g)
    dx = b.mul(g, b.mul(y.id, b.pow(x.id, b.sub(y.id, _scalar(b, 1.0, g)))))
    dx = b.where(b.eq(y.id, _zero(b, y.id)), zero, dx)
    dy = b.mul(g, b.mul(n.id, b.log(x.id)))
    at_zero = b.eq(x.id, _zero(b, x.id))
    dy = b.where(at_zero, b.where(b.ge(y.id, _zero(b, y.id)), zero, dy), dy)
    return unbroadcast(b, dx, x.shape), unbroadcast(b, dy, y.shape)


def _max_reduce(b: Builder, n: Node, g: int, x):
    out = _keepdims(b, n.id, n, x)
    mask = b.cast(b.eq(x.id, out), dtype=x.dtype)
    count = b.sum(mask, axes=n.attr["axes"], keepdims=True)
    share = b.div(_keepdims(b, g, n, x), count)
    return (b.mul(mask, share),)


def _slice(b: Builder, n: Node, g: int, x):
    lo, hi, interior = [], [], []
    for dim, start, stop, step, length in zip(x.shape, n.attr["start"], n.attr["stop"], n.attr["step"], n.shape):
        if not isinstance(dim, int):  # only whole symbolic axes can be sliced (see the slice type rule)
            lo.append(0), hi.append(0), interior.append(0)
            continue
        last = start + (length - 1) * step if length else start - 1
        lo.append(start), interior.append(step - 1), hi.append(dim - last - 1)
    return (b.pad(g, lo=tuple(lo), hi=tuple(hi), interior=tuple(interior)),)


def _pad(b: Builder, n: Node, g: int, x):
    starts, stops, steps = [], [], []
    for dim, lo, k in zip(x.shape, n.attr["lo"], n.attr["interior"]):
        starts.append(lo)
        stops.append(None if not isinstance(dim, int) else lo + dim + max(dim - 1, 0) * k)
        steps.append(k + 1)
    return (b.slice(g, start=tuple(starts), stop=tuple(stops), step=tuple(steps)),)


def _concat(b: Builder, n: Node, g: int, *xs):
    axis = norm_axes([n.attr["axis"]], len(n.shape))[0]
    out, offset = [], 0
    for x in xs:
        size = x.shape[axis]
        if not isinstance(size, int) or not isinstance(offset, int):
            raise ShapeError(f"cannot differentiate concat along symbolic axis {axis} (size {size})")
        start = [0] * len(n.shape)
        stop = [None] * len(n.shape)
        start[axis], stop[axis] = offset, offset + size
        out.append(b.slice(g, start=tuple(start), stop=tuple(stop), step=(1,) * len(n.shape)))
        offset += size
    return tuple(out)


def _sparse_xent(b: Builder, n: Node, g: int, z, y):
    # d/dz of -log softmax(z)[y] is softmax(z) - one_hot(y): one fused node, scaled per row
    row = b.reshape(g, shape=tuple(z.shape[:-1]) + (1,))
    return b.mul(row, b.sparse_xent_grad(z.id, y.id)), None


def _sparse_xent_grad(b: Builder, n: Node, g: int, z, y):
    # softmax's Jacobian (symmetric): p * (g - sum(g * p)); rows whose label is out of range
    # are constant zeros, so they pass no gradient
    m = b.max(z.id, axes=(-1,), keepdims=True)
    e = b.exp(b.sub(z.id, m))
    p = b.div(e, b.sum(e, axes=(-1,), keepdims=True))
    gp = b.mul(g, p)
    out = b.sub(gp, b.mul(p, b.sum(gp, axes=(-1,), keepdims=True)))
    lo, hi = b.scalar(0, y.dtype), b.scalar(z.shape[-1], y.dtype)
    valid = b.cast(b.mul(b.cast(b.ge(y.id, lo), dtype=z.dtype), b.cast(b.lt(y.id, hi), dtype=z.dtype)),
                   dtype=z.dtype)
    return b.mul(out, b.reshape(valid, shape=tuple(z.shape[:-1]) + (1,))), None


def _inverse(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


# ---- windows: the transposes of a convolution are convolutions ----------------------------

def _transposed_window(b: Builder, g: int, n_node: Node, x_shape, spans, pads) -> int:
    """g dilated by the stride (interior padding) and padded so that a stride-1, unpadded
    window of the same (flipped) extent lands on x's positions: dx[i] = sum over taps t of
    gd[i + lo - t] (t over the dilated extent), i.e. padding lo' = span - 1 - lo before and
    what makes the length x's after; a negative lo'/hi' (padding the forward window never
    read) crops g instead. One `pad` does the dilation and the padding together."""
    n = len(spans)
    stride = n_node.attr["stride"]
    gshape = b.shape(g)
    starts, stops, lo_p, hi_p = [0], [None], [0], [0]
    for a in range(n):
        dilated = (gshape[1 + a] - 1) * stride[a] + 1
        lo = spans[a] - 1 - pads[a][0]
        hi = x_shape[1 + a] - 1 + spans[a] - dilated - lo
        # cropping whole strides of g (only possible where a crop falls on a kept element)
        starts.append(-(-max(-lo, 0) // stride[a]))
        lo += starts[-1] * stride[a]
        cut = -(-max(-hi, 0) // stride[a])
        stops.append(gshape[1 + a] - cut)
        hi += cut * stride[a]
        lo_p.append(lo)
        hi_p.append(hi)
    if any(starts) or any(s != d for s, d in zip(stops[1:], gshape[1:-1])):
        g = b.slice(g, start=tuple(starts) + (0,), stop=tuple(stops) + (None,), step=(1,) * (n + 2))
    interior = (0,) + tuple(s - 1 for s in stride) + (0,)
    if any(lo_p) or any(hi_p) or any(interior):
        g = b.pad(g, lo=tuple(lo_p) + (0,), hi=tuple(hi_p) + (0,), interior=interior)
    return g


def _flip(b: Builder, w: int, axes) -> int:
    for a in axes:
        k = b.shape(w)[a]
        if k > 1:
            w = b.gather(w, b.constant(tuple(range(k - 1, -1, -1)), "i32", (k,)), axis=a)
    return w


def _conv(b: Builder, n: Node, g: int, x, w):
    a = n.attr
    sp = len(x.shape) - 2
    ks, cg, f = w.shape[:sp], w.shape[sp], w.shape[sp + 1]
    groups, dil, pads = a["groups"], a["dilation"], a["padding"]
    spans = [(k - 1) * d + 1 for k, d in zip(ks, dil)]
    # input gradient: a stride-1 convolution of the dilated g with the flipped kernel, its
    # in/out channels swapped within each group ([*K, Cg, G*Fg] -> [*K, Fg, G*Cg])
    gd = _transposed_window(b, g, n, x.shape, spans, pads)
    fg = f // groups
    wt = _flip(b, w.id, range(sp))
    wt = b.reshape(wt, shape=tuple(ks) + (cg, groups, fg))
    wt = b.transpose(wt, perm=tuple(range(sp)) + (sp + 2, sp + 1, sp))
    wt = b.reshape(wt, shape=tuple(ks) + (fg, groups * cg))
    gx = b.conv(gd, wt, stride=(1,) * sp, padding=((0, 0),) * sp, dilation=dil, groups=groups)
    # kernel gradient, per group: the batch becomes the contracted channel axis,
    # dw[*t, c, f] = sum over n, o of xpad[n, o*s + t*d, c] * g[n, o, f]: a conv of x^T [C, *S, N]
    # with g^T [*O, N, F], stride = dilation, dilation = stride, cropped to the kernel's extent
    parts = []
    for k in range(groups):
        xs = x.id if groups == 1 else b.slice(
            x.id, start=(0,) * (sp + 1) + (k * cg,), stop=(None,) * (sp + 1) + ((k + 1) * cg,), step=(1,) * (sp + 2))
        gs = g if groups == 1 else b.slice(
            g, start=(0,) * (sp + 1) + (k * fg,), stop=(None,) * (sp + 1) + ((k + 1) * fg,), step=(1,) * (sp + 2))
        xt = b.transpose(xs, perm=(sp + 1,) + tuple(range(1, sp + 1)) + (0,))
        gt = b.transpose(gs, perm=tuple(range(1, sp + 1)) + (0, sp + 1))
        dw = b.conv(xt, gt, stride=tuple(dil), padding=pads, dilation=tuple(a["stride"]), groups=1)
        if tuple(b.shape(dw)[1:sp + 1]) != tuple(ks):
            dw = b.slice(dw, start=(0,) * (sp + 2), stop=(None,) + tuple(ks) + (None,), step=(1,) * (sp + 2))
        parts.append(b.transpose(dw, perm=tuple(range(1, sp + 1)) + (0, sp + 1)))
    gw = parts[0] if groups == 1 else b.concat(*parts, axis=sp + 1)
    return gx, gw


def _reduce_window(b: Builder, n: Node, g: int, x):
    a = n.attr
    if a["kind"] == "max":   # all of a window's gradient to its first maximal tap, as torch
        return (b.select_scatter(x.id, g, window=a["window"], stride=a["stride"], padding=a["padding"]),)
    sp = len(x.shape) - 2
    gd = _transposed_window(b, g, n, x.shape, list(a["window"]), a["padding"])
    return (b.reduce_window(gd, kind="sum", window=a["window"], stride=(1,) * sp, padding=((0, 0),) * sp),)


def _select_scatter(b: Builder, n: Node, g: int, x, gy):
    # linear in its g, but its transpose (gather each window's chosen tap) is no primitive yet:
    # an error, not a silent zero, for a second derivative through max pooling
    raise ShapeError("second derivatives through max pooling (select_scatter) are not supported")


# op -> rule(builder, node, g, *operand_nodes) -> tuple of cotangents (or None), one per operand
def _through_driver(b, n, g, *operands):
    # A scan has several results, read through scan_out; reverse.backprop gathers their
    # cotangents per result index and calls autodiff/scan.py's scan_vjp with all of them.
    raise ShapeError(f"{n.op} is differentiated by reverse.backprop, not by a one-cotangent rule")


VJP = {
    "scan": _through_driver,
    "scan_out": _through_driver,
    "add": lambda b, n, g, x, y: (unbroadcast(b, g, x.shape), unbroadcast(b, g, y.shape)),
    "sub": lambda b, n, g, x, y: (unbroadcast(b, g, x.shape), unbroadcast(b, b.neg(g), y.shape)),
    "mul": lambda b, n, g, x, y: (unbroadcast(b, b.mul(g, y.id), x.shape), unbroadcast(b, b.mul(g, x.id), y.shape)),
    "div": lambda b, n, g, x, y: (unbroadcast(b, b.div(g, y.id), x.shape),
                                  unbroadcast(b, b.neg(b.div(b.mul(g, n.id), y.id)), y.shape)),
    "pow": _pow,
    "maximum": lambda b, n, g, x, y: _minmax(b, n, g, x, y, "lt", "gt"),
    "minimum": lambda b, n, g, x, y: _minmax(b, n, g, x, y, "gt", "lt"),
    "where": lambda b, n, g, c, x, y: (None,
                                      unbroadcast(b, b.where(c.id, g, _zero(b, g)), x.shape),
                                      unbroadcast(b, b.where(c.id, _zero(b, g), g), y.shape)),
    "neg": lambda b, n, g, x: (b.neg(g),),
    "exp": lambda b, n, g, x: (b.mul(g, n.id),),
    "log": lambda b, n, g, x: (b.div(g, x.id),),
    "log1p": lambda b, n, g, x: (b.div(g, b.add(x.id, _scalar(b, 1.0, g))),),
    "sqrt": lambda b, n, g, x: (b.div(b.mul(g, _scalar(b, 0.5, g)), n.id),),
    "tanh": lambda b, n, g, x: (b.mul(g, b.sub(_scalar(b, 1.0, g), b.mul(n.id, n.id))),),
    "sigmoid": lambda b, n, g, x: (b.mul(g, b.mul(n.id, b.sub(_scalar(b, 1.0, g), n.id))),),
    "abs": lambda b, n, g, x: (b.mul(g, b.sign(x.id)),),
    "sign": lambda b, n, g, x: (None,),
    "stop_gradient": lambda b, n, g, x: (None,),
    "cast": lambda b, n, g, x: (b.cast(g, dtype=x.dtype) if x.dtype in ("f32", "f64") else None,),
    "sum": lambda b, n, g, x: (b.broadcast_to(_keepdims(b, g, n, x), shape=x.shape),),
    "max": lambda b, n, g, x: _max_reduce(b, n, g, x),
    "matmul": _matmul,
    "reshape": lambda b, n, g, x: (b.reshape(g, shape=x.shape),),
    "transpose": lambda b, n, g, x: (b.transpose(g, perm=_inverse(n.attr["perm"])),),
    "broadcast_to": lambda b, n, g, x: (unbroadcast(b, g, x.shape),),
    "slice": _slice,
    "pad": _pad,
    "concat": _concat,
    "gather": lambda b, n, g, x, i: (b.scatter_add(g, i.id, axis=n.attr["axis"], shape=x.shape), None),
    "scatter_add": lambda b, n, g, u, i: (b.gather(g, i.id, axis=n.attr["axis"]), None),
    "sparse_xent": _sparse_xent,
    "sparse_xent_grad": _sparse_xent_grad,
    "conv": _conv,
    "reduce_window": _reduce_window,
    "select_scatter": _select_scatter,
}
