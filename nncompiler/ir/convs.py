"""numpy computation of the `conv` primitive (ir/primitives.py): x [N, *S, C], w [*K, C/groups, F].

One implementation serves the reference interpreter (interpret.py) and the numpy backend's
generated code, so that folding a conv and running it give the same bits.

conv is one float32 sgemm plus strided copies, in one of three layouts picked by shape:

  * im2col (the usual case): the columns [N*O, K*C] of x (every output position's window,
    one strided copy of the zero-padded x) @ w [K*C, F]. The columns are built in one of two
    memory orders, whichever copies in longer contiguous runs (`_planar`): rows [N, *O, K, C]
    (runs of one window row's taps times C), or planar [K, C, N, *O] (runs of an output row,
    for few channels: bench F's first conv, C = 3, copies runs of 32 floats instead of 9),
    handed on as a transposed view.
  * few outputs (fewer output positions than taps: the kernel gradient's convolution, whose
    window is the whole image): the roles of taps and positions swap. The VJP hands this conv
    x^T [C, *S, N] and g^T [*O, N, F] as transposed views; taken back to [N, *S, C] and
    [N, *O, F] they are the original contiguous arrays, whose columns (`_columns` with the
    forward's parameters, so the very same array) give dw = cols^T @ g, one sgemm (codegen
    hands it the forward's columns: conv_and_cols, conv_from_cols).
  * scatter (stride 1 and fewer output than input channels: the input gradient's
    convolution): z = x @ w as [C, (K, F)] at every input position, then every output is the
    sum of its taps' entries of z (`_gather_taps`). It writes N*S*K*F values instead of
    im2col's N*O*K*C.

Each product stays one call: copying and multiplying a few images at a time would keep the
columns (or z) in the L2 cache (one thread: bench F's conv2 forward 8.9 -> 5.8 ms, its input
gradient 9.9 -> 7.8 ms), but a threaded sgemm per chunk makes OpenBLAS's two threads meet
once per chunk, and on busy cores each meeting waits for a time slice (products.py): at
load 6 on 2 cores the same three products took 89 ms median instead of 20-38 ms.

An epilogue y = maximum(y + bias, floor) (bias [F]; either part optional: a conv layer's
bias and relu, which the numpy backend's codegen hands over) runs on y a chunk of rows at a
time (one pass instead of two), each chunk right after its product where the product is
blocked (single-threaded blocks: a first conv's, made a chunk at a time while in cache);
each element sees the same two float32 operations as the add and maximum ops apart, so the
result is theirs.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .products import LONG, SHORT, narrow_product, thin_product

Y_ROWS = 8192     # rows of y per epilogue chunk (1 MB at 32 filters), a multiple of products.BLOCK so
                  # that a blocked product made a chunk at a time has the blocks (and bits) of one call


def _zero_padded(x, padding, first):
    """x zero-padded on its axes first, first+1, ... (padding's pairs), into a new C-contiguous
    array; only the border is zero-filled (the interior is written once)."""
    lead, n = x.shape[:first], len(padding)
    sizes = x.shape[first:first + n]
    out = np.empty(lead + tuple(s + lo + hi for s, (lo, hi) in zip(sizes, padding)) + x.shape[first + n:], x.dtype)
    every = (slice(None),) * first
    for a, (s, (lo, hi)) in enumerate(zip(sizes, padding)):
        before = (slice(None),) * a
        out[every + before + (slice(0, lo),)] = 0
        out[every + before + (slice(lo + s, None),)] = 0
    out[every + tuple(slice(lo, lo + s) for s, (lo, _) in zip(sizes, padding))] = x
    return out


def _planar(c, ks, outs, stride, dilation) -> bool:
    """Whether the columns copy in longer runs planar ([K, C, N, *O]: an output row, where
    the stride is 1) than by rows ([N, *O, K, C]: C, times the window's last extent where
    its dilation is 1). By static sizes, so that a forward conv and its kernel gradient's
    few-outputs conv, which see the same x, ks and outs, build the same array."""
    rows = c * (ks[-1] if dilation[-1] == 1 else 1)
    planar = outs[-1] if stride[-1] == 1 else 1
    return planar > rows


def _columns(x, ks, outs, stride, dilation, padding):
    """The im2col columns [N*prod(O), prod(K)*C] of x [N, *S, C]: column (k, c) of row (n, o)
    is xpad[n, o*stride + k*dilation, c]. One copy of a strided view of the zero-padded x
    (numpy merges the view's axes that are adjacent in memory into long runs; a copy per tap
    is 2-3x slower); planar (a transposed view of [K*C, N*O]) where that copies longer runs."""
    n, c = len(ks), x.shape[-1]
    if _planar(c, ks, outs, stride, dilation):
        xp = _zero_padded(np.moveaxis(x, -1, 0), padding, 2)             # [C, N, *Sp]
        sp = xp.strides[2:]
        shape = tuple(ks) + (c, x.shape[0]) + tuple(outs)
        strides = (tuple(s * d for s, d in zip(sp, dilation)) + xp.strides[:2]
                   + tuple(s * st for s, st in zip(sp, stride)))
        buf = np.empty(shape, x.dtype)
        np.copyto(buf, as_strided(xp, shape, strides, writeable=False))
        return buf.reshape(math.prod(ks) * c, -1).T
    xp = _zero_padded(x, padding, 1)                                     # [N, *Sp, C]
    sp = xp.strides[1:-1]
    shape = (x.shape[0],) + tuple(outs) + tuple(ks) + (c,)
    strides = ((xp.strides[0],) + tuple(s * st for s, st in zip(sp, stride))
               + tuple(s * d for s, d in zip(sp, dilation)) + (xp.strides[-1],))
    buf = np.empty(shape, x.dtype)
    np.copyto(buf, as_strided(xp, shape, strides, writeable=False))
    return buf.reshape(-1, math.prod(ks) * c)


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


def _epilogue(y, bias, floor):
    """y = maximum(y + bias, floor) in place, each part where given (the module docstring)."""
    if bias is not None:
        np.add(y, bias, out=y)
    if floor is not None:
        np.maximum(y, floor, out=y)
    return y


def conv_and_cols(x, w, stride, padding, dilation, bias=None, floor=None):
    """(conv(x, w) with the epilogue, its columns [N*O, K*C]) in the im2col layout, groups 1:
    the columns are what the kernel gradient's conv needs (conv_from_cols), so it need not
    copy x again."""
    n, (c, f) = x.ndim - 2, w.shape[-2:]
    ks = w.shape[:n]
    outs = _conv_outputs(x, ks, stride, padding, dilation)
    cols = _columns(x, ks, outs, stride, dilation, padding)
    wm = w.reshape(-1, f)
    y = np.empty((cols.shape[0], f), np.result_type(x, w))
    whole = wm.shape[0] * f > SHORT          # narrow_product's one (threaded) sgemm: one call, not one per chunk
    if whole:
        narrow_product(cols, wm, out=y)
    for r0, r1 in _row_chunks(cols.shape[0]):
        if not whole:
            narrow_product(cols[r0:r1], wm, out=y[r0:r1])
        _epilogue(y[r0:r1], bias, floor)
    return y.reshape((x.shape[0],) + outs + (f,)), cols


def _row_chunks(rows):
    """[r0, r1) of Y_ROWS rows each, the last one taking a remainder under products.LONG (which
    narrow_product would multiply unblocked, in one threaded sgemm)."""
    r0 = 0
    while r0 < rows:
        r1 = rows if rows - r0 < Y_ROWS + LONG else r0 + Y_ROWS
        yield r0, r1
        r0 = r1


def conv_from_cols(cols, w, shape):
    """A few-outputs conv of result `shape` [B, *O, F] from the columns [(*S', B'), (*O, B)] of its
    x as the original conv saw it (the forward's `_columns` when this is that forward's kernel
    gradient): cols^T @ w, with w [*K, C, F] taken back to [C, *K, F] (the contiguous g, in
    the VJP)."""
    n = len(shape) - 2
    wm = w.transpose((n,) + tuple(range(n)) + (n + 1,))
    y = thin_product(cols, wm.reshape(cols.shape[0], shape[-1]))   # [(*O, B), F]
    return np.moveaxis(y.reshape(tuple(shape[1:-1]) + (shape[0], shape[-1])), n, 0)


def _conv_few_outputs(x, w, stride, padding, dilation, outs):
    """x [B, *S, C] is x^T of an original conv of x0 [C, *S, B] whose window is this conv's
    outputs and whose outputs are this conv's window (stride and dilation swapped)."""
    n, f = x.ndim - 2, w.shape[-1]
    ks = w.shape[:n]
    swap = (n + 1,) + tuple(range(1, n + 1)) + (0,)            # [B, *S, C] <-> [C, *S, B]
    cols = _columns(x.transpose(swap), outs, ks, dilation, stride, padding)
    return conv_from_cols(cols, w, (x.shape[0],) + outs + (f,))


def _tap_segments(size, out, k, lo, d):
    """One spatial axis of the scatter layout's gather, in runs of outputs [o0, o1) that read
    the same taps [t0, t1): output o reads tap t where 0 <= o + t*d - lo < size (an interval
    of taps, so the runs are cut only where some tap enters or leaves it)."""
    cuts = sorted({0, out} | {b for t in range(k) for b in (lo - t * d, size + lo - t * d) if 0 < b < out})
    runs = []
    for o0, o1 in zip(cuts, cuts[1:]):
        valid = [t for t in range(k) if 0 <= o0 + t * d - lo < size]
        runs.append((o0, o1, valid[0], valid[-1] + 1) if valid else (o0, o1, 0, 0))
    return runs


def _gather_taps(z, y, ks, padding, dilation, boxes):
    """y[b, o, f] = the sum over the taps t of z[b, o + t*d - lo, t, f] that lie inside z
    ([B, *S, prod(K), F]): per box of outputs that read the same taps, one np.add.reduce of a
    strided view [B, *box, *taps, F] of z over its taps (each output's row of y is written once,
    instead of once per tap by a sliced += per tap; z is read once)."""
    n = len(ks)
    zs = z.strides
    tap_step = [math.prod(ks[a + 1:]) * zs[-2] for a in range(n)]   # flat tap index -> bytes
    for box in boxes:
        dst = (slice(None),) + tuple(slice(o0, o1) for o0, o1, _, _ in box)
        if any(t0 == t1 for _, _, t0, t1 in box):
            y[dst] = 0
            continue
        first = z[(slice(None),) + tuple(o0 + t0 * d - lo for (o0, _, t0, _), d, (lo, _) in zip(box, dilation, padding))
                  + (np.ravel_multi_index(tuple(t0 for _, _, t0, _ in box), ks),)]          # [B, F] at the box's corner
        shape = ((z.shape[0],) + tuple(o1 - o0 for o0, o1, _, _ in box)
                 + tuple(t1 - t0 for _, _, t0, t1 in box) + (z.shape[-1],))
        strides = ((zs[0],) + zs[1:1 + n] + tuple(d * s + t for d, s, t in zip(dilation, zs[1:1 + n], tap_step))
                   + (zs[-1],))
        np.add.reduce(as_strided(first, shape, strides, writeable=False), axis=tuple(range(1 + n, 1 + 2 * n)),
                      out=y[dst])


def _conv_scatter(x, w, padding, dilation, outs):
    """Stride 1: z = x @ w [C, (*K, F)] at every input position, every output gathered from it."""
    n, (c, f) = x.ndim - 2, w.shape[-2:]
    ks = w.shape[:n]
    taps, size = math.prod(ks), x.shape[1:-1]
    wr = np.moveaxis(w, n, 0).reshape(c, taps * f)                  # [C, (*K, F)]
    dtype = np.result_type(x, w)
    y = np.empty(x.shape[:1] + outs + (f,), dtype)
    boxes = list(itertools.product(*(_tap_segments(s, o, k, lo, d)
                                     for s, o, k, (lo, _), d in zip(size, outs, ks, padding, dilation))))
    z = np.matmul(x.reshape(-1, c), wr).reshape(x.shape[:-1] + (taps, f))
    _gather_taps(z, y, ks, padding, dilation, boxes)
    return y


def conv(x, w, stride, padding, dilation, groups, bias=None, floor=None):
    """The `conv` primitive (ir/primitives.py): x [N, *S, C], w [*K, C/groups, F]; then the
    epilogue maximum(y + bias, floor) where given (the module docstring: per chunk of rows in
    the im2col layout, after the others)."""
    n = x.ndim - 2
    if groups > 1:
        cg, fg = w.shape[n], w.shape[-1] // groups
        y = np.concatenate([conv(x[..., k * cg:(k + 1) * cg], w[..., k * fg:(k + 1) * fg], stride, padding,
                                 dilation, 1) for k in range(groups)], axis=-1)
        return _epilogue(y, bias, floor)
    ks = w.shape[:n]
    outs = _conv_outputs(x, ks, stride, padding, dilation)
    layout = conv_layout(ks, outs, w.shape[-2], w.shape[-1], stride)
    if layout == "few_outputs":
        return _epilogue(_conv_few_outputs(x, w, stride, padding, dilation, outs), bias, floor)
    if layout == "scatter":
        return _epilogue(_conv_scatter(x, w, padding, dilation, outs), bias, floor)
    return conv_and_cols(x, w, stride, padding, dilation, bias, floor)[0]
