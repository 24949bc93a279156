"""Triton kernel template: a tiled matmul with a fused epilogue, grouped order and split-K.

Each program computes a BLOCK_M x BLOCK_N tile of C = A @ B over one K range, looping
in BLOCK_K steps with `tl.dot`, accumulating in float32 for float32 inputs; the dot's
operands follow the precision mode (`DOTS`: IEEE float32 by default, no TF32, so results
match the numpy reference; TF32 or bfloat16 on tensor cores in the tf32 and bf16 modes).
Operands are read through their strides, so a transposed or broadcast operand costs
nothing. Masks cover ragged edges in M, N and K.

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
With the TMA constexpr set (sm_90), A and B tiles that qualify are read through device-side
tensor descriptors (`{descriptors}`, `TMA_OR_POINTERS`): one bulk copy per tile.
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
{descriptors}
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype={acc_dtype})
{colsum_init}
    kblocks = tl.cdiv(K, BLOCK_K)
    for kb in range(pid_k * kblocks // SPLIT_K, (pid_k + 1) * kblocks // SPLIT_K):
        kk = kb * BLOCK_K + rk
{load_a}
{load_b}
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

# The operand loads of the K loop (`{load_a}`, `{load_b}`): through the operand's strides,
# masked at the ragged edges ...
LOAD_A = KernelTemplate("matmul.load_a", '''\
a = tl.load(a_base + rm[:, None] * {sm} + kk[None, :] * {sk},
            mask=(rm[:, None] < M) & (kk[None, :] < K), other={other})''')
LOAD_B = KernelTemplate("matmul.load_b", '''\
b = tl.load(b_base + kk[:, None] * {sk} + rn[None, :] * {sn},
            mask=(kk[:, None] < K) & (rn[None, :] < N), other={other})''')
# ... or, for an operand a tensor descriptor can read (backends/triton/tma.py), through its
# descriptor when the TMA constexpr is set (sm_90 and newer), from `{descriptors}` made once
# before the loop; out-of-bounds elements of a descriptor's tile read as zero, so no masks.
TMA_OR_POINTERS = KernelTemplate("matmul.tma_load", '''\
if TMA:
    {var} = {tma}
else:
{pointers}''')
TMA_DESCRIPTORS = KernelTemplate("matmul.descriptors", '''\
if TMA:
{lines}''')

DOT_FLOAT = "tl.dot(a, b, input_precision=\"ieee\")"
# precision mode (nncompiler/precision.py) -> (the float32 dot, the helper it calls or None)
DOTS = {"fp32": (DOT_FLOAT, None), "tf32": ("_dot_tf32(a, b)", "_dot_tf32"),
        "bf16": ("_dot_bf16(a, b)", "_dot_bf16")}
# The helpers take the tensor-core path when compiled for a GPU (wgmma on sm_90). The
# interpreter cannot run it (a bfloat16 dot multiplies the raw bits; a tf32 dot is an
# exact float32 one), so there they round the operands in float32 with the bit arithmetic
# of precision.round_mantissa (nearest, ties to even) and take an IEEE dot: exact
# emulation, since a product of two rounded operands fits a float32 exactly.
_ROUND = '''
_INTERPRET = tl.constexpr(__import__("os").environ.get("TRITON_INTERPRET") == "1")


@triton.jit
def _round_mantissa(x, HALF: tl.constexpr, DROP: tl.constexpr, KEEP: tl.constexpr):
    bits = x.to(tl.uint32, bitcast=True)
    bits = (bits + HALF + ((bits >> DROP) & 1)) & KEEP
    # inf and NaN unchanged (a carry could turn one into the other)
    return tl.where(tl.abs(x) < float("inf"), bits.to(tl.float32, bitcast=True), x)
'''
DOT_HELPERS = {
    "_dot_tf32": _ROUND + '''

@triton.jit
def _dot_tf32(a, b):
    # TF32 operands (10 mantissa bits), float32 accumulation
    if _INTERPRET:
        return tl.dot(_round_mantissa(a, 0xFFF, 13, 0xFFFFE000), _round_mantissa(b, 0xFFF, 13, 0xFFFFE000),
                      input_precision="ieee")
    else:
        return tl.dot(a, b, input_precision="tf32")
''',
    "_dot_bf16": _ROUND + '''

@triton.jit
def _dot_bf16(a, b):
    # bfloat16 operands (7 mantissa bits), float32 accumulation: torch.autocast's matmul
    if _INTERPRET:
        return tl.dot(_round_mantissa(a, 0x7FFF, 16, 0xFFFF0000), _round_mantissa(b, 0x7FFF, 16, 0xFFFF0000),
                      input_precision="ieee")
    else:
        return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16), out_dtype=tl.float32)
''',
}
DOT_INT = "tl.sum(a[:, :, None] * b[None, :, :], 1)"
