"""tests/conftest.py chooses Triton's interpreter for the whole session on a machine without a
CUDA GPU, before any test module imports triton. In a full run every module is collected
before the first test runs, so by now test_gpu_check.py's `importorskip("triton")` (which
once imported triton without the interpreter and broke the backend tests collected after
it) has already happened: this test holds whatever order the modules came in."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU runs the kernels for real")


def test_triton_was_imported_for_its_interpreter():
    from nncompiler.backends.triton.interpreter import interpreter_active
    assert interpreter_active()


def test_the_triton_backend_runs_a_graph_in_the_interpreter():
    import nncompiler as nnc
    m = nnc.compile("graph G {\n    input x: f32[3, 4]\n    output exp(x) * 2.0 + 1.0\n}\n", backend="triton")
    x = np.linspace(-2.0, 2.0, 12, dtype=np.float32).reshape(3, 4)
    got = m.forward(x=x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.exp(x.astype(np.float64)) * 2.0 + 1.0, rtol=1e-6)
