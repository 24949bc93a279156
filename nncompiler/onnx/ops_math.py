"""ONNX elementwise math, comparisons, logic, activations, reductions and matrix products.

Each function lowers one ONNX node (a `NodeCtx`) to IR primitives and returns its
outputs. Defaults are the ONNX spec's; opset differences are noted where they apply.
"""
from __future__ import annotations

import numpy as np

from ..ir.primitives import norm_axes
from ..library.activations import _erf

FLOATS = ("f32", "f64")


def _c(cx, value, like: int) -> int:
    return cx.b.scalar(value, cx.b.dtype(like))


def _float(cx, x: int, op: str) -> int:
    if cx.b.dtype(x) not in FLOATS:
        raise cx.fail(f"{op} needs a float or double tensor, got {cx.b.dtype(x)}")
    return x


def unary(prim: str):
    def lower(cx):
        x = cx.x(0)
        if prim in ("exp", "log", "sqrt", "tanh", "sigmoid"):
            _float(cx, x, cx.node.op_type)
        return getattr(cx.b, prim)(x)
    return lower


def float_unary(fn):
    """A unary activation of one float operand, with the node's attributes (spec defaults)."""
    def lower(cx):
        x = _float(cx, cx.x(0), cx.node.op_type)
        return fn(cx, cx.b, x, lambda v: _c(cx, v, x))
    return lower


def _relu(cx, b, x, c):
    return b.maximum(x, c(0))


def _floor(b, x, c):
    # through int64 (exact below 2^52); |x| >= 2^23 (or nan/inf) is already integral in float32
    t = b.cast(b.cast(x, dtype="i64"), dtype=b.dtype(x))
    fl = b.where(b.gt(t, x), b.sub(t, c(1.0)), t)
    return b.where(b.lt(b.abs(x), c(2.0 ** 52 if b.dtype(x) == "f64" else 2.0 ** 23)), fl, x)


def _round_even(b, x, c):
    f = _floor(b, x, c)
    d = b.sub(x, f)
    half_f = b.mul(f, c(0.5))
    odd = b.ne(_floor(b, half_f, c), half_f)
    up = b.where(b.gt(d, c(0.5)), c(1.0), b.where(b.lt(d, c(0.5)), c(0.0), b.where(odd, c(1.0), c(0.0))))
    return b.add(f, up)


def _softplus(b, x, c):
    return b.add(b.maximum(x, c(0.0)), b.log1p(b.exp(b.neg(b.abs(x)))))


ACTIVATIONS = {
    "Relu": lambda cx, b, x, c: _relu(cx, b, x, c),
    "LeakyRelu": lambda cx, b, x, c: b.where(b.lt(x, c(0)), b.mul(x, c(cx.attr("alpha", 0.01))), x),
    "Elu": lambda cx, b, x, c: b.where(b.gt(x, c(0)), x,
                                       b.mul(c(cx.attr("alpha", 1.0)), b.sub(b.exp(b.minimum(x, c(0))), c(1)))),
    "Celu": lambda cx, b, x, c: b.add(b.maximum(x, c(0)), b.minimum(c(0), b.mul(
        c(cx.attr("alpha", 1.0)), b.sub(b.exp(b.div(b.minimum(x, c(0)), c(cx.attr("alpha", 1.0)))), c(1))))),
    "Selu": lambda cx, b, x, c: b.mul(c(cx.attr("gamma", 1.05070102214813232421875)), b.where(
        b.gt(x, c(0)), x, b.mul(c(cx.attr("alpha", 1.67326319217681884765625)),
                                b.sub(b.exp(b.minimum(x, c(0))), c(1))))),
    "HardSigmoid": lambda cx, b, x, c: b.maximum(c(0), b.minimum(c(1), b.add(
        b.mul(x, c(cx.attr("alpha", 0.2))), c(cx.attr("beta", 0.5))))),
    "HardSwish": lambda cx, b, x, c: b.mul(x, b.maximum(c(0), b.minimum(c(1), b.add(
        b.mul(x, c(1 / 6)), c(0.5))))),
    "Softplus": lambda cx, b, x, c: _softplus(b, x, c),
    "Softsign": lambda cx, b, x, c: b.div(x, b.add(c(1), b.abs(x))),
    "Mish": lambda cx, b, x, c: b.mul(x, b.tanh(_softplus(b, x, c))),
    "Erf": lambda cx, b, x, c: _erf(b, x),
    "ThresholdedRelu": lambda cx, b, x, c: b.where(b.gt(x, c(cx.attr("alpha", 1.0))), x, c(0)),
    "Shrink": lambda cx, b, x, c: b.where(
        b.lt(x, c(-cx.attr("lambd", 0.5))), b.add(x, c(cx.attr("bias", 0.0))),
        b.where(b.gt(x, c(cx.attr("lambd", 0.5))), b.sub(x, c(cx.attr("bias", 0.0))), c(0))),
    "Reciprocal": lambda cx, b, x, c: b.div(c(1), x),
    "Floor": lambda cx, b, x, c: _floor(b, x, c),
    "Ceil": lambda cx, b, x, c: b.neg(_floor(b, b.neg(x), c)),
    "Round": lambda cx, b, x, c: _round_even(b, x, c),
    "IsNaN": lambda cx, b, x, c: b.ne(x, x),
}


def gelu(cx):
    b = cx.b
    x = _float(cx, cx.x(0), "Gelu")
    c = lambda v: _c(cx, v, x)  # noqa: E731
    approx = cx.attr("approximate", "none")
    if approx == "tanh":
        inner = b.mul(c(0.7978845608028654), b.add(x, b.mul(c(0.044715), b.mul(x, b.mul(x, x)))))
        return b.mul(b.mul(c(0.5), x), b.add(c(1), b.tanh(inner)))
    if approx != "none":
        raise cx.fail(f"approximate='{approx}' is not supported (supported: none, tanh)")
    return b.mul(b.mul(c(0.5), x), b.add(c(1), _erf(b, b.mul(x, c(0.7071067811865476)))))


def is_inf(cx):
    b, x = cx.b, _float(cx, cx.x(0), "IsInf")
    inf = b.div(_c(cx, 1, x), _c(cx, 0, x))
    pos = b.eq(x, inf) if cx.attr("detect_positive", 1) else None
    neg = b.eq(x, b.neg(inf)) if cx.attr("detect_negative", 1) else None
    if pos is not None and neg is not None:
        return b.where(pos, pos, neg)
    return pos if pos is not None else neg if neg is not None else b.ne(x, x)


def prelu(cx):
    b, x, slope = cx.b, cx.x(0), cx.x(1)
    return b.where(b.lt(x, _c(cx, 0, x)), b.mul(x, slope), x)


# ---- binary and variadic -----------------------------------------------------------

def binary(prim: str):
    def lower(cx):
        b, x, y = cx.b, cx.x(0), cx.x(1)
        if prim in ("div", "pow"):
            if cx.b.dtype(y) != cx.b.dtype(x):       # Pow's exponent may have its own type (opset 12+)
                y = b.cast(y, dtype=b.dtype(x))
            dt = b.dtype(x)
            if dt not in FLOATS:
                # integer Div truncates toward zero, integer Pow is exact: both through float64
                r = getattr(b, prim)(b.cast(x, dtype="f64"), b.cast(y, dtype="f64"))
                if prim == "pow":
                    r = b.add(r, b.where(b.lt(r, b.scalar(0.0, "f64")), b.scalar(-0.5, "f64"), b.scalar(0.5, "f64")))
                return b.cast(r, dtype=dt)
        if b.dtype(x) == "bool" and prim in ("add", "sub", "mul"):
            raise cx.fail(f"{cx.node.op_type} on bool tensors is not supported")
        return getattr(b, prim)(x, y)
    return lower


def variadic(prim: str, mean: bool = False):
    def lower(cx):
        b = cx.b
        xs = cx.xs()
        out = xs[0]
        for y in xs[1:]:
            out = getattr(b, prim)(out, y)
        if len(xs) == 1:
            out = b.add(out, _c(cx, 0, out))   # a fresh value, so the output is never an input alias
        if mean:
            out = b.div(out, _c(cx, len(xs), out))
        return out
    return lower


def compare(prim: str):
    return lambda cx: getattr(cx.b, prim)(cx.x(0), cx.x(1))


def logical(kind: str):
    def lower(cx):
        b = cx.b
        x = cx.x(0)
        if b.dtype(x) != "bool":
            raise cx.fail(f"{cx.node.op_type} needs bool tensors, got {b.dtype(x)}")
        if kind == "not":
            return b.eq(x, b.scalar(False, "bool"))
        y = cx.x(1)
        if kind == "and":
            return b.where(x, y, b.broadcast_to(b.scalar(False, "bool"), shape=b.shape(y)))
        if kind == "or":
            return b.where(x, b.broadcast_to(b.scalar(True, "bool"), shape=b.shape(y)), y)
        return b.ne(x, y)
    return lower


def where(cx):
    return cx.b.where(cx.x(0), cx.x(1), cx.x(2))


def cast(cx):
    from .importer import dtype_of
    to = dtype_of(cx.attr("to"), cx.where)
    x = cx.x(0)
    if cx.b.dtype(x) == to:
        return cx.b.add(x, _c(cx, 0, x)) if to != "bool" else cx.b.eq(x, cx.b.scalar(True, "bool"))
    return cx.b.cast(x, dtype=to)


def cast_like(cx):
    x, dt = cx.x(0), cx.dtype(1)
    return cx.b.cast(x, dtype=dt) if cx.b.dtype(x) != dt else x


def clip(cx):
    b, x = cx.b, cx.x(0)
    if cx.opset < 11:
        raise cx.fail("Clip before opset 11 is not supported")
    if cx.has(1):
        x = b.maximum(x, cx.x(1))
    if cx.has(2):
        x = b.minimum(x, cx.x(2))
    return x if (cx.has(1) or cx.has(2)) else b.add(x, _c(cx, 0, x))


def identity(cx):
    v = cx.value(0)
    if isinstance(v, np.ndarray):
        return v.copy()
    return cx.x(0)


def constant(cx):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        v = cx.attr(key)
        if v is not None:
            if key in ("value_float", "value_floats"):
                return np.asarray(v, dtype=np.float32)
            if key in ("value_int", "value_ints"):
                return np.asarray(v, dtype=np.int64)
            return np.asarray(v)
    raise cx.fail("Constant needs one of value, value_float(s), value_int(s) (sparse and string values "
                  "are not supported)")


def dropout(cx):
    """Inference semantics (training_mode absent or false): the identity, mask all true."""
    if cx.has(2) and (not cx.is_const(2) or bool(cx.const(2, "training_mode"))):
        raise cx.fail("Dropout with training_mode=true is not supported (nnc imports the inference graph)")
    x = cx.x(0)
    out = cx.b.add(x, _c(cx, 0, x))
    mask = cx.b.broadcast_to(cx.b.scalar(True, "bool"), shape=cx.b.shape(x))
    return [out, mask]


# ---- reductions ------------------------------------------------------------------

def _reduce_axes(cx, input_since: int):
    rank = cx.rank(0)
    if cx.opset >= input_since:
        axes = [int(a) for a in cx.const(1, "axes").reshape(-1)] if cx.has(1) else []
    else:
        axes = list(cx.attr("axes", []))
    noop = cx.attr("noop_with_empty_axes", 0)
    if not axes:
        return None if noop else tuple(range(rank))
    return norm_axes(axes, rank)


def reduce(kind: str, input_since: int = 18):
    def lower(cx):
        b = cx.b
        x = cx.x(0)
        keep = bool(cx.attr("keepdims", 1))
        axes = _reduce_axes(cx, input_since)
        if axes is None:
            return b.add(x, _c(cx, 0, x)) if kind != "max" else b.maximum(x, x)
        c = lambda v: _c(cx, v, x)  # noqa: E731
        if kind == "sum":
            return b.sum(x, axes=axes, keepdims=keep)
        if kind == "max":
            return b.max(x, axes=axes, keepdims=keep)
        if kind == "min":
            return b.neg(b.max(b.neg(x), axes=axes, keepdims=keep))
        if kind == "mean":
            return b.div(b.sum(x, axes=axes, keepdims=keep), b.size(x, axes=axes, dtype=b.dtype(x)))
        if kind == "sumsquare":
            return b.sum(b.mul(x, x), axes=axes, keepdims=keep)
        if kind == "l1":
            return b.sum(b.abs(x), axes=axes, keepdims=keep)
        if kind == "l2":
            _float(cx, x, "ReduceL2")
            return b.sqrt(b.sum(b.mul(x, x), axes=axes, keepdims=keep))
        if kind == "logsum":
            return b.log(b.sum(_float(cx, x, "ReduceLogSum"), axes=axes, keepdims=keep))
        if kind == "logsumexp":
            _float(cx, x, "ReduceLogSumExp")
            m = b.max(x, axes=axes, keepdims=True)
            s = b.log(b.sum(b.exp(b.sub(x, m)), axes=axes, keepdims=True))
            out = b.add(s, m)
            if not keep:
                out = b.reshape(out, shape=tuple(d for i, d in enumerate(b.shape(out)) if i not in axes))
            return out
        if kind == "prod":
            # no product primitive: |x| multiplied as exp(sum(log|x|)), the sign from the parity of
            # negative factors, and 0 if any factor is 0
            dt = b.dtype(x)
            xf = x if dt in FLOATS else b.cast(x, dtype="f64")
            cf = lambda v: b.scalar(v, b.dtype(xf))  # noqa: E731
            mag = b.exp(b.sum(b.log(b.abs(xf)), axes=axes, keepdims=keep))
            negs = b.sum(b.cast(b.lt(xf, cf(0)), dtype=b.dtype(xf)), axes=axes, keepdims=keep)
            half = b.mul(negs, cf(0.5))
            odd = b.ne(_floor(b, half, cf), half)
            out = b.where(odd, b.neg(mag), mag)
            if dt not in FLOATS:
                out = b.cast(_round_even(b, out, cf), dtype=dt)
            return out
        raise AssertionError(kind)
    return lower


def arg_reduce(sign: int):
    def lower(cx):
        b, x = cx.b, cx.x(0)
        rank = cx.rank(0)
        axis = norm_axes([cx.attr("axis", 0)], rank)[0]
        keep = bool(cx.attr("keepdims", 1))
        if sign < 0:
            x = b.neg(x) if b.dtype(x) != "bool" else b.eq(x, b.scalar(False, "bool"))
        if cx.attr("select_last_index", 0):
            n = b.shape(x)[axis]
            if not isinstance(n, int):
                raise cx.fail("select_last_index=1 needs a static size on the reduced axis")
            rev = np.arange(n - 1, -1, -1, dtype=np.int64)
            from .importer import const_node
            x = b.gather(x, const_node(b, rev), axis=axis)
            i = b.argmax(x, axis=axis, keepdims=keep)
            return b.cast(b.sub(b.scalar(n - 1, "i32"), i), dtype="i64")
        return b.cast(b.argmax(x, axis=axis, keepdims=keep), dtype="i64")
    return lower


def softmax(kind: str):
    def lower(cx):
        b = cx.b
        x = _float(cx, cx.x(0), cx.node.op_type)
        axis = norm_axes([cx.attr("axis", -1)], cx.rank(0))[0]
        if kind == "hard":
            i = b.argmax(x, axis=axis, keepdims=True)
            iota = b.iota(axis=axis, dtype="i32", shape=b.shape(x))
            return b.cast(b.eq(iota, i), dtype=b.dtype(x))
        m = b.max(x, axes=(axis,), keepdims=True)
        shifted = b.sub(x, m)
        e = b.exp(shifted)
        s = b.sum(e, axes=(axis,), keepdims=True)
        return b.div(e, s) if kind == "soft" else b.sub(shifted, b.log(s))
    return lower


# ---- matrix products ---------------------------------------------------------------

def matmul(cx):
    b, x, y = cx.b, cx.x(0), cx.x(1)
    xs, ys = b.shape(x), b.shape(y)
    squeeze = []
    if len(xs) == 1:
        x = b.reshape(x, shape=(1,) + tuple(xs))
        squeeze.append(-2)
    if len(ys) == 1:
        y = b.reshape(y, shape=tuple(ys) + (1,))
        squeeze.append(-1)
    out = b.matmul(x, y)
    if squeeze:
        shape = list(b.shape(out))
        for axis in sorted(squeeze):
            shape[axis] = None
        out = b.reshape(out, shape=tuple(d for d in shape if d is not None))
    return out


def gemm(cx):
    b = cx.b
    a, w = cx.x(0), cx.x(1)
    if cx.attr("transA", 0):
        a = b.transpose(a, perm=(1, 0))
    if cx.attr("transB", 0):
        w = b.transpose(w, perm=(1, 0))
    out = b.matmul(a, w)
    alpha, beta = cx.attr("alpha", 1.0), cx.attr("beta", 1.0)
    if alpha != 1.0:
        out = b.mul(out, _c(cx, alpha, out))
    if cx.has(2):
        c = cx.x(2)
        if beta != 1.0:
            c = b.mul(c, _c(cx, beta, c))
        out = b.add(out, c)
    return out


def top_k(cx):
    """The k largest (or smallest) along `axis`, sorted, ties to the lower index (the spec's
    order). No sort primitive: each element's rank is the number of elements before it in that
    order (an [.., n, n] comparison), and output p picks the element of rank p, so memory is
    n^2 per row, fine for the short axes TopK sees in models. NaNs are not ordered."""
    b, x = cx.b, cx.x(0)
    s = cx.static_shape(0, "TopK")
    r = len(s)
    axis = norm_axes([cx.attr("axis", -1)], r)[0]
    k, n = int(np.asarray(cx.const(1, "K")).reshape(-1)[0]), s[axis]
    cx.attr("sorted", 1)        # unsorted output may be in any order: sorted is one
    if not 1 <= k <= n:
        raise cx.fail(f"K={k} must be between 1 and the axis size {n}")
    perm = tuple(d for d in range(r) if d != axis) + (axis,)
    xt = b.transpose(x, perm=perm) if axis != r - 1 else x
    lead = tuple(s[d] for d in perm[:-1])
    xi, xj = b.reshape(xt, shape=lead + (n, 1)), b.reshape(xt, shape=lead + (1, n))
    ahead = b.gt(xj, xi) if cx.attr("largest", 1) else b.lt(xj, xi)
    # [i, j]: j < i, so of two equal elements the one with the lower index goes first
    lower = b.lt(b.iota(axis=1, dtype="i32", shape=(n, n)), b.iota(axis=0, dtype="i32", shape=(n, n)))
    tie = b.where(b.eq(xj, xi), b.broadcast_to(lower, shape=lead + (n, n)), ahead)     # ahead is false there
    before = b.where(ahead, ahead, tie)
    rank = b.reshape(b.sum(b.cast(before, dtype="i32"), axes=(r,), keepdims=False), shape=lead + (n, 1))
    pick = b.eq(rank, b.iota(axis=r, dtype="i32", shape=lead + (n, k)))          # [.., n, k]
    values = b.sum(b.where(pick, b.broadcast_to(xi, shape=lead + (n, k)), b.scalar(0, b.dtype(x))),
                   axes=(r - 1,), keepdims=False)
    idx = b.sum(b.where(pick, b.iota(axis=r - 1, dtype="i64", shape=lead + (n, k)), b.scalar(0, "i64")),
                axes=(r - 1,), keepdims=False)
    back = tuple(perm.index(d) for d in range(r))
    if axis != r - 1:
        values, idx = b.transpose(values, perm=back), b.transpose(idx, perm=back)
    return [values, idx]


OPS = {
    "Abs": unary("abs"), "Neg": unary("neg"), "Exp": unary("exp"), "Log": unary("log"), "Sqrt": unary("sqrt"),
    "Tanh": unary("tanh"), "Sigmoid": unary("sigmoid"), "Sign": unary("sign"),
    **{name: float_unary(fn) for name, fn in ACTIVATIONS.items()},
    "Gelu": gelu, "IsInf": is_inf, "PRelu": prelu,
    "Add": binary("add"), "Sub": binary("sub"), "Mul": binary("mul"), "Div": binary("div"), "Pow": binary("pow"),
    "Max": variadic("maximum"), "Min": variadic("minimum"), "Sum": variadic("add"), "Mean": variadic("add", True),
    "Equal": compare("eq"), "Less": compare("lt"), "LessOrEqual": compare("le"), "Greater": compare("gt"),
    "GreaterOrEqual": compare("ge"),
    "And": logical("and"), "Or": logical("or"), "Xor": logical("xor"), "Not": logical("not"),
    "Where": where, "Cast": cast, "CastLike": cast_like, "Clip": clip, "Identity": identity,
    "Constant": constant, "Dropout": dropout,
    "ReduceSum": reduce("sum", 13), "ReduceMax": reduce("max"), "ReduceMin": reduce("min"),
    "ReduceMean": reduce("mean"), "ReduceSumSquare": reduce("sumsquare"), "ReduceL1": reduce("l1"),
    "ReduceL2": reduce("l2"), "ReduceLogSum": reduce("logsum"), "ReduceLogSumExp": reduce("logsumexp"),
    "ReduceProd": reduce("prod"),
    "ArgMax": arg_reduce(1), "ArgMin": arg_reduce(-1),
    "Softmax": softmax("soft"), "LogSoftmax": softmax("log"), "Hardmax": softmax("hard"),
    "MatMul": matmul, "Gemm": gemm, "TopK": top_k,
}


def einsum(cx):
    """Any equation without repeated letters in one operand or '...': each operand is
    transposed to one global letter order with size-1 axes for its missing letters,
    the operands are multiplied (broadcasting), summed over the letters the output
    drops, and transposed to the output's order. Memory is the full product space,
    fine for the small contractions models use (attention scores, bilinear forms)."""
    b = cx.b
    eq = cx.attr("equation").replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    xs = cx.xs()
    if "." in eq:
        raise cx.fail(f"equation '{eq}': '...' is not supported")
    if len(terms) != len(xs):
        raise cx.fail(f"equation '{eq}' names {len(terms)} operands, the node has {len(xs)}")
    sizes = {}
    for term, x in zip(terms, xs):
        if len(set(term)) != len(term):
            raise cx.fail(f"equation '{eq}': a repeated letter within one operand (a diagonal) is not supported")
        if len(term) != len(b.shape(x)):
            raise cx.fail(f"equation '{eq}': term '{term}' does not match an operand of rank {len(b.shape(x))}")
        for ch, d in zip(term, b.shape(x)):
            if sizes.get(ch, 1) != 1 and d != 1 and sizes[ch] != d:
                raise cx.fail(f"equation '{eq}': letter '{ch}' has sizes {sizes[ch]} and {d}")
            sizes[ch] = d if sizes.get(ch, 1) == 1 else sizes[ch]
    letters = sorted(sizes)
    if not _:
        rhs = "".join(ch for ch in letters if lhs.count(ch) == 1)
    prod = None
    for term, x in zip(terms, xs):
        mine = [ch for ch in letters if ch in term]
        perm = tuple(term.index(ch) for ch in mine)
        if perm != tuple(range(len(perm))):
            x = b.transpose(x, perm=perm)
        shape = tuple(b.shape(x)[mine.index(ch)] if ch in term else 1 for ch in letters)
        x = b.reshape(x, shape=shape)
        prod = x if prod is None else b.mul(prod, x)
    drop = tuple(k for k, ch in enumerate(letters) if ch not in rhs)
    if drop:
        prod = b.sum(prod, axes=drop, keepdims=False)
    kept = [ch for ch in letters if ch in rhs]
    perm = tuple(kept.index(ch) for ch in rhs)
    if perm != tuple(range(len(perm))):
        prod = b.transpose(prod, perm=perm)
    return prod


OPS["Einsum"] = einsum
