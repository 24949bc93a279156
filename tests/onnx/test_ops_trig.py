"""The trigonometric and hyperbolic ONNX ops and Mod (onnx/ops_trig.py), composed from primitives,
against numpy in float64: within 4 float32 ulps over wide ranges, at the domain edges (asin, acos,
atanh at +-1, acosh at 1, tiny arguments), with inf and nan where numpy has them."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from nncompiler.onnx_backend import run_model  # noqa: E402

rng = np.random.default_rng(11)
ONE_ULP_BELOW_1 = np.float32(1) - np.float32(2.0 ** -24) * np.arange(0, 40)


def _model(op, inputs=("x",), dtype=TensorProto.FLOAT, size=None, **attrs):
    node = helper.make_node(op, list(inputs), ["y"], **attrs)
    return helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(i, dtype, [size]) for i in inputs],
        [helper.make_tensor_value_info("y", dtype, [size])]), opset_imports=[helper.make_opsetid("", 17)])


# op -> (numpy oracle, the range of random arguments, edge arguments)
CASES = {
    "Sin": (np.sin, 1e4, [0.0, 1e-30, np.pi, -np.pi / 2, 1e4]),
    "Cos": (np.cos, 1e4, [0.0, 1e-30, np.pi, -np.pi / 2, 1e4]),
    "Tan": (np.tan, 100.0, [0.0, 1e-30, 1.5707, -1.5707, np.pi]),
    "Asin": (np.arcsin, 1.0, [*ONE_ULP_BELOW_1, *-ONE_ULP_BELOW_1, 0.0, 1e-30]),
    "Acos": (np.arccos, 1.0, [*ONE_ULP_BELOW_1, *-ONE_ULP_BELOW_1, 0.0, 1e-30]),
    "Atan": (np.arctan, 1e3, [0.0, 1e-30, 1.0, -1.0, 0.41421356, 2.4142137, 1e30, -1e30]),
    "Sinh": (np.sinh, 80.0, [0.0, 1e-30, 1e-3, -0.999, 1.001]),
    "Cosh": (np.cosh, 80.0, [0.0, 1e-30, 1e-3, -0.999, 1.001]),
    "Asinh": (np.arcsinh, 1e6, [0.0, 1e-30, -1e-3, 1e4, 1.0001e4, 1e30]),
    "Acosh": (np.arccosh, 1e6, [1.0, *(1 + np.float32(2.0 ** -23) * np.arange(1, 20)), 1e4, 1.0001e4, 1e30]),
    "Atanh": (np.arctanh, 1.0, [*ONE_ULP_BELOW_1[1:], *-ONE_ULP_BELOW_1[1:], 0.0, 1e-30]),
}


@pytest.mark.parametrize("op", sorted(CASES))
def test_within_four_float32_ulps_of_numpy(op):
    ref, scale, edges = CASES[op]
    x = np.concatenate([rng.uniform(-scale, scale, 5000), rng.uniform(-1e-3, 1e-3, 500), edges]).astype(np.float32)
    if op == "Acosh":
        x = np.abs(x) + np.float32(1)
    (y,) = run_model(_model(op), [x])
    want = ref(x.astype(np.float64))
    assert y.dtype == np.float32
    ulps = np.abs(y - want) / np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert ulps.max() <= 4, (op, x[np.argmax(ulps)], y[np.argmax(ulps)], want[np.argmax(ulps)])


@pytest.mark.parametrize("op, x, want", [
    ("Asin", [1.0, -1.0, 1.5, np.nan], [np.pi / 2, -np.pi / 2, np.nan, np.nan]),
    ("Acos", [1.0, -1.0, -1.5], [0.0, np.pi, np.nan]),
    ("Atanh", [1.0, -1.0, 2.0], [np.inf, -np.inf, np.nan]),
    ("Acosh", [0.5, np.inf], [np.nan, np.inf]),
    ("Sin", [np.inf, np.nan], [np.nan, np.nan]),
    ("Atan", [np.inf, -np.inf], [np.pi / 2, -np.pi / 2]),
    ("Sinh", [100.0, -100.0], [np.inf, -np.inf]),
])
def test_domain_edges_give_numpys_infinities_and_nans(op, x, want):
    with np.errstate(all="ignore"):
        (y,) = run_model(_model(op), [np.array(x, np.float32)])
    np.testing.assert_allclose(y, np.array(want, np.float32), rtol=1e-6)


@pytest.mark.parametrize("fmod, oracle", [(0, np.mod), (1, np.fmod)])
@pytest.mark.parametrize("dtype", [TensorProto.INT32, TensorProto.INT64, TensorProto.FLOAT, TensorProto.DOUBLE])
def test_mod_is_numpys_mod_or_fmod(fmod, oracle, dtype):
    np_dtype = onnx.helper.tensor_dtype_to_np_dtype(dtype)
    a = rng.integers(-1000, 1000, 300).astype(np_dtype)
    d = rng.choice([-7, -3, -1, 1, 2, 5, 13], 300).astype(np_dtype)
    if np_dtype.kind == "f":
        # float32 operands are divided in float64, where non-dyadic ones are exact enough;
        # float64's own quotient can round to an integer it is not (documented), so dyadic there
        a, d = (a * np_dtype.type(0.37), d * np_dtype.type(1.3)) if dtype == TensorProto.FLOAT else (a / 4, d / 2)
        a[:4], d[:4] = [5.0, -5.0, 5.0, np.inf], [np.inf, np.inf, -np.inf, 2.0]
    with np.errstate(all="ignore"):
        (y,) = run_model(_model("Mod", ("a", "d"), dtype, 300, fmod=fmod), [a, d])
        want = oracle(a, d)
    assert y.dtype == np_dtype
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6 * (np_dtype.kind == "f"))
