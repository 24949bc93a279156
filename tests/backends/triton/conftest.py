"""Triton backend tests run anywhere: on a machine without a CUDA GPU the kernels run in
Triton's interpreter on CPU tensors, which must be switched on before triton is imported."""
import os
import sys

import pytest

try:
    import torch
    _CUDA = torch.cuda.is_available()
except ImportError:          # pragma: no cover - torch is a test dependency
    _CUDA = False

if not _CUDA and "triton" not in sys.modules:
    os.environ["TRITON_INTERPRET"] = "1"

try:
    import triton  # noqa: F401
    HAVE_TRITON = True
except ImportError:          # pragma: no cover
    HAVE_TRITON = False


def pytest_collection_modifyitems(config, items):
    if HAVE_TRITON:
        return
    skip = pytest.mark.skip(reason="triton is not installed")
    for item in items:
        if "backends/triton" in str(item.fspath):
            item.add_marker(skip)
