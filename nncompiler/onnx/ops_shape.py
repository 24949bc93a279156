"""ONNX shape and data-movement ops: reshape, transpose, slicing, gathering, padding, tiling.

Shapes, axes, starts/ends and repeats must be known at import time (the IR's
movement primitives take them as attributes); import-time arrays flow through
`NodeCtx.const`. Index remappings the IR has no primitive for (negative steps,
reflect/edge padding) become a `gather` with a constant index vector.
"""
from __future__ import annotations

import numpy as np

from ..ir.primitives import norm_axes
from ..ir.shapes import broadcast_shapes, dim_div, numel
from .importer import const_node
from .symbolic import SymInts

INT_MAX = 2 ** 62


def _ints(cx, i: int, what: str) -> list[int]:
    return [int(v) for v in cx.const(i, what).reshape(-1)]


def _dims(cx, i: int, what: str) -> list:
    """A shape operand: ints, or symbolic dims where it was computed from a symbolic shape."""
    v = cx.value(i)
    if isinstance(v, SymInts):
        return list(v.dims)
    return _ints(cx, i, what)


def _reshape_to(cx, x: int, shape) -> int:
    return cx.b.reshape(x, shape=tuple(shape))


def reshape(cx):
    x = cx.x(0)
    src = tuple(cx.b.shape(x))
    target = _dims(cx, 1, "shape")
    allowzero = cx.attr("allowzero", 0)
    out, unknown = [], None
    for k, d in enumerate(target):
        if d == 0 and not allowzero:
            out.append(src[k])
        elif d == -1:
            if unknown is not None:
                raise cx.fail("shape has more than one -1")
            unknown = k
            out.append(1)
        else:
            out.append(d)
    if unknown is not None:
        rest = dim_div(numel(src), numel(out))
        if rest is None:
            raise cx.fail(f"cannot infer the -1 in shape {target} from input shape {list(src)}")
        out[unknown] = rest
    return _reshape_to(cx, x, out)


def flatten(cx):
    x = cx.x(0)
    s = tuple(cx.b.shape(x))
    axis = cx.attr("axis", 1)
    axis = axis + len(s) if axis < 0 else axis
    return _reshape_to(cx, x, (numel(s[:axis]), numel(s[axis:])))


def transpose(cx):
    x = cx.x(0)
    rank = cx.rank(0)
    perm = cx.attr("perm") or list(range(rank))[::-1]
    return cx.b.transpose(x, perm=tuple(perm))


def _axes_input(cx, since: int, name="axes"):
    if cx.opset >= since:
        return _ints(cx, 1, name) if cx.has(1) else None
    return cx.attr(name)


def squeeze(cx):
    x = cx.x(0)
    s = tuple(cx.b.shape(x))
    axes = _axes_input(cx, 13)
    axes = norm_axes(axes, len(s)) if axes else [k for k, d in enumerate(s) if d == 1]
    for a in axes:
        if s[a] != 1:
            raise cx.fail(f"cannot squeeze axis {a} of size {s[a]}")
    return _reshape_to(cx, x, [d for k, d in enumerate(s) if k not in axes])


def unsqueeze(cx):
    x = cx.x(0)
    s = list(cx.b.shape(x))
    axes = _axes_input(cx, 13)
    axes = norm_axes(axes, len(s) + len(axes))
    for a in axes:
        s.insert(a, 1)
    return _reshape_to(cx, x, s)


def concat(cx):
    xs = cx.xs()
    axis = cx.attr("axis")
    return cx.b.concat(*xs, axis=norm_axes([axis], len(cx.b.shape(xs[0])))[0])


def _slice_axis(cx, x: int, axis: int, start: int, stop: int, step: int) -> int:
    """x[..., start:stop:step, ...] on one axis, ONNX clamping rules, any step sign."""
    b = cx.b
    n = b.shape(x)[axis]
    rank = len(b.shape(x))
    if not isinstance(n, int):
        if start == 0 and step == 1 and stop >= INT_MAX // 4:
            return x
        raise cx.fail(f"cannot slice symbolic dimension {n} (only [0:] is allowed)")
    idx = range(*slice(start, stop, step).indices(n))
    if len(idx) == 0:
        raise cx.fail("the slice is empty; nnc does not support empty tensors")
    if step > 0:
        starts, stops, steps = [0] * rank, [None] * rank, [1] * rank
        starts[axis], stops[axis], steps[axis] = idx.start, idx[-1] + 1, step
        return b.slice(x, start=tuple(starts), stop=tuple(stops), step=tuple(steps))
    return b.gather(x, const_node(b, np.asarray(list(idx), dtype=np.int64)), axis=axis)


def slice_(cx):
    x = cx.x(0)
    rank = cx.rank(0)
    starts, ends = _ints(cx, 1, "starts"), _ints(cx, 2, "ends")
    axes = _ints(cx, 3, "axes") if cx.has(3) else list(range(len(starts)))
    steps = _ints(cx, 4, "steps") if cx.has(4) else [1] * len(starts)
    for a, s, e, st in zip(axes, starts, ends, steps):
        if st == 0:
            raise cx.fail("slice step 0")
        x = _slice_axis(cx, x, a % rank, s, e, st)
    return x


def split(cx):
    x = cx.x(0)
    s = cx.b.shape(x)
    axis = norm_axes([cx.attr("axis", 0)], len(s))[0]
    n = s[axis]
    if cx.has(1):
        sizes = _ints(cx, 1, "split")
    elif cx.attr("split") is not None:
        sizes = list(cx.attr("split"))
    else:
        parts = cx.attr("num_outputs", len(cx.node.output))
        if not isinstance(n, int):
            raise cx.fail(f"cannot split symbolic dimension {n}")
        chunk = -(-n // parts)
        sizes = [min(chunk, n - k * chunk) for k in range(parts)]
    outs, start = [], 0
    for size in sizes:
        outs.append(_slice_axis(cx, x, axis, start, start + size, 1))
        start += size
    return outs


def gather(cx):
    b, x, idx = cx.b, cx.x(0), cx.x(1)
    s = b.shape(x)
    axis = norm_axes([cx.attr("axis", 0)], len(s))[0]
    n = s[axis]
    if isinstance(n, int):
        idx = b.where(b.lt(idx, b.scalar(0, b.dtype(idx))), b.add(idx, b.scalar(n, b.dtype(idx))), idx)
    else:
        size = b.size(x, axes=(axis,), dtype=b.dtype(idx))
        idx = b.where(b.lt(idx, b.scalar(0, b.dtype(idx))), b.add(idx, size), idx)
    return b.gather(x, idx, axis=axis)


def _linear_index(cx, idx: int, shape, axis: int) -> int:
    """Flat indices into a tensor of `shape` for `idx` along `axis` and the iota elsewhere."""
    b = cx.b
    dt = b.dtype(idx)
    ishape = tuple(b.shape(idx))
    strides = np.cumprod((list(shape[1:]) + [1])[::-1])[::-1]
    lin = None
    for d in range(len(shape)):
        coord = idx if d == axis else b.iota(axis=d, dtype=dt, shape=ishape)
        term = b.mul(coord, b.scalar(int(strides[d]), dt))
        lin = term if lin is None else b.add(lin, term)
    return lin


def gather_elements(cx):
    b, x, idx = cx.b, cx.x(0), cx.x(1)
    s = cx.static_shape(0, "GatherElements")
    axis = norm_axes([cx.attr("axis", 0)], len(s))[0]
    idx = b.where(b.lt(idx, b.scalar(0, b.dtype(idx))), b.add(idx, b.scalar(s[axis], b.dtype(idx))), idx)
    flat = b.reshape(x, shape=(int(np.prod(s)),))
    return b.gather(flat, _linear_index(cx, idx, s, axis), axis=0)


def scatter_elements(cx):
    """data with data[idx] replaced (reduction none) or combined (add, mul, max, min) with updates."""
    b, x, idx, upd = cx.b, cx.x(0), cx.x(1), cx.x(2)
    s = cx.static_shape(0, "ScatterElements")
    axis = norm_axes([cx.attr("axis", 0)], len(s))[0]
    red = cx.attr("reduction", "none")
    if red not in ("none", "add"):
        raise cx.fail(f"reduction='{red}' is not supported (supported: none, add)")
    idx = b.where(b.lt(idx, b.scalar(0, b.dtype(idx))), b.add(idx, b.scalar(s[axis], b.dtype(idx))), idx)
    total = int(np.prod(s))
    lin = b.reshape(_linear_index(cx, idx, s, axis), shape=(int(np.prod(b.shape(idx))),))
    flat_u = b.reshape(upd, shape=(int(np.prod(b.shape(upd))),))
    added = b.reshape(b.scatter_add(flat_u, lin, axis=0, shape=(total,)), shape=s)
    if red == "add":
        return b.add(x, added)
    ones = b.broadcast_to(b.scalar(1, "i32"), shape=(int(np.prod(b.shape(upd))),))
    hit = b.reshape(b.scatter_add(ones, lin, axis=0, shape=(total,)), shape=s)
    return b.where(b.gt(hit, b.scalar(0, "i32")), added, x)


def _nd_rows(cx, idx: int, dims, what: str) -> int:
    """Row numbers (int) into the dims `dims` flattened, for index tuples along idx's last axis
    (negative entries count from the end of their dim): shape idx.shape[:-1]."""
    b = cx.b
    ishape = tuple(b.shape(idx))
    k, dt = ishape[-1], b.dtype(idx)
    if not isinstance(k, int) or k > len(dims):
        raise cx.fail(f"{what}: indices end in {k} coordinates, the data has {len(dims)} to index")
    strides = np.cumprod((list(dims[1:k]) + [1])[::-1])[::-1]
    rows = None
    for j in range(k):
        start, stop = (0,) * (len(ishape) - 1) + (j,), ishape[:-1] + (j + 1,)
        coord = b.reshape(b.slice(idx, start=start, stop=stop, step=(1,) * len(ishape)), shape=ishape[:-1])
        coord = b.where(b.lt(coord, b.scalar(0, dt)), b.add(coord, b.scalar(dims[j], dt)), coord)
        term = b.mul(coord, b.scalar(int(strides[j]), dt))
        rows = term if rows is None else b.add(rows, term)
    return rows


def gather_nd(cx):
    """data[batch..., idx[..., 0], ..., idx[..., k-1], ...] as one gather of rows of the data
    flattened to [batch x indexed rows, rest]; batch_dims leading axes pair up."""
    b, x, idx = cx.b, cx.x(0), cx.x(1)
    s = cx.static_shape(0, "GatherND")
    ishape = cx.static_shape(1, "GatherND indices")
    bd, k = cx.attr("batch_dims", 0), ishape[-1]
    rows = _nd_rows(cx, idx, s[bd:], "GatherND")
    m, rest = int(np.prod(s[bd:bd + k])), s[bd + k:]
    if bd:   # each batch's rows start at batch number x m
        batch = None
        strides = np.cumprod((list(s[1:bd]) + [1])[::-1])[::-1]
        for d in range(bd):
            term = b.mul(b.iota(axis=d, dtype=b.dtype(idx), shape=ishape[:-1]),
                         b.scalar(int(strides[d]) * m, b.dtype(idx)))
            batch = term if batch is None else b.add(batch, term)
        rows = b.add(rows, batch)
    flat = b.reshape(x, shape=(int(np.prod(s[:bd + k])), int(np.prod(rest))))
    return b.reshape(b.gather(flat, rows, axis=0), shape=ishape[:-1] + tuple(rest))


def scatter_nd(cx):
    """data with the slices at idx's index tuples replaced (reduction none) or added to (add)
    by updates: a scatter_add of update rows into the data flattened to [indexed rows, rest]."""
    b, x, idx, upd = cx.b, cx.x(0), cx.x(1), cx.x(2)
    s = cx.static_shape(0, "ScatterND")
    ishape = cx.static_shape(1, "ScatterND indices")
    red = cx.attr("reduction", "none")
    if red not in ("none", "add"):
        raise cx.fail(f"reduction='{red}' is not supported (supported: none, add)")
    k = ishape[-1]
    m, r, n = int(np.prod(s[:k])), int(np.prod(s[k:])), int(np.prod(ishape[:-1]))
    rows = b.reshape(_nd_rows(cx, idx, s, "ScatterND"), shape=(n,))
    added = b.reshape(b.scatter_add(b.reshape(upd, shape=(n, r)), rows, axis=0, shape=(m, r)), shape=s)
    if red == "add":
        return b.add(x, added)
    hit = b.scatter_add(b.broadcast_to(b.scalar(1, "i32"), shape=(n,)), rows, axis=0, shape=(m,))
    hit = b.reshape(b.broadcast_to(b.reshape(hit, shape=(m, 1)), shape=(m, r)), shape=s)
    return b.where(b.gt(hit, b.scalar(0, "i32")), added, x)


def expand(cx):
    x = cx.x(0)
    shape = _dims(cx, 1, "shape")
    out = broadcast_shapes(tuple(cx.b.shape(x)), tuple(shape))
    return cx.b.broadcast_to(x, shape=out)


def tile(cx):
    x = cx.x(0)
    s = tuple(cx.b.shape(x))
    reps = _ints(cx, 1, "repeats")
    inter = []
    for d in s:
        inter += [1, d]
    y = cx.b.reshape(x, shape=tuple(inter))
    big = []
    for r, d in zip(reps, s):
        big += [r, d]
    y = cx.b.broadcast_to(y, shape=tuple(big))
    return cx.b.reshape(y, shape=tuple(numel((r, d)) for r, d in zip(reps, s)))


def pad(cx):
    b, x = cx.b, cx.x(0)
    rank = cx.rank(0)
    pads = _ints(cx, 1, "pads")
    # constant_value: a number at import time, or a scalar computed at run time
    runtime_value = cx.has(2) and not cx.is_const(2) and not isinstance(cx.value(2), SymInts)
    value = 0 if not cx.has(2) or runtime_value else cx.const(2, "constant_value").item()
    axes = [a % rank for a in _ints(cx, 3, "axes")] if cx.has(3) else list(range(rank))
    mode = cx.attr("mode", "constant")
    lo, hi = [0] * rank, [0] * rank
    for k, a in enumerate(axes):
        lo[a], hi[a] = pads[k], pads[k + len(axes)]
    for a in range(rank):                       # negative pads crop
        if lo[a] < 0 or hi[a] < 0:
            n = cx.static_shape(0, "negative padding")[a]
            x = _slice_axis(cx, x, a, max(-lo[a], 0), n - max(-hi[a], 0), 1)
            lo[a], hi[a] = max(lo[a], 0), max(hi[a], 0)
    if mode == "constant":
        out = b.pad(x, lo=tuple(lo), hi=tuple(hi), interior=(0,) * rank)
        if value != 0 or runtime_value:
            ones = b.broadcast_to(b.scalar(1, "i32"), shape=b.shape(x))
            inside = b.gt(b.pad(ones, lo=tuple(lo), hi=tuple(hi), interior=(0,) * rank), b.scalar(0, "i32"))
            fill = b.reshape(cx.x(2), shape=()) if runtime_value else b.scalar(value, b.dtype(x))
            out = b.where(inside, out, fill)
        return out
    if mode not in ("reflect", "edge", "wrap"):
        raise cx.fail(f"mode='{mode}' is not supported (supported: constant, reflect, edge, wrap)")
    for a in range(rank):
        if lo[a] == hi[a] == 0:
            continue
        n = b.shape(x)[a]
        if not isinstance(n, int):
            raise cx.fail(f"cannot pad symbolic dimension {n}")
        pos = np.arange(-lo[a], n + hi[a])
        if mode == "edge":
            idx = np.clip(pos, 0, n - 1)
        elif mode == "wrap":
            idx = pos % n
        else:
            period = 2 * (n - 1) if n > 1 else 1
            m = np.abs(pos) % period
            idx = np.where(m >= n, period - m, m)
        x = b.gather(x, const_node(b, idx.astype(np.int64)), axis=a)
    return x


def shape(cx):
    s = cx.shape(0)
    start, end = cx.attr("start", 0), cx.attr("end", len(s))
    part = s[slice(start, end)]
    if not all(isinstance(d, int) for d in part):
        return SymInts(part)          # shape arithmetic on it happens at import time (symbolic.py)
    return np.asarray(part, dtype=np.int64)


def size(cx):
    s = cx.shape(0)
    if not all(isinstance(d, int) for d in s):
        return cx.b.cast(cx.b.size(cx.x(0), axes=tuple(range(len(s))), dtype="i64"), dtype="i64")
    return np.asarray(int(np.prod(s)), dtype=np.int64)


def constant_of_shape(cx):
    shape = _dims(cx, 0, "shape")
    value = cx.attr("value")
    value = np.zeros(1, np.float32) if value is None else value.reshape(-1)
    if not all(isinstance(d, int) for d in shape):     # a batch-sized constant: a broadcast scalar
        return cx.b.broadcast_to(const_node(cx.b, value.reshape(())), shape=tuple(shape))
    return np.full(shape, value[0], dtype=value.dtype)


def range_(cx):
    start, limit, delta = (cx.const(i, n) for i, n in enumerate(("start", "limit", "delta")))
    n = max(int(np.ceil((limit - start) / delta)), 0)
    return (start + np.arange(n) * delta).astype(start.dtype)


def one_hot(cx):
    b = cx.b
    idx = cx.x(0)
    depth = int(cx.const(1, "depth").reshape(-1)[0])
    values = cx.x(2)
    rank = len(b.shape(idx))
    axis = norm_axes([cx.attr("axis", -1)], rank + 1)[0]
    dt = b.dtype(idx)
    if dt not in ("i32", "i64"):
        idx = b.cast(idx, dtype="i64")
        dt = "i64"
    idx = b.where(b.lt(idx, b.scalar(0, dt)), b.add(idx, b.scalar(depth, dt)), idx)
    s = list(b.shape(idx))
    s.insert(axis, 1)
    idx = b.reshape(idx, shape=tuple(s))
    full = list(s)
    full[axis] = depth
    hit = b.eq(b.broadcast_to(idx, shape=tuple(full)), b.iota(axis=axis, dtype=dt, shape=tuple(full)))
    off = b.reshape(b.slice(values, start=(0,), stop=(1,), step=(1,)), shape=())
    on = b.reshape(b.slice(values, start=(1,), stop=(2,), step=(1,)), shape=())
    return b.where(hit, on, off)


def cumsum(cx):
    """A matmul with a triangular 0/1 matrix along the axis (moved last)."""
    b, x = cx.b, cx.x(0)
    s = list(b.shape(x))
    axis = int(cx.const(1, "axis").reshape(-1)[0]) % len(s)
    n = s[axis]
    if not isinstance(n, int):
        raise cx.fail(f"CumSum over symbolic dimension {n}")
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")     # out[j] = sum_i x[i] * m[i, j]
    rev, exc = cx.attr("reverse", 0), cx.attr("exclusive", 0)
    m = (i >= j) if rev else (i <= j)
    if exc:
        m &= i != j
    from .importer import NP_DTYPES
    mat = const_node(b, m.astype(NP_DTYPES[b.dtype(x)]))
    perm = [k for k in range(len(s)) if k != axis] + [axis]
    inv = list(np.argsort(perm))
    xt = b.transpose(x, perm=tuple(perm)) if axis != len(s) - 1 else x
    y = b.matmul(xt if len(s) > 1 else b.reshape(xt, shape=(1, n)), mat)
    if len(s) == 1:
        return b.reshape(y, shape=(n,))
    return b.transpose(y, perm=tuple(int(p) for p in inv)) if axis != len(s) - 1 else y


def depth_to_space(cx, inverse: bool = False):
    b, x = cx.b, cx.x(0)
    n, c, h, w = b.shape(x)
    bs = cx.attr("blocksize")
    if inverse:
        y = b.reshape(x, shape=(n, c, h // bs, bs, w // bs, bs))
        crd = cx.attr("mode", "DCR") == "CRD"        # SpaceToDepth's mode (opset 25): channel-major blocks
        y = b.transpose(y, perm=(0, 1, 3, 5, 2, 4) if crd else (0, 3, 5, 1, 2, 4))
        return b.reshape(y, shape=(n, c * bs * bs, h // bs, w // bs))
    if cx.attr("mode", "DCR") == "DCR":
        y = b.reshape(x, shape=(n, bs, bs, c // (bs * bs), h, w))
        y = b.transpose(y, perm=(0, 3, 4, 1, 5, 2))
    else:
        y = b.reshape(x, shape=(n, c // (bs * bs), bs, bs, h, w))
        y = b.transpose(y, perm=(0, 1, 4, 2, 5, 3))
    return b.reshape(y, shape=(n, c // (bs * bs), h * bs, w * bs))


def trilu(cx):
    b, x = cx.b, cx.x(0)
    s = cx.static_shape(0, "Trilu")
    k = int(cx.const(1, "k").reshape(-1)[0]) if cx.has(1) else 0
    i, j = np.meshgrid(np.arange(s[-2]), np.arange(s[-1]), indexing="ij")
    keep = (j - i >= k) if cx.attr("upper", 1) else (j - i <= k)
    zero = b.scalar(0, b.dtype(x)) if b.dtype(x) != "bool" else b.scalar(False, "bool")
    return b.where(const_node(b, keep), x, zero)


def eye_like(cx):
    from .importer import dtype_of
    s = cx.static_shape(0, "EyeLike")
    dt = cx.attr("dtype")
    from .importer import NP_DTYPES
    np_dt = NP_DTYPES[dtype_of(dt, cx.where)] if dt is not None else NP_DTYPES[cx.dtype(0)]
    return np.eye(s[0], s[1], k=cx.attr("k", 0), dtype=np_dt)


OPS = {
    "Reshape": reshape, "Flatten": flatten, "Transpose": transpose, "Squeeze": squeeze, "Unsqueeze": unsqueeze,
    "Concat": concat, "Slice": slice_, "Split": split, "Gather": gather, "GatherElements": gather_elements,
    "ScatterElements": scatter_elements, "GatherND": gather_nd, "ScatterND": scatter_nd, "Expand": expand, "Tile": tile, "Pad": pad, "Shape": shape,
    "Size": size, "ConstantOfShape": constant_of_shape, "Range": range_, "OneHot": one_hot, "CumSum": cumsum,
    "DepthToSpace": depth_to_space, "SpaceToDepth": lambda cx: depth_to_space(cx, inverse=True),
    "Trilu": trilu, "EyeLike": eye_like,
}
