"""The kernel templates run on their own in Triton's interpreter when there is no CUDA GPU;
the interpreter must be switched on before triton is imported."""
import os
import sys

try:
    import torch
    _CUDA = torch.cuda.is_available()
except ImportError:          # pragma: no cover - torch is a test dependency
    _CUDA = False

if not _CUDA and "triton" not in sys.modules:
    os.environ["TRITON_INTERPRET"] = "1"
