"""An IR graph written back as a `.nn` graph block (`nnc import model.onnx -o model.nn`).

Every IR node becomes one statement spelled with the operator or tensor-toolkit
function that lowers to exactly that primitive (checked by tests/onnx/test_import_nn.py:
compiling the file gives the same printed IR). Parameters are declared with `param`;
their values go to a side checkpoint (.npz) that `nnc.load_weights` and `--weights` read.
A primitive with no one-to-one spelling is a clear error naming the node.
"""
from __future__ import annotations

import math
import re

import numpy as np

from ..errors import NNCError
from ..frontend.grammar import BLOCK_KEYWORDS, MODEL_KEYWORDS

_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@", "pow": "**",
           "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_UNARY = ("tanh", "exp", "log", "sqrt", "abs", "sign", "sigmoid", "log1p", "stop_gradient")
_CALLS = ("maximum", "minimum", "where")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# words a model/graph body cannot use as a name
RESERVED_WORDS = (*BLOCK_KEYWORDS, *MODEL_KEYWORDS, "true", "false")
SUPPORTED = sorted([*_BINARY, *_UNARY, *_CALLS, "neg", "const", "transpose", "reshape", "broadcast_to",
                    "sum", "max", "argmax", "cast", "slice"])
# toolkit names the emitted statements call: an argument of that name would shadow them
_FUNCTIONS = {*_UNARY, *_CALLS, "constant", "transpose", "reshape", "broadcast_to", "sum", "max", "argmax", "cast"}


class ImportWriteError(NNCError):
    """An imported graph that cannot be written as a .nn file."""


def _dims(shape, what: str) -> str:
    out = []
    for d in shape:
        if isinstance(d, (int, np.integer)):
            out.append(str(int(d)))
        elif isinstance(d, str) and _IDENT.match(d) and d not in RESERVED_WORDS:
            out.append(d)
        else:
            raise ImportWriteError(f"{what}: dimension '{d}' has no .nn spelling (an integer or a name)")
    return "[" + ", ".join(out) + "]"


def _literal(value, dtype: str, what: str) -> str:
    arr = np.asarray(value)
    if dtype == "f32":
        def one(v):
            v = float(v)
            if not math.isfinite(v):
                raise ImportWriteError(f"{what}: the constant {v} has no .nn literal")
            return repr(v)
    elif dtype == "i32":
        def one(v):
            return str(int(v))
    else:
        raise ImportWriteError(f"{what}: a {dtype} constant has no .nn literal (f32 and i32 do)")

    def nest(a):
        return one(a) if a.ndim == 0 else "[" + ", ".join(nest(s) for s in a) + "]"
    if arr.size == 0:
        raise ImportWriteError(f"{what}: an empty constant has no .nn literal")
    return nest(arr)


def _slice(attr, what: str) -> str:
    parts = []
    for s, e, st in zip(attr["start"], attr["stop"], attr["step"]):
        if st is None or st <= 0:
            raise ImportWriteError(f"{what}: a slice with step {st} has no one-primitive .nn spelling")
        text = f"{'' if s in (None, 0) else s}:{'' if e is None else e}"
        parts.append(text if st == 1 else f"{text}:{st}")
    return ", ".join(parts)


def graph_to_nn(g, source: str = "", weights: str = "") -> str:
    """The text of a .nn `graph` block that lowers to `g` (names and types as in `g`)."""
    args = [n for n in g.nodes if n.op == "arg"]
    names: dict[int, str] = {}
    for a in args:
        name = a.attr["name"]
        if not _IDENT.match(name) or name in RESERVED_WORDS or name in _FUNCTIONS:
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
    for k, n in enumerate(nd for nd in g.nodes if nd.op != "arg"):
        what = f"node %{n.id} ({n.op})"
        ops = [names[i] for i in n.inputs]
        at = n.attr
        if n.op in _BINARY:
            expr = f"{ops[0]} {_BINARY[n.op]} {ops[1]}"
        elif n.op == "neg":
            expr = f"-{ops[0]}"
        elif n.op in _UNARY or n.op in _CALLS:
            expr = f"{n.op}({', '.join(ops)})"
        elif n.op == "const":
            expr = f"constant({_literal(at['value'], n.type.dtype, what)})"   # made here, in this dtype
        elif n.op == "transpose":
            expr = f"transpose({ops[0]}, perm={list(at['perm'])})"
        elif n.op in ("reshape", "broadcast_to"):
            expr = f"{n.op}({ops[0]}, {_dims(at['shape'], what)})"
        elif n.op in ("sum", "max"):
            expr = f"{n.op}({ops[0]}, axis={list(at['axes'])}, keepdims={str(bool(at['keepdims'])).lower()})"
        elif n.op == "argmax":
            expr = f"argmax({ops[0]}, axis={at['axis']}, keepdims={str(bool(at['keepdims'])).lower()})"
        elif n.op == "cast" and at["dtype"] != "bool":
            expr = f"cast({ops[0]}, {at['dtype']})"
        elif n.op == "slice":
            expr = f"{ops[0]}[{_slice(at, what)}]"
        else:
            raise ImportWriteError(f"{what}: primitive {n.op} has no one-to-one .nn spelling yet "
                                   f"(nnc import writes: {', '.join(SUPPORTED)})")
        names[n.id] = f"{prefix}{k}"
        lines.append(f"    {names[n.id]} = {expr}")
    outs = []
    for out_name, i in g.outputs:
        if not _IDENT.match(out_name) or out_name in RESERVED_WORDS:
            raise ImportWriteError(f"output '{out_name}' is not a .nn name")
        outs.append(f"{out_name} = {names[i]}")
    lines.append(f"    output {', '.join(outs)}")
    lines.append("}")
    return "\n".join(lines) + "\n"

