"""Matmul launch configs for Hopper, checked without a GPU: the shape table's choice (tiles,
warps, stages, split-K) fills an H100's 132 SMs for every matmul of the MLP training step at
batch 256; a batched matmul's batch is flattened onto grid x (axis z stops at 65535); split-K
and the grouped (L2-swizzled) order give torch's numbers through the generated kernels under
TRITON_INTERPRET=1; `--autotune` is accepted and refused clearly without a GPU."""
import os
import types

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.backends import get_backend
from nncompiler.backends.numpy import compile_graph
from nncompiler.backends.triton import tuning
from nncompiler.cli import main
from nncompiler.errors import NNCError
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType as T

from mlp_source import MLP  # noqa: E402  (the tests' directory is on sys.path)


def _mm(M, N, K, batch=1, dtype="f32"):
    return types.SimpleNamespace(kind="matmul", name="mm", info={"M": M, "N": N, "K": K, "batch": batch,
                                                                  "dtype": dtype, "colsums": 0})


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
def test_every_matmul_of_the_mlp_step_fills_an_h100_at_batch_256(precision):
    m = nnc.compile(MLP, backend="triton", precision=precision)
    _, _, kernels = m.backend.generated(m.graph("train_step"))
    rows = [r for r in tuning.launch_table(kernels, {"B": 256}, arch=90) if r["kind"] == "matmul"]
    assert len(rows) == 8 and rows[0]["sms"] == 132
    for r in rows:
        assert r["ctas"] >= 132, r
    # the skinny ones only get there by splitting K: [256, 10] logits and the [512, 10] weight gradient
    assert any(r["blocks"]["SPLIT_K"] > 1 for r in rows)
    text = m.backend.emit_stage(m, "kernels", target="sm_90")
    assert "launches at B=" in text and "132 SMs" in text and "split-K" in text


def test_the_table_gives_large_shapes_big_tiles_and_skinny_ones_split_k():
    blocks, warps, stages = tuning.choose(_mm(4096, 4096, 4096), None, False, sms=132)
    assert (blocks["BLOCK_M"], blocks["BLOCK_N"], warps, stages) == (128, 256, 8, 3)
    assert blocks["SPLIT_K"] == 1 and blocks["GROUP_M"] == 8
    assert (blocks["BLOCK_M"], blocks["BLOCK_N"], blocks["BLOCK_K"], warps, stages) in \
        [(c[0], c[1], c[2], c[3], c[4]) for c in tuning.MM_CONFIGS]
    # one output tile, K = 64 * 4096 (the digits CNN's kernel gradient): split K, never one CTA
    blocks, _, _ = tuning.choose(_mm(64, 64, 64 * 4096), None, False, sms=132)
    tiles = -(-64 // blocks["BLOCK_M"]) * -(-64 // blocks["BLOCK_N"])
    assert tiles * blocks["SPLIT_K"] >= 132
    # K too short to split: smaller tiles instead
    blocks, _, _ = tuning.choose(_mm(256, 512, 10), None, False, sms=132)
    assert blocks["SPLIT_K"] == 1 and -(-256 // blocks["BLOCK_M"]) * -(-512 // blocks["BLOCK_N"]) >= 132
    # integer and f64 matmuls never split (the workspace is float32)
    assert tuning.choose(_mm(64, 64, 1 << 18, dtype="f64"), None, False, sms=132)[0]["SPLIT_K"] == 1
    # the SM count is the target's: an A100 has 108
    assert tuning.sm_count(80) == 108 and tuning.sm_count(90) == 132


def _mm_mode(M, N, K, precision, batch=1):
    ks = _mm(M, N, K, batch)
    ks.info["precision"] = precision
    return ks


# digits' matmuls at a symbolic batch (AOT assumes B = 4096) and its train block's B = 32, and the MLP's
DIGITS_SHAPES = [(4096, 64, 64), (4096, 32, 64), (64, 64, 4096), (4096, 64, 32),
                 (32, 64, 64), (32, 32, 64), (64, 64, 32), (256, 512, 784), (512, 512, 256), (784, 512, 256)]


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_tensor_core_modes_keep_wgmma_tiles_on_hopper(precision):
    """wgmma needs a tile of >= 64 rows and 4 or 8 warps: in tf32/bf16 on sm_90 the table keeps
    such tiles and fills the SMs by splitting K, where smaller tiles would be fp32's choice."""
    for M, N, K in DIGITS_SHAPES:
        blocks, warps, _ = tuning.choose(_mm_mode(M, N, K, precision), None, False, sms=132, arch=90)
        assert blocks["BLOCK_M"] >= 64 and warps in (4, 8), (M, N, K, blocks, warps)
    # digits' second layer at a symbolic batch: fp32 fills the SMs with 32-row tiles, bf16 with a split
    fp32, fw, _ = tuning.choose(_mm_mode(4096, 32, 64, "fp32"), None, False, sms=132, arch=90)
    tc, tw, _ = tuning.choose(_mm_mode(4096, 32, 64, precision), None, False, sms=132, arch=90)
    assert (fp32["BLOCK_M"], fp32["SPLIT_K"], fw) == (32, 1, 2)
    assert (tc["BLOCK_M"], tc["SPLIT_K"], tw) == (64, 2, 4)
    # K too short to split ([256, 512] = [256, 10] @ [10, 512]): smaller tiles fill the SMs (mma.sync)
    blocks, _, _ = tuning.choose(_mm_mode(256, 512, 10, precision), None, False, sms=132, arch=90)
    assert blocks["SPLIT_K"] == 1 and blocks["BLOCK_M"] < 64
    # [64, 32] with a long K: a 64-row tile would need a 66-way split (the cap is 64), so 32x16 tiles
    blocks, _, _ = tuning.choose(_mm_mode(64, 32, 4096, precision), None, False, sms=132, arch=90)
    assert blocks["BLOCK_M"] < 64 and 2 * 2 * blocks["SPLIT_K"] >= 132
    # fp32, and an architecture without wgmma, keep the table as it was
    for M, N, K in DIGITS_SHAPES:
        blocks, warps, stages = tuning.matmul_config(M, N, K, 1, 132, True)
        plain = ({**blocks, "TMA": 0}, warps, stages)        # no operand here qualifies for TMA
        assert tuning.choose(_mm_mode(M, N, K, "fp32"), None, False, sms=132, arch=90) == plain
        assert tuning.choose(_mm_mode(M, N, K, precision), None, False, sms=132, arch=80) == plain


def test_a_batched_matmul_flattens_its_batch_onto_grid_x():
    b = Builder("bmm")
    x = b.argument("x", "input", T("f32", ("B", 4, 8)))
    w = b.argument("w", "param", T("f32", (8, 4)))
    g = b.build({"y": b.matmul(x, w)})
    _, _, (ks,) = get_backend("triton").generated(g)
    grid, _ = tuning.grid(ks, {"B": 100000}, tuning.choose(ks, {"B": 100000}, False, sms=132)[0])
    assert len(grid) == 1 and grid[0] >= 100000         # one axis: z would refuse more than 65535


def _wgrad_graph():
    """A forward matmul with a bias + relu epilogue, and a weight-gradient matmul carrying its bias
    gradient (column sums) and an SGD update: odd sizes everywhere."""
    b = Builder("splitk")
    x = b.argument("x", "input", T("f32", ("B", 37)))
    g = b.argument("g", "input", T("f32", ("B", 29)))
    w = b.argument("w", "param", T("f32", (37, 29)))
    bias = b.argument("bias", "param", T("f32", (29,)))
    y = b.maximum(b.add(b.matmul(x, w), bias), b.scalar(0.0))
    dw = b.matmul(b.transpose(x, perm=(1, 0)), g)
    db = b.sum(g, axes=(0,))
    lr = b.scalar(0.1)
    return b.build({"y": y, "new.w": b.sub(w, b.mul(lr, dw)), "new.bias": b.sub(bias, b.mul(lr, db))})


@pytest.mark.parametrize("split,group", [(1, 2), (3, 2), (5, 1)])
def test_split_k_and_grouped_order_match_numpy_through_generated_kernels(split, group):
    be = get_backend("triton")
    graph = _wgrad_graph()
    cg = be.compile(graph)
    mms = [k for k in cg.kernels.values() if k.kind == "matmul"]
    assert len(mms) == 2 and any("colsum" in k.name for k in mms)
    for k in mms:     # 16 x 16 tiles: several tile rows per group, ragged edges, K split unevenly
        cg.pin(k.name, ({"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "SPLIT_K": split, "GROUP_M": group}, 4, None))
    rng = np.random.default_rng(0)
    args = {"x": rng.standard_normal((51, 37)).astype(np.float32), "g": rng.standard_normal((51, 29)).astype(np.float32),
            "w": rng.standard_normal((37, 29)).astype(np.float32), "bias": rng.standard_normal(29).astype(np.float32)}
    want = compile_graph(graph)(args)
    for _ in range(2):       # the second call reuses the tile counters the first one reset
        got = cg(args)
        for name, v in want.items():
            np.testing.assert_allclose(be.to_numpy(got[name]), v, rtol=1e-4, atol=1e-5, err_msg=name)


def test_split_k_over_a_flattened_batch_matches_numpy():
    # [3, 19, 21] @ [21, 17]: three batches of 2 x 2 tiles, K split 3 ways, all on grid x
    b = Builder("bmm_split")
    x = b.argument("x", "input", T("f32", (3, 19, 21)))
    w = b.argument("w", "param", T("f32", (21, 17)))
    graph = b.build({"y": b.matmul(x, w)})
    be = get_backend("triton")
    cg = be.compile(graph)
    (k,) = cg.kernels.values()
    cg.pin(k.name, ({"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "SPLIT_K": 3, "GROUP_M": 2}, 4, None))
    rng = np.random.default_rng(1)
    args = {"x": rng.standard_normal((3, 19, 21)).astype(np.float32),
            "w": rng.standard_normal((21, 17)).astype(np.float32)}
    np.testing.assert_allclose(be.to_numpy(cg(args)["y"]), compile_graph(graph)(args)["y"], rtol=1e-4, atol=1e-5)


def test_autotune_is_accepted_and_refused_clearly_without_a_gpu(capsys, monkeypatch):
    monkeypatch.setenv("NNC_AUTOTUNE", "0")     # restored after the test: the CLI sets it to 1
    be = get_backend("triton").__class__(autotune=True)
    assert be.autotune
    if be.device == "cuda" and not be.interpret:
        pytest.skip("a GPU is present: --autotune runs")
    with pytest.raises(NNCError, match="--autotune times kernels on a GPU"):
        be.compile(_wgrad_graph())
    linefit = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "linefit.nn")
    assert main(["run", linefit, "--backend", "numpy", "--autotune", "--epochs", "1"]) == 1
    assert "use it with --backend triton" in capsys.readouterr().err
    monkeypatch.setenv("NNC_AUTOTUNE", "0")     # restored after the test: the CLI sets it to 1
    assert main(["run", linefit, "--backend", "triton", "--autotune", "--epochs", "1"]) == 1
    assert "--autotune times kernels on a GPU" in capsys.readouterr().err
