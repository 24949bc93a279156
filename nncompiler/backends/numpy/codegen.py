"""numpy backend: turn an IR graph into straight-line Python source calling numpy.

Codegen is one table from primitive to an expression template. The generated
function takes the graph's arguments, binds the symbolic dimensions it needs
from their shapes, and computes each node on its own line, commented with the
IR op and the .nn position it came from:

    t3 = a_x @ a_h_kernel  # %3 matmul  iris.nn:5:11

It is the project's reference backend ("the living definition" of each
primitive): constant folding evaluates through it too. Float32 stays float32:
scalars are emitted as `np.float32(...)` and reductions name their dtype.
"""
from __future__ import annotations

import linecache
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...ir.graph import Graph, Node
from ...ir.primitives import norm_axes
from ...ir.shapes import NUMPY_DTYPE, symbols
from ...sourcetext import loc_text

# Helpers the generated module may call; kept tiny and numerically careful.
PRELUDE = '''\
import numpy as np
from numpy import inf, nan

def _sigmoid(x, out=None):
    # 1 / (1 + exp(-x)): for x < -88 exp overflows to inf and the result is exactly 0
    with np.errstate(over="ignore"):
        if out is None or np.ndim(x) == 0:
            return (1 / (1 + np.exp(-x))).astype(x.dtype, copy=False)
        np.negative(x, out=out)
        np.exp(out, out=out)
    np.add(out, 1, out=out)
    return np.reciprocal(out, out=out)

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
    # x * sigmoid(x) as x / (1 + exp(-x)): four passes instead of five
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


def _dt(n: Node) -> str:
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
    "matmul": lambda a, out: f"np.matmul({a[0]}, {a[1]}, out={out})",
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
    "cast": lambda n, a, c: f"{a[0]}.astype({_dt(n)})",
    # ufunc.reduce directly: np.sum's wrapper costs more than the work on small arrays
    "sum": lambda n, a, c: (f"np.add.reduce({a[0]}, axis={_axes(n, c.graph)}, keepdims={bool(n.attr.get('keepdims'))}"
                            + (")" if n.dtype in ("f32", "f64") else f", dtype={_dt(n)})")),
    "max": lambda n, a, c: f"np.maximum.reduce({a[0]}, axis={_axes(n, c.graph)}, keepdims={bool(n.attr.get('keepdims'))})",
    "argmax": lambda n, a, c: (f"np.argmax({a[0]}, axis={n.attr['axis']}, "
                               f"keepdims={bool(n.attr.get('keepdims'))}).astype(np.int32)"),
    "size": lambda n, a, c: f"{_dt(n)}({' * '.join(f'{a[0]}.shape[{i}]' for i in _axes(n, c.graph)) or '1'})",
    "matmul": lambda n, a, c: f"{a[0]} @ {a[1]}",
    "reshape": lambda n, a, c: f"{a[0]}.reshape({c.shape(n.attr['shape'])})",
    "transpose": lambda n, a, c: f"{a[0]}.T" if tuple(n.attr["perm"]) == (1, 0) else
                                 f"{a[0]}.transpose({tuple(n.attr['perm'])})",
    "broadcast_to": lambda n, a, c: f"np.broadcast_to({a[0]}, {c.shape(n.attr['shape'])})",
    "slice": lambda n, a, c: _slice_expr(n, a[0]),
    "pad": lambda n, a, c: f"_pad({a[0]}, {tuple(n.attr['lo'])}, {tuple(n.attr['hi'])}, {tuple(n.attr['interior'])})",
    "concat": lambda n, a, c: f"np.concatenate([{', '.join(a)}], axis={n.attr['axis']})",
    "gather": lambda n, a, c: f"np.take({a[0]}, {a[1]}, axis={n.attr['axis']}, mode='clip')",
    "scatter_add": lambda n, a, c: f"_scatter_add({a[0]}, {a[1]}, {n.attr['axis']}, {c.shape(n.attr['shape'])})",
    "const": lambda n, a, c: c.constant(n),
    "iota": lambda n, a, c: f"_iota({c.shape(n.shape)}, {n.attr['axis']}, {_dt(n)})",
    "random_uniform": lambda n, a, c: (f"_uniform({n.attr['seed']}, {n.attr['low']!r}, {n.attr['high']!r}, "
                                       f"{c.shape(n.shape)}, {_dt(n)})"),
    "rng_uniform": lambda n, a, c: f"_rng_uniform({a[0]}, {n.attr['seed']}, {c.shape(n.shape)}, {_dt(n)})",
    "random_normal": lambda n, a, c: (f"_normal({n.attr['seed']}, {n.attr['mean']!r}, {n.attr['stddev']!r}, "
                                      f"{c.shape(n.shape)}, {_dt(n)})"),
}


def py_name(arg_name: str) -> str:
    """An argument's name in generated code: `h.kernel` -> `a_h_kernel`."""
    return "a_" + re.sub(r"\W", "_", arg_name)


class _Context:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.constants: list[str] = []

    def shape(self, dims) -> str:
        out = []
        for d in dims:
            out.append(str(d) if isinstance(d, int) else re.sub(r"[A-Za-z_]\w*", lambda m: "s_" + m.group(), d))
        return "(" + ", ".join(out) + ("," if len(out) == 1 else "") + ")"

    def constant(self, n: Node) -> str:
        value = n.attr["value"]
        name = f"c{n.id}"
        if not n.shape:  # hoisted: built once at import, not on every call
            self.constants.append(f"{name} = {_dt(n)}({value!r})")
            return name
        shape = self.shape(n.shape)
        self.constants.append(f"{name} = np.array({_pylist(value)}, dtype={_dt(n)}).reshape({shape})")
        return name


def _pylist(v):
    if isinstance(v, tuple):
        return "[" + ", ".join(_pylist(x) for x in v) + "]"
    return repr(v)


def generate(graph: Graph, fn_name: str | None = None, donate=()) -> str:
    """Python source of a module defining `fn_name(args...) -> dict of outputs`.

    `donate` names arguments the function may overwrite with their `new.<name>` output
    (a training step's parameters and optimizer state, which the runtime owns)."""
    from .memory import plan as memory_plan
    ctx = _Context(graph)
    fn_name = fn_name or re.sub(r"\W", "_", graph.name)
    names: dict[int, str] = {}
    params = []
    body = []
    bound: set[str] = set()
    taken: set[str] = set()
    for node in graph.nodes:
        if node.op == "arg":
            name = py_name(node.attr["name"])
            while name in taken:  # h.kernel and h_kernel would both be a_h_kernel
                name += "_"
            taken.add(name)
            names[node.id] = name
            params.append(names[node.id])
            for axis, d in enumerate(node.shape):
                if isinstance(d, str) and re.fullmatch(r"[A-Za-z_]\w*", d) and d not in bound:
                    bound.add(d)
                    body.append(f"    s_{d} = {names[node.id]}.shape[{axis}]")
    needed = {s for n in graph.nodes for s in symbols(n.shape)}
    missing = needed - bound
    if missing:
        raise ValueError(f"{graph.name}: dimension(s) {sorted(missing)} are not bound by any argument")
    mem = memory_plan(graph, {d: f"new.{d}" for d in donate})
    swish = _swish_pairs(graph)   # sigmoid node -> the mul that consumes it as x * sigmoid(x)
    fused = {m: sg for sg, m in swish.items()}
    for node in graph.nodes:
        if node.op == "arg" or node.id in swish:
            continue
        if node.id in fused:
            sg = graph[fused[node.id]]
            x = names[sg.inputs[0]]
            tmp = (f"_buf(_ws, {mem.slot[sg.id]}, {ctx.shape(sg.shape)}, {_dt(sg)})" if sg.id in mem.slot
                   else "None")
            out = (names[mem.inplace[node.id]] if node.id in mem.inplace else
                   f"_outbuf(_ws, 'out{node.id}', {ctx.shape(node.shape)}, {_dt(node)})"
                   if mem.kind.get(node.id) == "out" else
                   f"_buf(_ws, {mem.slot[node.id]}, {ctx.shape(node.shape)}, {_dt(node)})"
                   if node.id in mem.slot else "None")
            names[node.id] = f"t{node.id}"
            where = f"  {loc_text(node.loc)}" if node.loc else ""
            body.append(f"    t{node.id} = _swish({x}, {out}, {tmp})  # %{node.id} mul(x, sigmoid(x)) "
                        f"with %{sg.id} sigmoid{where}")
            continue
        operands = [names[i] for i in node.inputs]
        if node.op == "const":  # module-level; no line of its own
            names[node.id] = OPS["const"](node, operands, ctx)
            continue
        var = f"t{node.id}"
        if node.id in mem.inplace:
            expr = OUT_OPS[node.op](operands, names[mem.inplace[node.id]])
            note = f" (into {names[mem.inplace[node.id]]})"
        elif node.id in mem.kind and _is_where0(graph, node):
            out = mem.kind[node.id] == "out"
            key = f"'out{node.id}'" if out else mem.slot[node.id]
            buf = f"{'_outbuf' if out else '_buf'}(_ws, {key}, {ctx.shape(node.shape)}, {_dt(node)})"
            expr = f"_where0({operands[0]}, {operands[1]}, {buf})"
            note = " (output buffer)" if out else " (workspace)"
        elif node.id in mem.kind:
            out = mem.kind[node.id] == "out"
            key = f"'out{node.id}'" if out else mem.slot[node.id]
            buf = f"{'_outbuf' if out else '_buf'}(_ws, {key}, {ctx.shape(node.shape)}, {_dt(node)})"
            alloc = "_outbuf" if out else "_buf"
            expr = OUT_OPS[node.op](operands, buf)
            note = " (output buffer)" if alloc == "_outbuf" else " (workspace)"
        else:
            expr = OPS[node.op](node, operands, ctx)
            note = ""
        names[node.id] = var
        where = f"  {loc_text(node.loc)}" if node.loc else ""
        body.append(f"    {var} = {expr}  # %{node.id} {node.op}{where}{note}")
    outs = ", ".join(f"{name!r}: {names[i]}" for name, i in graph.outputs)
    body.append(f"    return {{{outs}}}")
    signature = ", ".join(params + ["_ws=_WS"])
    header = [PRELUDE, *ctx.constants, "_WS = {}  # workspace buffers, reused across calls", "",
              f"def {fn_name}({signature}):"]
    return "\n".join(header + body) + "\n"


def _is_where0(graph: Graph, node: Node) -> bool:
    """where(c, x, +0.0) on floats: computed with a bit mask instead of a masked copy."""
    if node.op != "where" or node.dtype not in ("f32", "f64"):
        return False
    y = graph[node.inputs[2]]
    if y.op != "const" or y.shape != () or y.attr["value"] != 0:
        return False
    import math
    return math.copysign(1.0, y.attr["value"]) > 0


def _swish_pairs(graph: Graph) -> dict[int, int]:
    """sigmoid nodes whose only use is `mul(x, sigmoid(x))` (swish), mapped to that mul."""
    users: dict[int, list[int]] = {}
    for n in graph.nodes:
        for i in n.inputs:
            users.setdefault(i, []).append(n.id)
    outputs = {i for _, i in graph.outputs}
    pairs = {}
    for n in graph.nodes:
        if n.op != "sigmoid" or n.id in outputs or len(users.get(n.id, [])) != 1:
            continue
        m = graph[users[n.id][0]]
        if m.op == "mul" and sorted(m.inputs) == sorted((n.id, n.inputs[0])) and m.type == n.type:
            pairs[n.id] = m.id
    return pairs


@dataclass
class CompiledGraph:
    """A graph compiled to a Python function; call with a dict of argument name -> array."""

    graph: Graph
    source: str
    fn: Callable
    arg_names: tuple[str, ...]

    def __call__(self, args: dict) -> dict:
        try:
            values = [args[name] for name in self.arg_names]
        except KeyError as e:
            raise KeyError(f"{self.graph.name}: missing argument {e.args[0]!r}") from None
        return self.fn(*values)


def compile_graph(graph: Graph, fn_name: str | None = None, donate=()) -> CompiledGraph:
    fn_name = fn_name or re.sub(r"\W", "_", graph.name)
    source = generate(graph, fn_name, donate)
    filename = f"<nnc-numpy:{graph.name}:{abs(hash(source)):x}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # readable tracebacks
    namespace: dict = {}
    exec(compile(source, filename, "exec"), namespace)
    arg_names = tuple(n.attr["name"] for n in graph.args)
    return CompiledGraph(graph, source, namespace[fn_name], arg_names)


def evaluate(graph: Graph, args: dict | None = None) -> dict:
    """Run a graph once (used by constant folding and by tests)."""
    out = compile_graph(graph)(args or {})
    return {k: np.asarray(v) for k, v in out.items()}
