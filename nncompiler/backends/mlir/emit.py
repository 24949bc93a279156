"""MLIR text from an optimised IR graph: func, arith, math, tensor and linalg on tensors.

One IR graph becomes one `func.func`; a model's graphs become one `module`.

* Types: `f32[B,784]` is `tensor<?x784xf32>` (bool is `i1`). A symbolic dimension is
  read once from the first argument that has it (`%B = tensor.dim %x, %c0`) and
  products such as `4*B` are `arith.muli` of those; `tensor.empty(%B)` uses them.
* Values keep the IR's printed numbering (`--emit opt`): IR `%12` is MLIR `%12`,
  arguments keep their names (`%h.kernel`).
* Fused clusters (see plan.py) are one `linalg.generic` each, preceded by a comment
  naming the IR ops it covers; reductions are generics with "reduction" iterators;
  matmuls are `linalg.matmul` (transposed operands through `indexing_maps`),
  `linalg.batch_matmul` or a contraction generic; movement ops are
  `tensor.collapse_shape`/`expand_shape`/`extract_slice`/`insert_slice`/`pad`/
  `concat`, `linalg.transpose`/`broadcast`; constants are `arith.constant dense<...>`.
* Every op carries `loc("file.nn":line:col)` from the IR node it comes from.
* `random_uniform`/`random_normal` (initialisers, static shapes) are evaluated with
  numpy at compile time and embedded as constants; `rng_uniform` (dropout's per-step
  noise) becomes an extra function argument that the runtime fills with numpy's
  generator, so both backends draw the same numbers.
"""
from __future__ import annotations

import math
import re

import numpy as np

from ...errors import NNCError
from ...ir.graph import Graph, Node
from ...ir.shapes import NUMPY_DTYPE, TensorType, canon_dim, dim_div, dim_mul, numel
from ...sourcetext import loc_text, quote
from .plan import (Cluster, Plan, build_plan, operand_access, reduced_axes,
                   splat_value)

ELEM = {"f32": "f32", "f64": "f64", "i32": "i32", "i64": "i64", "bool": "i1"}
FLOATS = ("f32", "f64")
INTS = ("i32", "i64")


def tensor_type(ty: TensorType) -> str:
    dims = "".join(f"{d}x" if isinstance(d, int) else "?x" for d in ty.shape)
    return f"tensor<{dims}{ELEM[ty.dtype]}>"


def _tt(dtype: str, shape) -> str:
    return tensor_type(TensorType(dtype, tuple(shape)))


def symbol_name(name: str) -> str:
    """A func/module symbol: bare when it is an identifier, else quoted."""
    return "@" + (name if re.fullmatch(r"[A-Za-z_][\w$.]*", name) else quote(name, "mlir"))


# ---- literals -----------------------------------------------------------------------

_SPECIAL_BITS = {
    "f32": {"inf": "0x7F800000", "-inf": "0xFF800000", "nan": "0x7FC00000"},
    "f64": {"inf": "0x7FF0000000000000", "-inf": "0xFFF0000000000000", "nan": "0x7FF8000000000000"},
}


def float_literal(v, dtype: str) -> str:
    """A float MLIR reads back exactly: the shortest round-trip digits, hex bits for inf/nan."""
    v = float(v)
    if math.isnan(v):
        return _SPECIAL_BITS[dtype]["nan"]
    if math.isinf(v):
        return _SPECIAL_BITS[dtype]["inf" if v > 0 else "-inf"]
    s = str(np.float32(v)) if dtype == "f32" else repr(v)
    if "." not in s:  # MLIR's float literals need a '.' ("1e-07" would be an integer and more)
        s = s.replace("e", ".0e") if "e" in s else s + ".0"
    return s


def scalar_literal(v, dtype: str) -> str:
    if dtype in FLOATS:
        return float_literal(v, dtype)
    if dtype == "bool":
        return "true" if v else "false"
    return str(int(v))


def dense_literal(arr: np.ndarray, dtype: str) -> str:
    """`dense<...>`: a splat, a nested list for small finite tensors, else a hex blob."""
    arr = np.asarray(arr, dtype=NUMPY_DTYPE[dtype])
    flat = arr.reshape(-1)
    if flat.size and (flat == flat[0]).all() and np.signbit(flat).all() == np.signbit(flat).any():
        return f"dense<{scalar_literal(flat[0], dtype)}>"
    if flat.size and dtype in FLOATS and np.isnan(flat).all():
        return f"dense<{scalar_literal(flat[0], dtype)}>"
    finite = dtype not in FLOATS or bool(np.isfinite(flat).all())
    if dtype == "bool" or (finite and flat.size <= 256):
        def nest(a):
            if a.ndim == 0:
                return scalar_literal(a.item(), dtype)
            return "[" + ", ".join(nest(x) for x in a) + "]"
        return f"dense<{nest(arr)}>"
    return f'dense<"0x{np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes().hex().upper()}">'


# ---- reshapes ---------------------------------------------------------------------------

def _groups(a, b):
    """Reassociation between shapes a and b through a common intermediate shape:
    (groups of a, groups of b, intermediate shape), or None when there is none."""
    a = [canon_dim(d) for d in a]
    b = [canon_dim(d) for d in b]
    if not a or not b:  # rank 0: the other side must be all ones
        rest = b if not a else a
        return ([], [], []) if all(d == 1 for d in rest) else None
    ga, gb, inter = [], [], []
    i = j = 0
    while i < len(a) and j < len(b):
        cur_a, pa = [i], a[i]
        cur_b, pb = [j], b[j]
        i += 1
        j += 1
        while canon_dim(pa) != canon_dim(pb):
            if dim_div(pb, pa) is not None and i < len(a):
                cur_a.append(i)
                pa = dim_mul(pa, a[i])
                i += 1
            elif dim_div(pa, pb) is not None and j < len(b):
                cur_b.append(j)
                pb = dim_mul(pb, b[j])
                j += 1
            else:
                return None
        ga.append(cur_a)
        gb.append(cur_b)
        inter.append(canon_dim(pa))
    if any(d != 1 for d in a[i:]) or any(d != 1 for d in b[j:]):
        return None
    ga[-1].extend(range(i, len(a)))
    gb[-1].extend(range(j, len(b)))
    return ga, gb, inter


def _reassoc(groups) -> str:
    return "[" + ", ".join("[" + ", ".join(str(k) for k in g) + "]" for g in groups) + "]"


def _amap(nloops: int, exprs) -> str:
    """affine_map<(d0, d1) -> (d0, 0)> from a list of loop indices (None = constant 0)."""
    dims = ", ".join(f"d{k}" for k in range(nloops))
    res = ", ".join("0" if e is None else f"d{e}" for e in exprs)
    return f"affine_map<({dims}) -> ({res})>"


# ---- one function ------------------------------------------------------------------------

_CMP_F = {"lt": "olt", "le": "ole", "gt": "ogt", "ge": "oge", "eq": "oeq", "ne": "une"}
_CMP_I = {"lt": "slt", "le": "sle", "gt": "sgt", "ge": "sge", "eq": "eq", "ne": "ne"}
_CMP_B = {"lt": "ult", "le": "ule", "gt": "ugt", "ge": "uge", "eq": "eq", "ne": "ne"}
_UNARY_MATH = {"exp": "math.exp", "log": "math.log", "log1p": "math.log1p", "sqrt": "math.sqrt",
               "tanh": "math.tanh"}
_BIN_F = {"add": "arith.addf", "sub": "arith.subf", "mul": "arith.mulf", "div": "arith.divf",
          "maximum": "arith.maximumf", "minimum": "arith.minimumf"}
_BIN_I = {"add": "arith.addi", "sub": "arith.subi", "mul": "arith.muli", "div": "arith.divsi",
          "maximum": "arith.maxsi", "minimum": "arith.minsi"}
_BIN_B = {"add": "arith.ori", "sub": "arith.xori", "mul": "arith.andi", "maximum": "arith.ori",
          "minimum": "arith.andi"}


class RngInput:
    """A host-generated random tensor the function takes as an extra argument."""

    def __init__(self, node: Node, name: str):
        self.node = node
        self.name = name            # argument name in the function (without %)


class FunctionEmitter:
    def __init__(self, graph: Graph, fn_name: str | None = None, indent: str = "  "):
        self.g = graph
        self.fn_name = fn_name or graph.name
        self.plan: Plan = build_plan(graph)
        self.ind = indent
        self.lines: list[str] = []
        self.taken: set[str] = set()
        self.val: dict[int, str] = {}         # node id -> tensor SSA value
        self.scalars: dict[int, str] = {}     # inline node id -> top-level scalar SSA (size)
        self.dims: dict = {}                  # canonical dim -> index SSA
        self.consts: dict[tuple, str] = {}    # top-level scalar constants
        self.printed: dict[int, str] = {}     # node id -> the IR's printed name (%3)
        self.rng: list[RngInput] = []
        counter = 0
        for n in graph.nodes:
            if n.op != "arg":
                self.printed[n.id] = str(counter)
                counter += 1

    # -- names and small helpers -------------------------------------------------------
    def fresh(self, base: str) -> str:
        base = re.sub(r"[^\w$.\-]", "_", base)
        if not re.match(r"[A-Za-z_]", base):
            base = "v" + base
        name, k = base, 0
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return "%" + name

    def loc(self, node: Node | None) -> str:
        if node is None or node.loc is None:
            return ""
        return f" loc({loc_text(node.loc, 'mlir')})"

    def emit(self, text: str, node: Node | None = None) -> None:
        self.lines.append(f"{self.ind}{self.ind}{text}{self.loc(node)}")

    def comment(self, text: str) -> None:
        self.lines.append(f"{self.ind}{self.ind}// {text}")

    def index_const(self, k: int) -> str:
        key = ("index", k)
        if key not in self.consts:
            name = self.fresh(f"c{k}")
            self.emit(f"{name} = arith.constant {k} : index")
            self.consts[key] = name
        return self.consts[key]

    def top_const(self, value, dtype: str) -> str:
        lit = scalar_literal(value, dtype)
        key = (dtype, lit)
        if key not in self.consts:
            if dtype in FLOATS:
                base = "cst"
            elif dtype == "bool":
                base = lit
            else:
                base = f"c{lit.replace('-', 'm')}_{ELEM[dtype]}"
            name = self.fresh(base)
            self.emit(f"{name} = arith.constant {lit}" + ("" if dtype == "bool" else f" : {ELEM[dtype]}"))
            self.consts[key] = name
        return self.consts[key]

    # -- symbolic dimensions -------------------------------------------------------------
    def bind_symbols(self) -> None:
        self.symbol_src: dict[str, tuple[str, int, str]] = {}
        for a in self.g.args:
            for axis, d in enumerate(a.shape):
                if isinstance(d, str) and re.fullmatch(r"[A-Za-z_]\w*", d) and d not in self.symbol_src:
                    self.symbol_src[d] = (self.val[a.id], axis, tensor_type(a.type))

    def dim(self, d) -> str | None:
        """The index SSA value of a dimension (None for a static one)."""
        if isinstance(d, int):
            return None
        d = canon_dim(d)
        if d in self.dims:
            return self.dims[d]
        parts = d.split("*")
        if len(parts) == 1:
            if d not in self.symbol_src:
                raise NNCError(f"{self.g.name}: dimension {d} is not bound by any argument")
            arg, axis, ty = self.symbol_src[d]
            name = self.fresh(d)
            self.emit(f"{name} = tensor.dim {arg}, {self.index_const(axis)} : {ty}")
        else:
            acc = None
            for p in parts:
                v = self.index_const(int(p)) if p.isdigit() else self.dim(p)
                if acc is None:
                    acc = v
                else:
                    name = self.fresh("d" + re.sub(r"\W", "", d))
                    self.emit(f"{name} = arith.muli {acc}, {v} : index")
                    acc = name
            name = acc
        self.dims[d] = name
        return name

    def dyn_dims(self, shape) -> list[str]:
        return [self.dim(d) for d in shape if not isinstance(d, int)]

    def empty(self, dtype: str, shape, node: Node | None) -> str:
        name = self.fresh("empty")
        self.emit(f"{name} = tensor.empty({', '.join(self.dyn_dims(shape))}) : {_tt(dtype, shape)}", node)
        return name

    def filled(self, dtype: str, shape, value, node: Node | None) -> str:
        e = self.empty(dtype, shape, node)
        c = self.top_const(value, dtype)
        name = self.fresh("init")
        t = _tt(dtype, shape)
        self.emit(f"{name} = linalg.fill ins({c} : {ELEM[dtype]}) outs({e} : {t}) -> {t}", node)
        return name

    def node_name(self, n: Node) -> str:
        """The SSA name of a node's result: the IR's printed number, unique by construction."""
        name = self.printed[n.id]
        self.taken.add(name)
        return "%" + name

    # -- tensors ---------------------------------------------------------------------------
    def tensor(self, i: int) -> str:
        """The tensor value of node i, materialising inline scalars (constants, sizes) on demand."""
        if i in self.val:
            return self.val[i]
        n = self.g[i]
        if n.op == "const":
            name = self.node_name(n)
            arr = np.array(n.attr["value"], dtype=NUMPY_DTYPE[n.dtype]).reshape([int(d) for d in n.shape])
            self.emit(f"{name} = arith.constant {dense_literal(arr, n.dtype)} : {tensor_type(n.type)}", n)
        elif n.op == "size":
            s = self.size_scalar(n)
            name = self.node_name(n)
            self.emit(f"{name} = tensor.from_elements {s} : {tensor_type(n.type)}", n)
        else:  # pragma: no cover - the plan emits every other node before its users
            raise AssertionError(f"node %{i} ({n.op}) used before it is computed")
        self.val[i] = name
        return name

    def size_scalar(self, n: Node) -> str:
        if n.id in self.scalars:
            return self.scalars[n.id]
        x = self.g[n.inputs[0]]
        axes = reduced_axes(n, self.g)
        count = numel([x.shape[a] for a in axes])
        if isinstance(count, int):
            name = self.top_const(count, n.dtype)
        else:
            idx = self.dim(count)
            name = self.fresh(f"size{self.printed[n.id]}")
            if n.dtype in FLOATS:
                i64 = self.fresh("n")
                self.emit(f"{i64} = arith.index_cast {idx} : index to i64", n)
                self.emit(f"{name} = arith.sitofp {i64} : i64 to {ELEM[n.dtype]}", n)
            elif n.dtype in INTS:
                self.emit(f"{name} = arith.index_cast {idx} : index to {ELEM[n.dtype]}", n)
            else:
                zero = self.index_const(0)
                self.emit(f"{name} = arith.cmpi ne, {idx}, {zero} : index", n)
        self.scalars[n.id] = name
        return name

    # -- the function ------------------------------------------------------------------------
    def build(self) -> str:
        g = self.g
        params = []
        for a in g.args:
            name = self.fresh(a.attr["name"])
            self.val[a.id] = name
            params.append(f"{name}: {tensor_type(a.type)}")
        for n in self.plan.live:
            if n.op == "rng_uniform":
                r = RngInput(n, f"rng{self.printed[n.id]}")
                name = self.fresh(r.name)
                r.name = name[1:]
                self.rng.append(r)
                self.val[n.id] = name
                params.append(f"{name}: {tensor_type(n.type)}")
        self.bind_symbols()
        for n in self.plan.live:
            if n.op in ("arg", "rng_uniform") or n.id in self.plan.inline:
                continue
            if n.id in self.plan.member_of and self.plan.member_of[n.id] != n.id:
                continue  # computed inside its cluster's generic
            kind, unit = self.plan.unit(n.id)
            if kind == "cluster":
                self.emit_cluster(unit)
            else:
                self.emit_single(n)
        results = [self.tensor(i) for _, i in g.outputs]
        types = [tensor_type(g[i].type) for _, i in g.outputs]
        names = ", ".join(name for name, _ in g.outputs)
        self.lines.append(f"{self.ind}{self.ind}// results: {names}")
        if results:
            self.lines.append(f"{self.ind}{self.ind}return {', '.join(results)} : {', '.join(types)}")
        else:
            self.lines.append(f"{self.ind}{self.ind}return")
        sig = ", ".join(params)
        res = ", ".join(types)
        head = f"{self.ind}func.func {symbol_name(self.fn_name)}({sig}) -> ({res}) {{"
        return "\n".join([head, *self.lines, f"{self.ind}}}"])

    # -- clusters ------------------------------------------------------------------------------
    def emit_cluster(self, c: Cluster) -> None:
        g, plan = self.g, self.plan
        root = g[c.root]
        red = plan.is_reduction_root(c)
        if len(c.nodes) == 1 and not red and self.emit_named_remap(root):
            return
        members = set(c.nodes)
        nloops = len(c.domain)
        operands_of = {}
        for nid in c.nodes:
            n = g[nid]
            if nid == c.root and red:
                operands_of[nid] = [(n.inputs[0], tuple(range(nloops)))]
            else:
                operands_of[nid] = [(i, operand_access(n, c.access[nid], g[i], g)) for i in n.inputs]
        leaf_accesses = [acc for ops in operands_of.values() for i, acc in ops
                         if i not in members and i not in plan.inline]
        axes = reduced_axes(root, g) if red else ()
        keep = None
        if red and root.op == "sum" and len(axes) == nloops:
            # IREE 3.13 fails on a full sum (a scalar result) that reads an operand broadcast along
            # a reduced loop ("'vector.contract' op invalid accumulator/result vector shape"): sum
            # over all loops but one such loop first, then sum that vector
            missing = sorted({k for acc in leaf_accesses for k in range(nloops) if k not in acc})
            if missing:
                keep = missing[0]
                axes = tuple(k for k in range(nloops) if k != keep)
        leaves: dict[tuple, str] = {}     # (node id, access) -> block argument
        ins: list[tuple[str, str, str]] = []  # (tensor SSA, type, map)
        for nid in c.nodes:
            for i, acc in operands_of[nid]:
                if i in members or i in plan.inline or (i, acc) in leaves:
                    continue
                label = g[i].attr["name"] if g[i].op == "arg" else self.printed.get(i, "")
                leaves[(i, acc)] = self.fresh(f"in_{label}")
                ins.append((self.tensor(i), tensor_type(g[i].type), _amap(nloops, acc)))
        # outputs: the root's value, or the reduction's accumulator(s): (init tensor, dtype, shape)
        if red:
            src_dt = g[root.inputs[0]].dtype
            out_shape = tuple(d for k, d in enumerate(c.domain) if k not in axes)
            out_map = _amap(nloops, [k for k in range(nloops) if k not in axes])
            iters = ["reduction" if k in axes else "parallel" for k in range(nloops)]
            if root.op == "argmax":
                outs = [(self.filled(src_dt, out_shape, _lowest(src_dt), root), src_dt, out_shape),
                        (self.filled("i32", out_shape, 0, root), "i32", out_shape)]
            else:
                init = 0 if root.op == "sum" else _lowest(root.dtype)
                outs = [(self.filled(root.dtype, out_shape, init, root), root.dtype, out_shape)]
            out_maps = [out_map] * len(outs)
        else:
            out_shape = c.domain
            outs = [(self.empty(root.dtype, out_shape, root), root.dtype, out_shape)]
            out_maps = [_amap(nloops, list(range(nloops)))]
            iters = ["parallel"] * nloops
        # the region
        body: list[str] = []
        block_args = [f"{leaves[k]}: {ELEM[g[k[0]].dtype]}" for k in leaves]
        out_args = [self.fresh("acc" if red else "out") for _ in outs]
        block_args += [f"{a}: {ELEM[dt]}" for a, (_, dt, _) in zip(out_args, outs)]
        region = _Region(self, body, leaves, c)
        for nid in c.nodes:
            if not (nid == c.root and red):
                region.compute(g[nid])
        if red:
            v = region.value_of(root.inputs[0], root, tuple(range(nloops)))
            yields = region.combine(root, v, out_args, src_dtype=g[root.inputs[0]].dtype)
        else:
            yields = [(region.values[c.root], ELEM[root.dtype])]
        body.append(f"linalg.yield {', '.join(v for v, _ in yields)} : {', '.join(t for _, t in yields)}")
        # print it
        covered = ", ".join(f"%{self.printed[i]} {g[i].op}" for i in c.nodes)
        what = "reduction" if red else ("fused" if len(c.nodes) > 1 else "elementwise")
        self.comment(f"{what}: {covered}")
        reshape_after = red and bool(root.attr.get("keepdims"))
        if reshape_after or len(outs) > 1 or keep is not None:
            res = self.fresh(f"r{self.printed[root.id]}")
        else:
            res = self.node_name(root)
        res_decl = res if len(outs) == 1 else f"{res}:{len(outs)}"
        out_types = [_tt(dt, shape) for _, dt, shape in outs]
        maps = ", ".join([m for _, _, m in ins] + out_maps)
        it = ", ".join(f'"{s}"' for s in iters)
        ins_txt = ""
        if ins:
            ins_txt = f" ins({', '.join(v for v, _, _ in ins)} : {', '.join(t for _, t, _ in ins)})"
        outs_txt = f" outs({', '.join(v for v, _, _ in outs)} : {', '.join(out_types)})"
        rtypes = out_types[0] if len(outs) == 1 else f"({', '.join(out_types)})"
        pad = self.ind * 2
        lines = [f"{pad}{res_decl} = linalg.generic {{indexing_maps = [{maps}], iterator_types = [{it}]}}"
                 f"{ins_txt}{outs_txt} {{",
                 f"{pad}^bb0({', '.join(block_args)}):"]
        lines += [f"{pad}{self.ind}{b}" for b in body]
        lines.append(f"{pad}}} -> {rtypes}{self.loc(root)}")
        self.lines.extend(lines)
        value = res if len(outs) == 1 else f"{res}#{len(outs) - 1}"
        if keep is not None:   # the second stage: the vector to a scalar
            out_shape = ()
            value = self.sum_vector(value, out_types[0], root, name=None if reshape_after else self.node_name(root))
        if reshape_after:
            value = self.reshape(value, TensorType(root.dtype, out_shape), root.type, root, name=self.node_name(root))
        self.val[c.root] = value

    def sum_vector(self, x: str, ty: str, root: Node, name: str | None) -> str:
        """sum of a vector (the second stage of a split full sum) -> a scalar tensor."""
        dt, e = root.dtype, ELEM[root.dtype]
        init = self.filled(dt, (), 0, root)
        name = name or self.fresh("total")
        a, acc, s = self.fresh("in"), self.fresh("acc"), self.fresh("t")
        add = "arith.addf" if dt in FLOATS else ("arith.ori" if dt == "bool" else "arith.addi")
        pad = self.ind * 2
        self.lines += [
            f"{pad}{name} = linalg.generic {{indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> ()>], "
            f'iterator_types = ["reduction"]}} ins({x} : {ty}) outs({init} : tensor<{e}>) {{',
            f"{pad}^bb0({a}: {e}, {acc}: {e}):",
            f"{pad}{self.ind}{s} = {add} {acc}, {a} : {e}{self.loc(root)}",
            f"{pad}{self.ind}linalg.yield {s} : {e}",
            f"{pad}}} -> tensor<{e}>{self.loc(root)}",
        ]
        return name

    def emit_named_remap(self, n: Node) -> bool:
        """A cluster of one index remapping on a tensor: the named op says it best."""
        g = self.g
        if n.op == "stop_gradient" or (n.op in ("sum", "max") and not reduced_axes(n, g)):
            x = self.tensor(n.inputs[0])
            self.val[n.id] = x  # the value itself (sum over no axes is the identity)
            return True
        if n.op == "reshape":
            x = g[n.inputs[0]]
            self.val[n.id] = self.reshape(self.tensor(x.id), x.type, n.type, n, name=self.node_name(n))
            return True
        if n.op == "transpose":
            x = self.tensor(n.inputs[0])
            e = self.empty(n.dtype, n.shape, n)
            name = self.node_name(n)
            perm = ", ".join(str(p) for p in n.attr["perm"])
            self.emit(f"{name} = linalg.transpose ins({x} : {tensor_type(g[n.inputs[0]].type)}) "
                      f"outs({e} : {tensor_type(n.type)}) permutation = [{perm}]", n)
            self.val[n.id] = name
            return True
        if n.op == "broadcast_to":
            x = g[n.inputs[0]]
            shift = n.type.rank - x.type.rank
            if all(canon_dim(d) == canon_dim(n.shape[j + shift]) for j, d in enumerate(x.shape)):
                e = self.empty(n.dtype, n.shape, n)
                name = self.node_name(n)
                dims = ", ".join(str(k) for k in range(shift))
                self.emit(f"{name} = linalg.broadcast ins({self.tensor(x.id)} : {tensor_type(x.type)}) "
                          f"outs({e} : {tensor_type(n.type)}) dimensions = [{dims}]", n)
                self.val[n.id] = name
                return True
        return False

    # -- singles ---------------------------------------------------------------------------------
    def emit_single(self, n: Node) -> None:
        g = self.g
        op = n.op
        if op == "const":
            self.tensor(n.id)
            return
        if op in ("random_uniform", "random_normal"):
            self.val[n.id] = self.random_constant(n)
            return
        if op == "matmul":
            self.val[n.id] = self.matmul(n)
            return
        if op == "reshape":
            x = g[n.inputs[0]]
            self.val[n.id] = self.reshape(self.tensor(x.id), x.type, n.type, n, name=self.node_name(n))
            return
        if op == "slice":
            self.val[n.id] = self.slice(n)
            return
        if op == "pad":
            self.val[n.id] = self.pad(n)
            return
        if op == "concat":
            xs = [self.tensor(i) for i in n.inputs]
            if len(xs) == 1:
                self.val[n.id] = xs[0]
                return
            axis = n.attr["axis"] % n.type.rank
            name = self.node_name(n)
            tys = ", ".join(tensor_type(g[i].type) for i in n.inputs)
            self.emit(f"{name} = tensor.concat dim({axis}) {', '.join(xs)} : ({tys}) -> {tensor_type(n.type)}", n)
            self.val[n.id] = name
            return
        if op == "gather":
            self.val[n.id] = self.gather(n)
            return
        if op == "scatter_add":
            self.val[n.id] = self.scatter_add(n)
            return
        raise NNCError(f"the mlir backend cannot lower '{op}' (%{self.printed[n.id]})")  # pragma: no cover

    def clamp_index(self, v: str, dtype: str, n_dim, body: list[str], node: Node) -> str:
        """An index value (i32/i64) clamped to [0, n) as an `index`, like np.take(mode='clip')."""
        pad = self.ind
        c0 = self.index_const(0)
        last = self.fresh("last")
        if isinstance(n_dim, int):
            self.emit(f"{last} = arith.constant {max(n_dim - 1, 0)} : index")
        else:
            self.emit(f"{last} = arith.subi {self.dim(n_dim)}, {self.index_const(1)} : index")
        i, lo, hi = self.fresh("ix"), self.fresh("ix"), self.fresh("ix")
        body.append(f"{pad}{i} = arith.index_cast {v} : {ELEM[dtype]} to index{self.loc(node)}")
        body.append(f"{pad}{lo} = arith.maxsi {i}, {c0} : index{self.loc(node)}")
        body.append(f"{pad}{hi} = arith.minsi {lo}, {last} : index{self.loc(node)}")
        return hi

    def gather(self, n: Node) -> str:
        """np.take(x, idx, axis, mode='clip'): a generic over the output reading idx, whose
        region extracts the element of x (tensor.extract) at the clamped index."""
        g = self.g
        x, idx = g[n.inputs[0]], g[n.inputs[1]]
        axis = n.attr["axis"] % x.type.rank
        r, k = n.type.rank, idx.type.rank
        xs, ids = self.tensor(x.id), self.tensor(idx.id)
        e = self.empty(n.dtype, n.shape, n)
        name = self.node_name(n)
        body: list[str] = []
        a_in, a_out = self.fresh("i"), self.fresh("out")
        pos = self.clamp_index(a_in, idx.dtype, x.shape[axis], body, n)
        coords = []
        for d in range(x.type.rank):
            if d == axis:
                coords.append(pos)
            else:
                loop = d if d < axis else d + k - 1
                v = self.fresh("idx")
                body.append(f"{self.ind}{v} = linalg.index {loop} : index{self.loc(n)}")
                coords.append(v)
        val = self.fresh("t")
        body.append(f"{self.ind}{val} = tensor.extract {xs}[{', '.join(coords)}] : {tensor_type(x.type)}{self.loc(n)}")
        body.append(f"{self.ind}linalg.yield {val} : {ELEM[n.dtype]}")
        maps = [_amap(r, list(range(axis, axis + k))), _amap(r, list(range(r)))]
        iters = ", ".join(['"parallel"'] * r)
        pad = self.ind * 2
        self.comment(f"%{self.printed[n.id]} gather (np.take along axis {axis}, indices clamped)")
        self.lines.append(f"{pad}{name} = linalg.generic {{indexing_maps = [{', '.join(maps)}], iterator_types = "
                          f"[{iters}]}} ins({ids} : {tensor_type(idx.type)}) outs({e} : {tensor_type(n.type)}) {{")
        self.lines.append(f"{pad}^bb0({a_in}: {ELEM[idx.dtype]}, {a_out}: {ELEM[n.dtype]}):")
        self.lines += [pad + b for b in body]
        self.lines.append(f"{pad}}} -> {tensor_type(n.type)}{self.loc(n)}")
        return name

    def scatter_add(self, n: Node) -> str:
        """zeros(shape); out[..., clip(idx[j]), ...] += u[..., j, ...], as a contraction with a
        one-hot: out[p, c, q] = sum over j of (clip(idx[j]) == c ? u[p, j, q] : 0)."""
        g = self.g
        u, idx = g[n.inputs[0]], g[n.inputs[1]]
        r, k = n.type.rank, idx.type.rank
        axis = n.attr["axis"] % r
        us, ids = self.tensor(u.id), self.tensor(idx.id)
        init = self.filled(n.dtype, n.shape, 0, n)
        name = self.node_name(n)
        nl = r + k                     # loops: the output's axes, then the index axes (reduced)
        jl = list(range(r, r + k))
        u_map = list(range(axis)) + jl + list(range(axis + 1, r))
        maps = [_amap(nl, u_map), _amap(nl, jl), _amap(nl, list(range(r)))]
        iters = ", ".join(['"parallel"'] * r + ['"reduction"'] * k)
        body: list[str] = []
        a_u, a_i, a_acc = self.fresh("u"), self.fresh("i"), self.fresh("acc")
        pos = self.clamp_index(a_i, idx.dtype, n.shape[axis], body, n)
        here, hit, val, s = self.fresh("idx"), self.fresh("hit"), self.fresh("t"), self.fresh("sum")
        e = ELEM[n.dtype]
        zero = self.top_const(0, n.dtype)
        add = "arith.addf" if n.dtype in FLOATS else "arith.addi"
        body += [f"{self.ind}{here} = linalg.index {axis} : index{self.loc(n)}",
                 f"{self.ind}{hit} = arith.cmpi eq, {here}, {pos} : index{self.loc(n)}",
                 f"{self.ind}{val} = arith.select {hit}, {a_u}, {zero} : {e}{self.loc(n)}",
                 f"{self.ind}{s} = {add} {a_acc}, {val} : {e}{self.loc(n)}",
                 f"{self.ind}linalg.yield {s} : {e}"]
        pad = self.ind * 2
        self.comment(f"%{self.printed[n.id]} scatter_add along axis {axis}: a contraction with a one-hot "
                     f"of the indices")
        self.lines.append(f"{pad}{name} = linalg.generic {{indexing_maps = [{', '.join(maps)}], iterator_types = "
                          f"[{iters}]}} ins({us}, {ids} : {tensor_type(u.type)}, {tensor_type(idx.type)}) "
                          f"outs({init} : {tensor_type(n.type)}) {{")
        self.lines.append(f"{pad}^bb0({a_u}: {e}, {a_i}: {ELEM[idx.dtype]}, {a_acc}: {e}):")
        self.lines += [pad + b for b in body]
        self.lines.append(f"{pad}}} -> {tensor_type(n.type)}{self.loc(n)}")
        return name

    def random_constant(self, n: Node) -> str:
        if not all(isinstance(d, int) for d in n.shape):
            raise NNCError(f"{op_desc(n)}: the mlir backend needs a static shape for {n.op}")
        a = n.attr
        shape = tuple(n.shape)
        gen = np.random.default_rng(a["seed"])
        if n.op == "random_uniform":
            arr = gen.uniform(a["low"], a["high"], size=shape).astype(NUMPY_DTYPE[n.dtype])
        else:
            arr = gen.normal(a["mean"], a["stddev"], size=shape).astype(NUMPY_DTYPE[n.dtype])
        name = self.node_name(n)
        self.comment(f"%{self.printed[n.id]} {n.op}(seed={a['seed']}): drawn by numpy at compile time")
        self.emit(f"{name} = arith.constant {dense_literal(arr, n.dtype)} : {tensor_type(n.type)}", n)
        return name

    def reshape(self, x: str, src: TensorType, dst: TensorType, node: Node, name: str | None = None) -> str:
        if [canon_dim(d) for d in src.shape] == [canon_dim(d) for d in dst.shape]:
            return x
        res = _groups(src.shape, dst.shape)
        if res is None:  # no common factorisation: through a flat vector
            flat = [numel(src.shape)]
            ga, gb, inter = [list(range(src.rank))], [list(range(dst.rank))], flat
        else:
            ga, gb, inter = res
        same = lambda p, q: [canon_dim(d) for d in p] == [canon_dim(d) for d in q]  # noqa: E731
        collapse, expand = not same(inter, src.shape), not same(inter, dst.shape)
        cur = x
        if collapse:
            mid = TensorType(src.dtype, tuple(inter))
            out = (name if name and not expand else None) or self.fresh("collapsed")
            self.emit(f"{out} = tensor.collapse_shape {cur} {_reassoc(ga)} : {tensor_type(src)} into "
                      f"{tensor_type(mid)}", node)
            cur = out
        if expand:
            mid = TensorType(src.dtype, tuple(inter))
            out = name or self.fresh("expanded")
            shape = ", ".join(str(d) if isinstance(d, int) else self.dim(d) for d in dst.shape)
            self.emit(f"{out} = tensor.expand_shape {cur} {_reassoc(gb)} output_shape [{shape}] : "
                      f"{tensor_type(mid)} into {tensor_type(dst)}", node)
            cur = out
        return cur

    def slice(self, n: Node) -> str:
        x = self.g[n.inputs[0]]
        a = n.attr
        if not a["start"]:
            return self.tensor(x.id)
        offs = ", ".join(str(s) for s in a["start"])
        sizes = ", ".join(str(d) if isinstance(d, int) else self.dim(d) for d in n.shape)
        strides = ", ".join(str(s) for s in a["step"])
        name = self.node_name(n)
        self.emit(f"{name} = tensor.extract_slice {self.tensor(x.id)}[{offs}] [{sizes}] [{strides}] : "
                  f"{tensor_type(x.type)} to {tensor_type(n.type)}", n)
        return name

    def pad(self, n: Node) -> str:
        x = self.g[n.inputs[0]]
        a = n.attr
        lo, hi, interior = a["lo"], a["hi"], a["interior"]
        if not lo:
            return self.tensor(x.id)
        zero = self.top_const(0, n.dtype)
        name = self.node_name(n)
        if not any(interior):
            idx = ", ".join(f"{self.fresh('i')}: index" for _ in lo)
            self.lines.append(f"{self.ind * 2}{name} = tensor.pad {self.tensor(x.id)} "
                              f"low[{', '.join(map(str, lo))}] high[{', '.join(map(str, hi))}] {{")
            self.lines.append(f"{self.ind * 2}^bb0({idx}):")
            self.lines.append(f"{self.ind * 3}tensor.yield {zero} : {ELEM[n.dtype]}")
            self.lines.append(f"{self.ind * 2}}} : {tensor_type(x.type)} to {tensor_type(n.type)}{self.loc(n)}")
            return name
        base = self.filled(n.dtype, n.shape, 0, n)
        sizes = ", ".join(str(d) if isinstance(d, int) else self.dim(d) for d in x.shape)
        self.emit(f"{name} = tensor.insert_slice {self.tensor(x.id)} into {base}[{', '.join(map(str, lo))}] "
                  f"[{sizes}] [{', '.join(str(k + 1) for k in interior)}] : {tensor_type(x.type)} into "
                  f"{tensor_type(n.type)}", n)
        return name

    def matmul(self, n: Node) -> str:
        g, plan = self.g, self.plan
        ai, bi = plan.inputs[n.id]
        ta, tb = plan.folded.get((n.id, 0), False), plan.folded.get((n.id, 1), False)
        A, B, out = g[ai].type, g[bi].type, n.type
        a, b = self.tensor(ai), self.tensor(bi)
        init = self.filled(n.dtype, out.shape, 0, n)
        name = self.node_name(n)
        tys = f"{tensor_type(A)}, {tensor_type(B)}"
        t_out = tensor_type(out)
        note = [f"%{self.printed[i]} transpose" for k, i in enumerate(n.inputs) if plan.folded.get((n.id, k))]
        if note:
            self.comment(f"%{self.printed[n.id]} matmul reads {' and '.join(note)} through its indexing map")
        if A.rank == 2 and B.rank == 2 and n.dtype != "bool":
            if not (ta or tb):
                self.emit(f"{name} = linalg.matmul ins({a}, {b} : {tys}) outs({init} : {t_out}) -> {t_out}", n)
            else:
                maps = [_amap(3, [2, 0] if ta else [0, 2]), _amap(3, [1, 2] if tb else [2, 1]), _amap(3, [0, 1])]
                self.emit(f"{name} = linalg.matmul indexing_maps = [{', '.join(maps)}] ins({a}, {b} : {tys}) "
                          f"outs({init} : {t_out}) -> {t_out}", n)
            return name
        if (A.rank == 3 and B.rank == 3 and not (ta or tb) and n.dtype != "bool"
                and canon_dim(A.shape[0]) == canon_dim(B.shape[0])):
            self.emit(f"{name} = linalg.batch_matmul ins({a}, {b} : {tys}) outs({init} : {t_out}) -> {t_out}", n)
            return name
        # a contraction generic: batch loops (broadcast like numpy), m, n, k
        nb = out.rank - 2
        m_, n_, k_ = nb, nb + 1, nb + 2

        def operand_map(t: TensorType, inner):
            shift = nb - (t.rank - 2)
            ex = []
            for j, d in enumerate(t.shape[:-2]):
                ex.append(None if (d == 1 and out.shape[j + shift] != 1) else j + shift)
            return _amap(nb + 3, ex + inner)
        maps = [operand_map(A, [k_, m_] if ta else [m_, k_]), operand_map(B, [n_, k_] if tb else [k_, n_]),
                _amap(nb + 3, list(range(nb + 2)))]
        iters = ", ".join(['"parallel"'] * (nb + 2) + ['"reduction"'])
        e = ELEM[n.dtype]
        x, y, acc, p, s = (self.fresh(v) for v in ("a", "b", "acc", "prod", "sum"))
        if n.dtype in FLOATS:
            mul, add = "arith.mulf", "arith.addf"
        elif n.dtype == "bool":
            mul, add = "arith.andi", "arith.ori"
        else:
            mul, add = "arith.muli", "arith.addi"
        pad = self.ind * 2
        self.comment(f"%{self.printed[n.id]} matmul: a batched contraction")
        self.lines += [
            f"{pad}{name} = linalg.generic {{indexing_maps = [{', '.join(maps)}], iterator_types = [{iters}]}} "
            f"ins({a}, {b} : {tys}) outs({init} : {t_out}) {{",
            f"{pad}^bb0({x}: {e}, {y}: {e}, {acc}: {e}):",
            f"{pad}{self.ind}{p} = {mul} {x}, {y} : {e}",
            f"{pad}{self.ind}{s} = {add} {acc}, {p} : {e}",
            f"{pad}{self.ind}linalg.yield {s} : {e}",
            f"{pad}}} -> {t_out}{self.loc(n)}",
        ]
        return name


def op_desc(n: Node) -> str:
    return f"{n.loc}: {n.op}" if n.loc else n.op


def _lowest(dtype: str):
    if dtype in FLOATS:
        return float("-inf")
    if dtype == "i32":
        return -2**31
    if dtype == "i64":
        return -2**63
    return False


class _Region:
    """Scalar code inside one generic's region."""

    def __init__(self, fn: FunctionEmitter, body: list[str], leaves: dict, cluster: Cluster):
        self.fn = fn
        self.body = body
        self.leaves = leaves
        self.c = cluster
        self.values: dict[int, str] = {}
        self.local_consts: dict[tuple, str] = {}

    def line(self, text: str, node: Node | None) -> None:
        self.body.append(f"{text}{self.fn.loc(node)}")

    def new(self, base: str = "t") -> str:
        return self.fn.fresh(base)

    def const(self, value, dtype: str, node: Node | None = None) -> str:
        lit = scalar_literal(value, dtype)
        key = (dtype, lit)
        if key not in self.local_consts:
            name = self.new("cst" if dtype in FLOATS else "c")
            self.line(f"{name} = arith.constant {lit}" + ("" if dtype == "bool" else f" : {ELEM[dtype]}"), node)
            self.local_consts[key] = name
        return self.local_consts[key]

    def value_of(self, i: int, user: Node, acc) -> str:
        if i in self.values:
            return self.values[i]
        n = self.fn.g[i]
        if i in self.fn.plan.inline:
            if n.op == "size":
                return self.fn.size_scalar(n)
            return self.const(splat_value(n), n.dtype, n)
        return self.leaves[(i, acc)]

    def compute(self, n: Node) -> None:
        g = self.fn.g
        acc = self.c.access[n.id]
        if n.op == "iota":
            e = acc[n.attr["axis"] % n.type.rank] if n.type.rank else None
            if e is None:
                idx = None
            else:
                idx = self.new("idx")
                self.line(f"{idx} = linalg.index {e} : index", n)
            self.values[n.id] = self.from_index(idx, n.dtype, n)
            return
        ops = [self.value_of(i, n, operand_access(n, acc, g[i], g)) for i in n.inputs]
        if n.op in ("broadcast_to", "transpose", "reshape", "stop_gradient", "sum", "max"):
            self.values[n.id] = ops[0]  # index remappings (and reductions over no axes)
            return
        self.values[n.id] = self.scalar_op(n, ops, [g[i].dtype for i in n.inputs])

    def from_index(self, idx: str | None, dtype: str, node: Node) -> str:
        if idx is None:
            return self.const(0, dtype, node)
        if dtype in INTS:
            out = self.new("iota")
            self.line(f"{out} = arith.index_cast {idx} : index to {ELEM[dtype]}", node)
            return out
        i64 = self.new("i")
        self.line(f"{i64} = arith.index_cast {idx} : index to i64", node)
        if dtype == "bool":
            out = self.new("iota")
            self.line(f"{out} = arith.trunci {i64} : i64 to i1", node)
            return out
        out = self.new("iota")
        self.line(f"{out} = arith.sitofp {i64} : i64 to {ELEM[dtype]}", node)
        return out

    def op(self, text: str, node: Node, base: str | None = None) -> str:
        out = self.new(base or node.op)
        self.line(f"{out} = {text}", node)
        return out

    def scalar_op(self, n: Node, a: list[str], dts: list[str]) -> str:
        op, dt = n.op, n.dtype
        e = ELEM[dt]
        fl = dt in FLOATS
        if op in _UNARY_MATH:
            return self.op(f"{_UNARY_MATH[op]} {a[0]} : {e}", n)
        if op == "neg":
            if fl:
                return self.op(f"arith.negf {a[0]} : {e}", n)
            return self.op(f"arith.subi {self.const(0, dt, n)}, {a[0]} : {e}", n)
        if op == "abs":
            if fl:
                return self.op(f"math.absf {a[0]} : {e}", n)
            return a[0] if dt == "bool" else self.op(f"math.absi {a[0]} : {e}", n)
        if op == "sign":
            return self.sign(n, a[0])
        if op == "sigmoid":
            return self.sigmoid(n, a[0])
        if op == "cast":
            return self.cast(n, a[0], dts[0], dt)
        if op == "pow":
            return self.pow(n, a[0], a[1])
        if op in _BIN_F:
            table = _BIN_F if fl else (_BIN_B if dt == "bool" else _BIN_I)
            return self.op(f"{table[op]} {a[0]}, {a[1]} : {e}", n)
        if op in _CMP_F:
            src = dts[0]
            if src in FLOATS:
                return self.op(f"arith.cmpf {_CMP_F[op]}, {a[0]}, {a[1]} : {ELEM[src]}", n)
            table = _CMP_B if src == "bool" else _CMP_I
            return self.op(f"arith.cmpi {table[op]}, {a[0]}, {a[1]} : {ELEM[src]}", n)
        if op == "where":
            return self.op(f"arith.select {a[0]}, {a[1]}, {a[2]} : {e}", n)
        raise NNCError(f"the mlir backend cannot lower '{op}' inside a fused op")  # pragma: no cover

    def sign(self, n: Node, x: str) -> str:
        dt = n.dtype
        e = ELEM[dt]
        if dt == "bool":
            return x
        zero = self.const(0, dt, n)
        one = self.const(1, dt, n)
        m1 = self.const(-1, dt, n)
        if dt in FLOATS:
            pos = self.op(f"arith.cmpf ogt, {x}, {zero} : {e}", n)
            neg = self.op(f"arith.cmpf olt, {x}, {zero} : {e}", n)
        else:
            pos = self.op(f"arith.cmpi sgt, {x}, {zero} : {e}", n)
            neg = self.op(f"arith.cmpi slt, {x}, {zero} : {e}", n)
        # numpy: sign(nan) = nan and sign(0) = 0: keep x itself when neither
        rest = x if dt in FLOATS else zero
        t = self.op(f"arith.select {neg}, {m1}, {rest} : {e}", n)
        return self.op(f"arith.select {pos}, {one}, {t} : {e}", n)

    def sigmoid(self, n: Node, x: str) -> str:
        # 1 / (1 + exp(-x)): exact limits in float arithmetic (exp(-x) = inf gives 0, = 0 gives 1),
        # within an ulp of the numpy backend's two-branch form down to x = -88, where
        # the true value is a denormal; one exp and one division per element
        e = ELEM[n.dtype]
        one = self.const(1.0, n.dtype, n)
        ng = self.op(f"arith.negf {x} : {e}", n)
        ex = self.op(f"math.exp {ng} : {e}", n)
        den = self.op(f"arith.addf {one}, {ex} : {e}", n)
        return self.op(f"arith.divf {one}, {den} : {e}", n, "sigmoid")

    def cast(self, n: Node, x: str, src: str, dst: str) -> str:
        if src == dst:
            return x
        s, d = ELEM[src], ELEM[dst]
        if src in FLOATS and dst in FLOATS:
            return self.op(f"arith.{'extf' if dst == 'f64' else 'truncf'} {x} : {s} to {d}", n)
        if src in FLOATS and dst in INTS:
            return self.op(f"arith.fptosi {x} : {s} to {d}", n)
        if src in FLOATS and dst == "bool":    # numpy: x != 0 (nan is true)
            return self.op(f"arith.cmpf une, {x}, {self.const(0.0, src, n)} : {s}", n)
        if src in INTS and dst in FLOATS:
            return self.op(f"arith.sitofp {x} : {s} to {d}", n)
        if src == "bool" and dst in FLOATS:
            return self.op(f"arith.uitofp {x} : {s} to {d}", n)
        if src == "bool" and dst in INTS:
            return self.op(f"arith.extui {x} : {s} to {d}", n)
        if src in INTS and dst == "bool":
            return self.op(f"arith.cmpi ne, {x}, {self.const(0, src, n)} : {s}", n)
        if src in INTS and dst in INTS:
            return self.op(f"arith.{'extsi' if dst == 'i64' else 'trunci'} {x} : {s} to {d}", n)
        raise NNCError(f"cannot cast {src} to {dst}")  # pragma: no cover

    def pow(self, n: Node, a: str, b: str) -> str:
        """numpy's power: exact special cases, negative bases with integral exponents."""
        g = self.fn.g
        dt = n.dtype
        e = ELEM[dt]
        base_node, exp_node = g[n.inputs[0]], g[n.inputs[1]]
        inline = self.fn.plan.inline
        if n.inputs[1] in inline and exp_node.op == "const":
            c = float(splat_value(exp_node))
            if c == 1.0:
                return a
            if c == 2.0:
                return self.op(f"arith.mulf {a}, {a} : {e}", n)
            if c == 3.0:
                sq = self.op(f"arith.mulf {a}, {a} : {e}", n)
                return self.op(f"arith.mulf {sq}, {a} : {e}", n)
            if c == 0.5:
                return self.op(f"math.sqrt {a} : {e}", n)
            if c == -1.0:
                return self.op(f"arith.divf {self.const(1.0, dt, n)}, {a} : {e}", n)
            if c == 0.0:
                return self.const(1.0, dt, n)
        if n.inputs[0] in inline and base_node.op == "const" and float(splat_value(base_node)) > 0:
            return self.op(f"math.powf {a}, {b} : {e}", n)   # a positive base (Adam's beta ** t)
        zero, one = self.const(0.0, dt, n), self.const(1.0, dt, n)
        half = self.const(0.5, dt, n)
        ab = self.op(f"math.absf {a} : {e}", n)
        p = self.op(f"math.powf {ab}, {b} : {e}", n)                  # |a| ** b for |a| > 0
        fl = self.op(f"math.floor {b} : {e}", n)
        isint = self.op(f"arith.cmpf oeq, {fl}, {b} : {e}", n)
        hb = self.op(f"arith.mulf {b}, {half} : {e}", n)
        hf = self.op(f"math.floor {hb} : {e}", n)
        odd_h = self.op(f"arith.cmpf one, {hf}, {hb} : {e}", n)
        odd = self.op(f"arith.andi {isint}, {odd_h} : i1", n)
        neg = self.op(f"arith.cmpf olt, {a}, {zero} : {e}", n)
        negp = self.op(f"arith.negf {p} : {e}", n)
        signed = self.op(f"arith.select {odd}, {negp}, {p} : {e}", n)
        nan = self.const(float("nan"), dt, n)
        negres = self.op(f"arith.select {isint}, {signed}, {nan} : {e}", n)
        r = self.op(f"arith.select {neg}, {negres}, {p} : {e}", n)
        # a == 0: 0 for b > 0, inf for b < 0 (1 for b == 0, below)
        inf = self.const(float("inf"), dt, n)
        bpos = self.op(f"arith.cmpf ogt, {b}, {zero} : {e}", n)
        zres = self.op(f"arith.select {bpos}, {zero}, {inf} : {e}", n)
        isz = self.op(f"arith.cmpf oeq, {a}, {zero} : {e}", n)
        r = self.op(f"arith.select {isz}, {zres}, {r} : {e}", n)
        bz = self.op(f"arith.cmpf oeq, {b}, {zero} : {e}", n)
        a1 = self.op(f"arith.cmpf oeq, {a}, {one} : {e}", n)
        trivial = self.op(f"arith.ori {bz}, {a1} : i1", n)
        return self.op(f"arith.select {trivial}, {one}, {r} : {e}", n, "pow")

    def combine(self, root: Node, v: str, accs: list[str], src_dtype: str) -> list[tuple[str, str]]:
        """The reduction's update of its accumulator(s) with value v; what the region yields."""
        dt = root.dtype
        e = ELEM[dt]
        if root.op == "sum":
            op = "arith.addf" if dt in FLOATS else ("arith.ori" if dt == "bool" else "arith.addi")
            return [(self.op(f"{op} {accs[0]}, {v} : {e}", root), e)]
        if root.op == "max":
            op = "arith.maximumf" if dt in FLOATS else ("arith.ori" if dt == "bool" else "arith.maxsi")
            return [(self.op(f"{op} {accs[0]}, {v} : {e}", root), e)]
        # argmax: the first index of the maximum (of the first nan), whatever the loop order
        acc_v, acc_i = accs
        se = ELEM[src_dtype]
        pos = self.op(f"linalg.index {reduced_axes(root, self.fn.g)[0]} : index", root, "idx")
        i = self.op(f"arith.index_cast {pos} : index to i32", root, "i")
        earlier = self.op(f"arith.cmpi slt, {i}, {acc_i} : i32", root)
        if src_dtype in FLOATS:
            gt = self.op(f"arith.cmpf ogt, {v}, {acc_v} : {se}", root)
            eq = self.op(f"arith.cmpf oeq, {v}, {acc_v} : {se}", root)
            vnan = self.op(f"arith.cmpf uno, {v}, {v} : {se}", root)
            anan = self.op(f"arith.cmpf uno, {acc_v}, {acc_v} : {se}", root)
            true = self.const(True, "bool", root)
            not_anan = self.op(f"arith.xori {anan}, {true} : i1", root)
            both = self.op(f"arith.andi {vnan}, {anan} : i1", root)
            tie = self.op(f"arith.ori {eq}, {both} : i1", root)
            tie_first = self.op(f"arith.andi {tie}, {earlier} : i1", root)
            better = self.op(f"arith.ori {gt}, {vnan} : i1", root)
            better = self.op(f"arith.andi {better}, {not_anan} : i1", root)
            take = self.op(f"arith.ori {better}, {tie_first} : i1", root)
        else:
            pred = "ugt" if src_dtype == "bool" else "sgt"
            gt = self.op(f"arith.cmpi {pred}, {v}, {acc_v} : {se}", root)
            eq = self.op(f"arith.cmpi eq, {v}, {acc_v} : {se}", root)
            tie_first = self.op(f"arith.andi {eq}, {earlier} : i1", root)
            take = self.op(f"arith.ori {gt}, {tie_first} : i1", root)
        nv = self.op(f"arith.select {take}, {v}, {acc_v} : {se}", root)
        ni = self.op(f"arith.select {take}, {i}, {acc_i} : i32", root)
        return [(nv, se), (ni, "i32")]


# ---- modules --------------------------------------------------------------------------------------

def emit_function(graph: Graph, fn_name: str | None = None) -> tuple[str, FunctionEmitter]:
    fe = FunctionEmitter(graph, fn_name)
    fe.text = fe.build()
    return fe.text, fe


def emit_module(graphs, module_name: str | None = None, header: str | None = None) -> tuple[str, dict]:
    """One module holding a func.func per graph; returns (text, {function name: FunctionEmitter})."""
    if isinstance(graphs, Graph):
        graphs = [graphs]
    items = graphs.items() if isinstance(graphs, dict) else [(g.name, g) for g in graphs]
    funcs, emitters = [], {}
    for name, g in items:
        text, fe = emit_function(g, name)
        funcs.append(text)
        emitters[name] = fe
    head = f"module {symbol_name(module_name)} {{" if module_name else "module {"
    lines = []
    if header:
        lines += [f"// {h}" for h in header.splitlines()]
    lines.append(head)
    lines.append("\n\n".join(funcs))
    lines.append("}")
    return "\n".join(lines) + "\n", emitters
