"""Opening data files defensively, and the errors that name them.

Every problem with a data file is a `DataError` whose message starts like a
compiler diagnostic, naming the file, the row (1-based, the header is row 1)
and the column (1-based), and says what was expected:

    data/iris.csv:17:3: error: non-numeric value 'abc' in column 'petal_length' (expected a number)
"""
from __future__ import annotations

import os
import stat

from ..errors import DataError
from ..ir.limits import available_memory, fmt_bytes

# Limits on what a CSV file may hold, so that a hostile or broken file gives one clear error,
# not minutes of parsing and a MemoryError (docs/robustness.md); read_csv's max_line and
# max_columns arguments override them. A data file's size is bounded by NNC_MEMORY_LIMIT.
MAX_LINE = 1 << 20          # characters in one line
MAX_COLUMNS = 100_000       # values in one row

SHOW = 24          # characters of a value from a file echoed in a message


def printable(text) -> str:
    """`text` with control and format characters (escape sequences, \\r, U+202E, ...) written as
    escapes, so that nothing read from a file or a path can drive the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width] + "..."


def show(text, width: int = SHOW) -> str:
    """A value from a file as echoed in a message: quoted, printable, at most about `width` characters."""
    return f"'{_cut(printable(text), width)}'"


def show_list(names, width: int = SHOW, count: int = 10) -> str:
    """Names from a file (a header's columns), each shortened, at most `count` of them."""
    names = list(names)
    out = ", ".join(_cut(printable(n), width) for n in names[:count])
    return out + (f", ... ({len(names)} in all)" if len(names) > count else "")


def _where(path) -> str:
    """A path as shown in a message: printable, and shortened in the middle when very long
    (the file name at the end is what tells the user which file)."""
    text = printable(os.fspath(path) if not isinstance(path, str) else path)
    return text if len(text) <= 160 else text[:60] + "..." + text[-97:]


def _error(path, message: str, row: int | None = None, col: int | None = None) -> DataError:
    where = _where(path)
    if row is not None:
        where += f":{row}"
        if col is not None:
            where += f":{col}"
    err = DataError(f"{where}: error: {printable(message)}")
    err.file, err.row, err.col = str(path), row, col
    return err


def check_file(path) -> None:
    """Refuse, before opening anything, a path that cannot be a data file: one with a NUL byte,
    a missing file, a directory, anything not a regular file (/dev/zero, a FIFO, whose open or
    read would block or never end), or a file larger than the memory available (NNC_MEMORY_LIMIT)."""
    text = os.fspath(path) if not isinstance(path, str) else path
    if "\0" in str(text):
        raise _error(path, "the path contains a NUL byte")
    try:
        st = os.stat(path)
    except OSError as e:
        raise _os_error(path, e) from None
    if stat.S_ISDIR(st.st_mode):
        raise _error(path, "is a directory, not a data file")
    if not stat.S_ISREG(st.st_mode):
        raise _error(path, "is not a regular file (a device, FIFO or socket); data must be a file")
    most = available_memory()
    if most is not None and st.st_size > most:
        raise _error(path, f"the file is {fmt_bytes(st.st_size)}, more than the {fmt_bytes(most)} of memory "
                           "available (NNC_MEMORY_LIMIT)")


def _open_text(path):
    """Open a text file for the csv module, turning OS errors into DataErrors."""
    check_file(path)
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise _os_error(path, e) from None


def _os_error(path, e: OSError):
    """The DataError for an OS error on a data file (stat or open say the same things)."""
    if isinstance(e, FileNotFoundError):
        return _error(path, "file not found")
    if isinstance(e, PermissionError):
        return _error(path, "permission denied")
    return _error(path, f"cannot open file: {e.strerror or e}")


def _check_exists(path) -> None:
    check_file(path)
