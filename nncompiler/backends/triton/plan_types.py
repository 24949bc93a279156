"""The fusion plan's data: iteration spaces, kernel groups, refused fusions, and its limits."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...ir.shapes import numel

REDUCE_OPS = ("sum", "max", "argmax")
# the anchors of a "matmul" group (a tiled tl.dot kernel with a fused epilogue): matmul, and conv
# as an implicit GEMM (plan_conv.py, codegen_conv.py)
GEMM_OPS = ("matmul", "conv")
# the windowed reductions (pooling and its gradient): nodes of a pointwise kernel over their
# output that read their operands at every tap of a window (plan_space.py, codegen_window.py)
WINDOW_OPS = ("reduce_window", "select_scatter")
MAX_PERSISTENT_R = 16384      # legality: a persistent row must fit in one tile
PREFER_PERSISTENT_R = 2048    # profitability: below this, a single pass beats a loop
MAX_COMBO_SEGMENTS = 64       # profitability: compile time of one giant combo kernel


@dataclass
class Space:
    """An iteration space: the anchor shape D, its reduced dims R and where every value lives."""

    shape: tuple                 # D
    raxes: tuple = ()            # reduced dims of D (reductions only)
    dmap: dict = field(default_factory=dict)     # node -> tuple of D dim (or None) per axis
    level: dict = field(default_factory=dict)    # node -> 'x' (kept dims only) or 'xr'
    after: set = field(default_factory=set)      # nodes downstream of a reduction in this kernel
    persistent: bool = True
    closure: list = field(default_factory=list)  # nodes the kernel computes, in graph order
    internal: set = field(default_factory=set)   # movement nodes whose input is computed in-kernel
    tapped: set = field(default_factory=set)     # a window op's prologue: recomputed at each tap, never stored

    @property
    def kept(self) -> list[int]:
        return [d for d in range(len(self.shape)) if d not in self.raxes]

    def rnumel(self):
        return numel([self.shape[d] for d in self.raxes])

    def xnumel(self):
        return numel([self.shape[d] for d in self.kept])


@dataclass
class Group:
    id: int
    kind: str                    # pointwise | reduction | matmul (matmul or conv) | fallback | combo | loop (a scan)
    nodes: list                  # owned nodes, graph order
    anchor: tuple | None = None  # preferred anchor shape (pointwise)
    space: Space | None = None
    colsums: dict = field(default_factory=dict)   # matmul: reduction node -> operand position
    segments: list = field(default_factory=list)  # combo: pointwise groups
    riders: list = field(default_factory=list)    # scalar outputs stored by program 0
    name: str = ""
    index: int = -1
    stores: list = field(default_factory=list)    # owned nodes written to memory
    reads: list = field(default_factory=list)     # buffers read (node ids)
    note: str = ""


@dataclass
class WhyNoFuse:
    producer: int                # node ids of the edge that was refused
    consumer: int
    category: str                # legal | profit
    reason: str


class Illegal(Exception):
    pass

