"""TopK (onnx/ops_math.py: ranks from pairwise comparisons, no sort primitive) against numpy's
stable argsort: largest and smallest, an inner axis, ties going to the lower index, k = n."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from nncompiler.onnx_backend import run_model  # noqa: E402

rng = np.random.default_rng(9)


@pytest.mark.parametrize("shape, axis, k, largest", [((3, 7), -1, 3, 1), ((3, 7), 1, 7, 0), ((4, 6, 2), 1, 2, 1),
                                                     ((5,), 0, 4, 0)])
def test_top_k_is_numpys_stable_sort(shape, axis, k, largest):
    x = rng.integers(-3, 4, shape).astype(np.float32)          # many ties
    out = list(shape)
    out[axis] = k
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=axis, largest=largest)
    model = helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape),
                      helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, out),
         helper.make_tensor_value_info("i", TensorProto.INT64, out)]), opset_imports=[helper.make_opsetid("", 17)])
    v, i = run_model(model, [x, np.array([k], np.int64)])
    order = np.argsort(-x if largest else x, axis=axis, kind="stable")
    want_i = np.take(order, np.arange(k), axis=axis)
    assert i.dtype == np.int64
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_array_equal(v, np.take_along_axis(x, want_i, axis=axis))
