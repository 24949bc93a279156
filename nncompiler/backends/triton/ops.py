"""One table from primitive to a Triton expression (the elementwise bodies of every kernel).

Each entry takes the node and its operand expressions (variable names) and returns
an expression string. A few primitives need more than one line of Triton; they call
small `@triton.jit` helpers that the generated module defines (`HELPERS`), only
when used. Numerics follow the primitive table's `formula` entries
(ir/primitives.py): its stable sigmoid, an accurate log1p and tanh near 0, numpy's
NaN-propagating maximum/minimum, numpy's pow (constant exponents were already
rewritten by passes/decompose.py), IEEE division and square root.

Primitives that are not elementwise have no expression: `STRUCTURAL` names the part of
the code generator that handles each, and `TORCH_FALLBACK` the ones that always run as
one torch op (fallback.py's table `TORCH_RULES`).
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
    # the table's formula: e = exp(-|x|); (x >= 0 ? 1 : e) / (1 + e), never overflowing
    e = tl.exp(-tl.abs(x))
    return tl.where(x >= 0, 1.0, e) / (1.0 + e)
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
    # the table's formula (numpy's power): |a| ** b (0 ** b is 0 or inf through log2(0) = -inf),
    # signed by b's parity for a negative base and integral b, nan for a fractional one
    r = tl.exp2(b * tl.log2(tl.abs(a)))
    is_int = tl.floor(b) == b
    odd = tl.floor(b * 0.5) * 2.0 != b
    r = tl.where(a < 0, tl.where(is_int, tl.where(odd, -r, r), float("nan")), r)
    r = tl.where(a == 1.0, 1.0, r)
    return tl.where(b == 0, 1.0, r)
''',
}
# the matmul template's precision-mode dots (_dot_tf32, _dot_bf16) live beside the template
# (kernels/matmul.py); one table, so the module text and the AOT cache key both see them
from ...kernels.matmul import DOT_HELPERS  # noqa: E402

HELPERS.update(DOT_HELPERS)


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


def _helper(name, int_name=None):
    def emit(n, a, ctx):
        h = int_name if (int_name and not _float(n)) else name
        ctx.helper(h)
        return f"{h}({', '.join(a)})"
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
    # `/` on float32 lowers to div.full.f32 (2 ulp); div_rn is IEEE round-to-nearest, like numpy
    "div": lambda n, a, c: f"tl.math.div_rn({a[0]}, {a[1]})" if n.dtype in ("f32", "f64") else f"{a[0]} / {a[1]}",
    "pow": _helper("_pow"),
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

# primitive -> the part of codegen.py / plan.py that handles it (no one expression does)
STRUCTURAL = {
    "arg": "a kernel parameter (a buffer pointer)",
    "const": "an inline literal, or a constant buffer uploaded once",
    "random_uniform": "a constant buffer drawn by the numpy backend at compile time",
    "random_normal": "a constant buffer drawn by the numpy backend at compile time",
    "rng_uniform": "a Philox draw in the kernel (tl.rand)",
    "iota": "the index itself, in the kernel's iteration space",
    "size": "an inline scalar from the kernel's size parameters",
    "sum": "a reduction kernel (codegen reduction)", "max": "a reduction kernel (codegen reduction)",
    "argmax": "a reduction kernel (codegen reduction)",
    "matmul": "a matmul kernel (codegen matmul)",
    "conv": "an implicit-GEMM kernel in the matmul template (plan_conv, codegen_conv; a group per grid batch)",
    "reduce_window": "a window's taps unrolled in a pointwise kernel over its output (codegen_window)",
    "select_scatter": ("a pointwise kernel over its input: each position recomputes its window's first maximal "
                       "tap and takes g there (codegen_window; overlapping windows: a gather, no atomics)"),
    "reshape": "addressing (address.MOVE_RULES)",
    "transpose": "addressing (address.MOVE_RULES)",
    "broadcast_to": "addressing (address.MOVE_RULES)",
    "slice": "addressing (address.MOVE_RULES)",
    "pad": "addressing with a mask (address.MOVE_RULES)",
    "concat": "addressing with a select per part (address.MOVE_RULES)",
    "gather": "addressing through the loaded indices (address.MOVE_RULES)",
    "scan": ("a host loop over the body's own kernels, once per step, captured whole in the step's CUDA "
             "graph (loops.py, scan_runner.py); unrolled below loops.LOOP_MIN_LENGTH steps or when the "
             "body draws random numbers"),
    "scan_out": "the scan's loop group stores it: a final carry, or a [T, ...] buffer written a step at a time",
}

# primitives no kernel computes: each runs alone as a torch op (fallback.TORCH_RULES). A
# `conv` is an implicit-GEMM kernel and the pooling windows are taps in a pointwise kernel
# (STRUCTURAL); `Backend(fallback_ops=...)` still sends any of them to torch, a debugging aid.
TORCH_FALLBACK = frozenset({"scatter_add"})
