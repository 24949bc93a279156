"""Atomic file writes: a temporary file beside the target, then one rename.

Readers (a second compile hitting a cache, a resumed run loading a checkpoint)
never see half a file: they see the old one or the new one. Every writer of
files in nncompiler goes through `atomic_write`, which also makes the result look
like what `cp` or a shell redirection would have made:

* the temporary file is created exclusively (`mkstemp`: O_EXCL, mode 0600 while it
  is written) in the target's own directory, so a planted file or symlink of the
  same name is never opened and the rename never crosses file systems;
* a new file gets the mode the umask implies (0644 under umask 022), an existing
  file keeps its mode;
* a symlink is written through: its target gets the new content and the link stays
  (as `cp` does); a dangling link creates its target.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def current_umask() -> int:
    """The process umask, read without changing it where the system tells it
    (os.umask can only be read by setting it, which races with other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o7777   # an existing file keeps its mode
    except OSError:
        return 0o666 & ~current_umask()


def atomic_write(path, write: Callable | bytes | str, fsync: bool = False, make_dirs: bool = True) -> Path:
    """Write `path` atomically. `write` is the content, or a function given the open binary file.
    With `fsync`, the data and the rename are flushed to disk (checkpoints); with `make_dirs`,
    missing parent folders are created (caches; a user's output path is taken as given).
    On error the temporary file is removed and the exception propagates. Returns the path
    written (a symlink's target when `path` is a link)."""
    path = Path(path)
    if path.is_symlink():  # write through to the link's target, as cp does
        path = Path(os.path.realpath(path))
    if make_dirs:
        path.parent.mkdir(parents=True, exist_ok=True)
    mode = _final_mode(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".tmp")  # e.g. ckpt.npz.tmpk3j9
    try:
        os.fchmod(fd, mode)
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
