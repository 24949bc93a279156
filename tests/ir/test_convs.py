"""ir/convs.py's layouts against float64 torch: the scatter layout (the input gradient's conv,
gathered per box of outputs that read the same taps), and the columns in both memory orders
with the kernel gradient that reads them, which must be the very array the few-outputs conv
builds on its own; the epilogue (bias, floor) in chunks of rows."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nncompiler.ir import convs


def _torch_conv(x, w, stride, padding, dilation):
    """float64 torch of conv(x [N, *S, C], w [*K, C, F]) as float32."""
    n = x.ndim - 2
    tx = torch.from_numpy(x.astype(np.float64)).permute(0, n + 1, *range(1, n + 1))
    tw = torch.from_numpy(w.astype(np.float64)).permute(n + 1, n, *range(n))
    flat = [v for lo_hi in reversed(padding) for v in lo_hi]
    y = (F.conv1d if n == 1 else F.conv2d)(F.pad(tx, flat), tw, stride=stride, dilation=dilation)
    return y.permute(0, *range(2, n + 2), 1).numpy()


SCATTERS = [  # x shape, kernel shape, padding, dilation (stride 1, fewer filters than channels)
    ((3, 7, 6, 5), (3, 3, 5, 2), ((1, 1), (1, 1)), (1, 1)),        # same padding
    ((3, 7, 6, 5), (3, 2, 5, 2), ((2, 0), (1, 1)), (2, 1)),        # dilation, asymmetric padding
    ((3, 5, 4, 4), (2, 2, 4, 3), ((3, 2), (0, 4)), (1, 1)),        # padding wider than the kernel: outputs with no tap
    ((3, 11, 6), (5, 6, 2), ((4, 1),), (2,)),                      # 1-d
    ((1, 6, 6, 8), (3, 3, 8, 4), ((1, 1), (1, 1)), (1, 1)),        # batch 1
]


@pytest.mark.parametrize("xs, ws, padding, dilation", SCATTERS)
def test_scatter_layout_matches_torch(xs, ws, padding, dilation):
    n = len(xs) - 2
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    stride = (1,) * n
    outs = convs._conv_outputs(x, ws[:n], stride, padding, dilation)
    assert convs.conv_layout(ws[:n], outs, ws[-2], ws[-1], stride) == "scatter"
    got = convs.conv(x, w, stride, padding, dilation, 1)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _torch_conv(x, w, stride, padding, dilation), rtol=1e-5, atol=1e-5)


def test_tap_segments_cut_where_a_tap_enters_or_leaves():
    # 3 taps, same padding on 5 positions: the first output lacks tap 0, the last tap 2
    assert convs._tap_segments(5, 5, 3, 1, 1) == [(0, 1, 1, 3), (1, 4, 0, 3), (4, 5, 0, 2)]
    # padding 3 before a 2-tap window on 2 positions: outputs 0 and 1 read nothing, 2..4 one tap each
    assert convs._tap_segments(2, 5, 2, 3, 1) == [(0, 2, 0, 0), (2, 3, 1, 2), (3, 4, 0, 2), (4, 5, 0, 1)]


PLANARS = [  # x shape, kernel shape, stride, padding, dilation: few channels, long output rows
    ((3, 9, 20, 2), (3, 3, 2, 4), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    ((2, 9, 21, 1), (2, 3, 1, 3), (2, 1), ((0, 1), (2, 0)), (1, 2)),     # stride 2 down, dilation 2 across
    ((2, 30, 1), (5, 1, 3), (1,), ((2, 2),), (1,)),                      # 1-d
    ((1, 40, 3), (3, 3, 5), (1,), ((0, 0),), (3,)),                      # 1-d, batch 1, dilation 3
]
ROWS = [  # many channels: row-ordered columns
    ((3, 7, 6, 8), (3, 3, 8, 4), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    ((3, 9, 8, 9), (3, 2, 9, 6), (2, 1), ((0, 1), (2, 0)), (1, 2)),      # stride, dilation, odd padding
    ((3, 12, 6), (4, 6, 7), (2,), ((1, 2),), (1,)),                      # 1-d
    ((1, 6, 5, 8), (2, 2, 8, 3), (1, 1), ((0, 0), (0, 0)), (1, 1)),      # batch 1
]


def _kernel_gradient_both_ways(x, w, stride, padding, dilation, cols, g):
    """The kernel gradient as the VJP writes it (autodiff/vjp.py's _conv): a conv of x^T with g^T,
    stride and dilation swapped; the interpreter computes it on its own, the backend from the
    forward's columns: (alone, from the columns, as [*K, C, F])."""
    n = x.ndim - 2
    xt = x.transpose((n + 1,) + tuple(range(1, n + 1)) + (0,))
    gt = g.transpose(tuple(range(1, n + 1)) + (0, n + 1))
    alone = convs.conv(xt, gt, dilation, padding, stride, 1)
    # codegen pairs them only where that conv's outputs are the forward's window (not cropped)
    shared = convs.conv_from_cols(cols, gt, alone.shape) if alone.shape[1:-1] == w.shape[:n] else alone
    dw = np.moveaxis(alone[(slice(None),) + tuple(slice(0, k) for k in w.shape[:n])], 0, n)
    return alone, shared, dw


def _torch_kernel_gradient(x, w, stride, padding, dilation, g):
    n = x.ndim - 2
    tx = torch.from_numpy(x.astype(np.float64)).permute(0, n + 1, *range(1, n + 1))
    tw = torch.from_numpy(w.astype(np.float64)).permute(n + 1, n, *range(n)).requires_grad_(True)
    flat = [v for lo_hi in reversed(padding) for v in lo_hi]
    ty = (F.conv1d if n == 1 else F.conv2d)(F.pad(tx, flat), tw, stride=stride, dilation=dilation)
    (ty.permute(0, *range(2, n + 2), 1) * torch.from_numpy(g.astype(np.float64))).sum().backward()
    return tw.grad.permute(*range(2, n + 2), 1, 0).numpy()


@pytest.mark.parametrize("xs, ws, stride, padding, dilation", PLANARS + ROWS)
def test_columns_give_torch_and_the_kernel_gradient_reads_the_same_ones(xs, ws, stride, padding, dilation):
    n = len(xs) - 2
    outs = convs._conv_outputs(np.empty(xs), ws[:n], stride, padding, dilation)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    y, cols = convs.conv_and_cols(x, w, stride, padding, dilation)
    if (xs, ws, stride, padding, dilation) in PLANARS:    # planar: a transposed [K*C, N*O], whole
        assert not cols.flags.c_contiguous and cols.T.flags.c_contiguous
    else:
        assert cols.flags.c_contiguous and cols.shape == (xs[0] * np.prod(outs), np.prod(ws[:-1]))
    np.testing.assert_allclose(y, _torch_conv(x, w, stride, padding, dilation), rtol=1e-5, atol=1e-5)

    g = rng.standard_normal(y.shape).astype(np.float32)
    alone, shared, dw = _kernel_gradient_both_ways(x, w, stride, padding, dilation, cols, g)
    np.testing.assert_array_equal(shared, alone)
    np.testing.assert_allclose(dw, _torch_kernel_gradient(x, w, stride, padding, dilation, g), rtol=1e-4, atol=1e-4)


def test_bench_f_convs_take_planar_then_row_columns():
    """bench F's first conv (C = 3: runs of 3 * 3 floats against output rows of 32) and its
    second (C = 32: runs of 3 * 32 against rows of 16)."""
    same = ((1, 1), (1, 1))
    _, cols = convs.conv_and_cols(np.ones((2, 32, 32, 3), np.float32), np.ones((3, 3, 3, 4), np.float32),
                                  (1, 1), same, (1, 1))
    assert cols.T.flags.c_contiguous
    _, cols = convs.conv_and_cols(np.ones((2, 16, 16, 32), np.float32), np.ones((3, 3, 32, 4), np.float32),
                                  (1, 1), same, (1, 1))
    assert cols.flags.c_contiguous and cols.shape == (2 * 16 * 16, 9 * 32)


def test_row_chunks_leave_no_remainder_that_narrow_product_would_not_block():
    assert list(convs._row_chunks(100)) == [(0, 100)]
    assert list(convs._row_chunks(65536)) == [(r, r + 8192) for r in range(0, 65536, 8192)]
    assert list(convs._row_chunks(8192 + 1023)) == [(0, 9215)]
    assert list(convs._row_chunks(8192 + 1024)) == [(0, 8192), (8192, 9216)]


@pytest.mark.parametrize("xs, ws", [((3, 16, 40, 3), (3, 3, 3, 4)),    # planar, blocked: a product per chunk
                                    ((2, 12, 20, 6), (3, 3, 6, 20))])  # rows, one sgemm, then the chunks
@pytest.mark.parametrize("bias, floor", [(True, 0.0), (True, None), (False, -0.5)])
def test_epilogue_in_row_chunks_is_the_add_and_maximum_apart(monkeypatch, xs, ws, bias, floor):
    monkeypatch.setattr(convs, "Y_ROWS", 256)        # 1920 and 480 rows: several chunks, the last one longer
    rng = np.random.default_rng(2)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[-1]).astype(np.float32) if bias else None
    fl = None if floor is None else np.float32(floor)
    same = ((1, 1), (1, 1))
    y = convs.conv_and_cols(x, w, (1, 1), same, (1, 1))[0]
    want = y.copy()
    if b is not None:
        want = want + b
    if fl is not None:
        want = np.maximum(want, fl)
    for got in (convs.conv_and_cols(x, w, (1, 1), same, (1, 1), b, fl)[0],
                convs.conv(x, w, (1, 1), same, (1, 1), 1, b, fl)):
        np.testing.assert_array_equal(got, want)
    ref = _torch_conv(x, w, (1, 1), same, (1, 1)) + (0 if b is None else b)
    np.testing.assert_allclose(want, ref if fl is None else np.maximum(ref, fl), rtol=1e-5, atol=1e-5)
