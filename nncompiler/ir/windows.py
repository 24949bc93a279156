"""numpy computation of the pooling window primitives: reduce_window, select_scatter.

One implementation serves the reference interpreter (interpret.py) and the numpy backend's
generated code, so that folding a window op and running it give the same bits.

conv, the third window primitive, is ir/convs.py.

reduce_window and select_scatter run over the few taps of a window, each tap one strided
view of every window at once: no reshaped copy of the windows, no loop over positions.
Max pools whose windows do not overlap take pools.py's path (the winning tap's number).
"""
from __future__ import annotations

import numpy as np

from . import pools
from .pools import tap_views as _tap_views


def _padded(x, padding, fill):
    if not any(lo or hi for lo, hi in padding):
        return x
    out = np.full((x.shape[0],) + tuple(d + lo + hi for d, (lo, hi) in zip(x.shape[1:-1], padding)) + x.shape[-1:],
                  fill, x.dtype)
    out[(slice(None),) + tuple(slice(lo, lo + d) for d, (lo, _) in zip(x.shape[1:-1], padding))] = x
    return out


def reduce_window(x, kind, window, stride, padding):
    """The `reduce_window` primitive: a running sum or max over the taps, in raster order."""
    xp = _padded(x, padding, 0 if kind == "sum" else -np.inf)
    outs = tuple((s - k) // st + 1 for s, k, st in zip(xp.shape[1:-1], window, stride))
    views = _tap_views(xp, window, stride, outs)
    red = np.add if kind == "sum" else np.maximum
    out = views[0].copy()
    for v in views[1:]:
        red(out, v, out=out)
    return out


_BITS = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _masked(keep, g, out):
    """out = g where keep else +0.0, as g's bits AND an all-ones or all-zeros word (a masked
    copy mispredicts on random masks; g * keep would turn a nan or inf g into nan)."""
    bits = _BITS[g.dtype.itemsize]
    mask = np.multiply(keep, np.iinfo(bits).max, dtype=bits)
    np.bitwise_and(g.view(bits), mask, out=out.view(bits))
    return out


def select_scatter(x, g, window, stride, padding):
    """The `select_scatter` primitive: each window's g to its first maximal tap (torch's rule).

    Windows that do not overlap (pools.py) go through the winning tap's number; the others
    through select_scatter_general, which gives the same bits on those too."""
    if pools.tiles(window, stride, padding, x.dtype):
        return pools.scatter(pools.max_and_index(x, window, stride)[1], np.asarray(g, x.dtype), x.shape,
                             window, stride)
    return select_scatter_general(x, g, window, stride, padding)


def select_scatter_general(x, g, window, stride, padding):
    """select_scatter on any windows (overlapping, padded): a running max over the taps
    records where a later tap is strictly greater (so an earlier tap keeps a tie); walking
    the taps backwards, a tap is chosen where it won and no later tap did, and tap 0 where
    none did."""
    xp = _padded(x, padding, -np.inf)
    outs = g.shape[1:-1]
    views = _tap_views(xp, window, stride, outs)
    best = views[0].copy()
    wins = []
    for v in views[1:]:
        wins.append(np.greater(v, best))
        np.maximum(best, v, out=best)
    g = np.ascontiguousarray(g, x.dtype)
    overlap = any(s < k for s, k in zip(stride, window))
    tiled = not overlap and not any(lo or hi for lo, hi in padding) and all(
        (o - 1) * s + k == size for o, s, k, size in zip(outs, stride, window, x.shape[1:-1]))
    out = (np.empty if tiled else np.zeros)(xp.shape, x.dtype)    # tiled: every pixel is written once
    out_views = _tap_views(out, window, stride, outs)
    taken = None                     # where a later tap won (None: nowhere yet)
    part = np.empty(g.shape, x.dtype) if overlap else None
    for k in range(len(views) - 1, -1, -1):
        if k == 0:
            keep = np.ones(g.shape, bool) if taken is None else ~taken
        elif taken is None:
            keep, taken = wins[k - 1], wins[k - 1].copy()
        else:
            keep = np.greater(wins[k - 1], taken)     # won, and no later tap did (bools)
            taken |= wins[k - 1]
        if overlap:
            out_views[k] += _masked(keep, g, part)
        else:
            _masked(keep, g, out_views[k])
    return out[(slice(None),) + tuple(slice(lo, lo + d) for d, (lo, _) in zip(x.shape[1:-1], padding))]
