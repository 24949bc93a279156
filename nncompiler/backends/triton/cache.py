"""The on-disk cache: generated kernel modules and ahead-of-time compiled kernels.

Everything lives under `$NNC_CACHE_DIR` (default `~/.cache/nncompiler/triton`):

    modules/nnc_<graph>_<hash>.py      generated Triton source (imported by the runtime:
                                       Triton needs a real file to read kernel source from)
    aot/<key[:2]>/<key>.json           one compiled kernel: ttir, ttgir, llir, ptx (text)
                                       and cubin (base64) plus launch metadata

Keys hash the kernel source, its signature and constexprs, the target, the Triton
version and ours, so a changed kernel, target or toolchain never hits a stale entry.
Every write goes to a temporary file in the same directory and is moved into place
with `os.replace`, so a reader never sees half a file, and concurrent compiles of
the same kernel (parallel workers, two processes) are harmless.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("NNC_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "nncompiler" / "triton"


def digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()


def atomic_write(path: Path, data: bytes | str) -> Path:
    from ...fsutil import atomic_write as write
    return write(path, data)


def module_path(graph_name: str, source: str) -> Path:
    import re
    safe = re.sub(r"\W", "_", graph_name)
    return cache_dir() / "modules" / f"nnc_{safe}_{digest(source)[:16]}.py"


def write_module(graph_name: str, source: str) -> Path:
    path = module_path(graph_name, source)
    if not path.exists() or path.read_text() != source:
        atomic_write(path, source)
    return path
