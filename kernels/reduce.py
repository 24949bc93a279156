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
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:, None]
    xmask = xindex < xnumel
    rbase = tl.arange(0, RBLOCK)[None, :]
{pre}
    for roffset in range(0, rnumel, RBLOCK):
        rindex = roffset + rbase
        rmask = rindex < rnumel
{loop}
{post}
''')
