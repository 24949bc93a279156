"""Memory plan for the numpy backend: where each large elementwise result is written.

numpy allocates a fresh array for every operation; on large tensors that costs
more than the arithmetic (page faults on every new buffer, a cold cache). Since
the compiler sees the whole step, it can do what a careful hand-written numpy
program does with `out=`:

- **in place**: an elementwise op writes into an operand's buffer when that
  buffer is dead afterwards (its last use, counting the views that alias it);
- **workspace**: the first buffer of such a chain is kept across calls
  (`ws`, keyed by node), so a steady-state step allocates nothing for temporaries;
- **recycled outputs**: a buffer that leaves the function as an output is
  reused on the next call only if nobody else holds it any more (its reference
  count says so), so results a caller keeps are never overwritten;
- **donated state**: in a training step, `new.p = p - lr*g` is written into `p`
  itself when `p` dies there; the runtime owns parameter and optimizer arrays
  and hands out copies, so no caller can see the change.

A scan's results are never overwritten: the generated loops (loopgen.py) return views of
shared stacks (a carry's final value is the last row of the stack of its per-step values).

Small tensors keep plain expressions: for them numpy's allocator is cheaper than
the bookkeeping.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...ir.graph import Graph, Node
from ...ir.primitives import PRIMITIVES
from ...ir.shapes import Monomial, numel
from .rules import OUT_OPS   # the ops with a rule that writes into a given buffer

# ops whose result shares memory with (or is) their first operand: the table's views
VIEW_OPS = frozenset(name for name, p in PRIMITIVES.items() if p.view)
LARGE = 1 << 15          # elements; below this numpy's allocator wins
SYMBOL_GUESS = 64        # what a symbolic dimension (a batch) is assumed to be when sizing


def estimated_size(shape) -> int:
    return Monomial.parse(numel(shape)).evaluate({}, default=SYMBOL_GUESS)


@dataclass
class Plan:
    storage: dict[int, int] = field(default_factory=dict)     # node -> the node whose buffer holds it
    inplace: dict[int, int] = field(default_factory=dict)     # node -> operand node it overwrites
    kind: dict[int, str] = field(default_factory=dict)        # storage root -> ws | out | donated
    slot: dict[int, int] = field(default_factory=dict)        # ws root -> workspace buffer number


def plan(graph: Graph, donate: dict[str, str] | None = None, reads: dict[int, int] | None = None) -> Plan:
    """`donate` maps an argument name to the output that may overwrite it (`h.kernel` -> `new.h.kernel`).
    `reads` maps a value to a later node that reads it too, outside the graph's edges (codegen
    computes a node inside another that way: a max pool's gradient reads the where it absorbs)."""
    donate = donate or {}
    p = Plan()
    outputs = {i for _, i in graph.outputs}
    for n in graph.nodes:
        p.storage[n.id] = n.inputs[0] if n.op in VIEW_OPS else n.id

    def root(i: int) -> int:
        while p.storage[i] != i:
            i = p.storage[i]
        return i

    uses: dict[int, int] = {}  # value -> position of its last use (directly or through a view)
    at = {n.id: k for k, n in enumerate(graph.nodes)}
    for k, n in enumerate(graph.nodes):
        for i in n.inputs:
            uses[i] = k
    for i, reader in (reads or {}).items():
        uses[i] = max(uses.get(i, -1), at[reader])
    for n in reversed(graph.nodes):  # a view keeps its base alive as long as itself
        if n.op in VIEW_OPS and n.id in uses:
            uses[n.inputs[0]] = max(uses.get(n.inputs[0], -1), uses[n.id])
    end = len(graph.nodes)
    for i in outputs:
        uses[i] = end
        j = i
        while graph[j].op in VIEW_OPS:
            j = graph[j].inputs[0]
            uses[j] = end

    def last(r: int) -> int:
        """Last use of buffer r: of any value stored in it."""
        return max(uses.get(v, -1) for v in members.get(r, [r]))

    members: dict[int, list[int]] = {}
    donors = {}  # output node -> the argument it may overwrite
    out_by_name = dict(graph.outputs)
    for arg_name, out_name in donate.items():
        if out_name in out_by_name:
            donors[out_by_name[out_name]] = graph.arg(arg_name).id

    free: dict[tuple, list[int]] = {}   # (shape, dtype) -> workspace slots no live value uses
    busy: list[tuple[int, tuple, int]] = []  # (root, key, slot)
    slots = 0
    for k, n in enumerate(graph.nodes):
        if n.op not in OUT_OPS or estimated_size(n.shape) < LARGE:
            continue
        for entry in [e for e in busy if last(e[0]) < k]:   # buffers whose values are all dead
            busy.remove(entry)
            free.setdefault(entry[1], []).append(entry[2])
        arg = donors.get(n.id)
        if arg is not None and arg in n.inputs and graph[arg].type == n.type and last(arg) == k:
            _join(p, members, n.id, arg)
            p.kind[arg] = "donated"
            continue
        for i in _candidates(n):
            src, r = graph[i], root(i)
            if (src.op not in VIEW_OPS and graph[r].op not in ("arg", "const", "scan_out") and src.type == n.type
                    and p.kind.get(r) != "donated" and last(r) == k):
                _join(p, members, n.id, r)
                break
        else:
            p.kind[n.id] = "ws"
            key = (tuple(n.shape), n.dtype)
            if free.get(key):
                p.slot[n.id] = free[key].pop()
            else:
                p.slot[n.id] = slots
                slots += 1
            busy.append((n.id, key, p.slot[n.id]))
    for i in outputs:  # a buffer that leaves the function is an output buffer, not a workspace
        r = root(i)
        if p.kind.get(r) == "ws":
            p.kind[r] = "out"
    return p


def _join(p: Plan, members: dict, node: int, r: int) -> None:
    p.inplace[node] = r
    p.storage[node] = r
    members.setdefault(r, [r]).append(node)


def _candidates(n: Node):
    """Operands an op may overwrite (the table's `overwrites`), less one our rules cannot:
    where(c, x, y)'s helper copies y into the buffer first, so only y's may be it."""
    if n.op == "where":
        return (n.inputs[2],)
    return tuple(n.inputs[k] for k in n.prim.overwrites)
