"""The scope of one generated kernel: its parameters, helpers and the names it has taken.

Every body (segment) of a kernel registers what it reads through a `KernelScope`: a
buffer becomes a pointer parameter named after the IR value, a symbolic dimension a size
argument (`s_B`), a split-K or split-reduction workspace a scratch parameter. Names a
model chose never shadow the templates' own variables (`RESERVED`) or each other.
`KernelSource` is what code generation hands the runtime and AOT: the text, the ordered
parameters, the constexprs and the grid recipe.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...ir.shapes import Monomial
from .index import dim_expr, size_arg
from .ops import HELPERS, SIGNATURE
from .plan import Group

# a matmul's constexprs (tuning.choose fills them): tile, split-K factor, grouped-order width
# and whether qualifying operands load through TMA descriptors (tma.py)
MATMUL_BLOCKS = ("BLOCK_M", "BLOCK_N", "BLOCK_K", "SPLIT_K", "GROUP_M", "TMA")
# constexprs a config may leave out (a pinned config from before TMA existed)
BLOCK_DEFAULTS = {"TMA": 0}


@dataclass
class Param:
    name: str
    kind: str        # buf | size | int
    ref: object      # node id | symbol | ("end", k)
    sig: str


@dataclass
class KernelSource:
    name: str
    kind: str
    index: int
    text: str
    params: list
    blocks: tuple                 # constexpr parameter names
    grid: list                    # recipe, see tuning.grid
    group: Group
    info: dict = field(default_factory=dict)   # shape facts the tuner uses
    helpers: set = field(default_factory=set)

    @property
    def signature(self) -> dict:
        sig = {p.name: p.sig for p in self.params}
        sig.update({b: "constexpr" for b in self.blocks})
        return sig


# names the templates use; a model's argument called `a` or `tl` must not shadow them
RESERVED = set("""tl triton pid pid_m pid_n pid_b rm rn rk kk k0 a b acc M N K xnumel rnumel xoffset xindex
xmask rindex rmask rbase roffset i_m i_n mmask nnmask nmask a_base b_base XBLOCK RBLOCK BLOCK_M BLOCK_N BLOCK_K
SPLIT_K GROUP_M pid_k tile tiles_m tiles_n group first_m group_m kblocks kb last tile_id WS ws_tile ws_mine r_mn
s ws_s theirs done ws_ptr lock_ptr float int range min max
SPLIT_R pid_r pid_x rblocks rb ws_rows r_xr last_xr TMA a_desc b_desc""".split())


class KernelScope:
    """Parameters, helpers and naming shared by all bodies (segments) of one kernel."""

    def __init__(self, gen, group: Group):    # gen: codegen.ModuleGen
        self.gen = gen
        self.group = group
        self.params: list[Param] = []
        self._by_ref: dict = {}
        self.helpers: set[str] = set()
        self.taken: set[str] = set(RESERVED) | {size_arg(sym) for sym in gen.symbols}
        self.top_vars: dict = {}          # scalars computed once at the top of the kernel
        self.top_lines: list[str] = []

    def _unique(self, base: str, ours: bool = False) -> str:
        name = base
        if not ours and re.fullmatch(r"(v|i|acc|cat|idx|colsum|xmask|xindex|xnumel)\d.*|nb\d+|_.*", name) or name in HELPERS:
            name = "a_" + name                       # our own variable families
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        return name

    def buffer(self, nid: int) -> str:
        key = ("buf", nid)
        if key not in self._by_ref:
            name = self._unique(self.gen.base_name(nid) + "_ptr")
            self._by_ref[key] = name
            self.params.append(Param(name, "buf", nid, SIGNATURE[self.gen.graph[nid].dtype]))
        return self._by_ref[key]

    def size(self, sym: str) -> str:
        key = ("size", sym)
        if key not in self._by_ref:
            name = size_arg(sym)
            self.taken.add(name)
            self._by_ref[key] = name
            self.params.append(Param(name, "size", sym, "i32"))
        return self._by_ref[key]

    def scratch(self, name: str, sig: str) -> str:
        """A runtime-owned scratch buffer (split-K partials and tile counters), not a graph value."""
        key = ("scratch", name)
        if key not in self._by_ref:
            self._by_ref[key] = name
            self.params.append(Param(name, "scratch", name, sig))
        return self._by_ref[key]

    def int_param(self, name: str, ref) -> str:
        key = ("int", ref)
        if key not in self._by_ref:
            self.taken.add(name)
            self._by_ref[key] = name
            self.params.append(Param(name, "int", ref, "i32"))
        return self._by_ref[key]

    def dim(self, d) -> str:
        """A dimension as an expression, registering the size arguments it needs."""
        for s in Monomial.parse(d).syms:
            self.size(s)
        return dim_expr(d)

    def ordered_params(self) -> list[Param]:
        bufs = [p for p in self.params if p.kind == "buf"]
        reads = set(self.group.reads)
        order = {n: k for k, n in enumerate(self.gen.graph_order)}
        ins = sorted((p for p in bufs if p.ref in reads or p.ref not in self.group.stores),
                     key=lambda p: order[p.ref])
        outs = sorted((p for p in bufs if p not in ins), key=lambda p: order[p.ref])
        scratch = [p for p in self.params if p.kind == "scratch"]
        sizes = [p for p in self.params if p.kind == "size"]
        ints = [p for p in self.params if p.kind == "int"]
        return ins + outs + scratch + sizes + ints

