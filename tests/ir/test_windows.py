"""ir/windows.py's helpers on their own, against float64 numpy."""
import numpy as np
import pytest

from nncompiler.ir.windows import narrow_product, thin_product


@pytest.mark.parametrize("k, m, n", [(4224, 27, 32),     # blocks of 256 rows and a 128-row remainder
                                     (4096, 27, 32),     # blocks only
                                     (1000, 27, 32),     # too few rows to block: one sgemm
                                     (8192, 64, 64)])    # M*N too large to block: one sgemm
def test_thin_product_is_a_transposed_product(k, m, n):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    got = thin_product(a, b)
    assert got.dtype == np.float32 and got.shape == (m, n)
    want = a.astype(np.float64).T @ b.astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(k))


def test_thin_product_reads_strided_operands():
    """The few-outputs conv hands it views (a transposed kernel, a column slice)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2048, 40)).astype(np.float32)[:, ::2]
    b = rng.standard_normal((16, 2048)).astype(np.float32).T
    want = a.astype(np.float64).T @ b.astype(np.float64)
    np.testing.assert_allclose(thin_product(a, b), want, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("r, k, n", [(4224, 27, 32),     # blocks of 256 rows and a 128-row remainder
                                     (1024, 27, 32),     # blocks only
                                     (1000, 27, 32),     # too few rows to block: one sgemm
                                     (4096, 64, 64)])    # w too large to block: one sgemm
def test_narrow_product_is_a_product(r, k, n):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((r, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    got = narrow_product(a, w)
    assert got.dtype == np.float32 and got.shape == (r, n)
    np.testing.assert_allclose(got, a.astype(np.float64) @ w.astype(np.float64), rtol=1e-4, atol=1e-4)
