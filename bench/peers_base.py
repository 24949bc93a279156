"""What every implementation in the bench shares: the `Impl` interface, the `Runner` it
returns for a case, `Unsupported` for a case it does not run, and the thread limit that
--threads sets for every library (see bench/peers.py for the contract)."""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Callable

from .cases import Problem

THREADS: int | None = None          # --threads N: every library limited to N threads (None: their defaults)
_limits = None


def configure_threads(n: int | None) -> None:
    """Limit every library to n threads (call before the frameworks are imported): the
    environment variables that OpenMP/OpenBLAS/MKL read when they load, threadpoolctl for the
    libraries already loaded (numpy's OpenBLAS), XLA's flags for jax (single-threaded only),
    and torch/TensorFlow's own settings when they are set up."""
    global THREADS, _limits
    THREADS = n
    if n is None:
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if n == 1 and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
    apply_limits()


def apply_limits() -> None:
    """threadpoolctl's limit, on every library loaded so far (called again after each import)."""
    global _limits
    if THREADS is None:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    _limits = threadpool_limits(limits=THREADS)


def thread_limit() -> int | None:
    """The --threads setting (None: each library's default), read when a peer sets up."""
    return THREADS


class Unsupported(Exception):
    """This implementation does not run this case (the reason is the message)."""


@dataclass
class Runner:
    call: Callable[[], object]
    params: Callable[[], dict] | None = None
    info: str = ""
    graph_nodes: int | None = None      # nnc: nodes of the optimised graph the call runs


def version_of(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except Exception:
        return None


class Impl:
    name = ""
    is_nnc = False

    def unavailable(self) -> str | None:
        """None when this implementation can run here, else why not."""
        return None

    def versions(self) -> dict:
        return {}

    def setup(self, p: Problem) -> Runner:
        raise NotImplementedError
