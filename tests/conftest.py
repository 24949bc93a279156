"""Make the source tree importable when nncompiler is not installed, run Triton kernels in
Triton's interpreter on a machine without a CUDA GPU, and keep every test's compiled code
out of the user's cache."""
import ctypes
import importlib.util
import os
import sys

import pytest

if importlib.util.find_spec("nncompiler") is None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cuda_gpu_present() -> bool:
    """Whether torch sees a CUDA GPU. torch is asked only where a CUDA driver is installed:
    importing it costs seconds, and without libcuda there is no GPU for it to find."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# Triton builds its language library for the interpreter or for the compiler when it is
# first imported, so the choice is made here, before any test module, conftest or
# pytest.importorskip("triton") can import it: whichever test runs first, every test sees
# the same Triton. On a GPU the kernels run for real; TRITON_INTERPRET=1 in the environment
# forces the interpreter there too (setdefault never overrides an explicit setting).
if "triton" not in sys.modules and not _cuda_gpu_present():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session", autouse=True)
def _session_cache_dir(tmp_path_factory):
    """Compiled modules (Triton, IREE) go to a per-session directory (unless NNC_CACHE_DIR is set):
    a run neither reads stale entries from ~/.cache/nncompiler nor leaves its own there, and
    subprocesses (the CLI tests, distributed ranks) inherit the same directory."""
    if os.environ.get("NNC_CACHE_DIR"):
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NNC_CACHE_DIR", str(tmp_path_factory.mktemp("nnc_cache")))
        yield
