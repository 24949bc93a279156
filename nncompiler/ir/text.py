"""The IR's textual form: print a graph, parse it back into the same graph.

    graph forward(%x: f32[B,4] input, %h.kernel: f32[4,16] param) {
      %0 = matmul(%x, %h.kernel) : f32[B,16]  loc("iris.nn":5:11)
      %1 = sum(%0) {axes=[0, 1], keepdims=false} : f32[]
      return out=%0, loss=%1
    }

Arguments are named by their `name`; other values are numbered in order when
printed, so printing is canonical: two graphs are equal when they print the same.
"""
from __future__ import annotations

import json
import math
import re

from ..errors import CompileError, Diagnostic, Loc, ShapeError
from .graph import Builder, Graph
from .primitives import PRIMITIVES
from .shapes import TensorType, parse_type


# ---- printing -------------------------------------------------------------------

def fmt_attr(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return v if _BARE.fullmatch(v) else json.dumps(v)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(fmt_attr(x) for x in v) + "]"
    if isinstance(v, Graph):  # a scan's body: a nested region, indented under its node
        return print_graph(v).replace("\n", "\n  ")
    raise TypeError(f"cannot print attribute {v!r}")


_BARE = re.compile(r"(\d+\*)?[A-Za-z_][A-Za-z_0-9]*(\*[A-Za-z_][A-Za-z_0-9]*)*")
_KEYWORDS = {"none", "true", "false", "inf", "nan"}


def value_names(g: Graph) -> dict[int, str]:
    """Node id -> its printed name: `%name` for arguments, `%0`, `%1`, ... for the rest, in order."""
    names: dict[int, str] = {}
    counter = 0
    for n in g.nodes:
        if n.op == "arg":
            names[n.id] = "%" + n.attr["name"]
        else:
            names[n.id] = f"%{counter}"
            counter += 1
    return names


def print_graph(g: Graph, with_locs: bool = True) -> str:
    names = value_names(g)
    header = ", ".join(f"{names[a.id]}: {a.type} {a.attr['role']}" for a in g.args)
    lines = [f"graph {g.name}({header}) {{"]
    for n in g.nodes:
        if n.op == "arg":
            continue
        operands = ", ".join(names[i] for i in n.inputs)
        text = f"  {names[n.id]} = {n.op}({operands})"
        # a source's dtype and shape are its printed type; don't say them twice
        shown = [(k, v) for k, v in n.attrs if not (_typed_by_attrs(n.op) and k in ("dtype", "shape"))]
        if shown:
            text += " {" + ", ".join(f"{k}={fmt_attr(v)}" for k, v in shown) + "}"
        text += f" : {n.type}"
        if with_locs and n.loc is not None:
            text += f"  loc({json.dumps(n.loc.file)}:{n.loc.line}:{n.loc.col})"
        lines.append(text)
    outs = ", ".join(f"{name}={names[i]}" for name, i in g.outputs)
    lines.append(f"  return {outs}")
    lines.append("}")
    return "\n".join(lines)


def _typed_by_attrs(op: str) -> bool:
    """Ops whose dtype and shape attributes are their type (printed once, as the type)."""
    return op == "scan_out" or (op in PRIMITIVES and PRIMITIVES[op].kind in ("source", "random"))


def print_graphs(graphs) -> str:
    return "\n\n".join(print_graph(g) for g in graphs)


# ---- parsing --------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r]+|\#[^\n]*)
  | (?P<nl>\n)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<value>%[A-Za-z_0-9][A-Za-z_0-9.]*)
  | (?P<type>(?:f32|f64|i32|i64|bool)\[[^\]]*\])
  | (?P<number>-?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+)(?![\w*])|-inf)
  | (?P<word>(?:\d+\*)?[A-Za-z_][A-Za-z_0-9.]*(?:\*[A-Za-z_][A-Za-z_0-9]*)*)
  | (?P<punct>[(){}\[\],:=])
""", re.VERBOSE)


class _Tokens:
    def __init__(self, text: str, file: str):
        self.file = file
        self.toks: list[tuple[str, str, int, int]] = []
        line, line_start, pos = 1, 0, 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise self._err(line, pos - line_start + 1, f"unexpected character {text[pos]!r}")
            kind = m.lastgroup
            if kind == "nl":
                line, line_start = line + 1, m.end()
            elif kind != "ws":
                self.toks.append((kind, m.group(), line, m.start() - line_start + 1))
            pos = m.end()
        self.toks.append(("eof", "", line, pos - line_start + 1))
        self.i = 0

    def _err(self, line, col, msg):
        return CompileError(Diagnostic(Loc(self.file, line, col), msg))

    def peek(self):
        return self.toks[self.i]

    def next(self):
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text=None, kind=None):
        tok = self.next()
        if (text is not None and tok[1] != text) or (kind is not None and tok[0] != kind):
            want = repr(text) if text else kind
            raise self._err(tok[2], tok[3], f"expected {want}, found {tok[1]!r}" if tok[1] else f"expected {want}, found end of input")
        return tok

    def accept(self, text):
        if self.peek()[1] == text:
            return self.next()
        return None


def _parse_attr(t: _Tokens):
    if t.peek()[1] == "graph":  # a nested region (a scan's body)
        return _parse_one(t)
    kind, text, line, col = t.next()
    if text == "[":
        items = []
        if not t.accept("]"):
            while True:
                items.append(_parse_attr(t))
                if t.accept("]"):
                    break
                t.expect(",")
        return tuple(items)
    if kind == "number":
        if text == "-inf":
            return -math.inf
        return float(text) if any(c in text for c in ".eE") else int(text)
    if kind == "string":
        return json.loads(text)
    if kind == "word":
        return {"none": None, "true": True, "false": False, "inf": math.inf, "nan": math.nan}.get(text, text)
    raise t._err(line, col, f"expected an attribute value, found {text!r}")


def parse_graph(text: str, file: str = "<ir>") -> Graph:
    graphs = parse_graphs(text, file)
    if len(graphs) != 1:
        raise CompileError(Diagnostic(Loc(file, 1, 1), f"expected one graph, found {len(graphs)}"))
    return graphs[0]


def parse_graphs(text: str, file: str = "<ir>") -> list[Graph]:
    t = _Tokens(text, file)
    graphs = []
    while t.peek()[0] != "eof":
        graphs.append(_parse_one(t))
    return graphs


def _parse_one(t: _Tokens) -> Graph:
    t.expect("graph")
    name = t.expect(kind="word")[1]
    b = Builder(name)
    env: dict[str, int] = {}
    t.expect("(")
    if not t.accept(")"):
        while True:
            vtok = t.expect(kind="value")
            t.expect(":")
            ttok = t.expect(kind="type")
            role = t.expect(kind="word")[1]
            env[vtok[1]] = _guard(t, ttok, lambda: b.argument(vtok[1][1:], role, parse_type(ttok[1])))
            if t.accept(")"):
                break
            t.expect(",")
    t.expect("{")
    while True:
        tok = t.peek()
        if tok[1] == "return":
            t.next()
            outputs = []
            while True:
                out_name = t.expect(kind="word")[1]
                t.expect("=")
                ref = t.expect(kind="value")
                outputs.append((out_name, _lookup(t, env, ref)))
                if not t.accept(","):
                    break
            t.expect("}")
            return b.build(outputs)
        vtok = t.expect(kind="value")
        t.expect("=")
        op_tok = t.expect(kind="word")
        t.expect("(")
        operands = []
        if not t.accept(")"):
            while True:
                operands.append(_lookup(t, env, t.expect(kind="value")))
                if t.accept(")"):
                    break
                t.expect(",")
        attrs = {}
        if t.accept("{"):
            while True:
                key = t.expect(kind="word")[1]
                t.expect("=")
                attrs[key] = _parse_attr(t)
                if t.accept("}"):
                    break
                t.expect(",")
        t.expect(":")
        ttok = t.expect(kind="type")
        declared = _guard(t, ttok, lambda: parse_type(ttok[1]))
        loc = None
        if t.accept("loc"):
            t.expect("(")
            f = json.loads(t.expect(kind="string")[1])
            t.expect(":")
            line = t.expect(kind="number")[1]
            t.expect(":")
            col = t.expect(kind="number")[1]
            t.expect(")")
            loc = Loc(f, int(line), int(col))
        op = op_tok[1]
        if _typed_by_attrs(op):
            attrs.setdefault("dtype", declared.dtype)
            attrs.setdefault("shape", declared.shape)
        node_id = _guard(t, op_tok, lambda: b.emit(op, operands, loc=loc, **attrs))
        if b.type_of(node_id) != declared:
            raise t._err(ttok[2], ttok[3], f"declared type {declared} differs from inferred {b.type_of(node_id)}")
        env[vtok[1]] = node_id


def _lookup(t: _Tokens, env, tok) -> int:
    if tok[1] not in env:
        raise t._err(tok[2], tok[3], f"use of undefined value {tok[1]}")
    return env[tok[1]]


def _guard(t: _Tokens, tok, fn):
    try:
        return fn()
    except ShapeError as e:
        raise t._err(tok[2], tok[3], str(e)) from None


__all__ = ["print_graph", "print_graphs", "parse_graph", "parse_graphs", "TensorType"]
