"""Cache directories and entries that another user cannot poison.

The compile caches (`$NNC_CACHE_DIR`, default `~/.cache/nncompiler`) hold generated
Python and native code (IREE `.vmfb` modules, Triton cubins) that nnc later runs.
Two rules keep that safe:

* a cache directory is private: created 0700, and an existing one is refused with a
  message naming the fix when it belongs to another user or others may write to it
  (anyone who can write there could plant code for us to run);
* a native entry carries the SHA-256 of its payload in a first line, checked before the
  payload is used; an entry that fails the check, or cannot be read, is reported once
  and rebuilt, never fatal and never loaded.
"""
from __future__ import annotations

import hashlib
import os
import stat
import warnings
from pathlib import Path

from .errors import NNCError
from .fsutil import atomic_write

MAGIC = b"nnc-sha256:"
ENTRY_FORMAT = "sealed-1"   # part of every cache key, so older unsealed entries are never read as sealed ones


class CacheUnavailable(NNCError):
    """The cache directory cannot be created or is not a directory: a cache that only
    speeds things up may then be skipped (an unsafe one never is)."""


def private_dir(path) -> Path:
    """`path` as a directory only this user may write: created 0700 (with any missing
    parents), or checked when it exists. Raises NNCError naming the fix otherwise."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.stat(path)
    except OSError as e:
        raise CacheUnavailable(f"{path}: cannot use this cache directory: {e.strerror or e} "
                       f"(set NNC_CACHE_DIR to a folder of your own)") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CacheUnavailable(f"{path}: the cache path is not a directory (set NNC_CACHE_DIR to a folder of your own)")
    if st.st_uid != os.getuid():
        raise NNCError(f"{path}: the cache directory belongs to another user (uid {st.st_uid}, you are "
                       f"{os.getuid()}); code cached there could be planted: remove it, or set NNC_CACHE_DIR "
                       f"to a folder of your own")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise NNCError(f"{path}: the cache directory is writable by group or others (mode "
                       f"{stat.S_IMODE(st.st_mode):04o}); code cached there could be planted: "
                       f"run `chmod go-w {path}`, or set NNC_CACHE_DIR to a folder of your own")
    return path


def seal(payload: bytes) -> bytes:
    """The stored form of a cache entry: a first line with the payload's hash, then the payload."""
    return MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def unseal(data: bytes) -> bytes | None:
    """The payload of a stored entry, or None when its hash does not match."""
    head, sep, payload = data.partition(b"\n")
    if not sep or not head.startswith(MAGIC):
        return None
    return payload if hashlib.sha256(payload).hexdigest().encode() == head[len(MAGIC):] else None


def read_entry(path) -> bytes | None:
    """A cached payload, or None when there is none (missing) or it must be rebuilt
    (unreadable, or failing its integrity check: reported as a warning)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        warnings.warn(f"{path}: cannot read this cache entry ({e.strerror or e}); rebuilding it", stacklevel=2)
        return None
    if not data.startswith(MAGIC):   # not one of ours (or cut short): rebuilt, nothing to report
        return None
    payload = unseal(data)
    if payload is None:
        warnings.warn(f"{path}: cache entry failed its integrity check (SHA-256 mismatch: corrupt or "
                      f"tampered); not loading it, rebuilding it", stacklevel=2)
    return payload


def write_entry(path, payload: bytes) -> None:
    """Store `payload` sealed with its hash; a read-only cache only costs rebuilds."""
    try:
        atomic_write(path, seal(payload))
    except OSError:
        pass
