"""Triton kernel template: a tiled matmul with a fused epilogue.

Each program computes a BLOCK_M x BLOCK_N tile of C = A @ B (program axis 2 walks
the flattened batch dims) by looping over K in BLOCK_K steps with `tl.dot`,
accumulating in float32 for float32 inputs (`input_precision="ieee"`: no TF32, so
results match the numpy reference). Operands are read through their strides, so a
transposed or broadcast operand costs nothing. Masks cover ragged edges in M, N
and K. The epilogue (bias add, activation, the relu mask of a backward matmul, an
optimizer update of the weight it produces) runs on the accumulator tile before
the single store; `{colsum}` lines accumulate the column sums of B (a bias
gradient) from the same tiles.
"""
from .template import KernelTemplate


MATMUL = KernelTemplate("matmul", '''\
{decorator}
def {name}({params}):
{header}
    M = {M}
    N = {N}
    K = {K}
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_b = tl.program_id(2)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
{top}
    a_base = {a_base}
    b_base = {b_base}
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype={acc_dtype})
{colsum_init}
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        a = tl.load(a_base + rm[:, None] * {a_sm} + kk[None, :] * {a_sk},
                    mask=(rm[:, None] < M) & (kk[None, :] < K), other={other})
        b = tl.load(b_base + kk[:, None] * {b_sk} + rn[None, :] * {b_sn},
                    mask=(kk[:, None] < K) & (rn[None, :] < N), other={other})
        acc += {dot}
{colsum}
    # epilogue
    i_m = rm[:, None]
    i_n = rn[None, :]
    mmask = i_m < M
    nmask = i_n < N
{epilogue}
''')

DOT_FLOAT = "tl.dot(a, b, input_precision=\"ieee\")"
DOT_INT = "tl.sum(a[:, :, None] * b[None, :, :], 1)"
