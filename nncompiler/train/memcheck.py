"""Memory checks before running a model's graph on whole arrays: predict, evaluate, graph blocks.

Training has its own (train/memory.py's check_fit); these cover the other ways to run a model,
which otherwise met an 18.6 GiB allocation with a MemoryError traceback. The estimate is
the numpy backend's memory plan for the graph with the symbols bound from the arrays'
shapes (train/memory.py's step_bytes), checked against the memory available (NNC_MEMORY_LIMIT,
else what the system reports).
"""
from __future__ import annotations

import os
import weakref

import numpy as np

from ..ir.limits import available_memory
from .memory import ResourceError, bind_symbols, refuse as _refuse, step_bytes


def check_call(model, kind: str, data: dict, what: str, hint: str) -> None:
    """ResourceError if one call of graph `kind` on `data` would not fit in memory.
    `what` names the call ("predicting 5000000 rows at once"), `hint` the way out."""
    available = available_memory()
    if available is None:
        return
    data = {k: v for k, v in data.items() if np.ndim(v)}
    bindings = bind_symbols(model, data, None)
    total, largest = step_bytes(model.graph(kind), bindings)
    if total <= available:
        return
    _refuse(total, largest, bindings, available, what, hint)


# model -> {symbol sizes: (bytes, largest node)}: Model.forward checks every call, and
# the memory plan behind the estimate costs far more than a small model's forward pass
_ESTIMATES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_SMALL = 64 << 20   # bytes a call may need without asking the system what is free


def check_forward(model, feeds: dict) -> None:
    """check_call for Model.forward/predict, the estimate worked out once per batch size."""
    bindings = bind_symbols(model, feeds, None)
    memo = _ESTIMATES.setdefault(model, {})
    key = tuple(sorted(bindings.items()))
    if key not in memo:
        if len(memo) >= 64:     # many batch sizes: start over rather than grow without bound
            memo.clear()
        memo[key] = step_bytes(model.graph("predict"), bindings)
    total, largest = memo[key]
    if total < _SMALL and not os.environ.get("NNC_MEMORY_LIMIT"):
        return      # reading /proc/meminfo would cost half a small model's forward pass
    available = available_memory()
    if available is not None and total > available:
        low = model.lowered
        rows = [len(v) for v in feeds.values() if np.ndim(v)]
        if low.kind == "graph" or not rows:
            _refuse(total, largest, bindings, available, f"running graph {low.name}", "feed smaller arrays")
        _refuse(total, largest, bindings, available, f"predicting {rows[0]} rows at once",
                "give predict a batch_size")

