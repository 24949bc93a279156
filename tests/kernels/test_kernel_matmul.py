"""kernels/matmul.py on its own: MATMUL rendered by hand with a transposed operand read through
its strides, a bias + relu epilogue and the column sums of B, run, checked against torch."""
import pytest
import torch

from kernel_testlib import device, indent, load
from nncompiler.kernels.matmul import DOT_FLOAT, DOT_INT, MATMUL


def _render(name, dot, acc_dtype, other):
    return MATMUL.render(
        decorator="@triton.jit", name=name,
        params="a_ptr, bt_ptr, bias_ptr, c_ptr, cs_ptr, M, N, K, "
               "BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr",
        header="    # c = relu(a @ bt.T + bias); cs = column sums of bt.T", M="M", N="N", K="K", top="",
        a_base="a_ptr", b_base="bt_ptr", acc_dtype=acc_dtype, other=other,
        a_sm="K", a_sk="1", b_sk="1", b_sn="K",                       # B = bt.T: element (k, n) at n*K + k
        dot=dot,
        colsum_init=indent([f"cs = tl.zeros([BLOCK_N], dtype={acc_dtype})"]),
        colsum=indent(["cs += tl.sum(b, 0)"], 2),
        epilogue=indent(["bias = tl.load(bias_ptr + i_n, mask=nmask, other=0)",
                         "out = tl.maximum(acc + bias, 0)",
                         "tl.store(c_ptr + pid_b * M * N + i_m * N + i_n, out, mask=mmask & nmask)",
                         "if pid_m == 0:                       # every row of tiles sums the same columns",
                         "    tl.store(cs_ptr + rn, cs, mask=rn < N)"]))


@pytest.mark.parametrize("dtype,dot,acc,other", [
    (torch.float32, DOT_FLOAT, "tl.float32", "0.0"),
    (torch.int32, DOT_INT, "tl.int32", "0"),
], ids=["f32", "i32"])
def test_matmul_with_strided_operand_epilogue_and_column_sums(tmp_path, dtype, dot, acc, other):
    kernel = load(tmp_path, _render(f"mm_{acc[3:]}", dot, acc, other), f"mm_{acc[3:]}")
    dev = device()
    g = torch.Generator().manual_seed(0)
    M, N, K = 37, 21, 45                                          # ragged in every tile dimension
    if dtype.is_floating_point:
        a, bt, bias = (torch.randn(s, generator=g) for s in ((M, K), (N, K), (N,)))
    else:
        a, bt, bias = (torch.randint(-4, 5, s, generator=g) for s in ((M, K), (N, K), (N,)))
    a, bt, bias = (t.to(dtype).to(dev) for t in (a, bt, bias))
    c = torch.empty(M, N, dtype=dtype, device=dev)
    cs = torch.empty(N, dtype=dtype, device=dev)
    kernel[(-(-M // 16), -(-N // 16), 1)](a, bt, bias, c, cs, M, N, K, BLOCK_M=16, BLOCK_N=16, BLOCK_K=16)
    want = torch.relu(a.double() @ bt.double().T + bias.double())
    if dtype.is_floating_point:
        torch.testing.assert_close(c.double(), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cs.double(), bt.double().sum(1), rtol=1e-5, atol=1e-5)
    else:
        assert torch.equal(c.long(), want.long()) and torch.equal(cs.long(), bt.long().sum(1))
