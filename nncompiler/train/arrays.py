"""Reading arrays from .npy and .npz files (and numeric CSV through csvfile)."""
from __future__ import annotations

import os
import zipfile

import numpy as np

from .csvfile import _read_numeric_csv
from .datafile import _check_exists, _error


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
