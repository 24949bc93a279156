"""Opening data files defensively, and the errors that name them.

Every problem with a data file is a `DataError` whose message starts like a
compiler diagnostic, naming the file, the row (1-based, the header is row 1)
and the column (1-based), and says what was expected:

    data/iris.csv:17:3: error: non-numeric value 'abc' in column 'petal_length' (expected a number)
"""
from __future__ import annotations

import os

from ..errors import DataError


def _error(path, message: str, row: int | None = None, col: int | None = None) -> DataError:
    where = str(path)
    if row is not None:
        where += f":{row}"
        if col is not None:
            where += f":{col}"
    err = DataError(f"{where}: error: {message}")
    err.file, err.row, err.col = str(path), row, col
    return err


def _open_text(path):
    """Open a text file for the csv module, turning OS errors into DataErrors."""
    try:
        if os.path.isdir(path):
            raise _error(path, "is a directory, not a data file")
        return open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise _error(path, "file not found") from None
    except PermissionError:
        raise _error(path, "permission denied") from None
    except OSError as e:
        raise _error(path, f"cannot open file: {e.strerror or e}") from None



def _check_exists(path) -> None:
    if os.path.isdir(path):
        raise _error(path, "is a directory, not a data file")
    if not os.path.exists(path):
        raise _error(path, "file not found")
