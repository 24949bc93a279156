"""Validation splits and batches of row indices."""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np

from ..errors import DataError


def _rows_of(arrays: Mapping[str, np.ndarray]) -> int:
    n = None
    first = None
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.ndim == 0:
            raise DataError(f"array '{name}' is a scalar; expected one row per example")
        if n is None:
            n, first = a.shape[0], name
        elif a.shape[0] != n:
            raise DataError(f"arrays '{first}' and '{name}' have different numbers of rows "
                            f"({n} and {a.shape[0]}); every array needs one row per example")
    return n or 0


def split_validation(arrays: Mapping[str, np.ndarray], fraction: float, seed: int | None
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split every array's rows into (train, validation) dicts.

    The row order is shuffled ONCE with `np.random.default_rng(seed)` (the same
    permutation for every array, so rows stay aligned) and the last
    `round(rows * fraction)` shuffled rows become the validation set.  Shuffling
    first matters: data files sorted by class are common (iris.csv holds 50
    setosa, then 50 versicolor, then 50 virginica), and taking the file's tail
    as Keras's `validation_split` does would leave a whole class out of
    training and validate only on it.

    `fraction` is in [0, 1).  With 0 the training dict holds the arrays as given
    (not shuffled, not copied) and validation arrays have zero rows.  At least
    one row always stays in training.
    """
    if not isinstance(fraction, (int, float)) or not 0 <= fraction < 1 or math.isnan(fraction):
        raise DataError(f"validation fraction must be in [0, 1), got {fraction!r}")
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    n = _rows_of(arrays)
    if fraction == 0 or n == 0:
        return dict(arrays), {k: v[:0] for k, v in arrays.items()}
    n_val = min(int(round(n * fraction)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    tr, va = perm[: n - n_val], perm[n - n_val:]
    return {k: v[tr] for k, v in arrays.items()}, {k: v[va] for k, v in arrays.items()}


def batches(n: int, batch_size: int | str | None, shuffle: bool = False,
            rng: np.random.Generator | int | None = None) -> Iterator[np.ndarray]:
    """Yield index arrays (int64) covering rows 0..n-1 once, `batch_size` at a time.

    `batch_size` None or "all" gives one batch of all rows.  The last batch is
    kept even when it is smaller.  With `shuffle`, the order is a fresh
    permutation from `rng` (a Generator, or a seed) on every call, i.e. every
    epoch; without it the rows come in order.
    """
    if batch_size is None or batch_size == "all":
        size = max(n, 1)
    elif isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool) and batch_size > 0:
        size = int(batch_size)
    else:
        raise DataError(f"batch size must be a positive integer or 'all', got {batch_size!r}")
    if n < 0:
        raise DataError(f"number of rows must be >= 0, got {n}")
    if shuffle:
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        order = rng.permutation(n).astype(np.int64)
    else:
        order = np.arange(n, dtype=np.int64)
    for start in range(0, n, size):
        yield order[start:start + size]
