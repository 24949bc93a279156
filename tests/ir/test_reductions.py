"""ir/reductions.py's folded sums: the order it documents (row i*k + j into partial j, the
partials in order, then the rows left over), written out here in float32 with Python loops
over numpy rows, gives its bits; against float64 it is closer than numpy's row-by-row sum;
and it folds only what it says (float, leading axes, two folded rows or more)."""
from __future__ import annotations

import numpy as np
import pytest

from nncompiler.ir import reductions


def _folded_by_hand(x, m):
    rows = x.reshape(-1, int(np.prod(x.shape[m:])))
    r, c = rows.shape
    k = reductions.FOLD // c
    head = r // k * k
    part = [rows[j].copy() for j in range(k)]
    for i in range(1, head // k):
        for j in range(k):
            part[j] = part[j] + rows[i * k + j]
    y = part[0]
    for j in range(1, k):
        y = y + part[j]
    rest = rows[head].copy() if head < r else None
    for i in range(head + 1, r):
        rest = rest + rows[i]
    return y if rest is None else y + rest


@pytest.mark.parametrize("shape, m", [((8, 40, 8, 16), 3), ((3, 700, 12), 2), ((1300, 7), 1), ((9, 2048), 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_folded_sum_follows_its_documented_order(shape, m, keepdims):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    assert reductions.folds(x.shape, tuple(range(m)), x.dtype)
    got = reductions.add_reduce(x, tuple(range(m)), keepdims)
    want = _folded_by_hand(x, m)
    assert got.dtype == np.float32
    assert got.shape == ((1,) * m + shape[m:] if keepdims else shape[m:])
    assert got.reshape(-1).tobytes() == want.reshape(-1).tobytes()
    # the layout does not matter: a Fortran-order copy gives the same bits
    t = np.asfortranarray(x)
    assert reductions.add_reduce(t, tuple(range(m)), keepdims).tobytes() == got.tobytes()


def _layouts(x):
    """x's values in other memory layouts: views that reduce in place and ones that are copied."""
    wide = np.zeros(x.shape[:-1] + (3 * x.shape[-1],), x.dtype)
    wide[..., 1::3] = x                                  # each row's values strided
    yield "strided columns", wide[..., 1::3]
    wide[..., x.shape[-1]:2 * x.shape[-1]] = x           # a slice of the last axis (an LSTM gate)
    yield "last-axis slice", wide[..., x.shape[-1]:2 * x.shape[-1]]
    every_other = np.zeros((2 * x.shape[0],) + x.shape[1:], x.dtype)
    every_other[::2] = x
    yield "every other leading row", every_other[::2]
    flipped = np.ascontiguousarray(x[::-1])
    yield "reversed leading axis", flipped[::-1]
    yield "Fortran order", np.asfortranarray(x)
    rev = np.ascontiguousarray(x[..., ::-1])
    yield "reversed last axis", rev[..., ::-1]


@pytest.mark.parametrize("shape, m", [((32, 200, 64), 2), ((3, 700, 12), 2), ((2, 1500, 64), 2), ((1300, 7), 1), ((9000, 1), 1)])
def test_folded_sum_bits_do_not_depend_on_the_layout(shape, m):
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    want = reductions.add_reduce(x, tuple(range(m)))
    if shape[-1] > 1:       # one value kept: numpy adds the partials pairwise, see the module doc
        assert want.tobytes() == _folded_by_hand(x, m).tobytes()
    for name, view in _layouts(x):
        assert np.array_equal(view, x), name
        got = reductions.add_reduce(view, tuple(range(m)))
        assert got.tobytes() == want.tobytes(), name


def test_folded_sum_is_closer_to_float64_than_the_row_by_row_sum():
    x = (np.random.default_rng(1).standard_normal((64, 32, 32, 32)) + 0.5).astype(np.float32)
    exact = np.add.reduce(x.astype(np.float64), axis=(0, 1, 2))
    folded = reductions.add_reduce(x, (0, 1, 2))
    plain = np.add.reduce(x, axis=(0, 1, 2))
    assert np.abs(folded - exact).max() < np.abs(plain - exact).max()
    np.testing.assert_allclose(folded, exact, rtol=1e-5)


@pytest.mark.parametrize("shape, axes, dtype", [
    ((100, 16), (0,), np.float32),          # 100 rows: fewer than two folded rows of 256
    ((600, 16), (1,), np.float32),          # not the leading axes
    ((600, 16), (0, 1), np.float32),        # nothing kept
    ((600, 16), (0,), np.int32),
    ((600, 4096), (0,), np.float32),        # rows longer than half a fold
])
def test_what_does_not_fold_is_numpys_reduce(shape, axes, dtype):
    x = np.random.default_rng(2).integers(-9, 9, shape).astype(dtype)
    assert not reductions.folds(shape, axes, dtype)
    got = reductions.add_reduce(x, axes)
    assert got.tobytes() == np.add.reduce(x, axis=axes).tobytes()
