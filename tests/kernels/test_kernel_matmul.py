"""kernels/matmul.py on its own: MATMUL rendered by hand with a transposed operand read through
its strides, a bias + relu epilogue and the column sums of B, run, checked against torch -- with
one program per tile, in grouped order, and split over K (the last split to arrive sums the
partials and runs the epilogue); and with both operands read through TMA tensor descriptors
(TMA_OR_POINTERS), the transposed one loaded in its stored layout and transposed in registers."""
import pytest
import torch

from kernel_testlib import device, indent, load
from nncompiler.kernels.matmul import (DOT_FLOAT, DOT_INT, LOAD_A, LOAD_B, MATMUL, TMA_DESCRIPTORS,
                                      TMA_OR_POINTERS)

BLOCKS = ("BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, "
          "SPLIT_K: tl.constexpr, GROUP_M: tl.constexpr, TMA: tl.constexpr")


def _render(name, dot, acc_dtype, other, tma=False):
    load_a = LOAD_A.render(sm="K", sk="1", other=other)
    load_b = LOAD_B.render(sk="1", sn="K", other=other)            # B = bt.T: element (k, n) at n*K + k
    descriptors = ""
    if tma:     # A as stored ([M, K], rows); B = bt.T read as bt ([N, K]) and transposed
        load_a = TMA_OR_POINTERS.render(var="a", tma="a_desc.load([pid_m * BLOCK_M, kb * BLOCK_K])",
                                        pointers=indent(load_a.splitlines()))
        load_b = TMA_OR_POINTERS.render(var="b", tma="tl.trans(b_desc.load([pid_n * BLOCK_N, kb * BLOCK_K]))",
                                        pointers=indent(load_b.splitlines()))
        descriptors = indent(TMA_DESCRIPTORS.render(lines=indent([
            "a_desc = tl.make_tensor_descriptor(a_base, shape=[M, K], strides=[K, 1], block_shape=[BLOCK_M, BLOCK_K])",
            "b_desc = tl.make_tensor_descriptor(b_base, shape=[N, K], strides=[K, 1], block_shape=[BLOCK_N, BLOCK_K])",
        ])).splitlines())
    return MATMUL.render(
        decorator="@triton.jit", name=name,
        params="a_ptr, bt_ptr, bias_ptr, c_ptr, cs_ptr, ws_ptr, lock_ptr, M, N, K, " + BLOCKS,
        header="    # c = relu(a @ bt.T + bias); cs = column sums of bt.T", M="M", N="N", K="K", top="",
        a_base="a_ptr", b_base="bt_ptr", acc_dtype=acc_dtype, descriptors=descriptors,
        load_a=indent(load_a.splitlines(), 2), load_b=indent(load_b.splitlines(), 2), dot=dot,
        colsum_init=indent([f"cs = tl.zeros([BLOCK_N], dtype={acc_dtype})"]),
        colsum=indent(["cs += tl.sum(b, 0)"], 2),
        ws_extra=" + BLOCK_N",
        split_store=indent(["tl.store(ws_mine + BLOCK_M * BLOCK_N + tl.arange(0, BLOCK_N), cs)"], 2),
        split_sum=indent(["cs += tl.load(ws_s + BLOCK_M * BLOCK_N + tl.arange(0, BLOCK_N), mask=tl.arange(0, BLOCK_N) * 0 + theirs != 0, other=0.0)"], 3),
        epilogue=indent(["bias = tl.load(bias_ptr + i_n, mask=nmask, other=0)",
                         "out = tl.maximum(acc + bias, 0)",
                         "tl.store(c_ptr + pid_b * M * N + i_m * N + i_n, out, mask=mmask & nmask)",
                         "if pid_m == 0:                       # every row of tiles sums the same columns",
                         "    tl.store(cs_ptr + rn, cs, mask=(rn < N) & (rn * 0 + done == SPLIT_K - 1))"]))


def _run(kernel, dtype, M, N, K, block, split, group, tma=0):
    dev = device()
    g = torch.Generator().manual_seed(0)
    if dtype.is_floating_point:
        a, bt, bias = (torch.randn(s, generator=g) for s in ((M, K), (N, K), (N,)))
    else:
        a, bt, bias = (torch.randint(-4, 5, s, generator=g) for s in ((M, K), (N, K), (N,)))
    a, bt, bias = (t.to(dtype).to(dev) for t in (a, bt, bias))
    c = torch.full((M, N), -7, dtype=dtype, device=dev)
    cs = torch.full((N,), -7, dtype=dtype, device=dev)
    tiles = -(-M // block) * -(-N // block)
    ws = torch.full((tiles * split * (block * block + block),), float("nan"), device=dev)
    lock = torch.zeros(tiles, dtype=torch.int32, device=dev)
    for _ in range(2):     # twice: the counters must be back at 0 after a launch
        kernel[(tiles * split,)](a, bt, bias, c, cs, ws, lock, M, N, K, BLOCK_M=block, BLOCK_N=block,
                                 BLOCK_K=16, SPLIT_K=split, GROUP_M=group, TMA=tma)
        assert not lock.any()
    return a, bt, bias, c, cs


@pytest.mark.parametrize("dtype,dot,acc,other", [
    (torch.float32, DOT_FLOAT, "tl.float32", "0.0"),
    (torch.int32, DOT_INT, "tl.int32", "0"),
], ids=["f32", "i32"])
def test_matmul_with_strided_operand_epilogue_and_column_sums(tmp_path, dtype, dot, acc, other):
    kernel = load(tmp_path, _render(f"mm_{acc[3:]}", dot, acc, other), f"mm_{acc[3:]}")
    M, N, K = 37, 21, 45                                          # ragged in every tile dimension
    a, bt, bias, c, cs = _run(kernel, dtype, M, N, K, 16, 1, 8)
    want = torch.relu(a.double() @ bt.double().T + bias.double())
    if dtype.is_floating_point:
        torch.testing.assert_close(c.double(), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cs.double(), bt.double().sum(1), rtol=1e-5, atol=1e-5)
    else:
        assert torch.equal(c.long(), want.long()) and torch.equal(cs.long(), bt.long().sum(1))


@pytest.mark.parametrize("split,group", [(3, 2), (4, 1), (7, 3)])
def test_split_k_and_grouped_order_match_torch_on_odd_shapes(tmp_path, split, group):
    # 53 x 35 output in 16 x 16 tiles (4 x 3), grouped by `group` tile rows; K = 83 in 16-wide
    # blocks (6) split `split` ways -- 7 ways leaves a split with no K block at all
    kernel = load(tmp_path, _render("mm_split", DOT_FLOAT, "tl.float32", "0.0"), "mm_split")
    M, N, K = 53, 35, 83
    a, bt, bias, c, cs = _run(kernel, torch.float32, M, N, K, 16, split, group)
    torch.testing.assert_close(c.double(), torch.relu(a.double() @ bt.double().T + bias.double()),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cs.double(), bt.double().sum(1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("split,tma", [(1, 1), (3, 1), (3, 0)])
def test_operands_through_tensor_descriptors_match_torch(tmp_path, split, tma):
    # K = 44 floats: rows 176 bytes apart, a multiple of 16 as a descriptor needs; M and N ragged
    # (the descriptor zero-fills the tile past the edge); TMA=0 is the same source's pointer path
    kernel = load(tmp_path, _render("mm_tma", DOT_FLOAT, "tl.float32", "0.0", tma=True), "mm_tma")
    M, N, K = 37, 21, 44
    a, bt, bias, c, cs = _run(kernel, torch.float32, M, N, K, 16, split, 2, tma=tma)
    torch.testing.assert_close(c.double(), torch.relu(a.double() @ bt.double().T + bias.double()),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cs.double(), bt.double().sum(1), rtol=1e-5, atol=1e-5)
