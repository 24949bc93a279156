"""A looped `scan` at run time: the body's CompiledGraph run once per step from the host.

The planner made the scan one `loop` group (loops.py chose it and put its time axis first),
so its operands are dense buffers: carries, sequences laid out [T, ...], invariants. Per step:

* step t's slice of each sequence is `seq[t]`, a contiguous block of the same buffer (a
  pointer advanced by t * stride(0), no copy);
* each stacked output is written in place into its slot `out[t]` of one [T, ...] buffer
  allocated before the loop (the body's kernels store straight into it: the body runs with
  `into`), so nothing is concatenated;
* each carry is written into one of two buffers used in turn (ping-pong), never into the
  buffer the step reads it from; a carry that is also a stacked output (an RNN's h) is read
  by the next step from its slot `out[t]` and needs no buffer of its own.

All of this is torch tensors and kernel launches, so on a GPU the whole loop (T x the body's
launches) is captured in the step's CUDA graph (graphs.py) like any other launch and replays
with no Python per step. Eagerly (the first call, or without CUDA graphs) the host pays the
body's launch overhead T times, as the unrolled graph paid it per unrolled kernel.

Buffers are allocated per call (fresh results, as every eager output is; inside a capture
they come from the graph's private pool and stay put between replays).
"""
from __future__ import annotations

from .index import eval_shape


def _storage(t) -> int:
    return t.untyped_storage().data_ptr()


def _tma_aligned(t, descriptors: bool):
    """A step's slice as a kernel argument: a TMA descriptor (tma.py) needs a 16-byte-aligned
    base, which every buffer the runtime allocates has but slot t of a [T, ...] buffer only
    has when a step's block is a multiple of 16 bytes; such a slice is copied (a GPU compiling
    TMA matmuls only). Pointer loads take any base: Triton specialises on alignment itself."""
    return t if not descriptors or t.data_ptr() % 16 == 0 else t.clone()


def run_scan(body, attr: dict, operands: list, device: str) -> tuple[list, int]:
    """(results: final carries then stacked outputs, kernel launches made) of one scan.
    `body` is the body's CompiledGraph; `operands` are dense tensors, sequences [T, ...]."""
    import torch
    nc, ns, length, reverse = attr["n_carry"], attr["n_seq"], attr["length"], attr.get("reverse", False)
    carries, seqs, invariants = list(operands[:nc]), operands[nc:nc + ns], operands[nc + ns:]
    names = body.arg_names
    g = body.graph
    outs = list(g.outputs)
    carry_outs, stacked_outs = outs[:nc], outs[nc:]
    fixed = dict(zip(names[nc + ns:], invariants))
    sizes = body.arguments.bind({**dict(zip(names[:nc], carries)),
                                 **dict(zip(names[nc:nc + ns], (s[0] for s in seqs))), **fixed})
    stacked = [torch.empty((length,) + eval_shape(g[i].shape, sizes), dtype=body.node_dtype(i), device=device)
               for _, i in stacked_outs]
    pairs = [[torch.empty(eval_shape(g[i].shape, sizes), dtype=body.node_dtype(i), device=device) for _ in range(2)]
             for _, i in carry_outs]
    pair_ids = [[_storage(x) for x in p] for p in pairs]
    ours = {_storage(t) for t in stacked} | {sid for p in pair_ids for sid in p}
    before = body.launches
    # per-step views made once (one unbind each), not indexed in the loop
    seq_steps = [s.unbind(0) for s in seqs]
    slots = [buf.unbind(0) for buf in stacked]
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        args = dict(fixed)
        args.update(zip(names[:nc], (_tma_aligned(c, body.reads_descriptors) for c in carries)))
        args.update(zip(names[nc:nc + ns], (_tma_aligned(s[t], body.reads_descriptors) for s in seq_steps)))
        into: dict = {}
        for slot, (_, i) in zip(slots, stacked_outs):
            into.setdefault(i, slot[t])
        targets = []
        busy = {_storage(c) for c in carries}       # never write a buffer this step reads
        for k, (_, i) in enumerate(carry_outs):
            free = [x for x, sid in zip(pairs[k], pair_ids[k]) if sid not in busy]
            if not free:                            # carries swapped places: a third buffer
                pairs[k].append(torch.empty_like(pairs[k][0]))
                pair_ids[k].append(_storage(pairs[k][-1]))
                ours.add(pair_ids[k][-1])
                free = pairs[k][-1:]
            targets.append(free[0])
            into.setdefault(i, free[0])
        result = body.run(args, into, sizes)
        for slot, (name, _) in zip(slots, stacked_outs):
            y = result[name]
            if y.data_ptr() != slot[t].data_ptr():  # an output the body did not store (a view, a torch op)
                slot[t].copy_(y)
        for k, (name, _) in enumerate(carry_outs):
            c = result[name]
            if _storage(c) not in ours:             # e.g. a carry passed through: never alias an operand
                targets[k].copy_(c)
                c = targets[k]
            carries[k] = c
    return carries + stacked, body.launches - before
