"""Triton kernel templates: fused reductions over a [kept, reduced] iteration space.

The iteration space is the shape of the reductions' input; the kept dimensions are
enumerated by `xindex` (XBLOCK rows per program, a [XBLOCK, 1] tile) and the reduced
ones by `rindex` (a [1, RBLOCK] tile). Values that vary along the reduced dims are
[XBLOCK, RBLOCK] tiles; reduced values are [XBLOCK, 1] tiles that broadcast back.

* persistent: the whole reduced extent fits in one tile (RBLOCK >= rnumel), so a
  chain of reductions and the elementwise ops between them (softmax, log-softmax,
  cross-entropy and its gradient) run in one pass, in IR order.
* looped: independent reductions over a long or symbolic extent (the batch axis of
  a mean, the column sums of a bias gradient) accumulate in a [XBLOCK, RBLOCK]
  register tile over a loop and reduce it at the end; elementwise ops before the
  reduction run inside the loop, ops on the reduced values after it.

Accumulation is in the value's own dtype: float32 for float32 models.
"""
from .template import KernelTemplate


PERSISTENT = KernelTemplate("persistent", '''\
{decorator}
def {name}({params}):
{header}
    xnumel = {xnumel}
    rnumel = {rnumel}
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:, None]
    xmask = xindex < xnumel
    rindex = tl.arange(0, RBLOCK)[None, :]
    rmask = rindex < rnumel
{body}
''')

LOOPED = KernelTemplate("looped", '''\
{decorator}
def {name}({params}):
{header}
    xnumel = {xnumel}
    rnumel = {rnumel}
    pid = tl.program_id(0)
    pid_r = pid % SPLIT_R
    pid_x = pid // SPLIT_R
    xoffset = pid_x * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:, None]
    xmask = xindex < xnumel
    rbase = tl.arange(0, RBLOCK)[None, :]
{pre}
    rblocks = tl.cdiv(rnumel, RBLOCK)
    for rb in range(pid_r * rblocks // SPLIT_R, (pid_r + 1) * rblocks // SPLIT_R):
        roffset = rb * RBLOCK
        rindex = roffset + rbase
        rmask = rindex < rnumel
{loop}
    # splits of these rows done before this one: the last to arrive (SPLIT_R - 1) finishes
    done = pid_r
{split}
    # after the loop only the last split stores (SPLIT_R == 1: every program is the last)
    xmask = xmask & (xindex * 0 + done == SPLIT_R - 1)
{post}
''')

# the finish of a split reduction, in LOOPED's `{split}` slot when the kernel can split
# (float32 sums and maxima); kernels that cannot split leave it empty and run SPLIT_R = 1
SPLIT_FINISH = KernelTemplate("split_finish", '''\
    if SPLIT_R > 1:
        # this split's partial tiles, then the rows' counter; the last split to arrive sums
        # every split's partials in split order (its own re-read too), so the result does not
        # depend on which split arrives last
        WS = XBLOCK * RBLOCK * {naccs}
        ws_rows = ws_ptr + pid_x * SPLIT_R * WS
        ws_mine = ws_rows + pid_r * WS
        r_xr = tl.arange(0, XBLOCK)[:, None] * RBLOCK + tl.arange(0, RBLOCK)[None, :]
{split_store}
        tl.debug_barrier()
        done = tl.atomic_add(lock_ptr + pid_x, 1)
        # masks are built as tensors (`x * 0 + flag`): the interpreter mishandles scalar masks
        last_xr = r_xr * 0 + done == SPLIT_R - 1
{split_init}
        for s in range(SPLIT_R):
            ws_s = ws_rows + s * WS
{split_sum}
        tl.atomic_xchg(lock_ptr + pid_x + tl.arange(0, 1), tl.zeros([1], dtype=tl.int32),
                       mask=tl.arange(0, 1) + done == SPLIT_R - 1)
''')
