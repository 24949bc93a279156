"""One table from primitive to a Triton expression (the elementwise bodies of every kernel).

Each entry takes the node and its operand expressions (variable names) and returns
an expression string. A few primitives need more than one line of Triton; they call
small `@triton.jit` helpers that the generated module defines (`HELPERS`), only
when used. Numerics follow the numpy backend (the reference): a stable sigmoid, an
accurate log1p and tanh near 0, numpy's NaN-propagating maximum/minimum, numpy's
pow for negative bases with integral exponents, IEEE division and square root.
"""
from __future__ import annotations

import math

TL_DTYPE = {"f32": "tl.float32", "f64": "tl.float64", "i32": "tl.int32", "i64": "tl.int64", "bool": "tl.int1"}
SIGNATURE = {"f32": "*fp32", "f64": "*fp64", "i32": "*i32", "i64": "*i64", "bool": "*i1"}
FLOATS = ("f32", "f64")


def literal(value, dtype: str) -> str:
    """A Python literal for a scalar of `dtype` (inf and nan spelled so Triton can parse them)."""
    if dtype in FLOATS:
        v = float(value)
        if math.isnan(v):
            return 'float("nan")'
        if math.isinf(v):
            return 'float("inf")' if v > 0 else 'float("-inf")'
        return repr(v)
    if dtype == "bool":
        return "1" if value else "0"
    return str(int(value))


def zero(dtype: str) -> str:
    return "0.0" if dtype in FLOATS else "0"


def lowest(dtype: str) -> str:
    return {"f32": 'float("-inf")', "f64": 'float("-inf")', "i32": "-2147483648",
            "i64": "-9223372036854775808", "bool": "0"}[dtype]


HELPERS = {
    "_sigmoid": '''
@triton.jit
def _sigmoid(x):
    # numpy backend's stable form: never exponentiates a positive number
    e = tl.exp(-tl.abs(x))
    return tl.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
''',
    "_log1p": '''
@triton.jit
def _log1p(x):
    # log(1 + x) accurate near 0: log(u) * x / (u - 1) with u = 1 + x rounded
    u = 1.0 + x
    d = u - 1.0
    return tl.where(d == 0.0, x, tl.log(u) * (x / tl.where(d == 0.0, 1.0, d)))
''',
    "_tanh": '''
@triton.jit
def _tanh(x):
    # odd, saturating, and a series near 0 where 1 - e^(-2|x|) cancels
    a = tl.abs(x)
    e = tl.exp(-2.0 * a)
    t = (1.0 - e) / (1.0 + e)
    a2 = a * a
    t = tl.where(a < 0.0625, a * (1.0 - a2 * (0.3333333333333333 - a2 * 0.13333333333333333)), t)
    return tl.where(x < 0, -t, t)
''',
    "_sign": '''
@triton.jit
def _sign(x):
    # numpy: 0 stays 0, nan stays nan
    return tl.where(x > 0, 1.0, tl.where(x < 0, -1.0, x))
''',
    "_isign": '''
@triton.jit
def _isign(x):
    return tl.where(x > 0, 1, tl.where(x < 0, -1, 0))
''',
    "_pow": '''
@triton.jit
def _pow(a, b):
    # numpy semantics for real results: a negative base needs an integral exponent
    r = tl.exp2(b * tl.log2(tl.abs(a)))
    is_int = tl.floor(b) == b
    odd = tl.floor(b * 0.5) * 2.0 != b
    r = tl.where(a < 0, tl.where(is_int, tl.where(odd, -r, r), float("nan")), r)
    return tl.where(b == 0, 1.0, r)
''',
}


def _float(n) -> bool:
    return n.dtype in FLOATS


def _cast(n, a, ctx):
    src = ctx.dtype(n.inputs[0])
    if n.dtype == "bool":
        return f"{a[0]} != 0"
    if src == n.dtype:
        return a[0]
    return f"{a[0]}.to({TL_DTYPE[n.dtype]})"


def _minmax(fn):
    def emit(n, a, ctx):
        if _float(n):
            return f"tl.{fn}({a[0]}, {a[1]}, propagate_nan=tl.PropagateNan.ALL)"
        return f"tl.{fn}({a[0]}, {a[1]})"
    return emit


def _pow(n, a, ctx):
    """Constant exponents the numpy backend (np.power's fast paths) computes exactly."""
    b = ctx.const_value(n.inputs[1])
    if b == 2.0:
        return f"{a[0]} * {a[0]}"
    if b == 1.0:
        return a[0]
    if b == 0.5:
        return f"tl.sqrt_rn({a[0]})"
    if b == -1.0:
        return f"1.0 / {a[0]}"
    ctx.helper("_pow")
    return f"_pow({a[0]}, {a[1]})"


def _helper(name, int_name=None):
    def emit(n, a, ctx):
        h = int_name if (int_name and not _float(n)) else name
        ctx.helper(h)
        return f"{h}({a[0]})"
    return emit


def _neg(n, a, ctx):
    return f"-{a[0]}" if n.dtype != "bool" else f"{a[0]} == 0"


# primitive -> function(node, operand expressions, ctx) -> Triton expression
TRITON_OPS = {
    "neg": _neg,
    "exp": lambda n, a, c: f"tl.exp({a[0]})",
    "log": lambda n, a, c: f"tl.log({a[0]})",
    "log1p": _helper("_log1p"),
    "sqrt": lambda n, a, c: f"tl.sqrt_rn({a[0]})",
    "tanh": _helper("_tanh"),
    "sigmoid": _helper("_sigmoid"),
    "abs": lambda n, a, c: f"tl.abs({a[0]})",
    "sign": _helper("_sign", "_isign"),
    "stop_gradient": lambda n, a, c: a[0],
    "add": lambda n, a, c: f"{a[0]} + {a[1]}" if n.dtype != "bool" else f"{a[0]} | {a[1]}",
    "sub": lambda n, a, c: f"{a[0]} - {a[1]}",
    "mul": lambda n, a, c: f"{a[0]} * {a[1]}" if n.dtype != "bool" else f"{a[0]} & {a[1]}",
    "div": lambda n, a, c: f"{a[0]} / {a[1]}",
    "pow": _pow,
    "maximum": _minmax("maximum"),
    "minimum": _minmax("minimum"),
    "lt": lambda n, a, c: f"{a[0]} < {a[1]}",
    "le": lambda n, a, c: f"{a[0]} <= {a[1]}",
    "gt": lambda n, a, c: f"{a[0]} > {a[1]}",
    "ge": lambda n, a, c: f"{a[0]} >= {a[1]}",
    "eq": lambda n, a, c: f"{a[0]} == {a[1]}",
    "ne": lambda n, a, c: f"{a[0]} != {a[1]}",
    "where": lambda n, a, c: f"tl.where({a[0]}, {a[1]}, {a[2]})",
    "cast": _cast,
}
