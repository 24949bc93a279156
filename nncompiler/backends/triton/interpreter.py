"""Whether this process runs kernels in Triton's interpreter or compiles them for a GPU.

Triton builds its language library for one of the two when it is first imported, so the
choice must be made before that import: on a machine without a GPU `prepare` sets
`TRITON_INTERPRET=1` while triton is not imported yet, and refuses, naming the fix, when it
was already imported for the compiler. The interpreter runs the same generated kernels on
CPU tensors, so what the tests run is what a GPU runs.
"""
from __future__ import annotations

import os
import sys

from ...errors import NNCError


def interpreter_active() -> bool:
    """Whether triton was imported with TRITON_INTERPRET=1 (its library functions are interpreted)."""
    if "triton" not in sys.modules:
        return os.environ.get("TRITON_INTERPRET") == "1"
    import triton.language as tl
    return type(tl.sum).__name__ == "InterpretedFunction"


def prepare(device: str) -> bool:
    """Decide how kernels run on this machine; returns True for the interpreter."""
    if device == "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return False
    if "triton" not in sys.modules:
        os.environ["TRITON_INTERPRET"] = "1"
    if not interpreter_active():
        raise NNCError("the triton backend runs kernels in the Triton interpreter on a machine without a GPU, "
                       "which needs TRITON_INTERPRET=1 set before triton is imported "
                       "(export TRITON_INTERPRET=1, or import nncompiler's triton backend first)")
    return True
