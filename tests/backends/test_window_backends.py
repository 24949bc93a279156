"""The window primitives' forward and gradient graphs on every backend: MLIR (named
linalg conv/pooling ops, the grouped-conv generic, select_scatter's two generics) and
Triton (implicit-GEMM conv and pooling kernels) compute what the numpy backend (checked against torch in
tests/autodiff/test_vjp_conv.py) computes, on odd shapes."""
from __future__ import annotations

import numpy as np
import pytest

from nncompiler.autodiff import grad
from nncompiler.backends import get_backend
from nncompiler.backends.mlir.runtime import iree_available
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType

BACKENDS = [pytest.param("mlir", marks=pytest.mark.skipif(not iree_available(), reason="IREE is not installed")),
            "triton"]


def _graph(batch):
    """conv (groups 1 and 2, 2-d and 1-d) -> pools, a loss, and its gradient."""
    b = Builder("windows")
    x = b.argument("x", "input", TensorType("f32", (batch, 7, 6, 4)))
    w1 = b.argument("w1", "param", TensorType("f32", (3, 2, 4, 5)))
    w2 = b.argument("w2", "param", TensorType("f32", (2, 3, 1, 4)))
    s = b.argument("s", "input", TensorType("f32", (batch, 9, 3)))
    w3 = b.argument("w3", "param", TensorType("f32", (3, 3, 2)))
    y1 = b.conv(x, w1, stride=(2, 1), padding=((1, 1), (0, 1)), dilation=(1, 2), groups=1)   # [B, 4, 5, 5]
    y2 = b.conv(x, w2, stride=(1, 2), padding=((0, 1), (1, 1)), dilation=(2, 1), groups=4)   # [B, 6, 3, 4]
    p1 = b.reduce_window(y1, kind="max", window=(2, 2), stride=(1, 2), padding=((0, 1), (1, 0)))
    p2 = b.reduce_window(y2, kind="sum", window=(3, 2), stride=(2, 1), padding=((1, 1), (0, 0)))
    y3 = b.conv(s, w3, stride=(2,), padding=((2, 0),), dilation=(1,), groups=1)              # [B, 5, 2]
    p3 = b.reduce_window(y3, kind="max", window=(2,), stride=(1,), padding=((0, 0),))
    total = lambda v: b.sum(v, axes=tuple(range(len(b.shape(v)))), keepdims=False)  # noqa: E731
    loss = b.add(b.add(total(b.mul(p1, p1)), total(b.tanh(p2))), total(b.mul(p3, p3)))
    return grad(b.build({"loss": loss, "p1": p1, "p2": p2, "p3": p3}), "loss", ["x", "w1", "w2", "s", "w3"])


def _args(batch):
    rng = np.random.default_rng(5)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return {"x": f(batch, 7, 6, 4), "w1": f(3, 2, 4, 5), "w2": f(2, 3, 1, 4), "s": f(batch, 9, 3),
            "w3": f(3, 3, 2)}


def _run(name, graph, args):
    be = get_backend(name)
    out = be.compile(graph)({k: be.to_device(v) for k, v in args.items()})
    return {k: np.asarray(be.to_numpy(v)) for k, v in out.items()}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("backend", BACKENDS)
def test_window_forward_and_gradients_match_numpy(backend, batch):
    g, args = _graph(batch), _args(batch)
    want = _run("numpy", g, args)
    got = _run(backend, g, args)
    assert set(want) == set(got) and {"grad.x", "grad.w1", "grad.w2", "grad.s", "grad.w3"} <= set(want)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-4, err_msg=f"{backend} {k}")
