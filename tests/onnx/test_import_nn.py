"""`nnc import model.onnx -o model.nn`: the written .nn file compiles back to the same IR
(printed text equal) as importing the ONNX model directly, and computes the same outputs."""
import re
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import nncompiler as nnc  # noqa: E402
from nncompiler.cli import main  # noqa: E402
from nncompiler.ir.text import print_graph  # noqa: E402
from nncompiler.onnx.to_nn import ImportWriteError, graph_to_nn  # noqa: E402

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples"


def _round_trip(tmp_path, onnx_path: str, x: np.ndarray):
    out = tmp_path / "model.nn"
    assert main(["import", onnx_path, "-o", str(out)]) == 0
    assert "graph " in out.read_text() and "param " in out.read_text()
    direct = nnc.from_onnx(onnx_path, trainable=True)      # the .nn file declares the weights as `param`
    back = nnc.compile(str(out))
    nnc.load_weights(back, str(tmp_path / "model.npz"))
    assert print_graph(back.lowered.forward, with_locs=False) == print_graph(direct.lowered.forward, with_locs=False)
    np.testing.assert_array_equal(back.forward(x=x), direct.forward(x=x))
    np.testing.assert_array_equal(back.forward(x=x), nnc.from_onnx(onnx_path).forward(x=x))


def test_torch_mlp_imports_to_nn_and_compiles_back_to_the_same_ir(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8), torch.nn.GELU(),
                              torch.nn.Linear(8, 3), torch.nn.Softmax(dim=-1)).eval()
    path = tmp_path / "mlp.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(2, 4),), str(path), input_names=["x"], output_names=["y"],
                          dynamo=False, dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    _round_trip(tmp_path, str(path), x)
    assert "param _0_weight: f32[16, 4]" in (tmp_path / "model.nn").read_text()   # torch's 0.weight


def test_nnc_iris_onnx_export_imports_back(tmp_path):
    path = tmp_path / "iris.onnx"
    assert main(["export", str(EXAMPLES / "iris.nn"), "--format", "onnx", "-o", str(path)]) == 0
    x = np.random.default_rng(1).uniform(0, 8, size=(7, 4)).astype(np.float32)
    _round_trip(tmp_path, str(path), x)


def test_every_spelled_primitive_writes_back_to_itself(tmp_path):
    src = tmp_path / "ops.nn"
    src.write_text("""graph g {
  input x: f32[B, 4]
  input k: i32[B]
  param w: f32[4]
  param w2: f32[4, 4]
  a = x ** x + x - x * x / x
  c = where(x < x, x, x) + where(x <= x, x, x) + where(x > x, x, x) + where(x >= x, x, x)
  e = where(x == x, maximum(x, w), minimum(x, x)) + where(x != x, x, x)
  f = sigmoid(x) + log(x) + sqrt(x) + log1p(x) + stop_gradient(x) + exp(x) + abs(tanh(-x)) + sign(x)
  g2 = cast(argmax(x @ transpose(w2, perm=[1, 0]), axis=1, keepdims=false), f32)
  h = reshape(x, [B, 2, 2])
  i = broadcast_to(sum(x, axis=[0, 1], keepdims=false), [3, 2]) + max(x[0:1, 1:3], axis=[0], keepdims=true)
  j = k * 3 + [[1], [2]]
  output a = a + c + e + f + 1e-07, g = g2, h = h * [1.0, 2.0], i = i, j = j, s = x[:, 1:4:2]
}
""")
    g = nnc.compile(str(src)).lowered.forward
    out = tmp_path / "back.nn"
    out.write_text(graph_to_nn(g))
    g2 = nnc.compile(str(out)).lowered.forward
    assert print_graph(g2, with_locs=False) == print_graph(g, with_locs=False)


def test_a_primitive_without_a_spelling_is_a_clear_error(tmp_path):
    src = tmp_path / "c.nn"
    src.write_text("graph g {\n  input x: f32[B, 4]\n  output y = concat(x, x, axis=1)\n}\n")
    with pytest.raises(ImportWriteError, match=r"node %\d+ \(concat\): primitive concat has no one-to-one"):
        graph_to_nn(nnc.compile(str(src)).lowered.forward)


def test_nnc_import_of_a_graph_it_cannot_spell_names_the_node_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "cnn.onnx"
    assert main(["export", str(EXAMPLES / "digits_cnn.nn"), "--format", "onnx", "-o", str(path)]) == 0
    capsys.readouterr()
    assert main(["import", str(path), "-o", str(tmp_path / "cnn.nn")]) == 1
    assert re.search(r"node %\d+ \(\w+\): primitive \w+ has no one-to-one \.nn spelling", capsys.readouterr().err)
    assert not (tmp_path / "cnn.nn").exists() and not (tmp_path / "cnn.npz").exists()
