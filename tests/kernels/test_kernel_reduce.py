"""kernels/reduce.py on its own: PERSISTENT (softmax rows in one tile) and LOOPED (column sums
over a long axis) rendered by hand, run, checked against torch."""
import torch

from kernel_testlib import device, indent, load
from nncompiler.kernels.reduce import LOOPED, PERSISTENT, SPLIT_FINISH


def test_persistent_softmax_over_ragged_rows_and_columns(tmp_path):
    text = PERSISTENT.render(
        decorator="@triton.jit", name="softmax", params="x_ptr, y_ptr, rows, cols, XBLOCK: tl.constexpr, "
        "RBLOCK: tl.constexpr", header="    # y = softmax(x, axis=1)", xnumel="rows", rnumel="cols",
        body=indent(["m = xmask & rmask",
                     "x = tl.where(rmask, tl.load(x_ptr + xindex * cols + rindex, mask=m, other=0.0), float('-inf'))",
                     "e = tl.exp(x - tl.max(x, 1)[:, None])",
                     "e = tl.where(rmask, e, 0.0)",
                     "tl.store(y_ptr + xindex * cols + rindex, e / tl.sum(e, 1)[:, None], mask=m)"]))
    kernel = load(tmp_path, text, "softmax")
    x = torch.randn(37, 10, dtype=torch.float32, device=device()) * 4
    y = torch.empty_like(x)
    kernel[(-(-37 // 8),)](x, y, 37, 10, XBLOCK=8, RBLOCK=16)        # 5 row blocks, 6 masked columns
    torch.testing.assert_close(y, torch.softmax(x, 1), rtol=1e-6, atol=1e-7)


def test_looped_column_sums_over_many_row_tiles(tmp_path):
    text = LOOPED.render(
        decorator="@triton.jit", name="colsum", params="x_ptr, y_ptr, rows, cols, XBLOCK: tl.constexpr, "
        "RBLOCK: tl.constexpr, SPLIT_R: tl.constexpr", header="    # y = sum(x, axis=0), x row-major [rows, cols]",
        xnumel="cols", rnumel="rows", split="",
        pre=indent(["acc = tl.zeros([XBLOCK, RBLOCK], dtype=tl.float32)"]),
        loop=indent(["acc += tl.load(x_ptr + rindex * cols + xindex, mask=xmask & rmask, other=0.0)"], 2),
        post=indent(["tl.store(y_ptr + xindex, tl.sum(acc, 1)[:, None], mask=xmask)"]))
    kernel = load(tmp_path, text, "colsum")
    x = torch.randn(1000, 3, dtype=torch.float32, device=device())
    y = torch.full((3,), float("nan"), dtype=torch.float32, device=device())
    kernel[(1,)](x, y, 1000, 3, XBLOCK=4, RBLOCK=128, SPLIT_R=1)               # 8 trips of the loop, the last ragged
    torch.testing.assert_close(y, x.sum(0), rtol=1e-5, atol=1e-5)


def _split_colsum_max(tmp_path):
    """sum and max over axis 0 of x [rows, cols], split over SPLIT_R programs per row block."""
    split = SPLIT_FINISH.render(
        naccs="2",
        split_store=indent(["tl.store(ws_mine + r_xr, acc)",
                            "tl.store(ws_mine + XBLOCK * RBLOCK + r_xr, accm)"], 2),
        split_init=indent(["acc = tl.full([XBLOCK, RBLOCK], 0.0, tl.float32)",
                           "accm = tl.full([XBLOCK, RBLOCK], float('-inf'), tl.float32)"], 2),
        split_sum=indent(["acc = acc + tl.load(ws_s + r_xr, mask=last_xr, other=0.0)",
                          "accm = tl.maximum(accm, tl.load(ws_s + XBLOCK * RBLOCK + r_xr, mask=last_xr, "
                          "other=float('-inf')))"], 3))
    text = LOOPED.render(
        decorator="@triton.jit", name="split_colsum",
        params="x_ptr, y_ptr, z_ptr, rows, cols, ws_ptr, lock_ptr, XBLOCK: tl.constexpr, RBLOCK: tl.constexpr, "
        "SPLIT_R: tl.constexpr", header="    # y = sum(x, 0) / rows, z = max(x, 0)",
        xnumel="cols", rnumel="rows", split=split.rstrip("\n"),
        pre=indent(["acc = tl.zeros([XBLOCK, RBLOCK], dtype=tl.float32)",
                    "accm = tl.full([XBLOCK, RBLOCK], float('-inf'), tl.float32)"]),
        loop=indent(["v = tl.load(x_ptr + rindex * cols + xindex, mask=xmask & rmask, other=0.0)",
                     "acc += v",
                     "accm = tl.maximum(accm, tl.where(xmask & rmask, v, float('-inf')))"], 2),
        post=indent(["tl.store(y_ptr + xindex, tl.sum(acc, 1)[:, None] / rows, mask=xmask)",
                     "tl.store(z_ptr + xindex, tl.max(accm, 1)[:, None], mask=xmask)"]))
    return load(tmp_path, text, "split_colsum")


def test_split_reduction_two_stage_matches_numpy(tmp_path):
    """Split over 7 programs per row block (an empty split included: 5 row blocks of 16),
    rows not divisible by the split, columns ragged; run twice: the counters reset, the
    result is bit-identical (deterministic finish)."""
    import numpy as np
    kernel = _split_colsum_max(tmp_path)
    rows, cols, XB, RB, S = 77, 5, 4, 16, 7
    x = torch.randn(rows, cols, dtype=torch.float32, device=device())
    nrow = -(-cols // XB)
    ws = torch.zeros(nrow * S * XB * RB * 2, dtype=torch.float32, device=device())
    locks = torch.zeros(nrow, dtype=torch.int32, device=device())
    outs = []
    for _ in range(2):
        y = torch.full((cols,), float("nan"), dtype=torch.float32, device=device())
        z = torch.full((cols,), float("nan"), dtype=torch.float32, device=device())
        kernel[(nrow * S,)](x, y, z, rows, cols, ws, locks, XBLOCK=XB, RBLOCK=RB, SPLIT_R=S)
        xn = x.cpu().numpy().astype(np.float64)
        np.testing.assert_allclose(y.cpu().numpy(), xn.sum(0) / rows, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(z.cpu().numpy(), xn.max(0).astype(np.float32))
        assert int(locks.sum()) == 0
        outs.append(y.clone())
    assert torch.equal(outs[0], outs[1])
