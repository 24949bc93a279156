"""The mlir backend's rule table: primitive -> scalar MLIR inside a `linalg.generic` region.

`SCALAR_RULES` maps every elementwise primitive to a function (region, node, operand
SSA values, operand dtypes) -> result SSA value; `REGION_STRUCTURAL` names what a
region handles without one (remappings read through indexing maps, `iota` from
`linalg.index`, reductions combining through `Region.combine`). Numerics
follow the primitive table's `formula` entries (ir/primitives.py): its stable
sigmoid, numpy's power (constant exponents were rewritten by passes/decompose.py),
numpy's sign, IEEE `arith.divf`, NaN-propagating `arith.maximumf`/`minimumf`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import NNCError
from ...ir.graph import Node
from .plan import REMAP, Cluster, operand_access, reduced_axes, splat_value
from .types import ELEM, FLOATS, INTS, scalar_literal

if TYPE_CHECKING:  # emit.py imports this module
    from .emit import FunctionEmitter

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


class Region:
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
        if n.op in REMAP or n.op == "stop_gradient" or n.prim.identity:
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
        rule = SCALAR_RULES.get(n.op)
        if rule is None:  # pragma: no cover - the plan fuses only ops with a rule
            raise NNCError(f"the mlir backend cannot lower '{n.op}' inside a fused op")
        return rule(self, n, a, dts)

    def neg(self, n: Node, x: str) -> str:
        e = ELEM[n.dtype]
        if n.dtype in FLOATS:
            return self.op(f"arith.negf {x} : {e}", n)
        return self.op(f"arith.subi {self.const(0, n.dtype, n)}, {x} : {e}", n)

    def abs(self, n: Node, x: str) -> str:
        if n.dtype in FLOATS:
            return self.op(f"math.absf {x} : {ELEM[n.dtype]}", n)
        return x if n.dtype == "bool" else self.op(f"math.absi {x} : {ELEM[n.dtype]}", n)

    def binary(self, n: Node, a: list[str]) -> str:
        dt = n.dtype
        table = _BIN_F if dt in FLOATS else (_BIN_B if dt == "bool" else _BIN_I)
        return self.op(f"{table[n.op]} {a[0]}, {a[1]} : {ELEM[dt]}", n)

    def compare(self, n: Node, a: list[str], src: str) -> str:
        if src in FLOATS:
            return self.op(f"arith.cmpf {_CMP_F[n.op]}, {a[0]}, {a[1]} : {ELEM[src]}", n)
        table = _CMP_B if src == "bool" else _CMP_I
        return self.op(f"arith.cmpi {table[n.op]}, {a[0]}, {a[1]} : {ELEM[src]}", n)

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
        # the table's formula: e = exp(-|x|); (x >= 0 ? 1 : e) / (1 + e), never overflowing
        e = ELEM[n.dtype]
        one, zero = self.const(1.0, n.dtype, n), self.const(0.0, n.dtype, n)
        ab = self.op(f"math.absf {x} : {e}", n)
        ng = self.op(f"arith.negf {ab} : {e}", n)
        ex = self.op(f"math.exp {ng} : {e}", n)
        pos = self.op(f"arith.cmpf oge, {x}, {zero} : {e}", n)
        num = self.op(f"arith.select {pos}, {one}, {ex} : {e}", n)
        den = self.op(f"arith.addf {one}, {ex} : {e}", n)
        return self.op(f"arith.divf {num}, {den} : {e}", n, "sigmoid")

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
        """The table's formula (numpy's power); constant exponents were decomposed (passes/decompose.py)."""
        g = self.fn.g
        dt = n.dtype
        e = ELEM[dt]
        base_node = g[n.inputs[0]]
        inline = self.fn.plan.inline
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


# primitive -> rule(region, node, operand SSA values, operand dtypes) -> result SSA value
SCALAR_RULES = {op: (lambda f: lambda r, n, a, dts: r.op(f"{f} {a[0]} : {ELEM[n.dtype]}", n))(f)
                for op, f in _UNARY_MATH.items()}
SCALAR_RULES.update({op: lambda r, n, a, dts: r.binary(n, a) for op in _BIN_F})
SCALAR_RULES.update({op: lambda r, n, a, dts: r.compare(n, a, dts[0]) for op in _CMP_F})
SCALAR_RULES.update({
    "neg": lambda r, n, a, dts: r.neg(n, a[0]),
    "abs": lambda r, n, a, dts: r.abs(n, a[0]),
    "sign": lambda r, n, a, dts: r.sign(n, a[0]),
    "sigmoid": lambda r, n, a, dts: r.sigmoid(n, a[0]),
    "cast": lambda r, n, a, dts: r.cast(n, a[0], dts[0], n.dtype),
    "pow": lambda r, n, a, dts: r.pow(n, a[0], a[1]),
    "where": lambda r, n, a, dts: r.op(f"arith.select {a[0]}, {a[1]}, {a[2]} : {ELEM[n.dtype]}", n),
})

# primitives a fused cluster reads through (index remappings) or computes from the index
REGION_STRUCTURAL = {
    "stop_gradient": "the operand's value itself",
    "broadcast_to": "an indexing map", "transpose": "an indexing map", "reshape": "an indexing map",
    "iota": "linalg.index",
    "sum": "a reduction generic (Region.combine)", "max": "a reduction generic (Region.combine)",
    "argmax": "a reduction generic (Region.combine)",
    "size": "a scalar from tensor.dim",
    "arg": "a function argument", "rng_uniform": "an extra function argument filled by the runtime",
}
