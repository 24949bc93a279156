"""Precision modes on the triton backend: parity with numpy in the same mode (under the
interpreter, which emulates the tensor cores' operand rounding exactly), and, without a GPU,
the PTX for sm_90 of the training steps in tf32 and bf16 uses the Hopper tensor cores (`wgmma`).

Tolerances (docs/triton.md): against numpy in the same mode the interpreter meets fp32's
rtol 1e-4 / atol 1e-5 in every mode for the forward pass, loss and gradients; after four
Adam steps bf16 is held to rtol 1e-3 / atol 1e-4 (an operand that float32 summation order
moves across a bfloat16 rounding boundary changes by 2^-8, and Adam's normalisation
carries that into the weights)."""
import functools
import os
import re

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.backends.triton import aot
from nncompiler.backends.triton.cache import write_module
from nncompiler.cli import main

try:
    from tests.backends.triton.test_triton_hopper import MLP
    from tests.backends.triton.test_triton_parity import _data
except ImportError:  # tests/ itself is on sys.path
    from backends.triton.test_triton_hopper import MLP
    from backends.triton.test_triton_parity import _data

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples")
# mode -> (rtol, atol) for forward, loss and gradients; then for parameters after 4 Adam steps
TOL = {"fp32": (1e-4, 1e-5), "tf32": (1e-4, 1e-5), "bf16": (1e-4, 1e-5)}
TOL_FIT = {"fp32": (1e-4, 1e-5), "tf32": (1e-4, 1e-5), "bf16": (1e-3, 1e-4)}


def _pair(name, precision, monkeypatch):
    if name == "residual":                      # dropout: draw numpy's stream for exact parity
        import nncompiler.backends.triton as triton_backend
        monkeypatch.setattr(triton_backend, "Backend", functools.partial(triton_backend.Backend, host_rng=True))
    path = os.path.join(EXAMPLES, f"{name}.nn")
    return nnc.compile(path, backend="triton", precision=precision), nnc.compile(path, precision=precision)


def _check_mode(name, precision, monkeypatch):
    mt, mn = _pair(name, precision, monkeypatch)
    assert mt.precision == mn.precision == precision
    rtol, atol = TOL[precision]
    batch = _data(mn, 16)
    inputs = {k: v for k, v in batch.items() if k in mn.lowered.inputs}
    np.testing.assert_allclose(mt.forward(**inputs), mn.forward(**inputs), rtol=rtol, atol=atol)
    lt, gt = mt.loss_and_grads(**batch)
    ln, gn = mn.loss_and_grads(**batch)
    np.testing.assert_allclose(lt, ln, rtol=rtol)
    for k in gn:
        np.testing.assert_allclose(gt[k], gn[k], rtol=rtol, atol=atol, err_msg=k)
    if precision != "fp32":
        # the mode is honoured: fp32's numbers differ from this mode's by more than the tolerance
        l32, g32 = nnc.compile(os.path.join(EXAMPLES, f"{name}.nn")).loss_and_grads(**batch)
        assert any(not np.allclose(gt[k], g32[k], rtol=rtol, atol=atol) for k in g32) or abs(lt - l32) > rtol * abs(l32)
    mt.fit(epochs=2, batch_size=8, shuffle=False, **batch)       # four optimizer steps
    mn.fit(epochs=2, batch_size=8, shuffle=False, **batch)
    rtol, atol = TOL_FIT[precision]
    if name == "residual":   # batchnorm noise through Adam: see test_triton_parity
        atol = 2 * 0.003 * 4
    for k, v in mn.params.items():
        np.testing.assert_allclose(mt.params[k], v, rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
@pytest.mark.parametrize("name", ["iris", "digits"])
def test_example_matches_numpy_in_mode(name, precision, monkeypatch):
    _check_mode(name, precision, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
@pytest.mark.parametrize("name", ["multilabel", "digits_cnn", "residual"])
def test_larger_example_matches_numpy_in_mode(name, precision, monkeypatch):
    _check_mode(name, precision, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_recurrent_and_graph_examples_match_numpy_in_mode(precision):
    rtol, atol = TOL[precision]
    path = os.path.join(EXAMPLES, "sine_rnn.nn")
    mt, mn = nnc.compile(path, backend="triton", precision=precision), nnc.compile(path, precision=precision)
    batch = _data(mn, 4)
    (lt, gt), (ln, gn) = mt.loss_and_grads(**batch), mn.loss_and_grads(**batch)
    np.testing.assert_allclose(lt, ln, rtol=rtol)
    for k in gn:
        np.testing.assert_allclose(gt[k], gn[k], rtol=rtol, atol=atol, err_msg=k)
    rng = np.random.default_rng(0)
    for name in ("basics", "softmax", "tensors"):
        path = os.path.join(EXAMPLES, f"{name}.nn")
        mt, mn = nnc.compile(path, backend="triton", precision=precision), nnc.compile(path, precision=precision)
        feeds = {k: rng.standard_normal(tuple(d if isinstance(d, int) else 3 for d in t.shape)).astype(np.float32)
                 for k, t in mn.lowered.inputs.items()}
        yt, yn = mt.forward(**feeds), mn.forward(**feeds)
        for a, b in zip(yt if isinstance(yt, tuple) else (yt,), yn if isinstance(yn, tuple) else (yn,)):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)


def test_the_mode_is_in_the_kernel_source_and_so_in_every_cache_key():
    path = os.path.join(EXAMPLES, "iris.nn")
    texts = {p: nnc.compile(path, backend="triton", precision=p).backend.emit(
        nnc.compile(path, backend="triton", precision=p).graph("train_step")) for p in ("fp32", "tf32", "bf16")}
    assert 'input_precision="ieee"' in texts["fp32"] and "_dot_" not in texts["fp32"]
    assert "_dot_tf32(a, b)" in texts["tf32"] and "_dot_bf16(a, b)" in texts["bf16"]
    # the module cache's file names hash the source
    assert len({write_module("g", t).name for t in texts.values()}) == 3


# ---- tensor cores in the PTX, without a GPU -------------------------------------------------------

@pytest.fixture()
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton"))
    return tmp_path / "cache"


def _matmul_ptx(source, precision, first=None, sizes=None):
    """{kernel name: PTX for sm_90} of the matmul kernels (the `first` few) of a training step."""
    m = nnc.compile(source, backend="triton", precision=precision)
    g = m.graph("train_step")
    _, text, kernels = m.backend.generated(g)
    mm = [ks for ks in kernels if ks.kind == "matmul"][:first]
    assert mm
    res = aot.compile_kernels(write_module(g.name, text), mm, aot.parse_target("sm_90"), sizes)
    return {ks.name: res[ks.name]["ptx"] for ks in mm}


def _check_tensor_cores(ptxs: dict, operands: str):
    """Every matmul kernel multiplies on tensor cores with the mode's operand type, and the
    step uses Hopper's wgmma. (A kernel whose tile is under 64 rows or has fewer than 4 warps,
    as the tile table picks for a skinny output, gets the warp-level `mma.sync`: still tensor
    cores, at about half wgmma's rate.)"""
    for kernel, ptx in ptxs.items():
        assert re.search(rf"(wgmma\.mma_async\.sync|mma\.sync)\.aligned\.\w+\.(row\.col\.)?f32\.{operands}", ptx), kernel
    assert sum("wgmma.mma_async.sync.aligned" in ptx for ptx in ptxs.values()) >= len(ptxs) // 2


# ~25 s per mode on two cores (a cold Triton compile of each matmul kernel)
@pytest.mark.slow
@pytest.mark.parametrize("precision,operands", [("tf32", "tf32.tf32"), ("bf16", "bf16.bf16")])
def test_mlp_training_step_uses_wgmma_in_reduced_modes(fresh_cache, precision, operands):
    """The issue's 784-512-512-10 Adam MLP at batch 256: 5 of its 8 matmul kernels use wgmma."""
    _check_tensor_cores(_matmul_ptx(MLP, precision, sizes={"B": 256}), operands)


@pytest.mark.parametrize("precision,operands", [("fp32", None), ("tf32", "tf32.tf32"), ("bf16", "bf16.bf16")])
def test_first_matmul_of_the_mlp_step_per_mode(fresh_cache, precision, operands):
    """The quick form of the check above (one kernel, ~3 s): fp32 (IEEE) has no tensor-core
    instruction, tf32 and bf16 multiply with wgmma."""
    (ptx,) = _matmul_ptx(MLP, precision, first=1, sizes={"B": 256}).values()
    if operands is None:
        assert "wgmma" not in ptx and "mma.sync" not in ptx and "fma.rn.f32" in ptx
    else:
        assert re.search(rf"wgmma\.mma_async\.sync\.aligned\.m64n\d+k\d+\.f32\.{re.escape(operands)}", ptx)


@pytest.mark.slow
def test_cli_ptx_of_the_mlp_in_bf16(fresh_cache, tmp_path, capsys):
    mlp = tmp_path / "mlp.nn"
    mlp.write_text(MLP)
    assert main(["compile", str(mlp), "--backend", "triton", "--precision", "bf16", "--target", "sm_90",
                 "--emit", "ptx"]) == 0
    out = capsys.readouterr().out
    assert ".target sm_90" in out and "wgmma.mma_async.sync.aligned" in out and ".f32.bf16.bf16" in out


# ~15 s on two cores (every kernel of digits' predict and train_step graphs)
@pytest.mark.slow
def test_cli_ptx_of_digits_in_bf16_uses_wgmma(fresh_cache, capsys):
    """The issue's done-when: digits' outputs are at most 64 wide, and at the symbolic batch
    (AOT assumes a large one) the table keeps 64-row, 4-warp tiles in bf16 on sm_90 and fills
    the SMs by splitting K, so the PTX has wgmma (docs/triton.md)."""
    assert main(["compile", os.path.join(EXAMPLES, "digits.nn"), "--backend", "triton", "--precision", "bf16",
                 "--target", "sm_90", "--emit", "ptx"]) == 0
    out = capsys.readouterr().out
    assert ".target sm_90" in out and re.search(r"wgmma\.mma_async\.sync\.aligned\.m64n\d+k16\.f32\.bf16\.bf16", out)
    assert "fma.rn.f32" in out      # the float32 epilogues, reductions and Adam stay float32


@pytest.mark.parametrize("precision,operands", [("tf32", "tf32.tf32"), ("bf16", "bf16.bf16")])
def test_first_matmul_of_digits_uses_wgmma_at_a_symbolic_batch(fresh_cache, precision, operands):
    """The quick form (one kernel, ~3 s): digits' first layer, [B, 64] @ [64, 64], compiled ahead
    of time without a bound batch, multiplies with wgmma in a 64x16 tile."""
    (ptx,) = _matmul_ptx(os.path.join(EXAMPLES, "digits.nn"), precision, first=1).values()
    assert re.search(rf"wgmma\.mma_async\.sync\.aligned\.m64n\d+k\d+\.f32\.{re.escape(operands)}", ptx)
