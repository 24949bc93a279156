"""numpy backend: turn an IR graph into straight-line Python source calling numpy.

Codegen reads one table from primitive to an expression template (rules.py). The generated
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
from ...ir.shapes import Monomial, symbols
from ...sourcetext import loc_text
from . import pairing
from .pooling import is_where0, max_pool_pairs, pooled_relus
from .rules import OPS, OUT_OPS, PRELUDE, np_dtype

def py_name(arg_name: str) -> str:
    """An argument's name in generated code: `h.kernel` -> `a_h_kernel`."""
    return "a_" + re.sub(r"\W", "_", arg_name)


class _Context:
    def __init__(self, graph: Graph, precision: str = "fp32"):
        self.graph = graph
        self.precision = precision
        self.constants: list[str] = []

    def shape(self, dims) -> str:
        out = []
        for d in dims:
            m = Monomial.parse(d)
            out.append("*".join(([str(m.coef)] if m.coef != 1 or not m.syms else []) + ["s_" + s for s in m.syms]))
        return "(" + ", ".join(out) + ("," if len(out) == 1 else "") + ")"

    def scan(self, n: Node, operands: list[str]) -> str:
        """A scan: its whole loop generated where the body allows it (loopgen.py), else its
        body compiled and run once per step by loop.run_scan; either is compiled once, when
        the module is imported."""
        from ...ir.text import print_graph
        from .loopgen import qualifies
        a, text = n.attr, print_graph(n.attr["body"])
        rest = f"{a['axis']}, {a['length']}, {bool(a.get('reverse'))}, {', '.join(operands)}"
        if qualifies(a["body"], a["n_carry"], a["n_seq"], self.precision):
            name = f"_loop{n.id}"
            self.constants.append(f"{name} = _loop_function({text!r}, {a['n_carry']}, {a['n_seq']})")
            # its stacks are kept in this module's workspace, reused when no view of them is held
            return f"{name}({rest}, _ws=_ws.setdefault('scan{n.id}', {{}}))"
        name = f"_body{n.id}"
        self.constants.append(f"{name} = _scan_body({text!r}, {self.precision!r})")
        return f"_run_scan({name}, {a['n_carry']}, {a['n_seq']}, {rest})"

    def constant(self, n: Node) -> str:
        value = n.attr["value"]
        name = f"c{n.id}"
        if not n.shape:  # hoisted: built once at import, not on every call
            self.constants.append(f"{name} = {np_dtype(n)}({value!r})")
            return name
        shape = self.shape(n.shape)
        self.constants.append(f"{name} = np.array({_pylist(value)}, dtype={np_dtype(n)}).reshape({shape})")
        return name


def _pylist(v):
    if isinstance(v, tuple):
        return "[" + ", ".join(_pylist(x) for x in v) + "]"
    return repr(v)


def generate(graph: Graph, fn_name: str | None = None, donate=(), precision: str = "fp32",
             as_tuple: bool = False) -> str:
    """Python source of a module defining `fn_name(args...) -> dict of outputs` (a tuple in
    output order with `as_tuple`: a scan body, called once per step, skips building a dict).

    `donate` names arguments the function may overwrite with their `new.<name>` output
    (a training step's parameters and optimizer state, which the runtime owns).
    `precision` tf32 or bf16 rounds float32 matmul operands as a tensor core reads them
    (precision.py), so this reference predicts the GPU's results in every mode."""
    from .memory import plan as memory_plan
    ctx = _Context(graph, precision)
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
                if Monomial.parse(d).symbol is not None and d not in bound:
                    bound.add(d)
                    body.append(f"    s_{d} = {names[node.id]}.shape[{axis}]")
    needed = {s for n in graph.nodes for s in symbols(n.shape)}
    missing = needed - bound
    if missing:
        raise ValueError(f"{graph.name}: dimension(s) {sorted(missing)} are not bound by any argument")
    pools = max_pool_pairs(graph)   # select_scatter -> (the max pool it differentiates, a where it absorbs)
    pooled = {f for f, _ in pools.values()}
    absorbed = {w: s for s, (_, w) in pools.items() if w is not None}
    relus = pooled_relus(graph, pools)    # relu -> the max pool that takes it after pooling
    reads = {i: s for w, s in absorbed.items() for i in graph[w].inputs}
    reads.update({graph[r].inputs[0]: f for r, f in relus.items()})
    mem = memory_plan(graph, {d: f"new.{d}" for d in donate}, reads)
    pool_relu = {f: r for r, f in relus.items()}
    swish = pairing.swish_pairs(graph)   # sigmoid node -> the mul that consumes it as x * sigmoid(x)
    fused = {m: sg for sg, m in swish.items()}
    xent = pairing.xent_pairs(graph)     # sparse_xent node -> sparse_xent_grad node of the same operands
    early = set(xent.values())
    reuse = pairing.conv_cols_pairs(graph)   # kernel-gradient conv -> the forward conv whose columns it reads
    keep_cols = set(reuse.values())
    compact = _compact_slices(graph)   # narrow column slices copied once, so their readers run contiguous
    epilogues = pairing.conv_epilogues(graph, set(relus))   # conv -> (its bias add, the relu after it or None)
    in_epilogue = {i for pair in epilogues.values() for i in pair if i is not None}
    follow = _time_major_values(graph)   # elementwise results laid out like a scan's stacked output
    major = _scan_major_values(graph, mem)   # workspaces a scan reads as a sequence: time axis outermost
    for node in graph.nodes:
        if node.op == "arg" or node.id in swish or node.id in early or node.id in absorbed or node.id in relus:
            continue
        if node.id in pooled or node.id in pools:
            a, where = node.attr, f"  {loc_text(node.loc)}" if node.loc else ""
            names[node.id] = f"t{node.id}"
            taps = f"{tuple(a['window'])}, {tuple(a['stride'])}"
            if node.id in pooled:
                r = pool_relu.get(node.id)
                x, relu, note = ((names[node.inputs[0]], "", "") if r is None else
                                 (names[graph[r].inputs[0]], ", relu=True", f" of %{r} relu, applied after it"))
                body.append(f"    t{node.id}, idx{node.id} = _max_pool_and_index({x}, {taps}{relu})"
                            f"  # %{node.id} reduce_window max{note}, and which tap won for its gradient{where}")
                continue
            f, w = pools[node.id]
            g, keep = (names[graph[w].inputs[1]], names[graph[w].inputs[0]]) if w is not None else (
                names[node.inputs[1]], "None")
            mask = f", with %{w} where(c, g, 0)" if w is not None else ""
            body.append(f"    t{node.id} = _max_pool_scatter(idx{f}, {g}, {ctx.shape(node.shape)}, {taps}, {keep})"
                        f"  # %{node.id} select_scatter through %{f}'s winning taps{mask}{where}")
            continue
        if node.id in keep_cols or node.id in reuse or node.id in epilogues:
            a, (x, w) = node.attr, (names[i] for i in node.inputs)
            names[node.id] = f"t{node.id}"
            where = f"  {loc_text(node.loc)}" if node.loc else ""
            add, relu = epilogues.get(node.id, (None, None))
            epi, note = "", ""
            if add is not None:     # the add and the maximum are computed by the conv's call, into its y
                operands = [next(i for i in graph[add].inputs if i != node.id)] + (
                    [graph[relu].inputs[1]] if relu is not None else [])
                for i in operands:
                    if i not in names:      # a constant further down: module-level, so it may be named now
                        names[i] = OPS["const"](graph[i], [], ctx)
                epi = "".join(f", {names[i]}" for i in operands)
                note = f", with %{add} add" + (f" and %{relu} maximum" if relu is not None else "")
                for i in (add, relu):
                    if i is not None:
                        names[i] = f"t{node.id}"
            if node.id in keep_cols:
                body.append(f"    t{node.id}, cols{node.id} = _conv_and_cols({x}, {w}, {tuple(a['stride'])}, "
                            f"{tuple(a['padding'])}, {tuple(a['dilation'])}{epi})"
                            f"  # %{node.id} conv{note}{where}")
            elif node.id in reuse:
                body.append(f"    t{node.id} = _conv_from_cols(cols{reuse[node.id]}, {w}, {ctx.shape(node.shape)})"
                            f"  # %{node.id} conv: the kernel gradient of %{reuse[node.id]}, from its im2col{where}")
            else:
                body.append(f"    t{node.id} = _conv({x}, {w}, {tuple(a['stride'])}, {tuple(a['padding'])}, "
                            f"{tuple(a['dilation'])}, {a['groups']}{epi})  # %{node.id} conv{note}{where}")
            continue
        if node.id in in_epilogue:     # computed by its conv's line
            continue
        if node.id in xent:       # one call computes both: max, exp and sum are shared
            gnode = graph[xent[node.id]]
            z, y = (names[i] for i in node.inputs)
            names[node.id], names[gnode.id] = f"t{node.id}", f"t{gnode.id}"
            where = f"  {loc_text(node.loc)}" if node.loc else ""
            body.append(f"    t{node.id}, t{gnode.id} = _sparse_xent_and_grad({z}, {y})  # %{node.id} sparse_xent "
                        f"and %{gnode.id} sparse_xent_grad{where}")
            continue
        if node.id in fused:
            sg = graph[fused[node.id]]
            x = names[sg.inputs[0]]
            tmp = (f"_buf(_ws, {mem.slot[sg.id]}, {ctx.shape(sg.shape)}, {np_dtype(sg)})" if sg.id in mem.slot
                   else "None")
            out = (names[mem.inplace[node.id]] if node.id in mem.inplace else
                   f"_outbuf(_ws, 'out{node.id}', {ctx.shape(node.shape)}, {np_dtype(node)})"
                   if mem.kind.get(node.id) == "out" else
                   f"_buf(_ws, {mem.slot[node.id]}, {ctx.shape(node.shape)}, {np_dtype(node)})"
                   if node.id in mem.slot else "None")
            names[node.id] = f"t{node.id}"
            where = f"  {loc_text(node.loc)}" if node.loc else ""
            body.append(f"    t{node.id} = _swish({x}, {out}, {tmp})  # %{node.id} mul(x, sigmoid(x)) "
                        f"with %{sg.id} sigmoid{where}")
            continue
        operands = [names[i] for i in node.inputs]
        if node.op == "matmul" and precision != "fp32" and node.dtype == "f32":
            operands = [f"_round_{precision}({o})" for o in operands]
        if node.op == "const":  # module-level; no line of its own
            if node.id not in names:     # (a conv's epilogue may have named it already)
                names[node.id] = OPS["const"](node, operands, ctx)
            continue
        var = f"t{node.id}"
        if node.id in mem.inplace:
            expr = OUT_OPS[node.op](operands, names[mem.inplace[node.id]])
            note = f" (into {names[mem.inplace[node.id]]})"
        elif node.id in mem.kind and is_where0(graph, node):
            out = mem.kind[node.id] == "out"
            key = f"'out{node.id}'" if out else mem.slot[node.id]
            buf = f"{'_outbuf' if out else '_buf'}(_ws, {key}, {ctx.shape(node.shape)}, {np_dtype(node)})"
            expr = f"_where0({operands[0]}, {operands[1]}, {buf})"
            note = " (output buffer)" if out else " (workspace)"
        elif node.id in mem.kind and mem.kind[node.id] == "ws" and node.id in follow:
            like = names[follow[node.id]]
            buf = f"_buf_like(_ws, 'like{mem.slot[node.id]}', {like}, {np_dtype(node)})"
            expr = OUT_OPS[node.op](operands, buf)
            note = f" (workspace laid out like {like})"
        elif mem.kind.get(node.id) == "ws" and node.id in major:
            buf = f"_buf_major(_ws, 'major{mem.slot[node.id]}', {ctx.shape(node.shape)}, {np_dtype(node)}, {major[node.id]})"
            expr = OUT_OPS[node.op](operands, buf)
            note = f" (workspace with axis {major[node.id]} outermost: a scan's sequence)"
        elif node.id in mem.kind:
            out = mem.kind[node.id] == "out"
            key = f"'out{node.id}'" if out else mem.slot[node.id]
            buf = f"{'_outbuf' if out else '_buf'}(_ws, {key}, {ctx.shape(node.shape)}, {np_dtype(node)})"
            alloc = "_outbuf" if out else "_buf"
            expr = OUT_OPS[node.op](operands, buf)
            note = " (output buffer)" if alloc == "_outbuf" else " (workspace)"
        elif node.id in compact:     # see _compact_slices
            expr = OPS[node.op](node, operands, ctx) + ".copy()"
            note = ""
        else:
            expr = OPS[node.op](node, operands, ctx)
            note = ""
        names[node.id] = var
        where = f"  {loc_text(node.loc)}" if node.loc else ""
        body.append(f"    {var} = {expr}  # %{node.id} {node.op}{where}{note}")
    if as_tuple:
        body.append(f"    return ({''.join(names[i] + ', ' for _, i in graph.outputs)})")
    else:
        outs = ", ".join(f"{name!r}: {names[i]}" for name, i in graph.outputs)
        body.append(f"    return {{{outs}}}")
    signature = ", ".join(params + ["_ws=_WS"])
    rounding = ([f"from nncompiler.precision import round_{precision} as _round_{precision}"]
                if precision != "fp32" else [])
    header = [PRELUDE, *rounding, *ctx.constants, "_WS = {}  # workspace buffers, reused across calls", "",
              f"def {fn_name}({signature}):"]
    return "\n".join(header + body) + "\n"


def _compact_slices(graph: Graph) -> set[int]:
    """Small slices that cut the last axis and that only elementwise ops (or the graph's
    outputs) read: copied into a contiguous array once instead of read as a strided view.

    numpy runs an elementwise op on a strided 2-D view row by row, and on small blocks the
    rows are short: an LSTM step's gates are [B, units] column slices of one [B, 4*units]
    value, where a multiply of a view takes ~2.6 us against ~0.85 us on a contiguous
    block and a 0.5 us copy. A scan body writes its per-step outputs into stacked buffers,
    which is also faster from a contiguous block. The copy has the same bits as the view,
    and only readers that never write through it (elementwise ops, outputs) see it."""
    from ...ir.primitives import ELEMENTWISE_KINDS
    from .memory import LARGE, estimated_size
    readers: dict[int, list[Node]] = {}
    for n in graph.nodes:
        for i in n.inputs:
            readers.setdefault(i, []).append(n)
    outputs = {i for _, i in graph.outputs}
    out = set()
    for n in graph.nodes:
        if n.op != "slice" or len(n.shape) < 2 or estimated_size(n.shape) > LARGE:
            continue
        src = graph[n.inputs[0]].shape
        if n.shape[-1] == src[-1] or all(d == 1 for d in n.shape[:-1]):
            continue            # whole rows, or a single row: the view is contiguous already
        users = readers.get(n.id, [])
        if (users or n.id in outputs) and all(u.prim.kind in ELEMENTWISE_KINDS for u in users):
            out.add(n.id)
    return out


def _scan_major_values(graph: Graph, mem) -> dict[int, int]:
    """Workspace nodes whose buffer a scan reads as a sequence along axis > 0 (directly or
    after elementwise ops computed into it), mapped to that axis: their buffer is laid out
    with the axis outermost, so the scan reads it time-major in place. Otherwise the scan
    copies it time-major once a call: bench G200's input projection x @ kernel + bias,
    [32, 200, 64], computed [200, 32, 64] by the same per-batch products (the same bits)
    instead of copied after them, 174 vs 245 us."""
    out: dict[int, int] = {}
    for n in graph.nodes:
        if n.op != "scan" or not n.attr["axis"]:
            continue
        first = n.attr["n_carry"]
        for i in n.inputs[first:first + n.attr["n_seq"]]:
            while i in mem.inplace:
                i = mem.inplace[i]
            if mem.kind.get(i) == "ws" and i in mem.slot and graph[i].op in OUT_OPS:
                out[i] = n.attr["axis"] % len(graph[i].shape)
    return out


def _time_major_values(graph: Graph) -> dict[int, int]:
    """Elementwise nodes computed from a scan's stacked output along axis > 0 (directly or
    through such nodes), mapped to the operand whose memory order their workspace takes.

    A scan stacks its per-step outputs time-major, [T, B, N], and returns them viewed as
    [B, T, N]: a strided view. An elementwise op reading it and writing a C-ordered
    [B, T, N] buffer walks one of the two across its memory order, 5-6x slower than in it
    (bench G200's VJP precomputes nine such products of the saved gates, 50-110 us each),
    and the reverse scan reading the result must copy it back to time-major. Written in
    the operand's order, both costs go (the same values: ops are elementwise)."""
    from ...ir.primitives import ELEMENTWISE_KINDS
    out: dict[int, int] = {}
    stacked: set[int] = set()
    for n in graph.nodes:
        if n.op == "scan_out":
            scan = graph[n.inputs[0]]
            if n.attr["index"] >= scan.attr["n_carry"] and scan.attr["axis"] != 0:
                stacked.add(n.id)
        elif n.op in OUT_OPS and n.op != "matmul" and n.prim.kind in ELEMENTWISE_KINDS:
            like = next((i for i in n.inputs if i in stacked and graph[i].shape == n.shape), None)
            if like is not None:
                stacked.add(n.id)
                out[n.id] = like
    return out


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


def compile_graph(graph: Graph, fn_name: str | None = None, donate=(), precision: str = "fp32",
                  as_tuple: bool = False) -> CompiledGraph:
    fn_name = fn_name or re.sub(r"\W", "_", graph.name)
    source = generate(graph, fn_name, donate, precision, as_tuple)
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
