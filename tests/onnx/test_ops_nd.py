"""GatherND and ScatterND (onnx/ops_shape.py) against numpy loops written from the ONNX spec:
batch_dims, negative indices, partial index tuples (slices of the data), reduction none and add."""
import itertools

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from nncompiler.onnx_backend import run_model  # noqa: E402

rng = np.random.default_rng(5)


def _model(op, arrays: dict, out_shape, **attrs):
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
           for k, v in arrays.items()]
    node = helper.make_node(op, list(arrays), ["y"], **attrs)
    return helper.make_model(helper.make_graph([node], "g", ins, [helper.make_tensor_value_info(
        "y", TensorProto.FLOAT, out_shape)]), opset_imports=[helper.make_opsetid("", 18)])


def gather_nd_ref(data, idx, bd):
    out = np.empty(idx.shape[:-1] + data.shape[bd + idx.shape[-1]:], data.dtype)
    for pos in itertools.product(*(range(n) for n in idx.shape[:-1])):
        out[pos] = data[pos[:bd]][tuple(idx[pos])]
    return out


@pytest.mark.parametrize("shape, ishape, bd", [((4, 3, 5), (2, 2), 0), ((4, 3, 5), (6, 3), 0),
                                               ((2, 3, 4, 5), (2, 7, 1), 1), ((2, 3, 4, 5), (2, 3, 2), 2)])
def test_gather_nd_matches_the_spec(shape, ishape, bd):
    data = rng.normal(size=shape).astype(np.float32)
    dims = shape[bd:bd + ishape[-1]]
    idx = np.stack([rng.integers(-d, d, ishape[:-1]) for d in dims], -1).astype(np.int64)
    want = gather_nd_ref(data, idx, bd)
    (y,) = run_model(_model("GatherND", {"data": data, "idx": idx}, want.shape, batch_dims=bd), [data, idx])
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("reduction", ["none", "add"])
@pytest.mark.parametrize("shape, k", [((5, 4, 3), 1), ((5, 4, 3), 2), ((5, 4, 3), 3)])
def test_scatter_nd_matches_the_spec(shape, k, reduction):
    data = rng.normal(size=shape).astype(np.float32)
    n = 3
    rows = rng.permutation(int(np.prod(shape[:k])))[:n]         # distinct tuples (none: the spec's case)
    idx = np.stack(np.unravel_index(rows, shape[:k]), -1).astype(np.int64)
    idx[0] -= np.array(shape[:k])                               # a negative tuple, counted from the end
    upd = rng.normal(size=(n,) + shape[k:]).astype(np.float32)
    want = data.copy()
    for j in range(n):
        t = tuple(int(i) for i in idx[j])
        want[t] = upd[j] if reduction == "none" else want[t] + upd[j]
    (y,) = run_model(_model("ScatterND", {"data": data, "idx": idx, "upd": upd}, shape, reduction=reduction),
                     [data, idx, upd])
    np.testing.assert_allclose(y, want, rtol=1e-6)
