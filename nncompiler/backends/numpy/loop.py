"""The numpy backend's `scan`: the body compiled once as its own function, run in a Python
loop, each per-step output copied into a buffer preallocated for the whole sequence.

The generated module names the body by its text form (`_scan_body("graph body(...) {...}")`),
so `--emit python` stays one readable, self-contained module.

The loop is where a recurrent layer spends its time (a few microseconds of numpy calls per
step), so the driver does as little as it can per step: the body returns a tuple, the
sequences are laid out time-major once (a copy when they are not already) so that step t
is `seq[t]`, one contiguous block, and every stacked output is written into
a time-major [T, ...] buffer (`buf[t] = y`, one contiguous copy) that the scan returns
viewed with the time axis back in its place.
"""
from __future__ import annotations

from collections import OrderedDict
from itertools import repeat

import numpy as np

# compiled bodies, bounded (the least recently used dropped first): a process compiling model
# after model (a sweep, the test suite) would otherwise keep every body's code for good; a
# dropped body lives on in the modules holding its function, and compiles again on next use
MAX_BODIES = 256
_BODIES: OrderedDict[tuple[str, str], object] = OrderedDict()


def scan_body(text: str, precision: str = "fp32"):
    """The body graph's compiled function, returning its outputs as a tuple (cached by its
    text and the precision mode: a module is imported once per compile, and the same body
    text always compiles to the same code). The body's matmuls are rounded like the
    enclosing graph's, or a bf16 model's recurrence would silently run in fp32 on numpy
    while the GPU rounds it."""
    key = (text, precision)
    fn = _BODIES.get(key)
    if fn is None:
        from ...ir.text import parse_graph
        from .codegen import compile_graph
        compiled = compile_graph(parse_graph(text, "<scan body>"), precision=precision, as_tuple=True)
        fn = _BODIES[key] = compiled.fn
        while len(_BODIES) > MAX_BODIES:
            _BODIES.popitem(last=False)
    _BODIES.move_to_end(key)
    return fn


def axis_first(a, axis: int):
    """np.moveaxis(a, axis, 0) as one transpose: moveaxis's argument checks cost ~2.6 us a
    call, and a recurrent training step makes about twenty (each sequence and stack, twice)."""
    axis %= a.ndim
    return a.transpose((axis, *range(axis), *range(axis + 1, a.ndim)))


def axis_back(a, axis: int):
    """np.moveaxis(a, 0, axis) as one transpose."""
    axis %= a.ndim
    return a.transpose((*range(1, axis + 1), 0, *range(axis + 1, a.ndim)))


def time_major(seq, axis: int):
    """`seq` with the scan axis first and each step's block contiguous: copied once when it
    is not already laid out so. numpy's elementwise calls on a strided [B, units] step run
    about 3x slower than on a contiguous one (bench case G50's reverse LSTM body: 38 vs 11
    us a step), far more over T steps than the one copy costs. The steps themselves need not
    be adjacent: a block of a block-major stack (backends/numpy/loopblocks.py) stays a view."""
    seq = axis_first(np.asarray(seq), axis) if axis else np.asarray(seq)
    if seq.flags.c_contiguous or seq.strides[0] == 0:   # a broadcast zero sequence stays a view
        return seq
    if seq.ndim and len(seq) and seq[0].flags.c_contiguous:
        return seq
    return np.ascontiguousarray(seq)


def run_scan(body, n_carry: int, n_seq: int, axis: int, length: int, reverse: bool, *operands):
    """Final carries, then every per-step output stacked along `axis` (lax.scan's semantics;
    `reverse` walks t = length-1 .. 0 and still stores step t's output at index t)."""
    carries = operands[:n_carry]
    seqs = [time_major(s, axis) for s in operands[n_carry:n_carry + n_seq]]
    invariants = operands[n_carry + n_seq:]
    steps = range(length - 1, -1, -1) if reverse else range(length)
    # each step's slices come from iterating the time-major sequences (reversed views for a
    # reverse scan) in C, not from indexing every sequence in a Python list per step
    per_step = zip(*[s[::-1] if reverse else s for s in seqs]) if seqs else repeat((), length)
    stacked = None
    for t, xs in zip(steps, per_step):
        out = body(*carries, *xs, *invariants)
        carries = out[:n_carry]
        if stacked is None:   # the buffers are sized from the first step's outputs
            stacked = [np.empty((length,) + np.shape(y), np.asarray(y).dtype) for y in out[n_carry:]]
        for buf, y in zip(stacked, out[n_carry:]):
            buf[t] = y
    if axis:
        stacked = [axis_back(buf, axis) for buf in stacked]
    return tuple(carries) + tuple(stacked)
