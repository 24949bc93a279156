"""Models nnc cannot import give one clear error naming the node, op and opset, never a traceback."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nncompiler as nnc  # noqa: E402
from nncompiler.cli import main  # noqa: E402
from nncompiler.onnx import OnnxImportError  # noqa: E402


def _model(nodes, inits=(), opset=17, inputs=None, out_type=TensorProto.FLOAT):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])]
    g = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", out_type, None)], list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _error(model) -> str:
    with pytest.raises(OnnxImportError) as e:
        nnc.from_onnx(model)
    return str(e.value)


def test_unsupported_op_names_node_op_opset_and_the_supported_list():
    msg = _error(_model([helper.make_node("BitShift", ["x", "x"], ["y"], name="s1", direction="LEFT")]))
    assert "node 's1' (BitShift, opset 17)" in msg and "not supported" in msg and "Relu" in msg


def test_unsupported_attribute_value_is_named():
    msg = _error(_model([helper.make_node("Gelu", ["x"], ["y"], name="g", approximate="erf2")], opset=20))
    assert "node 'g' (Gelu, opset 20)" in msg and "approximate='erf2'" in msg and "none, tanh" in msg


def test_unsupported_dtype_is_named():
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2])]
    msg = _error(_model([helper.make_node("Relu", ["x"], ["y"])], inputs=inputs, out_type=TensorProto.FLOAT16))
    assert "graph input 'x'" in msg and "float16" in msg


def test_wrong_opset_says_which_are_supported():
    msg = _error(_model([helper.make_node("Relu", ["x"], ["y"])], opset=9))
    assert "opset 9 is not supported" in msg and "13 to" in msg


def test_missing_initializer_names_the_node_and_the_value():
    msg = _error(_model([helper.make_node("Add", ["x", "w"], ["y"], name="add1")]))
    assert "node 'add1' (Add)" in msg and "'w'" in msg and "missing initializer" in msg


def test_cyclic_graph_names_a_node_on_the_cycle():
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="n1"), helper.make_node("Relu", ["a"], ["b"], name="n2"),
             helper.make_node("Identity", ["a"], ["y"], name="n3")]
    msg = _error(_model(nodes))
    assert "cycle" in msg and ("'n1'" in msg or "'n2'" in msg)


def test_truncated_file_is_an_error_naming_the_file(tmp_path, capsys):
    w = numpy_helper.from_array(np.ones((3, 3), np.float32), "w")
    data = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], inits=[w]).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    assert main(["compile", str(path)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "truncated or corrupt" in err and "Traceback" not in err


def test_static_value_needed_from_a_runtime_input_is_explained():
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
              helper.make_tensor_value_info("s", TensorProto.INT64, [2])]
    msg = _error(_model([helper.make_node("Reshape", ["x", "s"], ["y"], name="r")], inputs=inputs))
    assert "node 'r' (Reshape, opset 17)" in msg and "input 1 (shape) must be known at import time" in msg


def test_cli_compiles_an_onnx_file_to_ir(tmp_path, capsys):
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "w")
    path = tmp_path / "m.onnx"
    onnx.save(_model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
                     inits=[w]), str(path))
    assert main(["compile", str(path), "--emit", "ir"]) == 0
    out = capsys.readouterr().out
    assert "%x: f32[N,3] input" in out and "%w: f32[3,2] buffer" in out and "matmul" in out and "maximum" in out
    m = nnc.compile(str(path))
    x = np.array([[1, -2, 3]], np.float32)
    np.testing.assert_array_equal(m.forward(x=x), np.maximum(x @ np.arange(6, dtype=np.float32).reshape(3, 2), 0))


def test_an_attribute_no_lowering_reads_is_refused_not_ignored():
    node = helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=1, temperature=2.0)
    msg = _error(_model([node]))
    assert "node 'sm' (Softmax, opset 17)" in msg and "attribute 'temperature' is not supported" in msg
    assert "axis" in msg
