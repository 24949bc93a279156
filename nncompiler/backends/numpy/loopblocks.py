"""Block layouts of a generated scan loop's values (backends/numpy/loopgen.py): which [B, N]
values of a step are kept as k blocks of width w, [k, B, w], each block one contiguous [B, w].

numpy runs an op on a column slice of a [B, N] array row by row (about 3x the call of a
contiguous one), so loopgen copies every column slice it reads; an LSTM step reads four gates
of its [B, 4*units] pre-activation and saves three. Two layouts remove copies:

- `block_major`: an elementwise value read only through aligned column blocks of one width
  (directly or through elementwise values read so) is computed as [k, B, w]: its blocks are
  contiguous views. One whose operands are all [B, N] rows (an LSTM's pre-activation, a
  product plus a sequence) is computed as a row and copied into its blocks once (measured
  on [32, 64]: add 0.37 + copy 0.75 us, where the add reading the product through a block
  view costs 1.22 us, plus 1 us a step for the sequence's relayout). Other operands kept as
  rows are read through [k, B, w] views of them, a sequence through a [T, k, B, w] copy of
  it made once per call. A block-major value whose blocks are stacked outputs lives in a
  [T, k, B, w] stack: those outputs are views of it, no copy at all.
- `block_concats`: a concat of single-use parts of one width has its parts computed into
  the blocks of one [k, B, w] buffer, and is one copy of it viewed [B, k, w].

Both compute the same values with the same calls on the same elements, so the same bits.
"""
from __future__ import annotations

import numpy as np

from ...ir.graph import Graph, Node
from ...ir.primitives import ELEMENTWISE_KINDS
from .loop import axis_first
from .rules import OUT_OPS


def block_concats(body: Graph, kind: dict, taken: set[int]) -> dict[int, list[int]]:
    """Concats (along the last axis) of k parts of one width w, each computed by this step for
    the concat alone (not an argument, an output, a block-major value or another concat):
    concat id -> parts. Their parts are computed into the blocks of one [k, B, w] buffer and
    the concat is one copy of it viewed [B, k, w]: the same values, where np.concatenate's
    call costs about twice that copy (bench G200's LSTM VJP, four [32, 16] parts: 1.4 vs
    0.75 us a step)."""
    users = body.users()
    out: dict[int, list[int]] = {}
    claimed: set[int] = set()
    for n in body.nodes:
        if n.op != "concat" or kind.get(n.id) != "row" or n.attr["axis"] not in (1, -1):
            continue
        parts = list(n.inputs)
        widths = {body[i].shape[1] for i in parts}
        if (len(parts) < 2 or len(set(parts)) != len(parts) or len(widths) != 1
                or any(body[i].op in ("arg", "concat") or i in taken or i in claimed
                       or kind.get(i) != "row" or list(users[i]) != [n.id] for i in parts)):
            continue
        out[n.id] = parts
        claimed.update(parts)
    return out


def block_of(n: Node, width: int) -> int | None:
    """Which block of `width` columns a whole-row slice takes, or None when it is not one."""
    a = n.attr
    start, stop = a["start"][1] or 0, a["stop"][1]
    if stop is None:
        stop = n.shape[1] + start
    if stop - start != width or start % width:
        return None
    return start // width


def _elementwise(n: Node) -> bool:
    return n.op in OUT_OPS and n.op != "matmul" and n.prim.kind in ELEMENTWISE_KINDS


def block_major(body: Graph, kind: dict, outputs: set[int]) -> dict[int, tuple[int, int]]:
    """Elementwise [B, N] values that are not outputs, read only by aligned column slices of
    one width w or by elementwise values laid out so: id -> (k, w), with k = N / w >= 2 (see
    the module docstring). Their operands are rows (read through block views) or scalars."""
    users = body.users()
    out: dict[int, tuple[int, int]] = {}
    for n in reversed(body.nodes):
        if (n.op == "arg" or not _elementwise(n) or kind.get(n.id) != "row" or n.id in outputs
                or not users[n.id] or any(kind.get(i) not in ("row", "scalar") for i in n.inputs)):
            continue
        widths = set()
        for u in users[n.id]:
            user = body[u]
            if user.op == "slice" and kind.get(u) == "row":
                widths.add(user.shape[1])
            elif u in out and user.shape == n.shape:
                widths.add(out[u][1])
            else:
                widths = set()
                break
        if len(widths) != 1:
            continue
        (w,) = widths
        if n.shape[1] % w or n.shape[1] // w < 2:
            continue
        if all(body[u].op != "slice" or block_of(body[u], w) is not None for u in users[n.id]):
            out[n.id] = (n.shape[1] // w, w)
    return out


def in_blocks(seq, axis: int, k: int, w: int):
    """A [.., N] sequence with its scan axis at `axis` as a contiguous time-major [T, k, B, w]:
    step t's [k, B, w] blocks, for a block-major op reading it (one copy a call)."""
    seq = axis_first(np.asarray(seq), axis) if axis else np.asarray(seq)
    t, b = seq.shape[:2]
    return np.ascontiguousarray(seq.reshape(t, b, k, w).transpose(0, 2, 1, 3))
