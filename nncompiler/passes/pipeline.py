"""The pass pipeline: run graph-to-graph passes, each reporting what it did.

Every pass is `name(graph) -> (graph, PassRecord)` (records.py). `optimize` runs the
default passes to a fixed point; `PASSES` lets a CLI run them one by one,
like mlir-opt.

Change messages name values the way `print_graph` prints the pass's input
(`%x` for arguments, `%0`, `%1`, ... for the rest), so they can be read
against that listing.
"""
from __future__ import annotations

from ..ir.graph import Graph
from ..ir.text import value_names  # noqa: F401  (re-exported: the passes name values as print_graph does)
from ..ir.verify import verify
from .cse import cse
from .dce import dce
from .decompose import decompose
from .fold import fold
from .merge_slices import merge_slices
from .pads import pads_to_concat
from .records import PassRecord, format_records
from .scan_accumulate import scan_accumulate
from .scan_hoist import scan_hoist
from .scan_prune import scan_prune
from .simplify import simplify
from .unroll import optimize_bodies, unroll

# pads_to_concat after simplify: it sees the backward pass's sums of slice cotangents;
# the scan passes after dce: it leaves only the scan results something reads
DEFAULT_PASSES = [("decompose", decompose), ("fold", fold), ("simplify", simplify),
                  ("pads_to_concat", pads_to_concat), ("merge_slices", merge_slices), ("cse", cse), ("dce", dce),
                  ("scan_accumulate", scan_accumulate), ("scan_hoist", scan_hoist),
                  ("scan_prune", scan_prune), ("bodies", optimize_bodies)]
PASSES = dict(DEFAULT_PASSES, unroll=unroll)
MAX_ROUNDS = 10


def run_pass(graph: Graph, name: str) -> tuple[Graph, PassRecord]:
    """Run one named pass (what `nnc opt --pass NAME` would do), then verify its result."""
    if name not in PASSES:
        raise KeyError(f"unknown pass '{name}' (known: {', '.join(PASSES)})")
    out, record = PASSES[name](graph)
    verify(out)
    return out, record


def optimize(graph: Graph, passes=DEFAULT_PASSES, max_rounds: int = MAX_ROUNDS
             ) -> tuple[Graph, list[PassRecord]]:
    """Run `passes` (a list of (name, fn) pairs, or of names from PASSES) in order, round
    after round, until a whole round changes nothing (at most `max_rounds` rounds).
    The verifier runs after every pass, so a broken rewrite fails at the pass that made it."""
    passes = [(p, PASSES[p]) if isinstance(p, str) else p for p in passes]
    records: list[PassRecord] = []
    for _ in range(max_rounds):
        changed = False
        for _name, fn in passes:
            graph, record = fn(graph)
            verify(graph)
            records.append(record)
            changed |= record.changed
        if not changed:
            break
    return graph, records


__all__ = ["PassRecord", "value_names", "optimize", "run_pass", "format_records", "PASSES", "DEFAULT_PASSES"]
