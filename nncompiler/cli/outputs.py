"""Where commands put what they produce: standard output or a file written atomically,
and a check that an output path is writable before long work starts."""
from __future__ import annotations

import os

from ..errors import NNCError


def write_text(text: str, path: str | None) -> None:
    if path:
        write_binary(path, lambda f: f.write((text if text.endswith("\n") else text + "\n").encode()))
    else:
        print(text)


def write_binary(path: str, write) -> None:
    """Write a file atomically (see fsutil); errors name `path`."""
    from ..fsutil import atomic_write
    try:
        atomic_write(path, write, make_dirs=False)
    except OSError as e:
        raise NNCError(f"{path}: cannot write: {e.strerror or e}") from None


def check_writable(path: str) -> None:
    """Fail now, not after training, when `path` cannot be written. Tried for real: a temporary
    file created and removed where atomic_write will put its own (os.access says yes to root
    even on a read-only file system or sysfs)."""
    import tempfile
    if os.path.isdir(path):
        raise NNCError(f"{path}: is a directory; name a file")
    target = os.path.realpath(path)   # a symlink is written through (fsutil.atomic_write)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise NNCError(f"{path}: cannot write there: no such directory {folder}")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=os.path.basename(target) + ".tmp")
    except OSError as e:
        raise NNCError(f"{path}: cannot write there: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)
