"""An IR graph written back as a `.nn` graph block (`nnc import model.onnx -o model.nn`).

Every IR node becomes one statement spelled with the operator or tensor-toolkit
function that lowers to exactly that primitive (checked by tests/onnx/test_import_nn.py:
compiling the file gives the same printed IR). Primitives the friendly functions only
compute as part of something larger (conv, reduce_window, pad, gather, scatter_add,
iota, size) are written with the toolkit's one-primitive functions
(library/primitive_ops.py). Parameters are declared with `param`; their values go to a
side checkpoint (.npz) that `nnc.load_weights` and `--weights` read. What has no
spelling (a cast to bool, a non-finite constant) is a clear error naming the node.

A `scan` (an imported RNN, GRU or LSTM) has no .nn spelling either: the language's loops
are its recurrent layers, whose weights and gates are Keras's, not ONNX's. So the writer
unrolls every scan first (passes/unroll.py) and writes the steps out; the file compiles
to the import's graph with its scans unrolled.
"""
from __future__ import annotations

import math
import re

import numpy as np

from ..errors import NNCError
from ..frontend.grammar import MAX_TOKENS
from ..passes.unroll import unroll
from .importer import NN_RESERVED_WORDS as RESERVED_WORDS

_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@", "pow": "**",
           "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_UNARY = ("tanh", "exp", "log", "sqrt", "abs", "sign", "sigmoid", "log1p", "stop_gradient")
_CALLS = ("maximum", "minimum", "where")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# the dtypes a literal has on its own (1.5, 1, true): constant(...) needs dtype= for the others
_LITERAL_DTYPES = ("f32", "i32", "bool")


class ImportWriteError(NNCError):
    """An imported graph that cannot be written as a .nn file."""


def _dims(shape, what: str) -> str:
    out = []
    for d in shape:
        if isinstance(d, (int, np.integer)) and d <= 0:
            raise ImportWriteError(f"{what}: a dimension of size {d} has no .nn spelling (sizes are positive)")
        if isinstance(d, (int, np.integer)):
            out.append(str(int(d)))
        elif isinstance(d, str) and _IDENT.match(d) and d not in RESERVED_WORDS:
            out.append(d)
        else:
            raise ImportWriteError(f"{what}: dimension '{d}' has no .nn spelling (an integer or a name)")
    return "[" + ", ".join(out) + "]"


def _literal(value, dtype: str, what: str) -> str:
    arr = np.asarray(value)
    if dtype in ("f32", "f64"):
        def one(v):
            v = float(v)
            if not math.isfinite(v):
                raise ImportWriteError(f"{what}: the constant {v} has no .nn literal")
            return repr(v)
    elif dtype in ("i32", "i64"):
        def one(v):
            return str(int(v))
    elif dtype == "bool":
        def one(v):
            return "true" if bool(v) else "false"
    else:
        raise ImportWriteError(f"{what}: a {dtype} constant has no .nn literal")

    def nest(a):
        return one(a) if a.ndim == 0 else "[" + ", ".join(nest(s) for s in a) + "]"
    if arr.size == 0:
        raise ImportWriteError(f"{what}: an empty constant has no .nn literal")
    return nest(arr)


def _constant(at, dtype: str, what: str) -> str:
    text = _literal(at["value"], dtype, what)
    return f"constant({text})" if dtype in _LITERAL_DTYPES else f"constant({text}, dtype={dtype})"


def _ints(values) -> str:
    return "[" + ", ".join(str(int(v)) for v in values) + "]"


def _pairs(pairs) -> str:
    return "[" + ", ".join(f"[{int(lo)}, {int(hi)}]" for lo, hi in pairs) + "]"


def _axes(at) -> str:
    """A reduction's axes (an absent attribute means every axis, as `axis=none`)."""
    return "none" if at.get("axes") is None else _ints(at["axes"])


def _bool(v) -> str:
    return "true" if v else "false"


def _slice(attr, shape, what: str) -> str:
    """The subscript the front end lowers to this slice: it writes `a:b` on a static axis
    with the stop resolved (never none), so an axis the slice leaves whole (start 0, no
    stop, step 1) is spelled by leaving it out (trailing axes) or by `...`."""
    items: list[str | None] = []
    for d, s, e, st in zip(shape, attr["start"], attr["stop"], attr["step"]):
        if st is None or st <= 0:
            raise ImportWriteError(f"{what}: a slice with step {st} has no one-primitive .nn spelling")
        if s == 0 and e is None and st == 1:
            items.append(None if isinstance(d, int) else ":")   # `:` on a symbolic axis keeps no stop
            continue
        if e is None and isinstance(d, int):
            raise ImportWriteError(f"{what}: a slice from {s} with no stop on a static axis has no .nn "
                                   f"spelling (a .nn slice there stops at {d})")
        text = f"{'' if s == 0 else s}:{'' if e is None else e}"
        items.append(text if st == 1 else f"{text}:{st}")
    runs = [k for k, it in enumerate(items) if it is None and (k == 0 or items[k - 1] is not None)]
    if len(runs) > 1:
        raise ImportWriteError(f"{what}: whole static axes in more than one place have no .nn spelling "
                               f"(one `...` covers one run of them)")
    if runs:
        k = runs[0]
        n = next((j for j in range(k, len(items)) if items[j] is not None), len(items)) - k
        items[k:k + n] = [] if k + n == len(items) else ["..."]
    if not items:
        raise ImportWriteError(f"{what}: a slice that keeps everything has no .nn spelling")
    return ", ".join(items)


def _expression(n, ops: list[str], shapes: list[tuple]) -> str:
    """The .nn expression that lowers to exactly node n (operands named `ops`, of `shapes`)."""
    what, at = f"node %{n.id} ({n.op})", n.attr
    if n.op in _BINARY:
        return f"{ops[0]} {_BINARY[n.op]} {ops[1]}"
    if n.op == "neg":
        return f"-{ops[0]}"
    if n.op in _UNARY or n.op in _CALLS:
        return f"{n.op}({', '.join(ops)})"
    if n.op in _SPELLINGS:
        return _SPELLINGS[n.op](n, ops, at, what)
    if n.op == "slice":
        return f"{ops[0]}[{_slice(at, shapes[0], what)}]"
    raise ImportWriteError(f"{what}: primitive {n.op} has no one-to-one .nn spelling "
                           f"(nnc import writes: {', '.join(SUPPORTED)})")


def _cast(n, ops, at, what) -> str:
    if at["dtype"] == "bool":      # the toolkit's cast(x, bool) is x != 0, a different primitive
        raise ImportWriteError(f"{what}: a cast to bool has no one-node .nn spelling (cast(x, bool) is x != 0)")
    return f"cast({ops[0]}, {at['dtype']})"


def _window(at) -> str:
    return f"stride={_ints(at['stride'])}, padding={_pairs(at['padding'])}"


# primitive -> (node, operand names, attributes, what) -> expression, for the ones spelled by a call
_SPELLINGS = {
    "const": lambda n, ops, at, what: _constant(at, n.type.dtype, what),   # made here, in this dtype
    "transpose": lambda n, ops, at, what: f"transpose({ops[0]}, perm={_ints(at['perm'])})",
    "reshape": lambda n, ops, at, what: f"reshape({ops[0]}, {_dims(at['shape'], what)})",
    "broadcast_to": lambda n, ops, at, what: f"broadcast_to({ops[0]}, {_dims(at['shape'], what)})",
    "sum": lambda n, ops, at, what: f"sum({ops[0]}, axis={_axes(at)}, keepdims={_bool(at.get('keepdims'))})",
    "max": lambda n, ops, at, what: f"max({ops[0]}, axis={_axes(at)}, keepdims={_bool(at.get('keepdims'))})",
    "argmax": lambda n, ops, at, what: f"argmax({ops[0]}, axis={at['axis']}, keepdims={_bool(at.get('keepdims'))})",
    "size": lambda n, ops, at, what: f"size({ops[0]}, axis={_axes(at)}, dtype={at['dtype']})",
    "cast": _cast,
    "concat": lambda n, ops, at, what: f"concat({', '.join(ops)}, axis={at['axis']})",
    "gather": lambda n, ops, at, what: f"gather({ops[0]}, {ops[1]}, axis={at['axis']})",
    "scatter_add": lambda n, ops, at, what:
        f"scatter_add({ops[0]}, {ops[1]}, {_dims(at['shape'], what)}, axis={at['axis']})",
    "iota": lambda n, ops, at, what: f"iota({_dims(at['shape'], what)}, axis={at['axis']}, dtype={at['dtype']})",
    "pad": lambda n, ops, at, what:
        f"pad({ops[0]}, {_pairs(zip(at['lo'], at['hi']))}, interior={_ints(at['interior'])})",
    "conv": lambda n, ops, at, what:
        f"conv({ops[0]}, {ops[1]}, {_window(at)}, dilation={_ints(at['dilation'])}, groups={at['groups']})",
    "reduce_window": lambda n, ops, at, what:
        f"reduce_window({ops[0]}, kind={at['kind']}, window={_ints(at['window'])}, {_window(at)})",
}
SUPPORTED = sorted([*_BINARY, "neg", *_UNARY, *_CALLS, *_SPELLINGS, "slice"])


def graph_to_nn(g, source: str = "", weights: str = "") -> str:
    """The text of a .nn `graph` block that lowers to `g` with its scans unrolled (names and
    types as in `g`)."""
    g = unroll(g)[0]
    args = [n for n in g.nodes if n.op == "arg"]
    names: dict[int, str] = {}
    for a in args:
        name = a.attr["name"]
        if not _IDENT.match(name) or name in RESERVED_WORDS:
            raise ImportWriteError(f"argument '{name}' is not a .nn name that can be written back")
        names[a.id] = name
    taken = set(names.values())
    prefix = "v"
    while any(re.fullmatch(prefix + r"\d+", t) for t in taken):
        prefix += "_"
    if not _IDENT.match(g.name) or g.name in RESERVED_WORDS:
        raise ImportWriteError(f"graph name '{g.name}' is not a .nn name")
    note = f"; weights: {weights} (--weights, nnc.load_weights)" if weights else ""
    lines = [f"# written by nnc import{' from ' + source if source else ''}{note}",
             f"graph {g.name} {{"]
    for a in args:
        role = a.attr["role"]
        kw = "input" if role == "input" else "param" if role in ("param", "buffer") else None
        if kw is None:
            raise ImportWriteError(f"argument '{names[a.id]}': role {role} has no .nn declaration here")
        lines.append(f"    {kw} {names[a.id]}: {a.type.dtype}{_dims(a.type.shape, names[a.id])}")
    literal_tokens = 0
    for k, n in enumerate(nd for nd in g.nodes if nd.op != "arg"):
        if n.op == "const":     # a number and a comma each: the parser reads at most MAX_TOKENS
            literal_tokens += 2 * int(np.size(n.attr["value"]))
            if literal_tokens > MAX_TOKENS // 2:
                raise ImportWriteError(f"node %{n.id} (const): {np.size(n.attr['value'])} numbers make the "
                                       f"constants too large to write as .nn literals (a .nn file is at most "
                                       f"{MAX_TOKENS} tokens)")
        names[n.id] = f"{prefix}{k}"
        expr = _expression(n, [names[i] for i in n.inputs], [g[i].type.shape for i in n.inputs])
        lines.append(f"    {names[n.id]} = {expr}")
    outs = []
    for out_name, i in g.outputs:
        if not _IDENT.match(out_name) or out_name in RESERVED_WORDS:
            raise ImportWriteError(f"output '{out_name}' is not a .nn name")
        outs.append(f"{out_name} = {names[i]}")
    lines.append(f"    output {', '.join(outs)}")
    lines.append("}")
    return "\n".join(lines) + "\n"

