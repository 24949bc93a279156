"""The primitive table: every op the IR knows, with its type rule.

This table is the only contract between the front end and the backends.
Layers, activations, losses and optimizers are compositions of these; a
backend implements these and nothing else. A new primitive is one row here,
one VJP rule in autodiff/vjp.py and one template per backend.

Kinds group ops the way fusion and codegen think about them:
  source    no tensor inputs (arguments, constants, iota, random)
  unary     elementwise, one input, same type out
  binary    elementwise with numpy broadcasting, same dtype in, same dtype out
  compare   elementwise with broadcasting, bool out
  select    where(cond, a, b)
  reduce    over `axes`, optional `keepdims`
  movement  reshape / transpose / broadcast_to / slice / pad / concat / gather / scatter_add
  matmul    batched matrix product
  window    convolution and windowed reductions over the spatial axes of [N, *spatial, C]
  control   `scan` (a loop whose body is a Graph) and `scan_out` (reads one of its results)

Besides its type rule, each entry declares once the properties that passes and
backends would otherwise keep as their own lists of op names (`commutative`,
`view`, `overwrites`, `identity`), and, for the ops whose numerics are easy to
get subtly different, the one `formula` every backend's rule follows (and the
cross-backend test checks at extreme values). `docs/design.md` lists every place
a new primitive needs an edit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import ShapeError
from .shapes import (FLOAT_DTYPES, Dim, TensorType, broadcast_shapes, canon_dim, dim_add,
                     fmt_shape, numel)


@dataclass(frozen=True)
class Primitive:
    name: str
    kind: str
    arity: int | None            # None: variadic
    attrs: tuple[str, ...]       # attribute names, in printing order
    infer: Callable[[list[TensorType], dict], TensorType]
    differentiable: bool = True
    # a op b == b op a (CSE sorts the operands of these)
    commutative: bool = False
    # the result only re-indexes its first operand: a backend may return a view of it
    view: bool = False
    # operands whose buffer the result may be computed into once they are dead: every
    # operand of an elementwise op (output element k reads only element k of each)
    overwrites: tuple[int, ...] = ()
    # a reduction's starting value: "zero" (sum) or "lowest" (max: -inf, or the dtype's minimum)
    identity: str | None = None
    # the canonical formula, where backends could plausibly disagree; every rule follows it
    formula: str = ""
    # passes/fold.py may compute it at compile time from constant operands: not an argument
    # (known only at run time) nor a random draw (each backend draws its own stream, so a
    # folded value would pin the numpy interpreter's)
    foldable: bool = True

    @property
    def elementwise(self) -> bool:
        return self.kind in ELEMENTWISE_KINDS


def _norm_axes(axes, rank: int) -> tuple[int, ...]:
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise ShapeError(f"axis {a} is out of range for a tensor of rank {rank}")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ShapeError(f"repeated axis in {list(axes)}")
    return tuple(sorted(out))


def norm_axes(axes, rank: int) -> tuple[int, ...]:
    """Axes attribute -> sorted non-negative tuple (None means all axes)."""
    if axes is None:
        return tuple(range(rank))
    if isinstance(axes, int):
        axes = (axes,)
    return _norm_axes(tuple(axes), rank)


# ---- type rules -------------------------------------------------------------

def _source(ts, attrs):
    return TensorType(attrs["dtype"], tuple(attrs["shape"]))


def _const(ts, attrs):
    t = _source(ts, attrs)
    value, shape = attrs["value"], t.shape
    for axis, d in enumerate(shape):  # the nested value must have the declared shape
        if not isinstance(value, tuple) or (isinstance(d, int) and len(value) != d):
            raise ShapeError(f"constant value does not match its shape {fmt_shape(shape)} at axis {axis}")
        value = value[0] if value else ()
    if isinstance(value, tuple) and shape and all(isinstance(d, int) and d > 0 for d in shape):
        raise ShapeError(f"constant value is nested deeper than its shape {fmt_shape(shape)}")
    if not shape and isinstance(value, tuple):
        raise ShapeError("a scalar constant's value must be a number")
    return t


def _unary_float(ts, attrs):
    (t,) = ts
    if t.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"expects a float tensor, got {t.dtype}")
    return t


def _unary_any(ts, attrs):
    return ts[0]


def _binary(ts, attrs):
    a, b = ts
    if a.dtype != b.dtype:
        raise ShapeError(f"dtype mismatch: {a.dtype} and {b.dtype}")
    return TensorType(a.dtype, broadcast_shapes(a.shape, b.shape))


def _binary_float(ts, attrs):
    out = _binary(ts, attrs)
    if out.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"expects float tensors, got {out.dtype}")
    return out


def _compare(ts, attrs):
    return TensorType("bool", _binary(ts, attrs).shape)


def _where(ts, attrs):
    c, a, b = ts
    if c.dtype != "bool":
        raise ShapeError(f"condition must be bool, got {c.dtype}")
    if a.dtype != b.dtype:
        raise ShapeError(f"dtype mismatch: {a.dtype} and {b.dtype}")
    return TensorType(a.dtype, broadcast_shapes(c.shape, broadcast_shapes(a.shape, b.shape)))


def _cast(ts, attrs):
    return TensorType(attrs["dtype"], ts[0].shape)


def _reduced_shape(t: TensorType, attrs):
    axes = norm_axes(attrs["axes"], t.rank)
    if attrs.get("keepdims"):
        return tuple(1 if i in axes else d for i, d in enumerate(t.shape))
    return tuple(d for i, d in enumerate(t.shape) if i not in axes)


def _reduce(ts, attrs):
    t = ts[0]
    return TensorType(t.dtype, _reduced_shape(t, attrs))


def _argmax(ts, attrs):
    t = ts[0]
    return TensorType("i32", _reduced_shape(t, {"axes": [attrs["axis"]], "keepdims": attrs.get("keepdims")}))


def _size(ts, attrs):
    norm_axes(attrs["axes"], ts[0].rank)  # validates
    return TensorType(attrs["dtype"], ())


def _matmul(ts, attrs):
    a, b = ts
    if a.dtype != b.dtype:
        raise ShapeError(f"matmul dtype mismatch: {a.dtype} and {b.dtype}")
    if a.rank < 2 or b.rank < 2:
        raise ShapeError("matmul operands must have rank >= 2")
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul inner dimensions differ: {fmt_shape(a.shape)} @ {fmt_shape(b.shape)}")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return TensorType(a.dtype, batch + (a.shape[-2], b.shape[-1]))


def _reshape(ts, attrs):
    t = ts[0]
    shape = tuple(canon_dim(d) for d in attrs["shape"])
    if numel(shape) != numel(t.shape):
        raise ShapeError(f"cannot reshape {fmt_shape(t.shape)} ({numel(t.shape)} elements) "
                         f"to {fmt_shape(shape)} ({numel(shape)} elements)")
    return TensorType(t.dtype, shape)


def _transpose(ts, attrs):
    t = ts[0]
    perm = tuple(attrs["perm"])
    if sorted(perm) != list(range(t.rank)):
        raise ShapeError(f"bad permutation {list(perm)} for rank {t.rank}")
    return TensorType(t.dtype, tuple(t.shape[p] for p in perm))


def _broadcast_to(ts, attrs):
    t = ts[0]
    shape = tuple(canon_dim(d) for d in attrs["shape"])
    if broadcast_shapes(t.shape, shape) != shape:
        raise ShapeError(f"cannot broadcast {fmt_shape(t.shape)} to {fmt_shape(shape)}")
    return TensorType(t.dtype, shape)


def slice_len(n: Dim, start: int, stop: int | None, step: int) -> Dim:
    """Length of range(start, stop, step) over a dim of size n (start, stop already non-negative or None)."""
    if isinstance(n, int):
        return len(range(*slice(start, stop, step).indices(n)))
    if stop is None and start == 0 and step == 1:
        return n
    if stop is None:
        raise ShapeError(f"cannot slice symbolic dimension {n} from {start}")
    return len(range(start, stop, step))


def _slice(ts, attrs):
    t = ts[0]
    starts, stops, steps = attrs["start"], attrs["stop"], attrs["step"]
    if not len(starts) == len(stops) == len(steps) == t.rank:
        raise ShapeError("slice needs start, stop and step for every axis")
    dims = []
    for n, a, b, s in zip(t.shape, starts, stops, steps):
        if s <= 0:
            raise ShapeError("slice steps must be positive in the IR")
        if not isinstance(a, int) or a < 0 or (b is not None and b < a):
            raise ShapeError(f"slice bounds must satisfy 0 <= start <= stop, got start={a} stop={b}")
        dims.append(slice_len(n, a, b, s))
    return TensorType(t.dtype, tuple(dims))


def _pad(ts, attrs):
    t = ts[0]
    lo, hi, interior = attrs["lo"], attrs["hi"], attrs["interior"]
    dims = []
    for n, a, b, k in zip(t.shape, lo, hi, interior):
        if isinstance(n, int):
            dims.append(a + b + n + max(n - 1, 0) * k)
        elif a == b == k == 0:
            dims.append(n)
        else:
            raise ShapeError(f"cannot pad symbolic dimension {n}")
    return TensorType(t.dtype, tuple(dims))


def _concat(ts, attrs):
    if not ts:
        raise ShapeError("concat needs at least one tensor")
    first = ts[0]
    axis = norm_axes([attrs["axis"]], first.rank)[0]
    total: Dim = 0
    for t in ts:
        if t.dtype != first.dtype or t.rank != first.rank:
            raise ShapeError(f"concat operands differ: {first} and {t}")
        for i, (x, y) in enumerate(zip(first.shape, t.shape)):
            if i != axis and x != y:
                raise ShapeError(f"concat operands differ off axis {axis}: {first} and {t}")
        d = t.shape[axis]
        total = dim_add(total, d)
    return TensorType(first.dtype, first.shape[:axis] + (total,) + first.shape[axis + 1:])


def _int_indices(t: TensorType, op: str):
    if t.dtype not in ("i32", "i64"):
        raise ShapeError(f"{op} indices must be i32 or i64, got {t.dtype}")


def _gather(ts, attrs):
    """np.take(x, indices, axis): x.shape[:axis] + indices.shape + x.shape[axis+1:].
    Indices outside [0, n) are clamped to it (as XLA's gather), never an error."""
    x, idx = ts
    _int_indices(idx, "gather")
    axis = norm_axes([attrs["axis"]], x.rank)[0]
    return TensorType(x.dtype, x.shape[:axis] + idx.shape + x.shape[axis + 1:])


def _sparse_xent_type(ts, grad: bool):
    """Softmax cross-entropy of logits z [..., C] against integer labels [...]:
    sparse_xent is -log(softmax(z))[label] per row ([...]), sparse_xent_grad its gradient
    softmax(z) - one_hot(label) ([..., C]); a label outside [0, C) gives a row of zeros in both
    (the one-hot formulation's values). Fused, so a backend can compute each in a handful of
    operations; passes/expand_fused.py expands them into the one-hot form for the others."""
    z, y = ts
    name = "sparse_xent_grad" if grad else "sparse_xent"
    if z.dtype not in FLOAT_DTYPES or not z.rank:
        raise ShapeError(f"{name}: logits must be floats of rank >= 1, got {z}")
    _int_indices(y, name)
    if tuple(y.shape) != tuple(z.shape[:-1]):
        raise ShapeError(f"{name}: labels {fmt_shape(y.shape)} do not match logits {fmt_shape(z.shape)}")
    return z if grad else TensorType(z.dtype, z.shape[:-1])


def _scatter_add(ts, attrs):
    """The transpose of gather: zeros(shape), then out[..., indices[j], ...] += updates[..., j, ...]
    along `axis` of `shape` (indices clamped to [0, n) like gather's)."""
    u, idx = ts
    _int_indices(idx, "scatter_add")
    shape = tuple(canon_dim(d) for d in attrs["shape"])
    axis = norm_axes([attrs["axis"]], len(shape))[0]
    want = shape[:axis] + idx.shape + shape[axis + 1:]
    if tuple(u.shape) != want:
        raise ShapeError(f"scatter_add updates have shape {fmt_shape(u.shape)}, expected {fmt_shape(want)}")
    return TensorType(u.dtype, shape)


def _window_attrs(n: int, attrs, what: str):
    """Validated per-spatial-axis (stride, ((lo, hi), ...)) of a window op over n spatial axes."""
    stride, padding = tuple(attrs["stride"]), tuple(tuple(p) for p in attrs["padding"])
    if len(stride) != n or len(padding) != n or any(len(p) != 2 for p in padding):
        raise ShapeError(f"{what} needs a stride and a (lo, hi) padding pair for each of its {n} spatial axes")
    if any(not isinstance(s, int) or s < 1 for s in stride):
        raise ShapeError(f"{what} strides must be positive, got {list(stride)}")
    if any(not isinstance(v, int) or v < 0 for p in padding for v in p):
        raise ShapeError(f"{what} padding must be non-negative, got {[list(p) for p in padding]}")
    return stride, padding


def window_out(size: int, span: int, stride: int, pad: tuple[int, int]) -> int:
    """Output length of a window of (dilated) extent `span` sliding over a padded axis."""
    return (size + pad[0] + pad[1] - span) // stride + 1


def _spatial_out(x: TensorType, spans, stride, padding, what: str) -> tuple:
    out = []
    for a, (span, s, p) in enumerate(zip(spans, stride, padding)):
        size = x.shape[1 + a]
        if not isinstance(size, int):
            raise ShapeError(f"{what} needs static spatial sizes, got {fmt_shape(x.shape)}")
        if size + p[0] + p[1] < span:
            raise ShapeError(f"{what}: the padded spatial size {size + p[0] + p[1]} is smaller than the window {span}")
        out.append(window_out(size, span, s, p))
    return tuple(out)


def _conv(ts, attrs):
    """y[n, *o, f] = sum over taps t and channels c of its group of
    xpad[n, *(o*stride + t*dilation), g*Cg + c] * w[*t, c, f], f in group g = f // (F / groups)."""
    x, w = ts
    if x.dtype != w.dtype or x.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"conv expects float operands of one dtype, got {x.dtype} and {w.dtype}")
    n = x.rank - 2
    if n < 1 or w.rank != n + 2:
        raise ShapeError(f"conv expects x [N, *spatial, C] and kernel [*window, C/groups, F] of rank "
                         f"{x.rank}, got {fmt_shape(x.shape)} and {fmt_shape(w.shape)}")
    stride, padding = _window_attrs(n, attrs, "conv")
    dilation, groups = tuple(attrs["dilation"]), attrs["groups"]
    if len(dilation) != n or any(not isinstance(d, int) or d < 1 for d in dilation):
        raise ShapeError(f"conv needs a positive dilation for each of its {n} spatial axes")
    if any(not isinstance(d, int) for d in w.shape[:n] + w.shape[n + 1:]):
        raise ShapeError(f"conv kernel window and output channels must be static, got {fmt_shape(w.shape)}")
    # groups == 1 lets the channel axis be symbolic: the kernel gradient convolves over the batch
    if not isinstance(groups, int) or groups < 1 or (groups == 1 and w.shape[-2] != x.shape[-1]) or (
            groups > 1 and (not isinstance(x.shape[-1], int) or x.shape[-1] % groups or w.shape[-1] % groups
                            or w.shape[-2] * groups != x.shape[-1])):
        raise ShapeError(f"conv with {groups} group(s): {x.shape[-1]} input channels need a kernel "
                         f"[..., {x.shape[-1] // max(groups, 1)}, F] with F divisible by {groups}, "
                         f"got {fmt_shape(w.shape)}")
    spans = [(k - 1) * d + 1 for k, d in zip(w.shape[:n], dilation)]
    return TensorType(x.dtype, (x.shape[0],) + _spatial_out(x, spans, stride, padding, "conv") + (w.shape[-1],))


def _reduce_window(ts, attrs):
    """y[n, *o, c] = kind over taps t of xpad[n, *(o*stride + t), c]; padding is kind's identity."""
    (x,) = ts
    if attrs["kind"] not in ("sum", "max"):
        raise ShapeError(f"reduce_window kind must be sum or max, got {attrs['kind']!r}")
    if x.dtype not in FLOAT_DTYPES or x.rank < 3:
        raise ShapeError(f"reduce_window expects a float x [N, *spatial, C], got {x}")
    n = x.rank - 2
    stride, padding = _window_attrs(n, attrs, "reduce_window")
    window = tuple(attrs["window"])
    if len(window) != n or any(not isinstance(k, int) or k < 1 for k in window):
        raise ShapeError(f"reduce_window needs a positive window size for each of its {n} spatial axes")
    out = _spatial_out(x, window, stride, padding, "reduce_window")
    return TensorType(x.dtype, (x.shape[0],) + out + (x.shape[-1],))


def _select_scatter(ts, attrs):
    """The gradient of reduce_window max: each g[n, *o, c] goes to the first maximal tap
    (window raster order, torch's tie rule) of its window in x; padding taps are never chosen."""
    x, g = ts
    want = _reduce_window([x], dict(attrs, kind="max"))
    if g.dtype != x.dtype or tuple(g.shape) != tuple(want.shape):
        raise ShapeError(f"select_scatter's g must be {want}, got {g}")
    return x
def scan_result_types(ts, attrs) -> list[TensorType]:
    """A scan's results, checked against its body's signature (as lax.scan): operands are
    `n_carry` initial carries, `n_seq` sequences scanned along `axis` (each of length
    `length`), then loop-invariant operands; the body takes (carries, one step of each
    sequence, invariants) and returns (new carries, per-step outputs). Results are the
    final carries, then each per-step output stacked along `axis`."""
    body, nc, ns, axis, length = (attrs[k] for k in ("body", "n_carry", "n_seq", "axis", "length"))
    if not isinstance(length, int) or length < 1:
        raise ShapeError(f"scan length must be a positive integer, got {length}")
    step_types = []
    for t in ts[nc:nc + ns]:
        if not 0 <= axis < t.rank or t.shape[axis] != length:
            raise ShapeError(f"scan sequence {t} has no axis {axis} of length {length}")
        step_types.append(TensorType(t.dtype, t.shape[:axis] + t.shape[axis + 1:]))
    want = list(ts[:nc]) + step_types + list(ts[nc + ns:])
    got = [a.type for a in body.args]
    if got != want:
        raise ShapeError(f"scan body takes ({', '.join(map(str, got))}), "
                         f"operands give ({', '.join(map(str, want))})")
    outs = [body[i].type for _, i in body.outputs]
    if len(outs) < nc or outs[:nc] != list(ts[:nc]):
        raise ShapeError(f"scan body's first {nc} outputs must have the carries' types "
                         f"({', '.join(map(str, ts[:nc]))})")
    stacked = []
    for t in outs[nc:]:
        if axis > t.rank:
            raise ShapeError(f"scan output {t} has no axis {axis} to stack along")
        stacked.append(TensorType(t.dtype, t.shape[:axis] + (length,) + t.shape[axis:]))
    return outs[:nc] + stacked


def _scan(ts, attrs):
    # A node has one type; a scan's is its result 0's (its results are read through scan_out).
    results = scan_result_types(ts, attrs)
    if not results:
        raise ShapeError("a scan must have at least one result")
    return results[0]


def _scan_out(ts, attrs):
    # The result's type is an attribute (as a source's): a type rule sees only its operand's
    # type, so the verifier checks it against the scan's results.
    return TensorType(attrs["dtype"], tuple(attrs["shape"]))


# ---- the table ----------------------------------------------------------------

PRIMITIVES: dict[str, Primitive] = {}


def _def(name, kind, arity, infer, attrs=(), differentiable=True, **props):
    if kind in ELEMENTWISE_KINDS and not props.get("view"):
        props.setdefault("overwrites", tuple(range(arity)))
    PRIMITIVES[name] = Primitive(name, kind, arity, tuple(attrs), infer, differentiable, **props)


ELEMENTWISE_KINDS = ("unary", "binary", "compare", "select")

# The formulas of the ops whose numerics are decided here, once.
SIGMOID = ("e = exp(-|x|); sigmoid(x) = (x >= 0 ? 1 : e) / (1 + e): never exponentiates a positive "
           "number, so it neither overflows nor loses the tiny values below x = -88 (float32 denormals; "
           "IREE's CPU code, alone, flushes those to 0)")
POW = ("numpy's power for real results: 1 when b == 0 or a == 1; for a == 0, 0 when b > 0 and inf "
       "when b < 0; for a < 0, |a|**b signed by b's parity when b is integral, else nan; |a|**b "
       "otherwise. Constant exponents 0, 1, 2, 3, 0.5 and -1 are rewritten by passes/decompose.py "
       "into 1, x, x*x, x*x*x, sqrt(x) and 1/x before any backend sees them (so pow(-inf, 0.5) "
       "is sqrt's nan, and x**3 rounds twice)")
DIV = "IEEE division, correctly rounded (no reciprocal-multiply, no fast-math)"
SIGN = "1 for x > 0, -1 for x < 0, x itself otherwise (0 stays 0, -0 stays -0, nan stays nan)"
LOG1P = "log(1 + x), accurate near 0 (not the naive log of the rounded 1 + x)"
MINMAX = "numpy's: nan if either operand is nan"


# sources
def _arg(ts, attrs):
    import re
    if not re.fullmatch(r"[A-Za-z_][\w.]*", str(attrs["name"])):
        raise ShapeError(f"argument name '{attrs['name']}' must start with a letter or '_'")
    return _source(ts, attrs)


_def("arg", "source", 0, _arg, ("name", "role", "dtype", "shape"), foldable=False)
_def("const", "source", 0, _const, ("value", "dtype", "shape"))
_def("iota", "source", 0, _source, ("axis", "dtype", "shape"), differentiable=False)
_def("random_uniform", "source", 0, _source, ("low", "high", "seed", "dtype", "shape"), differentiable=False,
     foldable=False)
_def("random_normal", "source", 0, _source, ("mean", "stddev", "seed", "dtype", "shape"), differentiable=False,
     foldable=False)
_def("rng_uniform", "random", 1, _source, ("seed", "dtype", "shape"), differentiable=False, foldable=False)
# elementwise
for _n in ("exp", "log", "sqrt", "tanh"):
    _def(_n, "unary", 1, _unary_float)
_def("log1p", "unary", 1, _unary_float, formula=LOG1P)
_def("sigmoid", "unary", 1, _unary_float, formula=SIGMOID)
for _n in ("neg", "abs"):
    _def(_n, "unary", 1, _unary_any)
_def("sign", "unary", 1, _unary_any, formula=SIGN)
_def("stop_gradient", "unary", 1, _unary_any, view=True)
for _n in ("add", "mul"):
    _def(_n, "binary", 2, _binary, commutative=True)
_def("sub", "binary", 2, _binary)
for _n in ("maximum", "minimum"):
    _def(_n, "binary", 2, _binary, commutative=True, formula=MINMAX)
_def("div", "binary", 2, _binary_float, formula=DIV)
_def("pow", "binary", 2, _binary_float, formula=POW)
for _n in ("lt", "le", "gt", "ge", "eq", "ne"):
    _def(_n, "compare", 2, _compare, differentiable=False, commutative=_n in ("eq", "ne"))
_def("where", "select", 3, _where)
_def("cast", "unary", 1, _cast, ("dtype",))
# reductions
_def("sum", "reduce", 1, _reduce, ("axes", "keepdims"), identity="zero")
_def("max", "reduce", 1, _reduce, ("axes", "keepdims"), identity="lowest")
_def("argmax", "reduce", 1, _argmax, ("axis", "keepdims"), differentiable=False)
_def("size", "reduce", 1, _size, ("axes", "dtype"), differentiable=False)
# linear algebra and movement
_def("matmul", "matmul", 2, _matmul)
_def("reshape", "movement", 1, _reshape, ("shape",), view=True)
_def("transpose", "movement", 1, _transpose, ("perm",), view=True)
_def("broadcast_to", "movement", 1, _broadcast_to, ("shape",), view=True)
_def("slice", "movement", 1, _slice, ("start", "stop", "step"), view=True)
_def("pad", "movement", 1, _pad, ("lo", "hi", "interior"))
_def("concat", "movement", None, _concat, ("axis",))
_def("gather", "movement", 2, _gather, ("axis",))
_def("scatter_add", "movement", 2, _scatter_add, ("axis", "shape"))
# fused losses (expanded by passes/expand_fused.py for backends without a rule)
_def("sparse_xent", "reduce", 2, lambda ts, attrs: _sparse_xent_type(ts, False))
_def("sparse_xent_grad", "reduce", 2, lambda ts, attrs: _sparse_xent_type(ts, True))
# windows (NHWC / NWC; kernel [*window, C/groups, F] as Keras)
_def("conv", "window", 2, _conv, ("stride", "padding", "dilation", "groups"))
_def("reduce_window", "window", 1, _reduce_window, ("kind", "window", "stride", "padding"))
_def("select_scatter", "window", 2, _select_scatter, ("window", "stride", "padding"))
# control flow: a loop with a body graph (autodiff/scan.py differentiates it as a reverse scan)
_def("scan", "control", None, _scan, ("body", "n_carry", "n_seq", "axis", "length", "reverse"))
_def("scan_out", "control", 1, _scan_out, ("index", "dtype", "shape"))


def infer_type(op: str, in_types: list[TensorType], attrs: dict) -> TensorType:
    prim = PRIMITIVES.get(op)
    if prim is None:
        raise ShapeError(f"unknown primitive '{op}'")
    if prim.arity is not None and len(in_types) != prim.arity:
        raise ShapeError(f"{op} takes {prim.arity} operands, got {len(in_types)}")
    missing = [a for a in prim.attrs if a not in attrs and a not in ("keepdims", "reverse")]
    if missing:
        raise ShapeError(f"{op} is missing attribute(s) {', '.join(missing)}")
    unknown = [a for a in attrs if a not in prim.attrs]
    if unknown:
        raise ShapeError(f"{op} has unknown attribute(s) {', '.join(unknown)}")
    return prim.infer(in_types, attrs)
