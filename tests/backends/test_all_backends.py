"""One semantics per primitive: every backend has a rule (or a declared fallback) for every
primitive in the table, and all of them compute the same numbers on the same inputs,
extreme ones included, as an independent float64 oracle says they should.

Backends: numpy (the reference), MLIR through IREE, and Triton (in its interpreter on CPU
tensors when there is no GPU, with small shapes). Each compiles one graph holding every
case, once per module, so the whole file stays well under a minute.
"""
from __future__ import annotations

import numpy as np
import pytest

from nncompiler.backends import get_backend
from nncompiler.backends.mlir import rules as mlir_rules
from nncompiler.backends.mlir import loops as mlir_loops
from nncompiler.backends.mlir import singles as mlir_singles
from nncompiler.backends.mlir.runtime import iree_available
from nncompiler.backends.numpy import rules as numpy_rules
from nncompiler.backends.triton import fallback as triton_fallback
from nncompiler.backends.triton import ops as triton_ops
from nncompiler.backends.triton.address import MOVE_RULES
from nncompiler.backends.triton.plan import plan_graph
from nncompiler.ir import Builder, TensorType
from nncompiler.ir.primitives import PRIMITIVES
from nncompiler.passes import decompose
from nncompiler.passes.expand_fused import FUSED

try:
    from tests.oracle import every_primitive_args, every_primitive_graph, missing_primitives
except ImportError:  # tests/ itself is on sys.path
    from oracle import every_primitive_args, every_primitive_graph, missing_primitives

# backend -> {what covers a primitive: the names it covers}; a primitive must be in exactly one
COVERAGE = {
    "numpy": {"rule": set(numpy_rules.OPS), "structural": set(numpy_rules.STRUCTURAL)},
    "triton": {"rule": set(triton_ops.TRITON_OPS), "structural": set(triton_ops.STRUCTURAL),
               "fallback: torch": set(triton_ops.TORCH_FALLBACK),
               "expanded (passes/expand_fused.py)": set(FUSED)},
    "mlir": {"scalar rule": set(mlir_rules.SCALAR_RULES), "tensor rule": set(mlir_singles.SINGLE_RULES),
             "loop rule": set(mlir_loops.LOOP_RULES),
             "structural": set(mlir_rules.REGION_STRUCTURAL) - set(mlir_singles.SINGLE_RULES),
             "expanded (passes/expand_fused.py)": set(FUSED)},
}


@pytest.mark.parametrize("backend", sorted(COVERAGE))
@pytest.mark.parametrize("op", sorted(PRIMITIVES))
def test_every_primitive_has_exactly_one_rule_or_declared_fallback(backend, op):
    where = [kind for kind, ops in COVERAGE[backend].items() if op in ops]
    assert len(where) == 1, f"{backend}: '{op}' is covered by {where or 'nothing'} (see docs/design.md)"


@pytest.mark.parametrize("backend", sorted(COVERAGE))
def test_rule_tables_name_only_primitives(backend):
    for kind, ops in COVERAGE[backend].items():
        assert ops <= set(PRIMITIVES), f"{backend} {kind}: stale entries {sorted(ops - set(PRIMITIVES))}"


def test_triton_declared_fallbacks_run_through_torch():
    g = every_primitive_graph()
    plan = plan_graph(g)
    # the plan's own graph: planning may rewrite (expand fused ops), which renumbers nodes
    for n in plan.graph.nodes:
        if n.op in triton_ops.TORCH_FALLBACK:
            assert plan.is_fallback(n.id), f"{n.op} is declared a torch fallback but the plan fuses it"
    assert set(triton_ops.TORCH_FALLBACK) <= set(triton_fallback.TORCH_RULES)


def test_triton_ops_declared_as_addressing_have_a_move_rule():
    declared = {op for op, how in triton_ops.STRUCTURAL.items() if "MOVE_RULES" in how}
    assert declared == set(MOVE_RULES)


# ---- the same numbers everywhere ----------------------------------------------------------

X = np.array([-100.0, -88.5, -20.0, -3.0, -1.0, -0.5, -1e-7, -0.0, 0.0, 1e-7, 0.5, 1.0, 3.0, 20.0,
              88.5, 100.0], np.float32)
BASES = np.array([-3.0, -2.0, -1.5, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.0, 3.0, 7.25], np.float32)
EXPONENTS = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 2.5, 3.0, -3.0, 1.5, 0.0], np.float32)
CONST_EXPONENTS = (0.0, 0.5, 2.0, -1.0, 3.0)


def _oracle(x: np.ndarray, y: np.ndarray, b: np.ndarray, e: np.ndarray) -> dict:
    """float64 formulas rounded once to float32: no backend's code involved."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    with np.errstate(all="ignore"):
        out = {
            "sigmoid": 1.0 / (1.0 + np.exp(-x64)), "exp": np.exp(x64), "tanh": np.tanh(x64),
            "log1p": np.log1p(x64), "sqrt": np.sqrt(x64), "log": np.log(x64), "sign": np.sign(x64),
            "neg": -x64, "abs": np.abs(x64), "div": x64 / y64,
            "maximum": np.maximum(x64, y64), "minimum": np.minimum(x64, y64),
            "pow_array": np.power(b.astype(np.float64), e.astype(np.float64)),
        }
        for c in CONST_EXPONENTS:
            out[f"pow_{c}"] = np.power(b.astype(np.float64), c)
        return {k: v.astype(np.float32) for k, v in out.items()}   # exp(100) overflows to inf


def _extremes_graph():
    b = Builder("extremes")
    n, m = len(X), len(BASES)
    x = b.argument("x", "input", TensorType("f32", (n,)))
    y = b.argument("y", "input", TensorType("f32", (n,)))
    base = b.argument("b", "input", TensorType("f32", (m,)))
    ex = b.argument("e", "input", TensorType("f32", (m,)))
    outs = {op: getattr(b, op)(x) for op in ("sigmoid", "exp", "tanh", "log1p", "sqrt", "log", "sign",
                                              "neg", "abs")}
    outs.update({op: getattr(b, op)(x, y) for op in ("div", "maximum", "minimum")})
    outs["pow_array"] = b.pow(base, ex)
    for c in CONST_EXPONENTS:
        outs[f"pow_{c}"] = b.pow(base, b.scalar(c))
    graph = b.build(outs)
    return decompose(graph)[0]   # what the default pipeline hands every backend


def _inputs():
    y = np.array([0.0, -0.0, 3.0, -2.0, np.inf, 1e-30, -7.0, 2.0, 0.0, np.nan, -np.inf, 5.0, 1e30, 0.5,
                  -3.0, 1.0], np.float32)
    return {"x": X, "y": y, "b": BASES, "e": EXPONENTS}


# tight where the formula is exact (correctly rounded arithmetic), a few ulp for library
# functions (exp, log, tanh, pow differ by ulps between libm, IREE and Triton)
EXACT = {"sign", "neg", "abs", "div", "maximum", "minimum", "sqrt", "pow_0.0", "pow_0.5", "pow_2.0",
         "pow_-1.0"}
RTOL = 4e-6
# sigmoid below x = -87 is a float32 denormal, which carries fewer significant bits; IREE's
# CPU code flushes denormal results to zero (exp(-100) is 0 there), a documented difference
DENORMAL = {"numpy": 2e-44, "triton": 2e-44, "mlir": float(np.finfo(np.float32).tiny)}


def _run(name: str, graph, args) -> dict:
    be = get_backend(name)
    out = be.compile(graph)({k: be.to_device(v) for k, v in args.items()})
    return {k: np.asarray(be.to_numpy(v)) for k, v in out.items()}


BACKENDS = ["numpy", pytest.param("mlir", marks=pytest.mark.skipif(not iree_available(),
                                                                    reason="IREE is not installed")),
            "triton"]


@pytest.fixture(scope="module")
def extremes():
    return _extremes_graph(), _inputs()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # numpy's 0/0, sqrt(-1): the nans are the point
@pytest.mark.parametrize("backend", BACKENDS)
def test_extreme_values_match_the_oracle(backend, extremes):
    graph, args = extremes
    got = _run(backend, graph, args)
    want = _oracle(args["x"], args["y"], args["b"], args["e"])
    for name, w in want.items():
        g = got[name]
        assert g.dtype == np.float32 and g.shape == w.shape, name
        # same nan positions, same infinities, same signs of zero where it is exact
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"{backend} {name}: nan")
        tol = 0 if name in EXACT else RTOL
        np.testing.assert_allclose(g, w, rtol=tol, atol=DENORMAL[backend], err_msg=f"{backend} {name}")
    # the stable sigmoid's point: tiny but not flushed to zero where float32 can hold it
    assert got["sigmoid"][-1] == 1.0 and got["sigmoid"][2] > 0
    if backend != "mlir":
        assert got["sigmoid"][0] > 0 and got["sigmoid"][1] > 0


@pytest.fixture(scope="module")
def every():
    return every_primitive_graph(), every_primitive_args()


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_every_primitive_matches_the_numpy_backend(backend, every):
    graph, args = every
    assert not missing_primitives(graph)
    ref = _run("numpy", graph, args)
    got = _run(backend, graph, args)
    for name, want in ref.items():
        if name == "rng_uniform" and backend == "triton":
            continue   # Philox on the device; numpy's stream only with NNC_TRITON_RNG=numpy
        g = got[name]
        assert g.dtype == want.dtype and g.shape == want.shape, f"{backend} {name}"
        if want.dtype.kind in "biu":
            np.testing.assert_array_equal(g, want, err_msg=f"{backend} {name}")
        else:
            np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6, err_msg=f"{backend} {name}")
