"""sparse_xent (softmax cross-entropy with integer labels) and its fused gradient:
forward and gradient against torch's cross_entropy and float64 finite differences, the
expansion (passes/expand_fused.py, what MLIR and Triton compile) against the fused
numpy rule, and the iris-sized training step's generated numpy code shrinking."""
import os
import sys

import numpy as np
import pytest
import torch

import nncompiler as nnc
from nncompiler.autodiff.vjp import VJP
from nncompiler.backends.numpy import compile_graph
from nncompiler.ir import PRIMITIVES, Builder
from nncompiler.ir.shapes import TensorType
from nncompiler.passes.expand_fused import expand_fused

try:
    from tests.oracle import draw_cotangent_weight, finite_differences, ours, ours_f64
except ImportError:  # tests/ itself is on sys.path
    from oracle import draw_cotangent_weight, finite_differences, ours, ours_f64

rng = np.random.default_rng(0)
I = lambda v: np.asarray(v, np.int32)  # noqa: E741,E731

CASES = [  # (name, logits shape, labels)
    ("batch", (4, 3), I([0, 2, 1, 2])),
    ("batch-1", (1, 5), I([4])),
    ("rank-3", (2, 3, 4), I([[0, 3, 1], [2, 2, 0]])),
    ("one-class", (3, 1), I([0, 0, 0])),
    ("out-of-range", (4, 3), I([-1, 3, 1, 7])),     # rows with no class: loss 0, gradient 0
    ("i64-labels", (2, 3), np.array([1, 0], np.int64)),
]


def torch_xent(z: torch.Tensor, y: np.ndarray) -> torch.Tensor:
    c = z.shape[-1]
    ok = torch.from_numpy((y >= 0) & (y < c))
    labels = torch.from_numpy(np.where((y >= 0) & (y < c), y, 0).astype(np.int64))
    per = torch.nn.functional.cross_entropy(z.reshape(-1, c), labels.reshape(-1), reduction="none")
    return torch.where(ok.reshape(-1), per, torch.zeros_like(per)).reshape(z.shape[:-1])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_forward_and_gradient_match_torch_and_finite_differences(case):
    _, shape, y = case
    z = (3 * rng.standard_normal(shape)).astype(np.float32)
    r = draw_cotangent_weight(shape[:-1], "f32")
    out, (gz, gy) = ours("sparse_xent", [z, y], {}, r)
    assert gy is None and out.dtype == np.float32 and gz.dtype == np.float32

    t = torch.from_numpy(z.copy()).requires_grad_(True)
    ref = torch_xent(t, y)
    (ref * torch.from_numpy(np.asarray(r))).sum().backward()
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg="forward")
    np.testing.assert_allclose(gz, t.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg="gradient")

    g64 = ours_f64("sparse_xent", [z, y], {}, r)[0]
    fd = finite_differences("sparse_xent", [z, y], {}, r)[0]
    np.testing.assert_allclose(g64, fd, rtol=1e-6, atol=1e-8, err_msg="f64 gradient vs finite differences")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_the_gradient_primitive_differentiates_like_torch(case):
    # second order: sparse_xent_grad's own VJP against torch differentiating softmax - one_hot
    _, shape, y = case
    z = (2 * rng.standard_normal(shape)).astype(np.float32)
    r = draw_cotangent_weight(shape, "f32")
    out, (gz, gy) = ours("sparse_xent_grad", [z, y], {}, r)
    t = torch.from_numpy(z.copy()).requires_grad_(True)
    ref = torch.autograd.grad(torch_xent(t, y).sum(), t, create_graph=True)[0]
    (ref * torch.from_numpy(np.asarray(r))).sum().backward()
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg="forward")
    np.testing.assert_allclose(gz, t.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg="gradient")
    fd = finite_differences("sparse_xent_grad", [z, y], {}, r)[0]
    np.testing.assert_allclose(ours_f64("sparse_xent_grad", [z, y], {}, r)[0], fd, rtol=1e-6, atol=1e-8)


def test_large_logits_stay_finite():
    z = np.array([[1e4, -1e4, 0.0], [-3e4, 3e4, 3e4]], np.float32)
    out, (gz, _) = ours("sparse_xent", [z, I([1, 2])], {}, np.ones(2, np.float32))
    np.testing.assert_allclose(out, [2e4, np.log(2)], rtol=1e-6)
    np.testing.assert_allclose(gz, [[1, -1, 0], [0, 0.5, -0.5]], atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_decomposition_equals_the_fused_rules(case):
    _, shape, y = case
    b = Builder("fused")
    z_id = b.argument("z", "input", TensorType("f32", shape))
    y_id = b.argument("y", "input", TensorType("i64" if y.dtype == np.int64 else "i32", y.shape))
    g = b.build({"loss": b.sparse_xent(z_id, y_id), "grad": b.sparse_xent_grad(z_id, y_id)})
    basic = expand_fused(g)
    assert not {"sparse_xent", "sparse_xent_grad"} & {n.op for n in basic.nodes}
    assert expand_fused(g, native=("sparse_xent", "sparse_xent_grad")) is g
    args = {"z": (3 * rng.standard_normal(shape)).astype(np.float32), "y": y}
    fused, expanded = compile_graph(g)(args), compile_graph(basic)(args)
    for k in fused:
        np.testing.assert_allclose(fused[k], expanded[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_rules_are_registered():
    for op in ("sparse_xent", "sparse_xent_grad"):
        assert op in VJP and PRIMITIVES[op].differentiable


def test_iris_step_is_a_short_numpy_program():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, root)
    from bench.cases import make_case
    p = make_case("B")
    m = nnc.compile(p.source)
    g = m.graph("train_step")
    ops = g.op_counts()
    assert ops["sparse_xent"] == 1 and ops["sparse_xent_grad"] == 1
    assert not {"iota", "eq", "log", "exp"} & set(ops)       # no one-hot or log-softmax chain
    src = m.backend.emit(g)
    lines = [ln for ln in src[src.index("def train_step"):].splitlines() if "  # %" in ln]
    # 48 generated lines with the one-hot chain; the fused loss leaves the layers and the update
    assert len(lines) <= 32, "\n".join(lines)
