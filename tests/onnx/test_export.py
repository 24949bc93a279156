"""nnc models exported to ONNX: checked by onnx's checker, run by ONNX Runtime (the oracle)."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import nncompiler as nnc  # noqa: E402
from nncompiler.cli import main  # noqa: E402
from nncompiler.onnx.export import export_onnx, to_onnx  # noqa: E402

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples"


def _features(csv: str, label: str) -> np.ndarray:
    cols = open(csv).readline().strip().split(",")
    keep = [k for k, c in enumerate(cols) if c != label]
    return np.loadtxt(csv, delimiter=",", skiprows=1, usecols=keep, dtype=np.float32)


def _ort(path_or_proto, x: np.ndarray) -> np.ndarray:
    blob = path_or_proto if isinstance(path_or_proto, str) else path_or_proto.SerializeToString()
    return ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("example,label", [("iris.nn", "species"), ("digits.nn", "label")])
def test_trained_model_predicts_the_same_in_onnxruntime(tmp_path, example, label):
    ckpt, out = tmp_path / "w.npz", tmp_path / "m.onnx"
    assert main(["run", str(EXAMPLES / example), "--epochs", "3", "--save", str(ckpt)]) == 0
    assert main(["export", str(EXAMPLES / example), "--format", "onnx", "-o", str(out), "--weights", str(ckpt)]) == 0
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert {"Gemm", "Relu", "Softmax"} <= ops                  # standard ops, not primitive chains
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "B"     # batch stays symbolic
    m = nnc.compile(str(EXAMPLES / example))
    nnc.load_weights(m, str(ckpt))
    x = _features(str(EXAMPLES / "data" / f"{'iris' if 'iris' in example else 'digits'}.csv"), label)
    got, want = _ort(str(out), x), m.forward(x=x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert (got.argmax(1) == want.argmax(1)).all()


def test_recurrent_scan_exports_as_one_scan_and_matches_onnxruntime():
    m = nnc.compile(str(EXAMPLES / "sine_rnn.nn"))     # its lstm is a scan over 20 steps
    assert "scan" in m.graph("predict").op_counts()
    proto = to_onnx(m)
    assert [n.op_type for n in proto.graph.node].count("Scan") == 1      # a loop, not 20 copies of the step
    x = np.random.default_rng(0).normal(size=(3, 20)).astype(np.float32)
    np.testing.assert_allclose(_ort(proto, x), m.forward(x=x), rtol=1e-4, atol=1e-5)


def test_cnn_exports_and_matches_onnxruntime():
    m = nnc.compile(str(EXAMPLES / "digits_cnn.nn"))
    x = np.random.RandomState(0).uniform(0, 16, (5, 64)).astype(np.float32)
    np.testing.assert_allclose(_ort(to_onnx(m), x), m.forward(x=x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("example,width", [("iris.nn", 4), ("digits_cnn.nn", 64)])
def test_exported_model_imports_back_to_the_same_outputs(tmp_path, example, width):
    """digits_cnn's export computes its batch-sized shapes with Shape/Mul/Concat: the importer
    evaluates that arithmetic on the symbolic batch, so the import keeps B symbolic."""
    m = nnc.compile(str(EXAMPLES / example))
    export_onnx(m, tmp_path / "m.onnx")
    back = nnc.compile(str(tmp_path / "m.onnx"))
    assert back.lowered.inputs["x"].shape == ("B", width)
    for n in (1, 9):
        x = np.random.RandomState(n).uniform(0, 4, (n, width)).astype(np.float32)
        np.testing.assert_allclose(back.forward(x=x), m.forward(x=x), rtol=1e-5, atol=1e-7)
