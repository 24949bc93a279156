"""Reading CSV and TSV files into float32 / int32 arrays.

Everything numeric comes out as float32 (features) or int32 (integer labels and
class ids); nothing is silently upcast to float64.  Errors name the file, row
and column (see datafile.py).

CSV files are read in blocks of `BLOCK_ROWS` rows, so a huge file never becomes
one giant Python list of lists: each block is converted to a numpy array and the
strings are dropped before the next block is read.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import did_you_mean
from .datacheck import _DTYPE_NAMES, _DTYPES
from .datafile import MAX_COLUMNS, MAX_LINE, _error, _open_text, show, show_list

BLOCK_ROWS = 65536

_F32_MAX = float(np.finfo(np.float32).max)
_I32_MIN, _I32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)

def _delimiter(path) -> str:
    return "\t" if str(path).lower().endswith(".tsv") else ","


def _lines(path, f, most: int) -> Iterator[str]:
    """The file's lines, refusing one longer than `most` characters before reading it whole
    (a 2 GiB line would otherwise be read into memory before the csv module sees it)."""
    number = 0
    while True:
        line = f.readline(most + 1)
        if not line:
            return
        number += 1
        if len(line) > most and not line.endswith(("\n", "\r")):
            raise _error(path, f"line {number} is longer than {most} characters (the limit; set "
                               "read_csv's max_line to change it)", number)
        yield line


def _rows(path, f, max_line: int = MAX_LINE, max_columns: int = MAX_COLUMNS) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for every non-blank record of a CSV file."""
    most_columns = max_columns
    reader = csv.reader(_lines(path, f, max_line), delimiter=_delimiter(path))
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise _error(path, f"malformed CSV: {e}", reader.line_num + 1) from None
        except UnicodeDecodeError:
            line = _bad_utf8(path)
            raise _error(path, "not a UTF-8 text file", line or reader.line_num + 1) from None
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # blank line
        if len(cells) > most_columns:
            raise _error(path, f"row has {len(cells)} values, more than the limit of {most_columns} columns "
                               "(set read_csv's max_columns to change it)", reader.line_num)
        yield reader.line_num, cells


def _bad_utf8(path) -> int | None:
    """The line of the first byte sequence that is not UTF-8 (the text layer decodes ahead of
    the csv reader, so the reader's own line count can be behind)."""
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return number
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- cells

# Column kinds: how the cells of one column are parsed.  Features use the
# model dtype names (float32 unless read_csv's dtype_hint says otherwise).
_F32 = "f32"    # features: finite numbers in float32 range
_NUM = "num"    # numeric label: like f32 (comes back int32 if every value is integral)
_CAT = "cat"    # categorical label: any non-empty string (class name)
_INT_RANGE = {"i32": (_I32_MIN, _I32_MAX),
              "i64": (int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)),
              "bool": (0, 1)}
_KIND_DTYPE = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64,
               "bool": np.bool_, _NUM: np.float64, _CAT: str}


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _cell_problem(s: str, kind: str, col: str) -> str | None:
    """Why cell `s` is not acceptable for a column of this kind (None if it is).

    `col` describes the column: "column 'petal_length'" or "column 3".
    """
    text = s.strip()
    if kind == _CAT:
        return None if text else f"empty value in label {col} (expected a class name)"
    expected = {"bool": "0 or 1"}.get(kind, "an integer" if kind in _INT_RANGE else "a number")
    if not text:
        return f"missing value in {col} (expected {expected})"
    try:
        v = float(text)
    except ValueError:
        return f"non-numeric value {show(text)} in {col} (expected {expected})"
    if math.isnan(v):
        return f"NaN value {show(text)} in {col} (expected a finite number)"
    if math.isinf(v):
        return f"infinite value {show(text)} in {col} (expected a finite number)"
    if kind in _INT_RANGE:
        lo, hi = _INT_RANGE[kind]
        if kind == "bool" and v not in (0, 1):
            return f"value {show(text)} in {col} is not 0 or 1 (expected a bool)"
        if v != int(v):
            return f"non-integer value {show(text)} in {col} (expected an integer)"
        if not lo <= v <= hi:
            return f"value {show(text)} in {col} does not fit in {np.dtype(_KIND_DTYPE[kind])}"
    elif kind != "f64" and abs(v) > _F32_MAX:
        return f"value {show(text)} in {col} is out of float32 range (expected |x| <= 3.4e38)"
    return None


class _Bad(Exception):
    """A block holds at least one bad cell; rescan it cell by cell to find which."""


def _convert(cells: list[list[str]], kind: str) -> np.ndarray:
    """Convert a block of cells (rows x columns) of one kind; raise _Bad on any bad cell."""
    if kind == _CAT:
        arr = np.array([[c.strip() for c in r] for r in cells], dtype=str)
        if arr.size and (arr == "").any():
            raise _Bad
        return arr
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            if kind == _F32:
                arr = np.array(cells, dtype=np.float32)
            else:  # float64: asked for, or internal only (to check integrality / range exactly)
                arr = np.array(cells, dtype=np.float64)
    except (ValueError, OverflowError):
        raise _Bad from None
    if not np.isfinite(arr).all():
        raise _Bad
    if kind in _INT_RANGE:
        lo, hi = _INT_RANGE[kind]
        if (arr != np.round(arr)).any() or (arr < lo).any() or (arr > hi).any():
            raise _Bad
        return arr.astype(_KIND_DTYPE[kind])
    if kind == _NUM and (np.abs(arr) > _F32_MAX).any():
        raise _Bad
    return arr


class _ColumnGroup:
    """Columns of one kind, collected block by block into arrays."""

    def __init__(self, indices: list[int], kind: str):
        self.indices, self.kind = indices, kind
        self.blocks: list[np.ndarray] = []
        self.classes: dict[str, int] = {}      # categorical: class name -> code, in order of appearance

    def add(self, arr: np.ndarray) -> None:
        if self.kind == _CAT:   # keep int32 codes, not the strings: 4 bytes a cell, however long the names
            names, inverse = np.unique(arr, return_inverse=True)
            codes = np.array([self.classes.setdefault(str(n), len(self.classes)) for n in names], dtype=np.int32)
            arr = codes[inverse.reshape(arr.shape)]
        self.blocks.append(arr)

    def class_ids(self, codes: np.ndarray) -> tuple[list[str], np.ndarray]:
        """(the class names in sorted order, each code's index among them)."""
        names = sorted(self.classes)
        rank = np.empty(len(names), dtype=np.int32)
        for i, n in enumerate(names):
            rank[self.classes[n]] = i
        return names, rank[codes]

    def cells(self, block: list[list[str]]) -> list[list[str]]:
        idx = self.indices
        return [[r[i] for i in idx] for r in block]

    def result(self, rows: int) -> np.ndarray:
        if self.indices and self.blocks:
            return np.concatenate(self.blocks, axis=0)
        dtype = np.int32 if self.kind == _CAT else _KIND_DTYPE[self.kind]
        return np.zeros((rows if not self.indices else 0, len(self.indices)), dtype=dtype)


def _process_block(path, cols: list[str], block, lines, groups: list[_ColumnGroup], hint=None) -> None:
    """Convert one block into every group, or raise a DataError for its first bad cell."""
    if not block:
        return
    try:
        converted = [g.cells(block) for g in groups]
        converted = [_convert(c, g.kind) if g.indices else None for c, g in zip(converted, groups)]
    except _Bad:
        kinds = {}
        for g in groups:
            for i in g.indices:
                kinds[i] = g.kind
        for r, line in zip(block, lines):
            for i in sorted(kinds):
                problem = _cell_problem(r[i], kinds[i], cols[i])
                if problem is not None:
                    if hint is not None and problem.startswith("non-numeric"):
                        problem += hint(i)
                    raise _error(path, problem, line, i + 1) from None
        raise  # pragma: no cover - numpy and float() disagree; should not happen
    for g, arr in zip(groups, converted):
        if arr is not None:
            g.add(arr)


def _read_blocks(path, rows: Iterator[tuple[int, list[str]]], cols: list[str],
                 groups: list[_ColumnGroup], hint=None) -> int:
    """Read the remaining rows in blocks into `groups`; return the number of rows.

    `cols` describes each column for messages ("column 'x'" or "column 3");
    `hint(column index)`, if given, is appended to non-numeric-value errors.
    """
    ncols = len(cols)
    n = 0
    block: list[list[str]] = []
    lines: list[int] = []
    for line, cells in rows:
        if len(cells) != ncols:
            # Report any bad cell earlier in the file first, then this row.
            _process_block(path, cols, block, lines, groups, hint)
            if len(cells) < ncols:
                raise _error(path, f"row has {len(cells)} values, expected {ncols} "
                                   f"(missing a value for {cols[len(cells)]})", line, len(cells) + 1)
            raise _error(path, f"row has {len(cells)} values, expected {ncols} "
                               f"(extra value {show(cells[ncols].strip())})", line, ncols + 1)
        block.append(cells)
        lines.append(line)
        if len(block) >= BLOCK_ROWS:
            _process_block(path, cols, block, lines, groups, hint)
            n += len(block)
            block, lines = [], []
    if block:
        _process_block(path, cols, block, lines, groups, hint)
        n += len(block)
    return n


# --------------------------------------------------------------------------- readers

def _feature_kind(dtype_hint) -> str:
    if dtype_hint is None:
        return _F32
    try:
        dt = np.dtype(_DTYPES.get(dtype_hint, dtype_hint)) if isinstance(dtype_hint, str) else np.dtype(dtype_hint)
    except TypeError:
        dt = None
    if dt in _DTYPE_NAMES:
        return _DTYPE_NAMES[dt]
    raise ValueError(f"read_csv: dtype_hint must be one of {', '.join(_DTYPES)}, got {dtype_hint!r}")


def read_csv(path, label: str | Sequence[str] | None = None, dtype_hint=None, *,
             max_line: int = MAX_LINE, max_columns: int = MAX_COLUMNS
             ) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Read a CSV file with a header row into (features, labels, info).

    `label` names the label column (labels come back 1-D, shape (rows,)) or a
    list of label columns (labels come back 2-D, shape (rows, len(label))); it
    is removed from the features.  With `label=None` every column is a feature
    and `labels` is None.

    features: float32, shape (rows, feature columns), in header order.
        `dtype_hint` (a model dtype: 'f32', 'f64', 'i32', 'i64', 'bool') asks
        for another dtype: integer dtypes need integer cells ('3' or '3.0';
        i64 values are exact up to 2**53), bool needs 0 or 1, f64 parses in
        double precision.
    labels: a label column whose first value is not a number holds class
        names: they become int32 ids in sorted order of the distinct names
        (so 'setosa', 'versicolor', 'virginica' -> 0, 1, 2).  Numeric labels
        come back int32 when every value is an integer that fits, else float32.
    info: {"path", "columns" (header), "features" (feature column names),
        "labels" (label column names), "rows",
        "classes" (the class names of the label column when `label` is a single
        categorical column, else None),
        "label_classes" ({column: class names} for every categorical label column)}.

    max_line, max_columns: the longest line (in characters) and the most values in a row
        accepted (defaults: 2**20 and 100000); a longer line is refused after reading that
        much of it, so a file of one 2 GiB line costs 1 MiB.

    A `.tsv` file is read with tab as the separator.  Blank lines are skipped;
    row numbers in errors are line numbers in the file.
    """
    label_names: list[str]
    if label is None:
        label_names = []
    elif isinstance(label, str):
        label_names = [label]
    else:
        label_names = list(label)
    feature_kind = _feature_kind(dtype_hint)

    with _open_text(path) as f:
        rows = _rows(path, f, max_line, max_columns)
        first = next(rows, None)
        if first is None:
            raise _error(path, "empty file (expected a header row naming the columns)")
        hline, header = first
        header = [h.strip() for h in header]
        if all(_is_number(h) for h in header):
            raise _error(path, "the first row holds only numbers; read_csv needs a header row "
                               "naming the columns (use read_array for headerless files)", hline, 1)
        seen: dict[str, int] = {}
        for i, h in enumerate(header):
            if not h:
                raise _error(path, f"empty column name in the header (column {i + 1})", hline, i + 1)
            if h in seen:
                raise _error(path, f"duplicate column name {show(h)} in the header "
                                   f"(columns {seen[h] + 1} and {i + 1})", hline, i + 1)
            seen[h] = i
        label_idx = []
        for name in label_names:
            if name not in seen:
                hint = did_you_mean(name, header) or f"; the columns are {show_list(header)}"
                raise _error(path, f"no label column '{name}' in the header{hint}", hline)
            if seen[name] in label_idx:
                raise _error(path, f"label column '{name}' given twice", hline)
            label_idx.append(seen[name])

        feat_idx = [i for i in range(len(header)) if i not in label_idx]
        second = next(rows, None)
        if second is None:
            raise _error(path, "no data rows (the file holds only a header)", hline + 1)

        # A label column holds class names when its first value is not a number.
        groups = [_ColumnGroup(feat_idx, feature_kind)]
        label_groups = []
        line2, cells2 = second
        for i in label_idx:
            kind = _NUM
            if i < len(cells2) and cells2[i].strip() and not _is_number(cells2[i].strip()):
                kind = _CAT
            label_groups.append(_ColumnGroup([i], kind))
        groups += label_groups

        def hint(i: int) -> str:
            return f"; pass label={show(header[i])} if it is the label column"

        n = _read_blocks(path, _chain(second, rows), [f"column {show(h)}" for h in header], groups,
                         None if label_names else hint)

    features = groups[0].result(n)
    info: dict[str, Any] = {
        "path": str(path), "columns": header, "features": [header[i] for i in feat_idx],
        "labels": [header[i] for i in label_idx], "rows": n, "classes": None, "label_classes": {},
    }
    if not label_idx:
        return features, None, info

    cols = []
    for g in label_groups:
        col = g.result(n)[:, 0]
        name = header[g.indices[0]]
        if g.kind == _CAT:
            classes, ids = g.class_ids(col)
            info["label_classes"][name] = classes
            cols.append(ids.reshape(-1).astype(np.int32))
        else:
            cols.append(col)
    if all(c.dtype == np.int32 or _integral_int32(c) for c in cols):
        cols = [c.astype(np.int32) for c in cols]
    else:
        cols = [c.astype(np.float32) for c in cols]
    labels = cols[0] if isinstance(label, str) else np.stack(cols, axis=1)
    if isinstance(label, str):
        info["classes"] = info["label_classes"].get(label)
    return features, labels, info


def _chain(first, rest):
    yield first
    yield from rest


def _integral_int32(a: np.ndarray) -> bool:
    return bool(a.size == 0 or (np.all(a == np.round(a)) and a.min() >= _I32_MIN and a.max() <= _I32_MAX))


def _read_numeric_csv(path) -> np.ndarray:
    with _open_text(path) as f:
        rows = _rows(path, f)
        first = next(rows, None)
        if first is None:
            raise _error(path, "empty file (expected rows of numbers)")
        line, cells = first
        ncols = len(cells)
        if not any(_is_number(c.strip()) for c in cells):   # a header row of names
            cols = [f"column {show(c.strip())}" if c.strip() else f"column {i + 1}"
                    for i, c in enumerate(cells)]
            if (nxt := next(rows, None)) is None:
                raise _error(path, "no data rows (the file holds only a header)", line + 1)
            rest = _chain(nxt, rows)
        else:   # data from row 1 (a row mixing names and numbers fails on its first name)
            cols = [f"column {i + 1}" for i in range(ncols)]
            rest = _chain(first, rows)
        group = _ColumnGroup(list(range(ncols)), _F32)
        n = _read_blocks(path, rest, cols, [group])
    arr = group.result(n)
    return arr[:, 0] if ncols == 1 else arr
