"""MLIR text from an optimised IR graph: func, arith, math, tensor and linalg on tensors (and
IREE's util dialect for the functions a long scan calls).

This module assembles functions and modules; types.py holds types and literals, and
rules.py the per-primitive rule table for the scalar code inside fused generics.

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
* A long `scan` is one call per chunk of unrolled steps of a private function, its body
  (loops.py); short ones are unrolled.
* Every op carries `loc("file.nn":line:col)` from the IR node it comes from.
* `random_uniform`/`random_normal` (initialisers, static shapes) are evaluated with
  numpy at compile time and embedded as constants; `rng_uniform` (dropout's per-step
  noise) becomes an extra function argument that the runtime fills with numpy's
  generator, so both backends draw the same numbers.
"""
from __future__ import annotations

import re

import numpy as np

from ...errors import NNCError
from ...ir.graph import Graph, Node
from ...ir.shapes import NUMPY_DTYPE, Monomial, TensorType, canon_dim, numel
from ...sourcetext import loc_text
from .loops import LOOP_RULES, TOKEN, loops_or_unrolls
from .plan import Cluster, Plan, build_plan, operand_access, reduced_axes
from .rewrite import recorded_pools, rewrite
from .rules import Region
from .singles import SINGLE_RULES, batch_summed_matmul, op_desc  # noqa: F401
from .types import (ELEM, FLOATS, INTS, _amap, _groups, _reassoc, _tt, dense_literal,  # noqa: F401
                    float_literal, lowest, scalar_literal, symbol_name, tensor_type)


class RngInput:
    """A host-generated random tensor the function takes as an extra argument."""

    def __init__(self, node: Node, name: str):
        self.node = node
        self.name = name            # argument name in the function (without %)


class FunctionEmitter:
    def __init__(self, graph: Graph, fn_name: str | None = None, indent: str = "  ", precision: str = "fp32"):
        self.g = graph
        self.precision = precision            # of float32 matmuls (precision.py): singles.round_operand
        self.fn_name = fn_name or graph.name
        self.plan: Plan = build_plan(graph)
        self.ind = indent
        self.lines: list[str] = []
        self.prologue: list[str] = []         # lines before the body (opaque_index)
        self.taken: set[str] = set()
        self.val: dict[int, str] = {}         # node id -> tensor SSA value
        self.scalars: dict[int, str] = {}     # inline node id -> top-level scalar SSA (size)
        self.dims: dict = {}                  # canonical dim -> index SSA
        self.consts: dict[tuple, str] = {}    # top-level scalar constants
        self.printed: dict[int, str] = {}     # node id -> the IR's printed name (%3)
        self.rng: list[RngInput] = []
        self.functions: list[str] = []      # private functions this one calls (loops.py)
        self.bodies: dict[str, str] = {}      # their text (name left out) -> symbol
        self.pool_taps_for = recorded_pools(graph)  # max pool id -> its gradient's (windows.py)
        self.pool_taps: dict[int, str] = {}   # select_scatter id -> the winning taps its pool recorded
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

    def opaque_index(self, k: int) -> str:
        """The index k, hidden from IREE's constant folding (`util.optimization_barrier`): slices
        that differ only in such offsets compile to one executable, the offset a push constant
        (an unrolled scan's steps read their step of a sequence at offsets 0, 1, 2, ...).
        Defined at the top of the function: IREE 3.13 fails ("failed to solve for timepoint
        coverage") on a barrier placed between a util.func's dispatches."""
        key = ("opaque", k)
        if key not in self.consts:
            c, name = self.fresh(f"k{k}"), self.fresh(f"at{k}")
            self.prologue += [f"{self.ind}{self.ind}{c} = arith.constant {k} : index",
                              f"{self.ind}{self.ind}{name} = util.optimization_barrier {c} : index"]
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
                if Monomial.parse(d).symbol is not None and d not in self.symbol_src:
                    self.symbol_src[d] = (self.val[a.id], axis, tensor_type(a.type))

    def tie_arguments(self) -> None:
        """In a scan's body function: every tensor argument whose symbolic dimensions are read
        from another argument is tied to those values (`flow.tensor.tie_shape`). IREE sees each
        argument's dynamic sizes as values of their own, so a step reading a carry argument
        ([B_s1, 16]) and a step reading the previous step's value ([B, 16]) compiled to two
        executables; tied, they are one."""
        for a in self.g.args:
            dyn = [d for d in a.shape if not isinstance(d, int)]
            if not dyn or all(self.symbol_src.get(canon_dim(d), (None,))[0] == self.val[a.id] for d in dyn):
                continue
            dims = ", ".join(self.dim(d) for d in dyn)
            name = self.fresh(f"{self.val[a.id][1:]}_tied")
            self.emit(f"{name} = flow.tensor.tie_shape {self.val[a.id]} : {tensor_type(a.type)}{{{dims}}}")
            self.val[a.id] = name

    def dim(self, d) -> str | None:
        """The index SSA value of a dimension (None for a static one)."""
        if isinstance(d, int):
            return None
        d = canon_dim(d)
        if d in self.dims:
            return self.dims[d]
        m = Monomial.parse(d)
        if m.coef == 1 and len(m.syms) == 1:
            if d not in self.symbol_src:
                raise NNCError(f"{self.g.name}: dimension {d} is not bound by any argument")
            arg, axis, ty = self.symbol_src[d]
            name = self.fresh(d)
            self.emit(f"{name} = tensor.dim {arg}, {self.index_const(axis)} : {ty}")
        else:
            acc = None
            for p in ([m.coef] if m.coef != 1 else []) + list(m.syms):
                v = self.index_const(p) if isinstance(p, int) else self.dim(p)
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

    def padded(self, name: str, x: str, src: TensorType, dst: TensorType, lo, hi, fill, node: Node) -> str:
        """`name` = tensor.pad of `x` (type src) by `lo`/`hi` per axis with the constant `fill`."""
        idx = ", ".join(f"{self.fresh('i')}: index" for _ in lo)
        pad = self.ind * 2
        self.lines += [f"{pad}{name} = tensor.pad {x} low[{', '.join(map(str, lo))}] high[{', '.join(map(str, hi))}] {{",
                       f"{pad}^bb0({idx}):",
                       f"{pad}{self.ind}tensor.yield {self.top_const(fill, dst.dtype)} : {ELEM[dst.dtype]}",
                       f"{pad}}} : {tensor_type(src)} to {tensor_type(dst)}{self.loc(node)}"]
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
    def build(self, private: bool = False) -> str:
        """The function's text: an exported func.func, or (`private`) a util.func that IREE
        keeps out of line: a scan's body, called once per step (loops.py)."""
        g = self.g
        params = []
        for a in g.args:
            name = self.fresh(a.attr["name"])
            self.val[a.id] = name
            params.append(f"{name}: {tensor_type(a.type)}")
        if private:   # the token its calls thread through (loops.TOKEN)
            token = self.fresh("token")
            params.append(f"{token}: {TOKEN}")
        for n in self.plan.live:
            if n.op == "rng_uniform":
                r = RngInput(n, f"rng{self.printed[n.id]}")
                name = self.fresh(r.name)
                r.name = name[1:]
                self.rng.append(r)
                self.val[n.id] = name
                params.append(f"{name}: {tensor_type(n.type)}")
        self.bind_symbols()
        if private:
            self.tie_arguments()
        self.emit_nodes()
        results = [self.tensor(i) for _, i in g.outputs]
        types = [tensor_type(g[i].type) for _, i in g.outputs]
        names = ", ".join(name for name, _ in g.outputs)
        self.lines.append(f"{self.ind}{self.ind}// results: {names}")
        ret = "util.return" if private else "return"
        if private:
            results, types = results + [token], types + [TOKEN]
        if results:
            self.lines.append(f"{self.ind}{self.ind}{ret} {', '.join(results)} : {', '.join(types)}")
        else:
            self.lines.append(f"{self.ind}{self.ind}{ret}")
        sig = ", ".join(params)
        res = ", ".join(types[:-1] + [token] if private else types)
        if private:
            head = (f"{self.ind}util.func private {symbol_name(self.fn_name)}({sig}) -> ({res}) "
                    f"attributes {{inlining_policy = #util.inline.never}} {{")
        else:
            head = f"{self.ind}func.func {symbol_name(self.fn_name)}({sig}) -> ({res}) {{"
        return "\n".join([head, *self.prologue, *self.lines, f"{self.ind}}}"])

    def emit_nodes(self) -> None:
        """Every live node (arguments bound already), in order: clusters and singles."""
        absorbed = set(self.plan.batch_summed.values())
        for n in self.plan.live:
            if n.op in ("arg", "rng_uniform") or n.id in self.plan.inline:
                continue
            if n.id in self.plan.member_of and self.plan.member_of[n.id] != n.id:
                continue  # computed inside its cluster's generic
            if n.id in absorbed:
                continue  # computed by the sum of its batches (plan.batch_summed)
            if n.id in self.plan.batch_summed:
                self.val[n.id] = batch_summed_matmul(self, n)
                continue
            kind, unit = self.plan.unit(n.id)
            if kind == "cluster":
                self.emit_cluster(unit)
            else:
                self.emit_single(n)

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
            # over the other loops first, keeping every loop some operand is broadcast along (one
            # kept loop is not enough: p[1,3,4,4] * r[1,1,1,4] is broadcast along two), then sum
            # what is left
            missing = sorted({k for acc in leaf_accesses for k in range(nloops) if k not in acc})
            if missing:
                keep = tuple(missing)
                axes = tuple(k for k in range(nloops) if k not in keep)
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
                outs = [(self.filled(src_dt, out_shape, lowest(src_dt), root), src_dt, out_shape),
                        (self.filled("i32", out_shape, 0, root), "i32", out_shape)]
            else:
                init = 0 if root.prim.identity == "zero" else lowest(root.dtype)
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
        region = Region(self, body, leaves, c)
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
            value = self.sum_vector(value, out_types[0], root, name=None if reshape_after else self.node_name(root),
                                    rank=len(keep))
        if reshape_after:
            value = self.reshape(value, TensorType(root.dtype, out_shape), root.type, root, name=self.node_name(root))
        self.val[c.root] = value

    def sum_vector(self, x: str, ty: str, root: Node, name: str | None, rank: int = 1) -> str:
        """sum of a rank-`rank` tensor (the second stage of a split full sum) -> a scalar tensor."""
        dt, e = root.dtype, ELEM[root.dtype]
        loops = ", ".join(f"d{k}" for k in range(rank))
        reductions = ", ".join(['"reduction"'] * rank)
        init = self.filled(dt, (), 0, root)
        name = name or self.fresh("total")
        a, acc, s = self.fresh("in"), self.fresh("acc"), self.fresh("t")
        add = "arith.addf" if dt in FLOATS else ("arith.ori" if dt == "bool" else "arith.addi")
        pad = self.ind * 2
        self.lines += [
            f"{pad}{name} = linalg.generic {{indexing_maps = [affine_map<({loops}) -> ({loops})>, "
            f"affine_map<({loops}) -> ()>], "
            f'iterator_types = [{reductions}]}} ins({x} : {ty}) outs({init} : tensor<{e}>) {{',
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
        """A node outside any fused cluster: its rule in singles.SINGLE_RULES."""
        rule = SINGLE_RULES.get(n.op) or LOOP_RULES.get(n.op)
        if rule is None:  # pragma: no cover - the plan clusters every other op
            raise NNCError(f"the mlir backend cannot lower '{n.op}' (%{self.printed[n.id]})")
        self.val[n.id] = rule(self, n)

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



# ---- modules --------------------------------------------------------------------------------------

def emit_function(graph: Graph, fn_name: str | None = None, precision: str = "fp32") -> tuple[str, FunctionEmitter]:
    from ...passes.expand_fused import expand_fused
    # fused primitives (sparse_xent, ...) have no rule here: emit their basic-primitive form;
    # short scans run unrolled, long ones as calls of chunk functions (loops.py); rewrite.py's
    # rewrites (a sum of a select_scatter reads its g)
    fe = FunctionEmitter(rewrite(expand_fused(loops_or_unrolls(graph))), fn_name, precision=precision)
    fe.text = "\n\n".join([fe.build(), *fe.functions])   # the function, then the scan bodies it calls
    return fe.text, fe


def emit_module(graphs, module_name: str | None = None, header: str | None = None,
                precision: str = "fp32") -> tuple[str, dict]:
    """One module holding a func.func per graph; returns (text, {function name: FunctionEmitter})."""
    if isinstance(graphs, Graph):
        graphs = [graphs]
    items = graphs.items() if isinstance(graphs, dict) else [(g.name, g) for g in graphs]
    funcs, emitters = [], {}
    for name, g in items:
        text, fe = emit_function(g, name, precision)
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
