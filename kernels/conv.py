"""Triton kernel template: a convolution as an implicit GEMM, in matmul.py's MATMUL skeleton.

A conv y[n, *o, f] = sum over taps t and input channels c of x[n, *(o*s - pad + t*d), c] * w[*t, c, f]
(NHWC / NWC input, kernel [*window, C, F]) is C[M, N] = A[M, K] @ B[K, N] with

    m = (n, *o)     the output pixel: M = batch x output positions
    k = (*t, c)     the tap and the input channel, c fastest (or (c, *t) where the input's
                    channels are far apart in memory, a kernel gradient's): K = window x C
    N = f           the output channel

B is the kernel read through its strides. A is never materialised (no im2col buffer): the
kernel fills MATMUL's `{load_a}` slot with `LOAD_A`, which computes each element's address from
the row's output pixel (decomposed once, before the K loop: `ROWS`) and the column's tap and
channel (decomposed per K block), and masks the positions that fall in the padding -- or between
the elements of an input dilated by `lhs` (the input gradient's strided cotangent, its `pad`
folded into the loads) -- to zero. Everything else is MATMUL's: the grouped tile order, split-K
(a kernel gradient contracts over batch x output pixels), and the fused epilogue (bias,
activation, the optimizer update), whose index variables are the output pixel's axes
decomposed from `i_m`. A grouped conv is one such GEMM per group, on MATMUL's batch axis
(`pid_b`, which offsets `a_base`, `b_base` and the output channel).
"""
from .template import KernelTemplate

# `{top}` of MATMUL: each tile row's output pixel and the input position its window starts at
ROWS = KernelTemplate("conv.rows", '''\
# the output pixel (n, *o) of each tile row, and where its window starts: o * stride - padding
{rows}''')

# `{load_a}`: the implicit im2col tile A[rm, kk], gathered from the input with masks
LOAD_A = KernelTemplate("conv.load_a", '''\
# the tap (*t) and input channel (c) of each column of this K block
{columns}
# input positions of (row, column); outside the input (the padding) or off its dilation grid: 0
{positions}
a = tl.load(a_base + {address},
            mask=(rm[:, None] < M) & (kk[None, :] < K){mask}, other={other})''')

# `{load_b}`: the kernel [*window, C, F] as B[K, N], through its strides
LOAD_B = KernelTemplate("conv.load_b", '''\
b = tl.load(b_base + {address},
            mask=(kk[:, None] < K) & (rn[None, :] < N), other={other})''')
