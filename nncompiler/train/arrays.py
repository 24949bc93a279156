"""Reading arrays from .npy and .npz files (and numeric CSV through csvfile)."""
from __future__ import annotations

import math
import os
import tokenize
import zipfile

import numpy as np

from ..ir.limits import available_memory, fmt_bytes
from .csvfile import _read_numeric_csv
from .datafile import _check_exists, _error


def _header(f) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a .npy header, reading only the header's bytes."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return tuple(int(d) for d in shape), dtype


def check_headers(path, fail, limit: int | None = None) -> None:
    """Read the header (shape and dtype) of every array of an .npy or .npz file before any
    array is loaded or decompressed, and refuse, through `fail(message)` (which returns the
    exception to raise), an array of Python objects or arrays that together need more memory
    than is available: a 3 MB zip bomb or a forged header claiming 149 GiB gives one clear
    error instead of a MemoryError after minutes of inflating."""
    limit = available_memory() if limit is None else limit
    sizes: list[tuple[str, tuple[int, ...], np.dtype]] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if not info.filename.endswith(".npy"):
                        continue
                    with z.open(info) as f:        # decompresses only as far as the header
                        shape, dtype = _header(f)
                    sizes.append((info.filename[:-4], shape, dtype))
        else:
            with open(path, "rb") as f:
                if f.read(6) != b"\x93NUMPY":
                    return          # neither .npz nor .npy: the reader says what it is not
                f.seek(0)
                shape, dtype = _header(f)
            sizes.append(("", shape, dtype))
    # numpy tokenizes the header's dict literal: a damaged one raises TokenError or SyntaxError
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError, NotImplementedError,
            SyntaxError, tokenize.TokenError) as e:
        raise fail(f"cannot read the array headers: {e}") from None
    total = 0
    for name, shape, dtype in sizes:
        what = f"array '{name}'" if name else ".npy file"
        if dtype.hasobject:
            raise fail(f"cannot read {what}: it holds Python objects (pickled data is not loaded)")
        if any(d < 0 for d in shape):
            raise fail(f"cannot read {what}: negative dimension in its shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        total += nbytes
        if limit is not None and total > limit:
            raise fail(f"{what} ({dtype}, shape {shape}) needs {fmt_bytes(nbytes)}"
                       + (f" ({fmt_bytes(total)} with the arrays before it)" if total != nbytes else "")
                       + f", more than the {fmt_bytes(limit)} of memory available (NNC_MEMORY_LIMIT)")


def read_array(path) -> np.ndarray:
    """Read one array from a `.npy` file or a numeric `.csv`/`.tsv` file.

    A `.npy` file comes back with the dtype it was saved with (pickled object
    arrays are refused).  A CSV file may have a header row (a first row of
    names, none of them numbers) or not; its values come back float32, shape
    (rows, columns), or (rows,) when it has a single column.
    """
    ext = os.path.splitext(str(path))[1].lower()
    if ext == ".npy":
        return _read_npy(path)
    if ext in (".csv", ".tsv"):
        return _read_numeric_csv(path)
    if ext == ".npz":
        raise _error(path, "an .npz archive holds named arrays; use read_npz")
    raise _error(path, f"unsupported file type '{ext or os.path.basename(str(path))}' "
                       "(expected .npy, .csv or .tsv)")


def _read_npy(path) -> np.ndarray:
    _check_exists(path)
    if os.path.getsize(path) == 0:
        raise _error(path, "empty file (expected a .npy array)")
    check_headers(path, lambda m: _error(path, m))
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise _error(path, "cannot read .npy file: it holds Python objects "
                               "(pickled data is not loaded)") from None
        raise _error(path, f"cannot read .npy file: {e}") from None
    except Exception as e:  # bad magic, truncated data, permissions, ...
        raise _error(path, f"cannot read .npy file: {e}") from None
    if not isinstance(arr, np.ndarray):
        if hasattr(arr, "close"):
            arr.close()
        raise _error(path, "cannot read .npy file: it is an .npz archive (use read_npz)")
    return arr


def read_npz(path) -> dict[str, np.ndarray]:
    """Read every array of an `.npz` archive into {name: array} (dtypes as saved)."""
    _check_exists(path)
    if os.path.getsize(path) == 0:
        raise _error(path, "empty file (expected an .npz archive)")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise _error(path, f"cannot open file: {e.strerror or e}") from None
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        raise _error(path, "not an .npz file (expected a zip archive of .npy arrays, as np.savez writes)")
    check_headers(path, lambda m: _error(path, m))
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:
        raise _error(path, f"cannot read .npz file: {e}") from None
    if isinstance(z, np.ndarray):
        raise _error(path, "cannot read .npz file: it is a single .npy array (use read_array)")
    out: dict[str, np.ndarray] = {}
    with z:
        for name in z.files:
            try:
                out[name] = z[name]
            except ValueError as e:
                if "pickle" in str(e).lower():
                    raise _error(path, f"cannot read array '{name}': it holds Python objects "
                                       "(pickled data is not loaded)") from None
                raise _error(path, f"cannot read array '{name}': {e}") from None
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise _error(path, f"cannot read array '{name}': {e}") from None
    return out
