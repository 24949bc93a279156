"""float32 matrix products that stay on the calling thread when threading them costs more.

OpenBLAS splits one sgemm's outputs over its threads once the multiply-adds pass 2^18; the
threads then meet once per panel of the reduction, and sleep between calls. On busy cores
(other processes, or numpy's own single-threaded passes between two products) every meeting
and wake-up waits for a time slice. For a product with one long side and two short ones the
work per meeting is tiny, and the waits dominate: measured on 2 cores under load,
[27, 65536] @ [65536, 32] 2 ms at best, 40 ms median; [65536, 27] @ [27, 32] 0.7 ms at best,
24 ms median; [64, 4096] @ [4096, 10] 0.06 ms alone, 4 ms between a CNN's other passes.

Such a product runs here as one stacked matmul over blocks of 256 along its long side, each
block under the threading threshold (short sides multiply to at most 1024): 0.9-1.1 ms
median under the same load, and no slower on idle cores. Blocking the reduction side adds
the [M, N] partial products at the end (a different summation order than one sgemm).

The reference interpreter and the numpy backend both call `matmul`, so folding a product
and running it give the same bits.
"""
from __future__ import annotations

import numpy as np

BLOCK = 256          # a block's multiply-adds: BLOCK * 1024 = 2^18, at the threshold
SHORT = 1024         # the short sides' product at most this
LONG = 4 * BLOCK     # the long side at least this: fewer blocks are not worth a stacked call


def thin_product(a, b):
    """a^T @ b for a [K, M], b [K, N] with K long and M*N short (a kernel gradient: M the
    taps times channels, N the filters, K every pixel of the batch): K in blocks."""
    k, m, nf = a.shape[0], a.shape[1], b.shape[1]
    blocks = k // BLOCK
    if m * nf > SHORT or k < LONG:
        return a.T @ b
    head = blocks * BLOCK
    part = np.matmul(a[:head].reshape(blocks, BLOCK, m).transpose(0, 2, 1), b[:head].reshape(blocks, BLOCK, nf))
    y = np.add.reduce(part, axis=0)
    if head < k:
        y += a[head:].T @ b[head:]
    return y


def narrow_product(a, w, out=None):
    """a @ w for a [R, K] with R long and K*N short (a first conv's im2col product,
    [65536, 27] @ [27, 32] in bench F): the rows in blocks."""
    r, k, nf = a.shape[0], a.shape[1], w.shape[1]
    blocks = r // BLOCK
    if k * nf > SHORT or r < LONG:
        return np.matmul(a, w, out=out)
    head = blocks * BLOCK
    y = np.empty((r, nf), np.result_type(a, w)) if out is None else out
    np.matmul(a[:head].reshape(blocks, BLOCK, k), w, out=y[:head].reshape(blocks, BLOCK, nf))
    if head < r:
        np.matmul(a[head:], w, out=y[head:])
    return y


def _wide_product(a, b, out):
    """a @ b for b [K, C] with C long and M*K short: the columns in blocks."""
    (m, k), c = a.shape, b.shape[1]
    blocks = c // BLOCK
    y = np.empty((m, c), np.result_type(a, b)) if out is None else out
    head = blocks * BLOCK
    np.matmul(a, b[:, :head].reshape(k, blocks, BLOCK).transpose(1, 0, 2),
              out=y[:, :head].reshape(m, blocks, BLOCK).transpose(1, 0, 2))
    if head < c:
        np.matmul(a, b[:, head:], out=y[:, head:])
    return y


def matmul(a, b, out=None):
    """The `matmul` primitive: a @ b, a 2-d float32 product with one long side in blocks."""
    if a.ndim != 2 or b.ndim != 2 or a.dtype != np.float32 or b.dtype != np.float32:
        return np.matmul(a, b, out=out)
    if out is not None and not out.flags.c_contiguous:     # the blocks write through reshaped views of out
        out[...] = matmul(a, b)
        return out
    (m, k), n = a.shape, b.shape[1]
    if k >= LONG and m * n <= SHORT:
        y = thin_product(a.T, b)
        if out is None:
            return y
        out[...] = y
        return out
    if m >= LONG and k * n <= SHORT:
        return narrow_product(a, b, out)
    if n >= LONG and m * k <= SHORT:
        return _wide_product(a, b, out)
    return np.matmul(a, b, out=out)
