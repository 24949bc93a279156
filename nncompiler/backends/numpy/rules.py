"""numpy backend's rule table: primitive -> Python/numpy expression.

`OPS` maps every primitive to a function (node, operand expressions, ctx) ->
expression; `OUT_OPS` maps the ones that can compute into a given buffer (the
memory plan's workspaces, or a dead operand) to (operands, buffer) -> expression.
`PRELUDE` holds the helpers the generated module calls. The formulas follow the
primitive table's `formula` entries (ir/primitives.py): sigmoid's stable form,
numpy's own power/sign/division, which are the reference the other backends meet.
"""
from __future__ import annotations

import math
from typing import Callable

from ...ir.graph import Graph, Node
from ...ir.primitives import norm_axes
from ...ir.reductions import fold_rows
from ...ir.shapes import NUMPY_DTYPE

# Helpers the generated module may call; kept tiny and numerically careful.
PRELUDE = '''\
import numpy as np
from numpy import inf, nan
from nncompiler.backends.numpy.loop import run_scan as _run_scan, scan_body as _scan_body
from nncompiler.backends.numpy.loopgen import loop_function as _loop_function
from nncompiler.ir.windows import reduce_window as _reduce_window, select_scatter as _select_scatter
from nncompiler.ir.convs import conv as _conv, conv_and_cols as _conv_and_cols, conv_from_cols as _conv_from_cols
from nncompiler.ir.products import matmul as _matmul
from nncompiler.ir.pools import max_and_index as _max_pool_and_index, scatter as _max_pool_scatter
from nncompiler.ir.reductions import add_reduce as _add_reduce

def _sigmoid(x, out=None):
    # the table's formula: e = exp(-|x|); (x >= 0 ? 1 : e) / (1 + e), never overflowing;
    # (x >= 0 ? 1 : e) is max(x >= 0, e) (np.where and np.heaviside are ~10x slower passes)
    if type(x) is not np.ndarray or not x.ndim:   # numpy scalars take no out=
        e = np.exp(-np.abs(x))
        return (np.maximum(e, x >= 0) / (e + 1)).astype(x.dtype, copy=False)
    # before x is overwritten (out may be x). On small blocks (an LSTM step's gates, once per
    # time step) a call costs more than its arithmetic, and max(sign(x), e) is the same
    # numerator in one call instead of two: 1 where x > 0 (e <= 1), e where x < 0
    # (e >= 0 > -1), 1 at x = +-0 (e = 1), NaN where x is. On large arrays np.sign's slower
    # per-element loop costs more than the call it saves
    if x.size <= 4096:
        num = np.sign(x)
    else:
        num = np.greater_equal(x, 0, out=np.empty(x.shape, x.dtype), casting="unsafe")
    e = np.abs(x, out=out)
    np.negative(e, out=e)
    np.exp(e, out=e)
    np.maximum(num, e, out=num)
    np.add(e, 1, out=e)
    return np.divide(num, e, out=e)

def _where(c, x, y, out):
    if out is not y:
        np.copyto(out, y)
    np.copyto(out, x, where=c)
    return out

_BITS = {4: (np.uint32, np.uint32(0xFFFFFFFF)), 8: (np.uint64, np.uint64(0xFFFFFFFFFFFFFFFF))}

def _where0(c, x, out):
    # where(c, x, 0.0) without a branch per element (a masked copy mispredicts on random
    # masks, ~10x slower): x's bits AND an all-ones or all-zeros word; exact, NaN and inf included
    bits, ones = _BITS[out.dtype.itemsize]
    mask = np.multiply(c, ones, dtype=bits)
    np.bitwise_and(np.asarray(x).view(bits), mask, out=out.view(bits))
    return out

def _cast(x, out):
    np.copyto(out, x, casting="unsafe")
    return out

def _buf(ws, key, shape, dtype):
    # a workspace buffer, kept across calls while the shape stays
    a = ws.get(key)
    if a is None or a.shape != shape:
        a = ws[key] = np.empty(shape, dtype)
    return a

def _buf_like(ws, key, like, dtype):
    # a workspace buffer in the memory order of `like`, an operand of the same shape (kept
    # across calls while like's layout stays): see codegen._time_major_values
    kept = ws.get(key)
    if kept is None or kept[1] != (like.shape, like.strides):
        kept = ws[key] = (np.empty_like(like, dtype=dtype), (like.shape, like.strides))
    return kept[0]

def _buf_major(ws, key, shape, dtype, axis):
    # a workspace buffer of `shape` whose memory has `axis` outermost (a scan reads it as a
    # time-major sequence without copying it): see codegen._scan_major_values
    a = ws.get(key)
    if a is None or a.shape != shape:
        order = (axis,) + tuple(i for i in range(len(shape)) if i != axis)
        a = ws[key] = np.empty([shape[i] for i in order], dtype).transpose(np.argsort(order))
    return a

def _outbuf(ws, key, shape, dtype):
    # an output buffer: last call's is reused only when nobody else holds it any more
    a = ws.get(key)
    if a is None or a.shape != shape or _refs(a) > 3:
        a = ws[key] = np.empty(shape, dtype)
    return a

from sys import getrefcount as _refs

def _pad(x, lo, hi, interior):
    shape = tuple(l + h + n + max(n - 1, 0) * k for n, l, h, k in zip(x.shape, lo, hi, interior))
    out = np.zeros(shape, dtype=x.dtype)
    out[tuple(slice(l, l + n + max(n - 1, 0) * k, k + 1) for n, l, k in zip(x.shape, lo, interior))] = x
    return out

_IOTAS = {}

def _iota(shape, axis, dtype):
    # read-only and memoised: a one-hot's index grid is the same every step
    key = (shape, axis, dtype)
    r = _IOTAS.get(key)
    if r is None:
        r = np.arange(shape[axis], dtype=dtype).reshape([-1 if i == axis else 1 for i in range(len(shape))])
        r = _IOTAS[key] = np.broadcast_to(r, shape)
    return r

def _swish(x, out=None, tmp=None):
    # x * sigmoid(x) as x / (1 + exp(-x)): four passes, no mask. It equals the table's stable
    # sigmoid times x to rounding, except below x = -88.7 where exp(-x) overflows and the result
    # is -0 instead of a value under 3e-37 in magnitude (IREE flushes exp there too). The stable
    # form costs a masked multiply (6x slower in numpy) on bench case D for that tail alone.
    with np.errstate(over="ignore"):
        t = np.negative(x, out=tmp)
        if not isinstance(t, np.ndarray):   # a rank-0 x gives numpy scalars, which take no out=
            return np.divide(x, np.add(np.exp(t), 1))
        np.exp(t, out=t)
    np.add(t, 1, out=t)
    return np.divide(x, t, out=out)

def _uniform(seed, low, high, shape, dtype):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)

def _rng_uniform(key, seed, shape, dtype):
    return np.random.default_rng([seed, int(key) & 0xFFFFFFFF]).random(shape, dtype=dtype)

def _normal(seed, mean, stddev, shape, dtype):
    return np.random.default_rng(seed).normal(mean, stddev, size=shape).astype(dtype)

_EYES = {}

def _xent_parts(z, y, grad):
    # (per-row loss, softmax - one_hot or None): the one-hot form, with max, exp and sum shared
    # by the two. The one-hot rows are taken from a cached identity with a zero row appended;
    # a label outside [0, c) (negative ones wrap to huge unsigned values) is clipped onto
    # that row, so its loss and gradient are 0. Everything stays float32, and ufunc methods
    # replace np.max/np.sum: on tiny arrays the cost is the number of calls.
    c = z.shape[-1]
    eye = _EYES.get((c, z.dtype))
    if eye is None:
        eye = _EYES[(c, z.dtype)] = np.eye(c + 1, c, dtype=z.dtype)
    hot = np.take(eye, y.astype(np.uint32), axis=0, mode="clip")
    s = z - np.maximum.reduce(z, axis=-1, keepdims=True)
    e = np.exp(s)
    total = np.add.reduce(e, axis=-1, keepdims=True)
    np.subtract(s, np.log(total), out=s)
    np.multiply(s, hot, out=s)
    loss = np.negative(np.add.reduce(s, axis=-1))
    if not grad:
        return loss, None
    np.multiply(e, np.divide(np.add.reduce(hot, axis=-1, keepdims=True), total), out=e)
    return loss, np.subtract(e, hot, out=e)

def _sparse_xent(z, y):
    return _xent_parts(z, y, False)[0]

def _sparse_xent_grad(z, y):
    return _xent_parts(z, y, True)[1]

def _sparse_xent_and_grad(z, y):
    return _xent_parts(z, y, True)

def _scatter_add(u, idx, axis, shape):
    axis = axis % len(shape)
    out = np.zeros(shape, dtype=u.dtype)
    np.add.at(out, (slice(None),) * axis + (np.clip(idx, 0, shape[axis] - 1),), u)
    return out
'''


def _axes(n: Node, g: Graph) -> tuple[int, ...]:
    return norm_axes(n.attr["axes"], g[n.inputs[0]].type.rank)


def _slice_expr(n: Node, x: str) -> str:
    a = n.attr
    if not a["start"]:  # a rank-0 slice is the value itself
        return x
    parts = []
    for start, stop, step in zip(a["start"], a["stop"], a["step"]):
        s = f"{start or ''}:{'' if stop is None else stop}"
        parts.append(s + (f":{step}" if step != 1 else ""))
    return f"{x}[{', '.join(parts) + (',' if len(parts) == 1 else '')}]"


def _matmul_expr(n: Node, a: list[str], c) -> str:
    """`a @ b`, or ir/products.py's matmul where it may take a blocked path (a 2-d float32
    product with one side of 1024 or more and the other two multiplying to at most 1024). A
    symbolic side is tested in the generated code, so a small batch keeps the plain `@` and
    saves the call (bench B's matmuls are a few microseconds each)."""
    plain = f"{a[0]} @ {a[1]}"
    x, y = c.graph[n.inputs[0]], c.graph[n.inputs[1]]
    if n.dtype != "f32" or len(x.shape) != 2 or len(y.shape) != 2 or c.precision != "fp32":
        return plain       # tf32/bf16 operands are rounding calls, not to be written out twice
    (m, k), nf = x.shape, y.shape[1]

    def dim(d) -> str:             # a side's expression in the generated code: "(s_B,)" -> "s_B"
        return c.shape((d,))[1:-2]
    tests = []                     # one per blocked path that the static sides allow
    for long, short in ((k, (m, nf)), (m, (k, nf)), (nf, (m, k))):
        static = all(isinstance(d, int) for d in short)
        if isinstance(long, int) and long < 1024 or static and math.prod(short) > 1024:
            continue
        tests.append(" and ".join(([] if isinstance(long, int) else [f"{dim(long)} >= 1024"])
                                  + ([] if static else [f"{dim(short[0])} * {dim(short[1])} <= 1024"])))
    if not tests:
        return plain
    if any(t == "" for t in tests):
        return f"_matmul({a[0]}, {a[1]})"
    return f"(_matmul({a[0]}, {a[1]}) if {' or '.join(f'({t})' for t in tests)} else {plain})"


def _sum_expr(n: Node, a: list[str], c) -> str:
    """ufunc.reduce directly (np.sum's wrapper costs more than the work on small arrays), or
    ir/reductions.py's folded sum where it may fold (many rows, few values kept: a bias
    gradient); a symbolic row count is tested in the generated code, so a small batch
    keeps the plain reduce and saves the call."""
    axes, keep = _axes(n, c.graph), bool(n.attr.get("keepdims"))
    if n.dtype not in ("f32", "f64"):
        return f"np.add.reduce({a[0]}, axis={axes}, keepdims={keep}, dtype={np_dtype(n)})"
    plain = f"np.add.reduce({a[0]}, axis={axes}, keepdims={keep})"
    folded = f"_add_reduce({a[0]}, {axes}, {keep})"
    shape, m = c.graph[n.inputs[0]].shape, len(axes)
    if not 0 < m < len(shape) or axes != tuple(range(m)):
        return plain
    kept, rows = shape[m:], shape[:m]
    if not all(isinstance(d, int) for d in kept):
        return folded                  # the helper decides at run time
    k = fold_rows(math.prod(kept))
    if k == 1:
        return plain
    if all(isinstance(d, int) for d in rows):
        return folded if math.prod(rows) >= 2 * k else plain
    return f"({folded} if {' * '.join(c.shape((d,))[1:-2] for d in rows)} >= {2 * k} else {plain})"


def np_dtype(n: Node) -> str:
    return f"np.{NUMPY_DTYPE[n.dtype]}"


_UFUNC = {"neg": "negative", "exp": "exp", "log": "log", "log1p": "log1p", "sqrt": "sqrt", "tanh": "tanh",
          "abs": "absolute", "sign": "sign", "add": "add", "sub": "subtract", "mul": "multiply",
          "div": "divide", "pow": "power", "maximum": "maximum", "minimum": "minimum", "lt": "less",
          "le": "less_equal", "gt": "greater", "ge": "greater_equal", "eq": "equal", "ne": "not_equal"}

# primitive -> function(operand expressions, buffer expression) -> expression writing into the buffer
OUT_OPS: dict[str, Callable] = {op: (lambda f: lambda a, out: f"np.{f}({', '.join(a)}, out={out})")(f)
                                for op, f in _UFUNC.items()}
OUT_OPS.update({
    "sigmoid": lambda a, out: f"_sigmoid({a[0]}, {out})",
    "where": lambda a, out: f"_where({a[0]}, {a[1]}, {a[2]}, {out})",
    "cast": lambda a, out: f"_cast({a[0]}, {out})",
    "matmul": lambda a, out: f"_matmul({a[0]}, {a[1]}, {out})",
})

# primitive -> function(node, operand expressions, ctx) -> expression string
OPS: dict[str, Callable] = {
    "neg": lambda n, a, c: f"-{a[0]}",
    "exp": lambda n, a, c: f"np.exp({a[0]})",
    "log": lambda n, a, c: f"np.log({a[0]})",
    "log1p": lambda n, a, c: f"np.log1p({a[0]})",
    "sqrt": lambda n, a, c: f"np.sqrt({a[0]})",
    "tanh": lambda n, a, c: f"np.tanh({a[0]})",
    "sigmoid": lambda n, a, c: f"_sigmoid({a[0]})",
    "abs": lambda n, a, c: f"np.abs({a[0]})",
    "sign": lambda n, a, c: f"np.sign({a[0]})",
    "stop_gradient": lambda n, a, c: a[0],
    "add": lambda n, a, c: f"{a[0]} + {a[1]}",
    "sub": lambda n, a, c: f"{a[0]} - {a[1]}",
    "mul": lambda n, a, c: f"{a[0]} * {a[1]}",
    "div": lambda n, a, c: f"{a[0]} / {a[1]}",
    "pow": lambda n, a, c: f"np.power({a[0]}, {a[1]})",
    "maximum": lambda n, a, c: f"np.maximum({a[0]}, {a[1]})",
    "minimum": lambda n, a, c: f"np.minimum({a[0]}, {a[1]})",
    "lt": lambda n, a, c: f"{a[0]} < {a[1]}",
    "le": lambda n, a, c: f"{a[0]} <= {a[1]}",
    "gt": lambda n, a, c: f"{a[0]} > {a[1]}",
    "ge": lambda n, a, c: f"{a[0]} >= {a[1]}",
    "eq": lambda n, a, c: f"{a[0]} == {a[1]}",
    "ne": lambda n, a, c: f"{a[0]} != {a[1]}",
    "where": lambda n, a, c: f"np.where({a[0]}, {a[1]}, {a[2]})",
    "cast": lambda n, a, c: f"{a[0]}.astype({np_dtype(n)})",
    "sum": _sum_expr,
    "max": lambda n, a, c: f"np.maximum.reduce({a[0]}, axis={_axes(n, c.graph)}, keepdims={bool(n.attr.get('keepdims'))})",
    "argmax": lambda n, a, c: (f"np.argmax({a[0]}, axis={n.attr['axis']}, "
                               f"keepdims={bool(n.attr.get('keepdims'))}).astype(np.int32)"),
    "size": lambda n, a, c: f"{np_dtype(n)}({' * '.join(f'{a[0]}.shape[{i}]' for i in _axes(n, c.graph)) or '1'})",
    "matmul": _matmul_expr,
    "reshape": lambda n, a, c: f"{a[0]}.reshape({c.shape(n.attr['shape'])})",
    "transpose": lambda n, a, c: f"{a[0]}.T" if tuple(n.attr["perm"]) == (1, 0) else
                                 f"{a[0]}.transpose({tuple(n.attr['perm'])})",
    "broadcast_to": lambda n, a, c: f"np.broadcast_to({a[0]}, {c.shape(n.attr['shape'])})",
    "slice": lambda n, a, c: _slice_expr(n, a[0]),
    "pad": lambda n, a, c: f"_pad({a[0]}, {tuple(n.attr['lo'])}, {tuple(n.attr['hi'])}, {tuple(n.attr['interior'])})",
    "concat": lambda n, a, c: f"np.concatenate([{', '.join(a)}], axis={n.attr['axis']})",
    "gather": lambda n, a, c: f"np.take({a[0]}, {a[1]}, axis={n.attr['axis']}, mode='clip')",
    "sparse_xent": lambda n, a, c: f"_sparse_xent({a[0]}, {a[1]})",
    "sparse_xent_grad": lambda n, a, c: f"_sparse_xent_grad({a[0]}, {a[1]})",
    "scatter_add": lambda n, a, c: f"_scatter_add({a[0]}, {a[1]}, {n.attr['axis']}, {c.shape(n.attr['shape'])})",
    "conv": lambda n, a, c: (f"_conv({a[0]}, {a[1]}, {tuple(n.attr['stride'])}, {tuple(n.attr['padding'])}, "
                             f"{tuple(n.attr['dilation'])}, {n.attr['groups']})"),
    "reduce_window": lambda n, a, c: (f"_reduce_window({a[0]}, {n.attr['kind']!r}, {tuple(n.attr['window'])}, "
                                      f"{tuple(n.attr['stride'])}, {tuple(n.attr['padding'])})"),
    "select_scatter": lambda n, a, c: (f"_select_scatter({a[0]}, {a[1]}, {tuple(n.attr['window'])}, "
                                       f"{tuple(n.attr['stride'])}, {tuple(n.attr['padding'])})"),
    "const": lambda n, a, c: c.constant(n),
    "scan": lambda n, a, c: c.scan(n, a),
    "scan_out": lambda n, a, c: f"{a[0]}[{n.attr['index']}]",
    "iota": lambda n, a, c: f"_iota({c.shape(n.shape)}, {n.attr['axis']}, {np_dtype(n)})",
    "random_uniform": lambda n, a, c: (f"_uniform({n.attr['seed']}, {n.attr['low']!r}, {n.attr['high']!r}, "
                                       f"{c.shape(n.shape)}, {np_dtype(n)})"),
    "rng_uniform": lambda n, a, c: f"_rng_uniform({a[0]}, {n.attr['seed']}, {c.shape(n.shape)}, {np_dtype(n)})",
    "random_normal": lambda n, a, c: (f"_normal({n.attr['seed']}, {n.attr['mean']!r}, {n.attr['stddev']!r}, "
                                      f"{c.shape(n.shape)}, {np_dtype(n)})"),
}

# primitives with no expression: generate() handles them itself
STRUCTURAL = {"arg": "a parameter of the generated function"}
