"""Triton kernel template: a tiled matmul with a fused epilogue, grouped order and split-K.

Each program computes a BLOCK_M x BLOCK_N tile of C = A @ B over one K range, looping
in BLOCK_K steps with `tl.dot`, accumulating in float32 for float32 inputs
(`input_precision="ieee"`: no TF32, so results match the numpy reference). Operands
are read through their strides, so a transposed or broadcast operand costs nothing.
Masks cover ragged edges in M, N and K.

The grid is one axis (axis 0 holds up to 2^31 - 1 programs; axes 1 and 2 only 65535,
so a large flattened batch must not go there). Program ids are split as
(batch, tile, split): tiles walk in groups of GROUP_M tile rows (the L2-swizzled order
of Triton's matmul tutorial: neighbouring programs share A rows and B columns).

Split-K (SPLIT_K > 1, a constexpr: the branch vanishes when it is 1) lets a small
output use every SM: each split accumulates its share of the K blocks, stores its
partial tile (and partial column sums) to `ws_ptr`, and bumps the tile's counter in
`lock_ptr`; the split that arrives last sums the partials and alone runs the epilogue
(its stores are masked by `last`), then resets the counter to 0 for the next launch,
so the fused epilogue (bias, activation, optimizer update) runs once per element.
The `{colsum}` lines accumulate the column sums of B (a bias gradient) from the
same tiles; `{split_store}` / `{split_sum}` spill and gather their partials.
"""
from .template import KernelTemplate


MATMUL = KernelTemplate("matmul", '''\
{decorator}
def {name}({params}):
{header}
    M = {M}
    N = {N}
    K = {K}
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    pid_k = pid % SPLIT_K
    tile = pid // SPLIT_K
    pid_b = tile // (tiles_m * tiles_n)
    tile = tile % (tiles_m * tiles_n)
    group = GROUP_M * tiles_n
    first_m = (tile // group) * GROUP_M
    group_m = min(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (tile % group) % group_m
    pid_n = (tile % group) // group_m
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
{top}
    a_base = {a_base}
    b_base = {b_base}
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype={acc_dtype})
{colsum_init}
    kblocks = tl.cdiv(K, BLOCK_K)
    for kb in range(pid_k * kblocks // SPLIT_K, (pid_k + 1) * kblocks // SPLIT_K):
        kk = kb * BLOCK_K + rk
        a = tl.load(a_base + rm[:, None] * {a_sm} + kk[None, :] * {a_sk},
                    mask=(rm[:, None] < M) & (kk[None, :] < K), other={other})
        b = tl.load(b_base + kk[:, None] * {b_sk} + rn[None, :] * {b_sn},
                    mask=(kk[:, None] < K) & (rn[None, :] < N), other={other})
        acc += {dot}
{colsum}
    # splits of this tile done before this one: the last to arrive (SPLIT_K - 1) runs the epilogue
    done = pid_k
    if SPLIT_K > 1:
        # partials of this split, then the tile's counter: the last split to arrive sums them
        tile_id = pid_b * tiles_m * tiles_n + tile
        WS = BLOCK_M * BLOCK_N{ws_extra}
        ws_tile = ws_ptr + tile_id * SPLIT_K * WS
        ws_mine = ws_tile + pid_k * WS
        r_mn = tl.arange(0, BLOCK_M)[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
        tl.store(ws_mine + r_mn, acc)
{split_store}
        tl.debug_barrier()
        done = tl.atomic_add(lock_ptr + tile_id, 1)
        for s in range(SPLIT_K):
            ws_s = ws_tile + s * WS
            # masks are built as tensors (`x * 0 + flag`): the interpreter mishandles scalar masks
            theirs = ((done == SPLIT_K - 1) & (s != pid_k)).to(tl.int32)
            acc += tl.load(ws_s + r_mn, mask=r_mn * 0 + theirs != 0, other=0.0, cache_modifier=".cg")
{split_sum}
        tl.atomic_xchg(lock_ptr + tile_id + tl.arange(0, 1), tl.zeros([1], dtype=tl.int32),
                       mask=tl.arange(0, 1) + done == SPLIT_K - 1)
    last = done == SPLIT_K - 1
    # epilogue (stores masked by `last`: one split writes each element)
    i_m = rm[:, None]
    i_n = rn[None, :]
    mmask = (i_m < M) & (i_m * 0 + done == SPLIT_K - 1)
    nmask = i_n < N
{epilogue}
''')

DOT_FLOAT = "tl.dot(a, b, input_precision=\"ieee\")"
DOT_INT = "tl.sum(a[:, :, None] * b[None, :, :], 1)"
