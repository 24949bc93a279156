"""The pass pipeline: run graph-to-graph passes, each reporting what it did.

Every pass is `name(graph) -> (graph, PassRecord)`. A record names the pass,
counts nodes before and after, lists short human-readable changes
("folded %4 add of constants") and times the pass, so a compile can show
what each stage did, like lightning-thunder's traces. `optimize` runs the
default passes to a fixed point; `PASSES` lets a CLI run them one by one,
like mlir-opt.

Change messages name values the way `print_graph` prints the pass's input
(`%x` for arguments, `%0`, `%1`, ... for the rest), so they can be read
against that listing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..ir.graph import Graph
from ..ir.text import value_names  # the passes name values as print_graph does
from ..ir.verify import verify


@dataclass(frozen=True)
class PassRecord:
    name: str
    nodes_before: int
    nodes_after: int
    changes: list[str] = field(default_factory=list)
    ms: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @classmethod
    def of(cls, name: str, before: Graph, after: Graph, changes: list[str], t0: float) -> "PassRecord":
        """Record for a pass that started at `time.perf_counter() == t0`."""
        return cls(name, len(before.nodes), len(after.nodes), list(changes),
                   (time.perf_counter() - t0) * 1000.0)

    def __str__(self) -> str:
        return (f"{self.name}: {self.nodes_before} -> {self.nodes_after} nodes "
                f"({len(self.changes)} changes, {self.ms:.1f} ms)")


# The passes import PassRecord and value_names from this module, so they are
# imported only after those are defined (the package __init__ imports us first).
from .cse import cse  # noqa: E402
from .dce import dce  # noqa: E402
from .decompose import decompose  # noqa: E402
from .fold import fold  # noqa: E402
from .pads import pads_to_concat  # noqa: E402
from .simplify import simplify  # noqa: E402

# pads_to_concat after simplify: it sees the backward pass's sums of slice cotangents
DEFAULT_PASSES = [("decompose", decompose), ("fold", fold), ("simplify", simplify),
                  ("pads_to_concat", pads_to_concat), ("cse", cse), ("dce", dce)]
PASSES = dict(DEFAULT_PASSES)
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


def format_records(records, verbose: bool = False) -> str:
    """One line per pass run (`fold: 42 -> 38 nodes (4 changes, 0.3 ms)`), plus the
    changes themselves, indented, when `verbose`."""
    lines = []
    for r in records:
        lines.append(str(r))
        if verbose:
            lines.extend(f"  {c}" for c in r.changes)
    return "\n".join(lines)

__all__ = ["PassRecord", "value_names", "optimize", "run_pass", "format_records", "PASSES", "DEFAULT_PASSES"]
