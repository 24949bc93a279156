"""Fusion planning: group the ops of an optimised IR graph into kernels.

The planner works on the graph as the passes left it and never changes it. Every
node gets a class:

  arg        a graph argument (a device buffer)
  constbuf   a constant tensor, made once at compile time (const, random_uniform,
             random_normal: seeded, so they are constants; evaluated through the
             numpy backend, the reference semantics, as constant folding is)
  inline     a scalar computed from scalars (consts, `size`, rank-0 arguments): it
             is recomputed inside every kernel that needs it (Adam's bias
             corrections, 1/B of a mean) instead of costing a launch
  move       reshape / transpose / broadcast_to / slice / pad / concat: index
             arithmetic, never a kernel of its own (see below)
  compute    everything else: elementwise ops, iota, rng_uniform, reductions, matmul

Each compute node starts as a group; groups then merge pairwise, producer into
consumer, in graph order:

  pointwise + pointwise   one elementwise kernel over a common iteration space
  pointwise + reduction   elementwise prologue / epilogue of a row reduction; a
                          chain (softmax: max, exp, sum, div) needs the whole row in
                          one tile ("persistent"), an independent reduction loops
  matmul + pointwise      the epilogue of a tiled `tl.dot` kernel (bias, activation,
                          the relu mask of a backward matmul, ...); a `conv` is such a
                          kernel too, an implicit GEMM (plan_conv.py)
  matmul + column sum     a bias gradient `sum(G, axis 0)` where G is the matmul's
                          K-major operand is accumulated from the tiles the matmul
                          loads anyway (wgrad and bias grad in one kernel)

then siblings over the same space merge (reductions: loss and accuracy; pointwise groups
that read a common buffer: an LSTM step's gate gradients), and the sink
elementwise groups (the optimizer update of every parameter) become one
horizontally fused "combo" kernel with one segment per group.

*Legality* (can these two share a kernel at all?) and *profitability* (should
they?) are separate functions; every refusal is recorded with its reason, like
Inductor's WhyNoFuse, and printed by `--emit kernels`.

The space check is a union-find: every (node, axis) of size != 1 is an element;
broadcasting, transposes, squeeze-like reshapes and reductions unite elements; a
legal kernel maps every class onto exactly one dimension of its anchor shape
(the matmul output, the reduction input, or the largest elementwise shape).
Movement ops on values computed in the same kernel must be such dim-map ops;
movement ops on buffers read by the kernel become index arithmetic in the load
(slices, pads, concats, reshapes, transposes, broadcasts: no copy kernel).
Matmul operands are read through strides (transposes are free).
"""
from __future__ import annotations

from ...ir.graph import Graph
from .index import View
from .plan_classify import Classify
from .plan_conv import ConvPlan
from .plan_describe import Describe
from .plan_fuse import Fuse
from .plan_space import IterationSpace
from .plan_types import (MAX_COMBO_SEGMENTS, MAX_PERSISTENT_R, PREFER_PERSISTENT_R, REDUCE_OPS, Group, Illegal,
                         Space, WhyNoFuse)

__all__ = ["Plan", "plan_graph", "Group", "Space", "WhyNoFuse", "Illegal", "REDUCE_OPS", "MAX_PERSISTENT_R",
           "PREFER_PERSISTENT_R", "MAX_COMBO_SEGMENTS"]


class Plan(Classify, ConvPlan, IterationSpace, Fuse, Describe):
    """The kernels of one graph, in launch order, plus everything the code generator needs."""

    def __init__(self, graph: Graph, fallback_ops=(), host_rng: bool = False):
        self.graph = graph
        self.fallback_ops = set(fallback_ops)   # primitives forced through torch (tests the fallback path)
        self.host_rng = host_rng                # rng_uniform from numpy's stream on the host: exact parity
        g = graph
        self.order = {n.id: k for k, n in enumerate(g.nodes)}
        self.users = g.users()
        self.output_ids = [i for _, i in g.outputs]
        self.cls: dict[int, str] = {}
        self.why: list[WhyNoFuse] = []
        self.copies: set[int] = set()          # movement nodes materialized by a copy kernel
        self.inline_stored: set[int] = set()   # inline scalars that also need a buffer
        self.output_views: dict[int, View] = {}   # output movement node -> view of a buffer
        self.operand_views: dict[tuple, View] = {}  # (node, position) -> view (matmul / conv / fallback)
        self.conv_inputs: dict = {}            # conv kernel node -> plan_conv.ConvInput
        self._classify()
        self._need_buffers()
        self._src_memo: dict[int, frozenset] = {}
        self.groups: dict[int, Group] = {}
        self._next_gid = 0
        self.owner: dict[int, int] = {}
        self._reads_memo: dict[int, frozenset] = {}
        self._build_groups()
        self._rebuild_deps()
        self._fuse_colsums()
        self._rebuild_deps()
        self._fuse_vertical()
        self._fuse_siblings()
        self._fuse_horizontal()
        self._rebuild_deps()
        self._attach_riders()
        self._rebuild_deps()
        self.kernels: list[Group] = self._finalize()



def plan_graph(graph: Graph, fallback_ops=(), host_rng: bool = False) -> Plan:
    from ...passes.expand_fused import expand_fused
    # fused primitives (sparse_xent, ...) have no kernel rule here: plan their basic form
    return Plan(expand_fused(graph), fallback_ops, host_rng)

