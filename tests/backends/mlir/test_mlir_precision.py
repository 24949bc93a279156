"""Precision modes on the mlir backend: the emitted matmuls read operands rounded by the
same integer arithmetic as numpy's (nncompiler/precision.py), so IREE's results match numpy's
in each mode to fp32's tolerance (rtol 1e-4, atol 1e-5), and differ from fp32's."""
from __future__ import annotations

import numpy as np
import pytest

import nncompiler as nnc

from mlir_testlib import example_path, requires_iree

RTOL, ATOL = 1e-4, 1e-5


def test_rounding_is_emitted_only_in_reduced_modes():
    texts = {p: nnc.compile(example_path("iris"), backend="mlir", precision=p).backend.emit(
        nnc.compile(example_path("iris"), precision=p).graph("train_step")) for p in ("fp32", "tf32", "bf16")}
    assert "rounded to" not in texts["fp32"]
    matmuls = texts["bf16"].count("linalg.matmul")
    assert matmuls and texts["bf16"].count("matmul operand rounded to bf16") == 2 * matmuls
    assert "arith.constant -65536 : i32" in texts["bf16"] and "arith.constant -8192 : i32" in texts["tf32"]


@requires_iree
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_iris_matches_numpy_in_mode(precision):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = rng.integers(0, 3, 40).astype(np.int32)
    lm, gm = nnc.compile(example_path("iris"), backend="mlir", precision=precision).loss_and_grads(x=x, y=y)
    ln, gn = nnc.compile(example_path("iris"), precision=precision).loss_and_grads(x=x, y=y)
    l32 = nnc.compile(example_path("iris")).loss_and_grads(x=x, y=y)[0]
    assert lm == pytest.approx(ln, rel=RTOL) and lm != pytest.approx(l32, rel=1e-7)
    for k in gn:
        np.testing.assert_allclose(np.asarray(gm[k]), gn[k], rtol=RTOL, atol=ATOL, err_msg=k)
