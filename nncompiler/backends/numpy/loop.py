"""The numpy backend's `scan`: the body compiled once as its own function, run in a Python
loop, each per-step output copied into a buffer preallocated for the whole sequence.

The generated module names the body by its text form (`_scan_body("graph body(...) {...}")`),
so `--emit python` stays one readable, self-contained module.
"""
from __future__ import annotations

import numpy as np

_BODIES: dict[tuple[str, str], object] = {}


def scan_body(text: str, precision: str = "fp32"):
    """The body graph's compiled function (cached by its text and the precision mode: a module
    is imported once per compile, and the same body text always compiles to the same code).
    The body's matmuls are rounded like the enclosing graph's, or a bf16 model's recurrence
    would silently run in fp32 on numpy while the GPU rounds it."""
    key = (text, precision)
    fn = _BODIES.get(key)
    if fn is None:
        from ...ir.text import parse_graph
        from .codegen import compile_graph
        compiled = compile_graph(parse_graph(text, "<scan body>"), precision=precision)
        fn = _BODIES[key] = compiled.fn
    return fn


def run_scan(body, n_carry: int, n_seq: int, axis: int, length: int, reverse: bool, *operands):
    """Final carries, then every per-step output stacked along `axis` (lax.scan's semantics;
    `reverse` walks t = length-1 .. 0 and still stores step t's output at index t)."""
    carries = list(operands[:n_carry])
    seqs = operands[n_carry:n_carry + n_seq]
    invariants = operands[n_carry + n_seq:]
    lead = (slice(None),) * axis
    stacked = None
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        out = list(body(*carries, *(s[lead + (t,)] for s in seqs), *invariants).values())
        carries = out[:n_carry]
        ys = out[n_carry:]
        if stacked is None:   # the buffers are sized from the first step's outputs
            stacked = [np.empty(np.shape(y)[:axis] + (length,) + np.shape(y)[axis:], np.asarray(y).dtype)
                       for y in ys]
        for buf, y in zip(stacked, ys):
            buf[lead + (t,)] = y
    return tuple(carries) + tuple(stacked)
