"""ir/products.py: blocked products against float64 numpy."""
import numpy as np
import pytest

from nncompiler.ir.products import matmul, narrow_product, thin_product


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


@pytest.mark.parametrize("shape_a, shape_b", [((64, 4096), (4096, 10)),    # thin: the reduction in blocks
                                              ((4100, 64), (64, 10)),      # narrow: the rows in blocks
                                              ((64, 10), (10, 4100)),      # wide: the columns in blocks
                                              ((300, 200), (200, 100)),    # none: one sgemm
                                              ((3, 64, 40), (40, 10))])    # stacked: numpy's matmul
@pytest.mark.parametrize("into", ["new", "buffer", "strided buffer"])
def test_matmul_is_a_product_into_any_buffer(shape_a, shape_b, into):
    rng = np.random.default_rng(3)
    a = rng.standard_normal(shape_a).astype(np.float32)
    b = rng.standard_normal(shape_b).astype(np.float32)
    want = a.astype(np.float64) @ b.astype(np.float64)
    if into == "new":
        got = matmul(a, b)
    else:
        out = np.full(want.shape[::-1], np.nan, np.float32).T if into == "strided buffer" else \
            np.full(want.shape, np.nan, np.float32)
        got = matmul(a, b, out)
        assert got is out
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
