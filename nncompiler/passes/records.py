"""Pass records: what one run of a pass did, and how to print a list of them.

Every pass is `name(graph) -> (graph, PassRecord)`. A record names the pass,
counts nodes before and after, lists short human-readable changes
("folded %4 add of constants") and times the pass, so a compile can show
what each stage did, like lightning-thunder's traces. It lives apart from the
pipeline so that the passes and the pipeline both import it, and neither the other.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..ir.graph import Graph
from ..ir.text import value_names  # noqa: F401  (the passes name values as print_graph does)


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


def format_records(records, verbose: bool = False) -> str:
    """One line per pass run (`fold: 42 -> 38 nodes (4 changes, 0.3 ms)`), plus the
    changes themselves, indented, when `verbose`."""
    lines = []
    for r in records:
        lines.append(str(r))
        if verbose:
            lines.extend(f"  {c}" for c in r.changes)
    return "\n".join(lines)


__all__ = ["PassRecord", "format_records", "value_names"]
