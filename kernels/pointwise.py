"""Triton kernel template: a fused elementwise kernel over a flat iteration space.

The code generator (nncompiler/backends/triton/codegen.py) fills in the parameter
list, the index arithmetic of each loop dimension (`i0 = xindex // 16`, ...), the
loads, one line per IR op and the stores. Every program handles XBLOCK elements of
the row-major iteration space; `xmask` covers the ragged last block. Sizes that are
symbolic in the model (the batch B) arrive as runtime ints (`s_B`, not specialized),
so one compiled kernel serves every batch size.
"""
from .template import KernelTemplate


POINTWISE = KernelTemplate("pointwise", '''\
{decorator}
def {name}({params}):
{header}
    xnumel = {xnumel}
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)
    xmask = xindex < xnumel
{body}
''')

# A horizontally fused ("combo") kernel: one launch runs several independent
# elementwise groups (the optimizer update of every parameter); program ids are
# dealt out to the segments in order, `nb{k}` being the first block of segment k.
COMBO = KernelTemplate("combo", '''\
{decorator}
def {name}({params}):
{header}
    pid = tl.program_id(0)
{top}
{segments}
''')

COMBO_SEGMENT = KernelTemplate("combo_segment", '''\
    {keyword} pid < {end}:
        # segment {k}: {what}
        xnumel{sfx} = {xnumel}
        xindex{sfx} = {first} * XBLOCK + tl.arange(0, XBLOCK)
        xmask{sfx} = xindex{sfx} < xnumel{sfx}
{body}''')
