"""Grouped calls of a generated scan loop (backends/numpy/loopgen.py): the k parts of a
concat, each a binary elementwise op of a value of the step and a sequence of its own,
computed by one numpy call on [k, B, w].

An LSTM VJP step multiplies each gate's gradient by that gate's derivative (four sequences
the forward pass saved: i(1-i), f(1-f), 1-g^2, o(1-o)) and concatenates the four products,
four [B, units] calls whose numpy overhead is most of their cost. The concat's parts are
computed block by block into a [k, B, w] buffer g (loopblocks.block_concats); when every
part is n_j = op(L_j, x_j), x_j a sequence and L_j a value the step computes for its own
buffer alone, the L_j are computed into the blocks of one [k, B, w] buffer P, the x_j
stacked once a call into a time-major [T, k, B, w] copy D (kept across calls, like the
loop's stacks), and the k parts are one call `op(P, D[t], g)` (bench G200: 0.39 us where
the four calls cost 1.44; the stacked copy about 0.1 us a step per sequence).

Operands keep their positions (x86 returns the first operand's NaN of two) and every element
is the same op on the same two floats as in the k calls: the same bits.

Tried and left out: the step also multiplies the cell gradient by three saved sequences
(the gate gradients' other factors), which could be one call broadcasting it over their
stacked copy; numpy's broadcast loop costs as much as the three calls (0.84 vs 0.91 us).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ir.graph import Graph
from .loop import axis_first
from .rules import OUT_OPS

_BINARY = ("add", "sub", "mul", "div")


@dataclass
class Group:
    """k ops `op` computed in one call: members[j] (a concat's parts, in order) into block j
    of `out`, reading sequence seqs[j] (its position among the sequences) at operand position
    `seq_at` and block j of the buffer `lhs` at the other."""
    op: str
    members: list[int]
    seqs: list[int]
    seq_at: int
    out: str
    lhs: str


def _split(body: Graph, i: int, seq_pos: dict[int, int]):
    """(other operand, sequence's argument position, the sequence's operand position) of a
    binary op with exactly one sequence operand, else None."""
    n = body[i]
    if n.op not in _BINARY or len(n.inputs) != 2 or n.inputs[0] == n.inputs[1]:
        return None
    at = [k for k, x in enumerate(n.inputs) if x in seq_pos]
    if len(at) != 1:
        return None
    return n.inputs[1 - at[0]], seq_pos[n.inputs[at[0]]], at[0]


def product_groups(body: Graph, kind: dict, seq_ids: list[int], concats: dict[int, list[int]],
                   taken: set[int]) -> list[Group]:
    """The groups of this step (see the module docstring). `concats`: block_concats' concat
    id -> parts (computed into g{concat}, the group's P is P{concat}); `taken`: values whose
    buffer is fixed elsewhere (an argument, a row of a stack, an output, a block-major value,
    a concat part)."""
    seq_pos = {i: k for k, i in enumerate(seq_ids)}
    users = body.users()
    groups: list[Group] = []
    claimed: set[int] = set()
    for c, parts in concats.items():
        split = [_split(body, i, seq_pos) for i in parts]
        if any(s is None for s in split) or len({body[i].op for i in parts}) != 1:
            continue
        lhs, seqs, at = zip(*split)
        if (len(set(at)) != 1 or len(set(lhs)) != len(lhs) or len(set(seqs)) != len(seqs)
                or any(body[seq_ids[k]].type != body[i].type for k, i in zip(seqs, parts))
                or any(body[i].op == "arg" or i in taken or i in claimed or kind.get(i) != "row"
                       or body[i].type != body[parts[0]].type or not users[i] for i in lhs)):
            continue
        groups.append(Group(body[parts[0]].op, list(parts), list(seqs), at[0], f"g{c}", f"P{c}"))
        claimed.update(lhs)
    return groups


def group_call(g: Group, seq: str) -> str:
    """The numpy call computing a group's members, `seq` the step's [k, B, w] block of its
    stacked sequences."""
    return OUT_OPS[g.op]([g.lhs, seq] if g.seq_at == 1 else [seq, g.lhs], g.out)


def stack_seqs(out, axis: int, *seqs):
    """Sequences with their scan axis at `axis` copied into `out`, a contiguous time-major
    [T, k, B, w] buffer: step t's [k, B, w] operand of a grouped call."""
    for j, s in enumerate(seqs):      # (np.stack costs half as much again at T = 10)
        np.copyto(out[:, j], axis_first(s, axis) if axis else s)
    return out
