"""The memory plan: a slot for every intermediate buffer, slots pooled per set of sizes.

Within a step a slot is free again once the last kernel reading its buffer has run, so two
buffers of the same (dtype, element count) whose lives do not overlap share one slot. The
slots are allocated once per set of symbolic sizes (a pool), so steps after the first
allocate nothing but their outputs, which are fresh tensors: the Model keeps them as the next
step's state. The few most recent pools are kept (a last partial batch has its own sizes);
a captured CUDA graph bakes in the addresses of its pool (graphs.py).

Groups that allocate their own results (a torch fallback op, a scan's host loop) get no slot.
"""
from __future__ import annotations

from collections import OrderedDict

from ...ir.graph import Graph
from ...ir.shapes import canon_dim, numel
from .fallback import torch_dtype
from .index import eval_dim

MAX_POOLS = 4


class MemoryPlan:
    """slot_of: buffer node -> slot; slots: (dtype, element count) per slot; pool(sizes): the tensors."""

    def __init__(self, graph: Graph, plan, device: str):
        self.device = device
        self._plan_memory(graph, plan)
        self._pools: OrderedDict = OrderedDict()

    def _plan_memory(self, g: Graph, plan):
        """Give every intermediate a slot; a slot is free again once its last reader has run."""
        fresh = set(plan.output_bases)
        last_use: dict[int, int] = {}
        for k in plan.kernels:
            for r in k.reads:
                last_use[r] = k.index
        self.slot_of: dict[int, int] = {}
        self.slots: list[tuple[str, object]] = []
        free: dict[tuple, list[int]] = {}
        live: set[int] = set()

        def key(n):
            return (g[n].dtype, canon_dim(numel(g[n].shape)))

        for k in plan.kernels:
            if k.kind not in ("fallback", "loop"):     # those allocate their own results
                for n in k.stores:
                    if n in fresh:
                        continue
                    if free.get(key(n)):
                        self.slot_of[n] = free[key(n)].pop()
                    else:
                        self.slot_of[n] = len(self.slots)
                        self.slots.append(key(n))
                    live.add(n)
            for n in sorted(live):
                if last_use.get(n, k.index) <= k.index:
                    free.setdefault(key(n), []).append(self.slot_of[n])
                    live.discard(n)

    def pool(self, sizes: dict) -> tuple[list, bool]:
        """(the slots' tensors at these sizes, whether they were allocated just now). Launches
        append their split-K scratch to the list (launch.py), so it lives as long as the pool."""
        import torch
        key = tuple(sorted(sizes.items()))
        pool = self._pools.get(key)
        if pool is not None:
            return pool, False
        pool = [torch.empty(eval_dim(n, sizes), dtype=torch_dtype(dt), device=self.device) for dt, n in self.slots]
        self._pools[key] = pool
        while len(self._pools) > MAX_POOLS:
            self._pools.popitem(last=False)
        return pool, True
