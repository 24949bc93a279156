"""The on-disk cache: generated kernel modules and ahead-of-time compiled kernels.

Everything lives under `$NNC_CACHE_DIR` (default `~/.cache/nncompiler/triton`):

    modules/nnc_<graph>_<hash>.py      generated Triton source (Triton needs a real file name;
                                       the runtime executes the source text it generated,
                                       never the file's bytecode cache)
    aot/<key[:2]>/<key>.json           one compiled kernel: ttir, ttgir, llir, ptx (text)
                                       and cubin (base64) plus launch metadata, after a
                                       first line with the SHA-256 of the rest (cachefs.seal),
                                       checked before the entry is used

The root is private (0700; refused when another user owns it or others may write it).

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
    """The cache root, private to this user (created 0700; refused if others may write it)."""
    from ...cachefs import private_dir
    root = os.environ.get("NNC_CACHE_DIR")
    return private_dir(Path(root) if root else Path.home() / ".cache" / "nncompiler" / "triton")


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
    """The module's file, holding exactly `source` (rewritten when missing, different or
    unreadable). The runtime executes `source` itself, never this file or a bytecode cache
    of it; the file is there for Triton, which reads kernel source from a file name."""
    path = module_path(graph_name, source)
    try:
        same = path.read_bytes() == source.encode()
    except OSError:
        same = False
    if not same:
        atomic_write(path, source)
    return path
