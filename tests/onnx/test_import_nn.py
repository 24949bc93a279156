"""`nnc import model.onnx -o model.nn`: the written .nn file compiles back to the same IR
(printed text equal) as importing the ONNX model directly (with its scans unrolled: a
recurrent layer's loop is written out step by step), and computes the same outputs
(checked against torch where the model came from torch). Over ONNX's node conformance cases:
every case the backend runs either writes back to the same IR or is refused with a reason."""
import collections
import re
import sys
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import nncompiler as nnc  # noqa: E402
from nncompiler.cli import main  # noqa: E402
from nncompiler.ir.text import print_graph  # noqa: E402
from nncompiler.frontend.compile import compile_source  # noqa: E402
from nncompiler.ir.graph import Builder  # noqa: E402
from nncompiler.ir.shapes import TensorType  # noqa: E402
from nncompiler.onnx.to_nn import ImportWriteError, graph_to_nn  # noqa: E402
from nncompiler.passes.unroll import unroll  # noqa: E402

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples"


def _round_trip(tmp_path, onnx_path: str, x: np.ndarray):
    """nnc import, then compile the .nn file: the same forward IR and outputs as the direct import."""
    out = tmp_path / "model.nn"
    assert main(["import", onnx_path, "-o", str(out)]) == 0
    assert "graph " in out.read_text() and "param " in out.read_text()
    direct = nnc.from_onnx(onnx_path, trainable=True)      # the .nn file declares the weights as `param`
    back = nnc.compile(str(out))
    nnc.load_weights(back, str(tmp_path / "model.npz"))
    assert print_graph(back.lowered.forward, with_locs=False) == print_graph(unroll(direct.lowered.forward)[0],
                                                                             with_locs=False)
    np.testing.assert_array_equal(back.forward(x=x), direct.forward(x=x))
    np.testing.assert_array_equal(back.forward(x=x), nnc.from_onnx(onnx_path).forward(x=x))
    return back.forward(x=x)


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


@pytest.mark.parametrize("name, make, shape, spelled", [
    ("cnn", "cnn", (4, 3, 12, 12), ("conv(", "reduce_window(", "kind=max", "kind=sum")),
    ("lstm", "lstm", (3, 5, 4), ("concat(", "sigmoid(", "gather(")),
    ("gru", "gru_bidirectional", (3, 5, 4), ("concat(", "sigmoid(")),
    ("encoder", "encoder", (2, 5, 16), ("size(", "sqrt(")),
])
def test_torch_models_import_to_nn_compile_back_to_the_same_ir_and_match_torch(tmp_path, name, make, shape,
                                                                              spelled):
    torch = pytest.importorskip("torch")
    from torch_models import cnn, encoder, export, recurrent
    net = cnn() if make == "cnn" else encoder() if make == "encoder" else recurrent(make)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(5))
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(export(net, x, dynamic=False))
    y = _round_trip(tmp_path, str(path), x.numpy())
    np.testing.assert_allclose(y, net(x).detach().numpy(), rtol=1e-5, atol=1e-5)
    text = (tmp_path / "model.nn").read_text()
    for call in spelled:
        assert call in text, call


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


def test_nnc_cnn_onnx_export_imports_back(tmp_path):
    path = tmp_path / "cnn.onnx"
    assert main(["export", str(EXAMPLES / "digits_cnn.nn"), "--format", "onnx", "-o", str(path)]) == 0
    x = np.random.default_rng(2).uniform(0, 1, size=(3, 64)).astype(np.float32)    # digits: 8x8 pixels, flat
    _round_trip(tmp_path, str(path), x)


def test_one_primitive_functions_write_back_to_themselves(tmp_path):
    src = tmp_path / "prims.nn"
    src.write_text("""graph g {
  input x: f32[B, 6, 6, 4]
  input w: f32[3, 3, 2, 6]
  input k: i64[2]
  a = conv(x, w, stride=[1, 2], padding=[[1, 1], [0, 1]], dilation=[2, 1], groups=2)
  m = reduce_window(a, kind=max, window=[2, 2], stride=2) + reduce_window(a, kind=sum, window=[2, 2], stride=2)
  p = pad(x, [[0, 0], 1, [2, 0], 0], interior=[0, 1, 0, 0])
  c = concat(x, x, x, x, x, x, axis=3)
  g2 = gather(x, k, axis=1)
  s = scatter_add(g2, k, [B, 6, 6, 4], axis=1) * size(x, axis=[0, 1], dtype=f32)
  output a = a, m = m, p = p, c = c, s = s, i = iota([B, 3], axis=1, dtype=i64) + k[0:1]
  output f = constant([[0.5], [2.0]], dtype=f64), b = constant([true, false]), n = x[..., 0:2], q = x[:, 1:, 0:3:2, 1:]
}
""")
    g = nnc.compile(str(src)).lowered.forward
    out = tmp_path / "back.nn"
    out.write_text(graph_to_nn(g))
    g2 = nnc.compile(str(out)).lowered.forward
    assert print_graph(g2, with_locs=False) == print_graph(g, with_locs=False)


def _graph_with(op: str, *inputs, **attrs):
    b = Builder("g")
    x = b.argument("x", "input", TensorType("f32", (2, 3, 4)))
    return b.build([("y", b.emit(op, (x, *inputs), **attrs))])


@pytest.mark.parametrize("graph, message", [
    (lambda: _graph_with("cast", dtype="bool"), r"node %1 \(cast\): a cast to bool has no one-node \.nn spelling"),
    (lambda: _graph_with("slice", start=(0, 1, 0), stop=(None, 2, None), step=(1, 1, 1)),
     r"node %1 \(slice\): whole static axes in more than one place"),
    (lambda: _graph_with("slice", start=(1, 0, 0), stop=(None, 3, 4), step=(1, 1, 1)),
     r"node %1 \(slice\): a slice from 1 with no stop on a static axis"),
    (lambda: _graph_with("rng_uniform", seed=1, dtype="f32", shape=(2,)),
     r"node %1 \(rng_uniform\): primitive rng_uniform has no one-to-one \.nn spelling"),
])
def test_a_node_without_a_spelling_is_a_clear_error_naming_it(graph, message):
    with pytest.raises(ImportWriteError, match=message):
        graph_to_nn(graph())


def test_nnc_import_of_a_graph_it_cannot_write_names_the_node_and_writes_nothing(tmp_path, capsys):
    from onnx import TensorProto, helper
    node = helper.make_node("Cast", ["x"], ["y"], to=TensorProto.BOOL)
    model = helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.BOOL, [2])]), opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    assert main(["import", str(path), "-o", str(tmp_path / "m.nn")]) == 1
    assert re.search(r"node %\d+ \(cast\): a cast to bool has no one-node \.nn spelling", capsys.readouterr().err)
    assert not (tmp_path / "m.nn").exists() and not (tmp_path / "m.npz").exists()


def _node_graph(case):
    """The forward graph the conformance backend runs for a node case (trainable, so its float
    initializers are parameters as in a .nn file); integer inputs the importer needs as numbers
    are pinned to the case's first data set, as the backend does."""
    from nncompiler.onnx.importer import OnnxImportError, import_graph, ir_name
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from test_backend_node import _array
    try:
        b, outs, _, _ = import_graph(case.model, trainable=True)
    except OnnxImportError as e:
        if "must be known at import time" not in str(e):
            raise
        feeds = {vi.name: np.asarray(_array(v)) for vi, v in zip(case.model.graph.input, case.data_sets[0][0])}
        b, outs, _, _ = import_graph(case.model, trainable=True, input_shapes={k: v.shape for k, v in feeds.items()},
                                     pinned={k: v for k, v in feeds.items() if v.dtype.kind in "iu" and v.size <= 64})
    return b.build([(ir_name(n), i) for n, i in outs])


def test_onnx_node_cases_write_back_to_the_same_ir():
    """Every node case the conformance backend runs: import -> .nn -> compile gives the printed IR
    of the import, or the writer refuses it naming the node and why (zero-size tensors, literals
    beyond the parser's token limit). docs/onnx.md quotes the counts."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from test_backend_node import _CASES
    counts, refused = collections.Counter(), collections.Counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for case, why in _CASES:
            if why:
                continue
            g = _node_graph(case)
            try:
                text = graph_to_nn(g)
            except ImportWriteError as e:
                counts["refused"] += 1
                refused[next((r for r in REFUSALS if r in str(e)), str(e))] += 1
                continue
            back = compile_source(text, f"{case.name}.nn")[0]
            assert print_graph(back.forward, with_locs=False) == print_graph(unroll(g)[0], with_locs=False), case.name
            counts["same IR"] += 1
    assert counts["same IR"] >= 850 and counts["refused"] <= 20, (counts, refused)
    assert set(refused) <= set(REFUSALS), refused


# why the writer may refuse a node case: the IR has these, a .nn file cannot say them
REFUSALS = ("has no .nn spelling (sizes are positive)", "too large to write as .nn literals")
