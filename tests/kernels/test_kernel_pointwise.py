"""kernels/pointwise.py on its own: POINTWISE and COMBO rendered by hand, run, checked against torch."""
import torch

from kernel_testlib import device, indent, load
from nncompiler.kernels.pointwise import COMBO, COMBO_SEGMENT, POINTWISE


def test_pointwise_covers_a_ragged_last_block(tmp_path):
    text = POINTWISE.render(
        decorator="@triton.jit", name="axpb", params="x_ptr, y_ptr, n, XBLOCK: tl.constexpr",
        header="    # y = x * 2 + 1", xnumel="n",
        body=indent(["x = tl.load(x_ptr + xindex, mask=xmask, other=0.0)",
                     "tl.store(y_ptr + xindex, x * 2.0 + 1.0, mask=xmask)"]))
    kernel = load(tmp_path, text, "axpb")
    x = torch.randn(1000, dtype=torch.float32, device=device())
    y = torch.full_like(x, float("nan"))
    kernel[(triton_cdiv(1000, 128),)](x, y, 1000, XBLOCK=128)          # 8 blocks, the last one 104 wide
    assert not torch.isnan(y).any()
    torch.testing.assert_close(y, x * 2 + 1, rtol=0, atol=0)


def test_combo_runs_each_segment_on_its_own_blocks(tmp_path):
    # two independent updates in one launch: p -= 0.1 * g over 300 elements, q = q * 0.5 over 70
    segs = [COMBO_SEGMENT.render(
                keyword="if", end="nb1", first="pid", k=0, what="[300] -> p", sfx="_s0", xnumel="n0",
                body=indent(["p = tl.load(p_ptr + xindex_s0, mask=xmask_s0)",
                             "g = tl.load(g_ptr + xindex_s0, mask=xmask_s0)",
                             "tl.store(p_ptr + xindex_s0, p - 0.1 * g, mask=xmask_s0)"], 2)),
            COMBO_SEGMENT.render(
                keyword="elif", end="nb2", first="(pid - nb1)", k=1, what="[70] -> q", sfx="_s1", xnumel="n1",
                body=indent(["q = tl.load(q_ptr + xindex_s1, mask=xmask_s1)",
                             "tl.store(q_ptr + xindex_s1, q * 0.5, mask=xmask_s1)"], 2))]
    text = COMBO.render(decorator="@triton.jit", name="combo",
                        params="p_ptr, g_ptr, q_ptr, n0, n1, nb1, nb2, XBLOCK: tl.constexpr",
                        header="    # two segments", top="", segments="\n".join(segs))
    kernel = load(tmp_path, text, "combo")
    dev = device()
    p, g, q = (torch.randn(n, dtype=torch.float32, device=dev) for n in (300, 300, 70))
    want_p, want_q = p - 0.1 * g, q * 0.5
    nb1 = triton_cdiv(300, 64)
    nb2 = nb1 + triton_cdiv(70, 64)
    kernel[(nb2,)](p, g, q, 300, 70, nb1, nb2, XBLOCK=64)
    torch.testing.assert_close(p, want_p)
    torch.testing.assert_close(q, want_q, rtol=0, atol=0)


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)
