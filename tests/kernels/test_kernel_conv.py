"""kernels/conv.py on its own: a 1-d convolution as an implicit GEMM, its ROWS, LOAD_A and LOAD_B
rendered by hand into matmul.py's MATMUL with a bias + relu epilogue -- stride, asymmetric
padding, dilation and an input dilated by 2 (the input gradient's folded pad), unsplit and split
over K -- run, and checked against torch's conv1d of the explicitly dilated, padded input."""
import pytest
import torch
import torch.nn.functional as F

from kernel_testlib import device, indent, load
from nncompiler.kernels.conv import LOAD_A, LOAD_B, ROWS
from nncompiler.kernels.matmul import DOT_FLOAT, MATMUL

BLOCKS = ("BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, "
          "SPLIT_K: tl.constexpr, GROUP_M: tl.constexpr, TMA: tl.constexpr")
# x [N, L, C], kernel [KW, C, F], y [N, O, F]; input position p = o * S + t * DIL - OFF, an element
# of x where p % LHS == 0 and 0 <= p // LHS < L
N, L, C, KW, F_, S, DIL, LHS, LO, HI = 3, 6, 3, 3, 5, 2, 2, 2, 2, 1


def _out_len():
    span = (L - 1) * LHS + 1 + LO + HI
    return (span - ((KW - 1) * DIL + 1)) // S + 1


def _render(name):
    O_ = _out_len()
    rows = ROWS.render(rows="\n".join([f"o_n = rm // {O_}", f"o_0 = rm % {O_}", f"h_0 = o_0 * {S} - {LO}",
                                       f"x_row = o_n * {L * C}"]))
    load_a = LOAD_A.render(columns=f"t_0 = kk // {C}\nc_in = kk % {C}",
                           positions=f"p_0 = h_0[:, None] + t_0[None, :] * {DIL}",
                           address=f"x_row[:, None] + (p_0 // {LHS}) * {C} + c_in[None, :]",
                           mask=f" & (p_0 >= 0) & (p_0 % {LHS} == 0) & (p_0 < {(L - 1) * LHS + 1})", other="0.0")
    load_b = LOAD_B.render(address=f"kk[:, None] * {F_} + rn[None, :]", other="0.0")
    return MATMUL.render(
        decorator="@triton.jit", name=name, params="x_ptr, w_ptr, bias_ptr, y_ptr, ws_ptr, lock_ptr, " + BLOCKS,
        header="    # y = relu(conv1d(x, w) + bias), x [N, L, C] dilated by LHS and padded, w [KW, C, F]",
        M=str(N * O_), N=str(F_), K=str(KW * C), top=indent(rows.splitlines()),
        a_base="x_ptr", b_base="w_ptr", acc_dtype="tl.float32", descriptors="",
        load_a=indent(load_a.splitlines(), 2), load_b=indent(load_b.splitlines(), 2), dot=DOT_FLOAT,
        colsum_init="", colsum="", ws_extra="", split_store="", split_sum="",
        epilogue=indent(["bias = tl.load(bias_ptr + i_n, mask=nmask, other=0.0)",
                         "tl.store(y_ptr + i_m * N + i_n, tl.maximum(acc + bias, 0.0), mask=mmask & nmask)"]))


@pytest.mark.parametrize("split", [1, 2])
def test_implicit_gemm_conv_matches_torch_on_a_dilated_padded_input(tmp_path, split):
    kernel = load(tmp_path, _render(f"conv_{split}"), f"conv_{split}")
    dev = device()
    gen = torch.Generator().manual_seed(0)
    x, w, bias = (torch.randn(s, generator=gen) for s in ((N, L, C), (KW, C, F_), (F_,)))
    O_ = _out_len()
    y = torch.full((N, O_, F_), -7.0)
    block = 16
    tiles = -(-(N * O_) // block)
    ws = torch.full((tiles * split * block * block,), float("nan"))
    lock = torch.zeros(tiles, dtype=torch.int32)
    args = [t.to(dev) for t in (x, w, bias, y, ws, lock)]
    # K = 9 in 16-wide blocks is one block: BLOCK_K 8 makes two, so a split of 2 has one each
    kernel[(tiles * split,)](*args, BLOCK_M=block, BLOCK_N=block, BLOCK_K=8, SPLIT_K=split, GROUP_M=8, TMA=0)
    dilated = torch.zeros(N, (L - 1) * LHS + 1, C)
    dilated[:, ::LHS] = x
    want = F.conv1d(F.pad(dilated.movedim(-1, 1), [LO, HI]), w.permute(2, 1, 0), stride=S, dilation=DIL)
    want = torch.relu(want.movedim(1, -1) + bias)
    torch.testing.assert_close(args[3].cpu(), want, rtol=1e-5, atol=1e-5)
    assert not args[5].any()
