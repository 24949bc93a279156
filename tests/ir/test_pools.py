"""ir/pools.py, max pooling over windows that do not overlap: the winning tap it records is
the first maximum in window order (np.argmax over the windows, an independent statement),
and its pooled values and gradient have exactly the bits of windows.py's general path
(reduce_window's running max, select_scatter_general's masks), special values included:
NaN, infinities, signed zeros and ties in x; NaN, infinities, -0.0 and denormals in g."""
from __future__ import annotations

import numpy as np
import pytest

from nncompiler.ir import pools, windows

TILED = [  # x shape, window, stride: stride >= window, no padding
    ((2, 6, 6, 3), (2, 2), (2, 2)),
    ((1, 7, 5, 1), (2, 2), (2, 2)),            # odd sizes: the last row and column are in no window
    ((3, 9, 8, 2), (3, 2), (3, 2)),
    ((2, 7, 8, 3), (2, 2), (3, 3)),            # gaps between the windows
    ((2, 9, 4), (3,), (3,)),                   # 1-d
    ((1, 4, 5, 6, 2), (2, 2, 3), (2, 2, 3)),   # 3-d
    ((5, 8, 8, 4), (1, 1), (1, 1)),            # one tap
    ((0, 4, 4, 2), (2, 2), (2, 2)),            # empty batch
]


def _outs(shape, window, stride):
    return tuple((s - k) // st + 1 for s, k, st in zip(shape[1:-1], window, stride))


def _winner_oracle(x, window, stride):
    """First maximal tap of each window: np.argmax over a [..., taps] copy of the windows."""
    outs = _outs(x.shape, window, stride)
    taps = np.stack([x[(slice(None),) + tuple(slice(t[a], t[a] + (o - 1) * s + 1, s)
                                              for a, (o, s) in enumerate(zip(outs, stride)))]
                     for t in np.ndindex(*window)], axis=-1)
    return np.argmax(taps, axis=-1)


def _special(rng, shape, dtype):
    vals = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, 1.0, -2.5, 3.0, 1e-42], dtype)
    x = rng.standard_normal(shape).astype(dtype)
    pick = rng.random(shape) < 0.4
    x[pick] = rng.choice(vals, size=int(pick.sum()))
    return x


@pytest.mark.parametrize("shape, window, stride", TILED)
@pytest.mark.parametrize("values", ["normal", "ties"])
def test_winner_is_the_first_maximum_in_window_order(shape, window, stride, values):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) if values == "normal" else rng.integers(-1, 2, shape)).astype(np.float32)
    best, idx = pools.max_and_index(x, window, stride)
    assert idx.dtype == np.uint8 and best.dtype == np.float32
    np.testing.assert_array_equal(idx, _winner_oracle(x, window, stride))
    np.testing.assert_array_equal(best, windows.reduce_window(x, "max", window, stride, ((0, 0),) * len(window)))


@pytest.mark.parametrize("shape, window, stride", TILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1])
def test_tiled_path_has_the_general_paths_bits_special_values_included(shape, window, stride, dtype, seed):
    rng = np.random.default_rng(seed)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    pad = ((0, 0),) * len(window)
    x = _special(rng, shape, dtype)
    g = _special(rng, (shape[0],) + _outs(shape, window, stride) + shape[-1:], dtype)
    best, idx = pools.max_and_index(x, window, stride)
    assert best.view(bits).tobytes() == windows.reduce_window(x, "max", window, stride, pad).view(bits).tobytes()
    want = windows.select_scatter_general(x, g, window, stride, pad)
    for got in (windows.select_scatter(x, g, window, stride, pad), pools.scatter(idx, g, x.shape, window, stride)):
        assert got.dtype == dtype and got.shape == x.shape
        assert got.view(bits).tobytes() == want.view(bits).tobytes()
    keep = rng.random(g.shape) < 0.6           # where(keep, g, +0.0), absorbed
    masked = np.where(keep, g, dtype(0.0))
    want = windows.select_scatter_general(x, masked, window, stride, pad)
    got = pools.scatter(idx, g, x.shape, window, stride, keep)
    assert got.view(bits).tobytes() == want.view(bits).tobytes()


def test_a_nan_in_a_window_keeps_todays_rule():
    """The running max turns NaN and no later tap wins: g goes to the first maximum before
    the NaN (tap 0 where the NaN is tap 0); the pooled value is NaN."""
    x = np.array([[1.0, 3.0, np.nan, 5.0], [np.nan, 2.0, 9.0, 1.0], [1.0, 2.0, 2.0, np.nan]],
                 np.float32).reshape(3, 4, 1)
    best, idx = pools.max_and_index(x, (4,), (4,))
    assert np.isnan(best).all()
    np.testing.assert_array_equal(idx.ravel(), [1, 0, 1])
    out = windows.select_scatter(x, np.full((3, 1, 1), 7.0, np.float32), (4,), (4,), ((0, 0),))
    np.testing.assert_array_equal(out.reshape(3, 4), [[0, 7, 0, 0], [7, 0, 0, 0], [0, 7, 0, 0]])


@pytest.mark.parametrize("window, stride, padding, dtype, fast", [
    ((2, 2), (2, 2), ((0, 0), (0, 0)), "float32", True),
    ((3,), (4,), ((0, 0),), "float64", True),
    ((2, 2), (1, 2), ((0, 0), (0, 0)), "float32", False),    # overlapping
    ((2, 2), (2, 2), ((0, 1), (0, 0)), "float32", False),    # padded
    ((2, 2), (2, 2), ((0, 0), (0, 0)), "int32", False),
    ((16, 16), (16, 16), ((0, 0), (0, 0)), "float32", False),  # 256 taps: no uint8 left for "none"
])
def test_which_pools_take_the_tiled_path(window, stride, padding, dtype, fast):
    assert pools.tiles(window, stride, padding, dtype) is fast


@pytest.mark.parametrize("keep_shape", [(), (1, 1, 1, 3), (2, 3, 3, 1)])
def test_a_broadcast_keep_masks_like_where(keep_shape):
    """where(c, g, 0)'s condition may broadcast to g's shape: scatter masks as that where would."""
    rng = np.random.default_rng(4)
    x = rng.integers(-2, 3, (2, 6, 7, 3)).astype(np.float32)
    g = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    keep = np.asarray(rng.random(keep_shape) < 0.5)
    _, idx = pools.max_and_index(x, (2, 2), (2, 2))
    want = windows.select_scatter_general(x, np.where(keep, g, np.float32(0)), (2, 2), (2, 2), ((0, 0), (0, 0)))
    got = pools.scatter(idx, g, x.shape, (2, 2), (2, 2), keep)
    assert got.tobytes() == want.tobytes()
