"""numpy computation of the window primitives: conv, reduce_window, select_scatter.

One implementation serves the reference interpreter (interpret.py) and the numpy backend's
generated code, so that folding a window op and running it give the same bits.

conv is one float32 sgemm plus strided copies, in one of three layouts picked by shape:

  * im2col (the usual case): cols [N, *O, K, C] is one copy of a strided view of the
    zero-padded x, then cols [N*O, K*C] @ w.
  * few outputs (fewer output positions than taps: the kernel gradient's convolution, whose
    window is the whole image): the roles of taps and positions swap. The VJP hands this conv
    x^T [C, *S, N] and g^T [*O, N, F] as transposed views; taken back to [N, *S, C] and
    [N, *O, F] they are the original contiguous arrays, and cols [N, *S', T, C] (one strided
    copy, the output positions T as its taps) is the forward's im2col layout: dw = cols^T @ g,
    one sgemm (codegen hands it the forward's columns: conv_and_cols, conv_from_cols).
  * scatter (stride 1 and fewer output than input channels: the input gradient's
    convolution): z = x @ w as [C, (K, F)] at every input position, then each tap's slice of
    z added at its shift. It writes N*S*K*F values instead of im2col's N*O*K*C.

reduce_window and select_scatter run over the few taps of a window, each tap one strided
view of every window at once: no reshaped copy of the windows, no loop over positions.
Max pools whose windows do not overlap take pools.py's path (the winning tap's number).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import pools
from .pools import tap_views as _tap_views
from .products import narrow_product, thin_product


def _tap_copies(x, loop, vec, loop_step, vec_step, padding):
    """buf [B, *vec, prod(loop), C] with buf[b, *v, l, c] = xpad[b, *(v*vec_step + l*loop_step), c],
    l over `loop` in raster order: x [B, *S, C] zero-padded (a copy K times smaller than buf),
    then one copy from a strided view of it (numpy merges the tap and channel axes of the view
    into long runs where they are adjacent in memory; a copy per tap is 2-3x slower)."""
    xp = _padded(x, padding, 0)
    n = len(loop)
    strides = xp.strides[1:-1]
    view = as_strided(xp, (xp.shape[0],) + tuple(vec) + tuple(loop) + (xp.shape[-1],),
                      (xp.strides[0],) + tuple(st * s for st, s in zip(strides, vec_step))
                      + tuple(st * s for st, s in zip(strides, loop_step)) + (xp.strides[-1],),
                      writeable=False)
    buf = np.empty(view.shape, x.dtype)
    np.copyto(buf, view)
    return buf.reshape(view.shape[:n + 1] + (-1, view.shape[-1]))


def _conv_outputs(x, ks, stride, padding, dilation):
    return tuple((x.shape[1 + a] + lo + hi - (k - 1) * d - 1) // s + 1
                 for a, (k, s, (lo, hi), d) in enumerate(zip(ks, stride, padding, dilation)))


def conv_layout(ks, outs, channels, filters, stride) -> str:
    """Which layout (the module docstring) conv computes in: by static sizes only, so the numpy
    backend's codegen can pair a forward conv with its kernel gradient before anything runs."""
    if math.prod(outs) < math.prod(ks):
        return "few_outputs"
    if all(s == 1 for s in stride) and filters < channels:
        return "scatter"
    return "im2col"


def conv_and_cols(x, w, stride, padding, dilation):
    """(conv(x, w), its columns [N*O, K*C]) in the im2col layout, groups 1: the columns are
    what the kernel gradient's conv needs (conv_from_cols), so it need not copy x again."""
    n, (c, f) = x.ndim - 2, w.shape[-2:]
    ks = w.shape[:n]
    outs = _conv_outputs(x, ks, stride, padding, dilation)
    cols = _tap_copies(x, ks, outs, dilation, stride, padding).reshape(-1, math.prod(ks) * c)
    y = narrow_product(cols, w.reshape(-1, f))
    return y.reshape((x.shape[0],) + outs + (f,)), cols


def conv_from_cols(cols, w, shape):
    """A few-outputs conv of result `shape` [B, *O, F] from its x's columns [C*K, (*O, B)]
    (a 2-d view of the forward's im2col columns when this is that forward's kernel gradient):
    cols^T @ w, with w [*K, C, F] taken back to [C, *K, F] (the contiguous g, in the VJP)."""
    n = len(shape) - 2
    wm = w.transpose((n,) + tuple(range(n)) + (n + 1,))
    y = thin_product(cols, wm.reshape(cols.shape[0], shape[-1]))   # [(*O, B), F]
    return np.moveaxis(y.reshape(tuple(shape[1:-1]) + (shape[0], shape[-1])), n, 0)


def _conv_few_outputs(x, w, stride, padding, dilation, outs):
    n, f = x.ndim - 2, w.shape[-1]
    ks = w.shape[:n]
    swap = (n + 1,) + tuple(range(1, n + 1)) + (0,)            # [B, *S, C] <-> [C, *S, B]
    cols = _tap_copies(x.transpose(swap), outs, ks, stride, dilation, padding)
    return conv_from_cols(cols.reshape(cols.shape[0] * math.prod(ks), -1), w, (x.shape[0],) + outs + (f,))


def _conv_scatter(x, w, padding, dilation, outs):
    n, (c, f) = x.ndim - 2, w.shape[-2:]
    ks = w.shape[:n]
    wr = np.moveaxis(w, n, 0).reshape(c, -1)                   # [C, (*K, F)]
    z = (x.reshape(-1, c) @ wr).reshape(x.shape[:-1] + (math.prod(ks), f))
    y = np.zeros((x.shape[0],) + outs + (f,), z.dtype)
    for k, t in enumerate(np.ndindex(*ks)):
        dst_at, src_at = [slice(None)], [slice(None)]
        for a, (size, o, (lo, _)) in enumerate(zip(x.shape[1:-1], outs, padding)):
            off = t[a] * dilation[a] - lo                     # input index of output 0
            first, stop = max(0, -off), min(o, size - off)
            dst_at.append(slice(first, stop))
            src_at.append(slice(first + off, stop + off))
        if all(s.start < s.stop for s in dst_at[1:]):
            y[tuple(dst_at)] += z[tuple(src_at) + (k,)]
    return y


def conv(x, w, stride, padding, dilation, groups):
    """The `conv` primitive (ir/primitives.py): x [N, *S, C], w [*K, C/groups, F]."""
    n = x.ndim - 2
    if groups > 1:
        cg, fg = w.shape[n], w.shape[-1] // groups
        return np.concatenate([conv(x[..., k * cg:(k + 1) * cg], w[..., k * fg:(k + 1) * fg], stride, padding,
                                    dilation, 1) for k in range(groups)], axis=-1)
    ks = w.shape[:n]
    outs = _conv_outputs(x, ks, stride, padding, dilation)
    layout = conv_layout(ks, outs, w.shape[-2], w.shape[-1], stride)
    if layout == "few_outputs":
        return _conv_few_outputs(x, w, stride, padding, dilation, outs)
    if layout == "scatter":
        return _conv_scatter(x, w, padding, dilation, outs)
    return conv_and_cols(x, w, stride, padding, dilation)[0]


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
