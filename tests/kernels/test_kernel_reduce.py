"""kernels/reduce.py on its own: PERSISTENT (softmax rows in one tile) and LOOPED (column sums
over a long axis) rendered by hand, run, checked against torch."""
import torch

from kernel_testlib import device, indent, load
from nncompiler.kernels.reduce import LOOPED, PERSISTENT


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
        "RBLOCK: tl.constexpr", header="    # y = sum(x, axis=0), x row-major [rows, cols]",
        xnumel="cols", rnumel="rows",
        pre=indent(["acc = tl.zeros([XBLOCK, RBLOCK], dtype=tl.float32)"]),
        loop=indent(["acc += tl.load(x_ptr + rindex * cols + xindex, mask=xmask & rmask, other=0.0)"], 2),
        post=indent(["tl.store(y_ptr + xindex, tl.sum(acc, 1)[:, None], mask=xmask)"]))
    kernel = load(tmp_path, text, "colsum")
    x = torch.randn(1000, 3, dtype=torch.float32, device=device())
    y = torch.full((3,), float("nan"), dtype=torch.float32, device=device())
    kernel[(1,)](x, y, 1000, 3, XBLOCK=4, RBLOCK=128)                # 8 trips of the loop, the last ragged
    torch.testing.assert_close(y, x.sum(0), rtol=1e-5, atol=1e-5)
