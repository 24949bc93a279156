"""Atomic file writes: a temporary file beside the target, then one rename.

Readers (a second compile hitting a cache, a resumed run loading a checkpoint)
never see half a file: they see the old one or the new one. Every writer of
files in nncompiler goes through `atomic_write`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path, write: Callable | bytes | str, fsync: bool = False, make_dirs: bool = True) -> Path:
    """Write `path` atomically. `write` is the content, or a function given the open binary file.
    With `fsync`, the data and the rename are flushed to disk (checkpoints); with `make_dirs`,
    missing parent folders are created (caches; a user's output path is taken as given).
    On error the temporary file is removed and the exception propagates."""
    path = Path(path)
    if make_dirs:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".tmp")  # e.g. ckpt.npz.tmpk3j9
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(write):
                write(f)
            else:
                f.write(write.encode() if isinstance(write, str) else write)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if fsync:
        try:  # make the rename itself durable
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
    return path
