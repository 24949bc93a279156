"""The numpy backend's scan driver (backends/numpy/loop.py) against a plain Python loop:
step t reads slice t of every sequence, reverse walks t = T-1 .. 0 and still stores step t's
output at index t, and sequences of every layout (a view along another axis, a broadcast
zero sequence, none at all) give the same results."""
from __future__ import annotations

import numpy as np
import pytest

from nncompiler.backends.numpy.loop import run_scan


def _body(c, *rest):
    """carry <- carry * 0.5 + sum of the step's slices; outputs the carry and 2 * carry."""
    *xs, w = rest
    new = c * np.float32(0.5) + sum(xs, np.zeros_like(c)) + w
    return new, new * np.float32(2)


def _oracle(c, seqs, w, axis, length, reverse):
    ys = [None] * length
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        xs = [np.take(s, t, axis=axis) for s in seqs]
        c, ys[t] = _body(c, *xs, w)
    return c, np.stack(ys, axis=axis)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("n_seq", [0, 1, 3])
def test_run_scan_matches_a_plain_loop(reverse, axis, n_seq):
    rng = np.random.default_rng([axis, n_seq, reverse])
    B, T, U = 3, 5, 4
    shape = (T, B, U) if axis == 0 else (B, T, U)
    seqs = [rng.standard_normal(shape).astype(np.float32) for _ in range(n_seq)]
    if n_seq == 3:      # a strided view and a broadcast zero sequence, as the IR produces them
        seqs[1] = np.swapaxes(rng.standard_normal((shape[1], shape[0], U)).astype(np.float32), 0, 1)
        seqs[2] = np.broadcast_to(np.float32(0), shape)
    c0 = rng.standard_normal((B, U)).astype(np.float32)
    w = rng.standard_normal((B, U)).astype(np.float32)
    final, ys = run_scan(_body, 1, n_seq, axis, T, reverse, c0, *seqs, w)
    want_c, want_ys = _oracle(c0, seqs, w, axis, T, reverse)
    np.testing.assert_array_equal(final, want_c)
    np.testing.assert_array_equal(ys, want_ys)
    assert ys.dtype == np.float32 and ys.shape == want_ys.shape
