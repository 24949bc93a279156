"""Max pooling over windows that do not overlap: the forward records which tap won, the
gradient writes through it.

select_scatter (max pooling's gradient) sends each window's g to the window's first maximal
tap. Where the windows neither overlap nor are padded (stride >= window: the usual 2x2 pool of
stride 2) every input pixel lies in at most one window, so one small number per output, the
winning tap, is all the gradient needs: `max_and_index` computes the pooled max and that
number in one pass over the taps (the numpy backend's codegen pairs a forward max pool with
its gradient, so the forward records it once), `scatter` writes g through each tap's view
where that tap won. windows.py's select_scatter takes this path on such windows too; the
general one (overlapping or padded windows) walks wins and masks instead.

The winner is the one windows.py's running max picks, bit for bit: taps in raster order,
a later tap wins where it is strictly greater than the running max (np.greater), the
running max is np.maximum (NaN propagates into it; once it is NaN no later tap wins, so a
window with a NaN sends g to its first maximum before the NaN, or to tap 0). The pooled
value is reduce_window's running np.maximum in the same order, so the same bits.

The taps' strided views of a [N, *S, C] array are runs of C values; both functions work
through the batch in blocks of about 2^17 input values, which stay in the core's cache
between the per-tap passes (1.2-1.4x faster than whole-array passes on bench case F).
"""
from __future__ import annotations

import math

import numpy as np

_BITS = {2: np.uint16, 4: np.uint32, 8: np.uint64}   # a float's bits, to multiply by 0 or 1 exactly
_BLOCK = 1 << 17                                      # input values per batch block


def tap_views(xp, window, stride, outs):
    """For each tap t of the window (raster order), xp at o*stride + t for every output o."""
    return [xp[(slice(None),) + tuple(slice(a, a + (o - 1) * s + 1, s) for a, o, s in zip(t, outs, stride))]
            for t in np.ndindex(*window)]


def tiles(window, stride, padding, dtype) -> bool:
    """Whether max_and_index and scatter compute this pool: windows that do not overlap,
    no padding, a float dtype, and tap numbers that fit a uint8 below 255 (scatter's
    "no tap")."""
    return (all(s >= k for s, k in zip(stride, window)) and not any(lo or hi for lo, hi in padding)
            and math.prod(window) < 255 and np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize in _BITS)


def _blocks(n: int, per_item: int) -> tuple[int, list[slice]]:
    """(rows per block, the blocks) of a batch of n items of per_item values each."""
    step = max(1, min(n, _BLOCK // max(per_item, 1)))
    return step, [slice(lo, lo + step) for lo in range(0, n, step)]


def _outs(shape, window, stride):
    return tuple((s - k) // st + 1 for s, k, st in zip(shape[1:-1], window, stride))


def max_and_index(x, window, stride, relu=False):
    """(reduce_window max of x [N, *S, C], the winning tap of each output as uint8), for
    windows that tile (see `tiles`). `relu`: the max of maximum(x, +0.0) instead, taken
    as maximum(max(x), +0.0): the same bits (+0.0 where a window has nothing positive, NaN
    where it has a NaN); the winners then differ from relu(x)'s only in windows whose max
    is not positive, which the caller masks out of the gradient (codegen checks it)."""
    outs = _outs(x.shape, window, stride)
    best = np.empty((x.shape[0],) + outs + x.shape[-1:], x.dtype)
    idx = np.empty(best.shape, np.uint8)
    step, blocks = _blocks(x.shape[0], math.prod(x.shape[1:]))
    won = np.empty((step,) + best.shape[1:], np.uint8)
    for sl in blocks:
        views = tap_views(x[sl], window, stride, outs)
        b, i = best[sl], idx[sl]
        w = won[:b.shape[0]]
        np.copyto(b, views[0])
        if len(views) == 1:
            i.fill(0)
        for k, v in enumerate(views[1:], 1):
            if k == 1:
                np.greater(v, b, out=i.view(np.bool_))          # 1 where tap 1 won
            else:            # later winners have larger numbers: the last one is the max of k * won
                np.greater(v, b, out=w.view(np.bool_))
                np.multiply(w, np.uint8(k), out=w)
                np.maximum(i, w, out=i)
            np.maximum(b, v, out=b)                              # reduce_window's order and bits
        if relu:
            np.maximum(b, b.dtype.type(0.0), out=b)
    return best, idx


def scatter(idx, g, shape, window, stride, keep=None):
    """select_scatter from the winning taps: out [*shape] holds g at each window's winner and
    +0.0 elsewhere. `keep` (bools of g's shape, or None) zeroes g where it is false as
    where(keep, g, +0.0) would, without computing that. g's bits are multiplied by 0 or 1
    as integers: exact for every g (a float multiply would give -0.0 for negative g and NaN
    for an infinite or NaN one)."""
    bits = _BITS[g.dtype.itemsize]
    g = np.ascontiguousarray(g)
    if keep is not None:         # tap 255 wins nowhere: idx | (keep - 1), 0xFF where keep is false
        drop = np.subtract(np.broadcast_to(keep, g.shape).view(np.uint8), np.uint8(1))
        idx = np.bitwise_or(idx, drop, out=drop)
    outs = g.shape[1:-1]
    tiled = all(o * s == size for o, s, size in zip(outs, stride, shape[1:-1])) and tuple(window) == tuple(stride)
    out = (np.empty if tiled else np.zeros)(shape, g.dtype)    # tiled: every pixel is written once
    gb, ob = g.view(bits), out.view(bits)
    step, blocks = _blocks(g.shape[0], math.prod(shape[1:]))
    hit = np.empty((step,) + g.shape[1:], np.bool_)
    for sl in blocks:
        h = hit[:gb[sl].shape[0]]
        for k, view in enumerate(tap_views(ob[sl], window, stride, outs)):
            np.equal(idx[sl], k, out=h)
            np.multiply(gb[sl], h.view(np.uint8), out=view, dtype=bits)
    return out
