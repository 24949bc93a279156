"""Triton kernel templates, filled in by the Triton backend (nncompiler/backends/triton/codegen.py).

    template.py   KernelTemplate: kernel source with named slots and `render`
    pointwise.py  POINTWISE (a flat elementwise kernel), COMBO and COMBO_SEGMENT (several
                  independent elementwise groups in one launch)
    reduce.py     PERSISTENT (a whole reduced extent in one tile), LOOPED (a loop over it)
    matmul.py     MATMUL (a tiled matmul with a fused epilogue), DOT_FLOAT / DOT_INT

Installed, this folder is the package `nncompiler.kernels` (pyproject's package-dir); from a
source checkout nncompiler/__init__.py mounts it under the same name. tests/kernels/ renders
and runs each template on its own under TRITON_INTERPRET=1.
"""
