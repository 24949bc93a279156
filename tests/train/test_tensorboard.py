"""TensorBoard logging (issue #6): event files read back with TensorBoard's own EventAccumulator."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.errors import NNCError

pytest.importorskip("tensorboard")
# TensorBoard's readers import TensorFlow when it is installed (seconds); its documented
# `notf` switch keeps them on the bundled stub. Our writer never imports TensorFlow.
sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

SRC = """
model Net {
    input  x: f32[B, 4]
    target y: i32[B]
    h   = dense(x, 6, activation=relu)
    out = dense(h, 3, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.02)
}
train Net {
    metrics accuracy
}
"""


def data(n=48):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return {"x": x, "y": (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)}


def load(path):
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs") / "net"
    m = nnc.compile(SRC)
    hist = m.fit(epochs=3, batch_size=16, validation_split=0.25, logdir=str(logdir),
                 lr_schedule=lambda e: 0.02 * 0.5 ** (e - 1), **data())
    return m, hist, logdir


def test_scalars_equal_the_history(run):
    _, hist, logdir = run
    train, val = load(logdir / "train"), load(logdir / "validation")
    assert set(train.Tags()["scalars"]) == {"loss", "accuracy", "learning_rate"}
    for tag in ("loss", "accuracy"):
        events = train.Scalars(tag)
        assert [e.step for e in events] == [1, 2, 3]
        assert [e.value for e in events] == [np.float32(v) for v in hist[tag]]
        assert [e.value for e in val.Scalars(tag)] == [np.float32(v) for v in hist[f"val_{tag}"]]
    assert [e.value for e in train.Scalars("learning_rate")] == [np.float32(0.02 * 0.5 ** k) for k in range(3)]


def test_weight_and_gradient_histograms(run):
    m, _, logdir = run
    train = load(logdir / "train")
    tags = set(train.Tags()["tensors"])
    assert {f"weights/{p}" for p in m.params} | {f"gradients/{p}" for p in m.params} == tags
    last = train.Tensors("weights/h.kernel")[-1]
    assert last.step == 3
    buckets = np.frombuffer(last.tensor_proto.tensor_content, dtype=np.float64).reshape(-1, 3)
    w = m.params["h.kernel"]
    assert buckets[:, 2].sum() == w.size                                  # counts
    assert buckets[0, 0] == pytest.approx(w.min()) and buckets[-1, 1] == pytest.approx(w.max())
    plugin = train.SummaryMetadata("gradients/out.bias").plugin_data.plugin_name
    assert plugin == "histograms"


def test_the_graph_is_the_ir_with_layer_scopes(run):
    m, _, logdir = run
    gd = load(logdir / "train").Graph()
    fwd = m.lowered.forward
    assert len(gd.node) == len(fwd.nodes) + len(fwd.outputs)
    nodes = {n.name: n for n in gd.node}
    assert nodes["h/matmul_0"].op == "matmul" and list(nodes["h/matmul_0"].input) == ["x", "h/kernel"]
    assert nodes["h/kernel"].op == "param" and nodes["x"].op == "input"
    dims = [d.size for d in nodes["h/matmul_0"].attr["_output_shapes"].list.shape[0].dim]
    assert dims == [-1, 6]                                                  # B is symbolic
    assert {n.split("/")[0] for n in nodes} >= {"h", "out", "loss", "metrics", "outputs"}
    for n in gd.node:                                                        # every input names a node
        assert all(i in nodes for i in n.input)
    assert list(nodes["outputs/loss"].input)[0].startswith("loss/")


def test_cli_logdir(tmp_path, capsys):
    from nncompiler.cli import main
    logdir = tmp_path / "runs" / "iris"
    assert main(["run", "examples/iris.nn", "--epochs", "2", "--logdir", str(logdir)]) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 2 and "tensorboard --logdir" in out.err
    acc = load(logdir / "train")
    assert len(acc.Scalars("loss")) == 2 and acc.Tags()["graph"]
    assert len(load(logdir / "validation").Scalars("accuracy")) == 2


def test_missing_tensorboard_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    m = nnc.compile(SRC)
    with pytest.raises(NNCError) as info:
        m.fit(epochs=1, logdir=str(tmp_path / "tb"), **data())
    assert str(info.value) == ("TensorBoard logging (--logdir) needs the 'tensorboard' package, which is not "
                               "installed: pip install 'nncompiler[tensorboard]'")
    from nncompiler.cli import main
    assert main(["run", "examples/iris.nn", "--epochs", "1", "--logdir", str(tmp_path / "tb")]) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1 and "nncompiler[tensorboard]" in out.err


def test_cli_logdir_writes_the_graph_of_a_graph_block(tmp_path, capsys):
    from nncompiler.cli import main
    path = tmp_path / "basics.nn"
    path.write_text("graph Basics {\n    input a: f32[2]\n    b = a * 3.0 + 1.0\n    output b\n}\n")
    logdir = tmp_path / "runs"
    assert main(["run", str(path), "--feed", "a=[1.0, 2.0]", "--logdir", str(logdir)]) == 0
    out = capsys.readouterr()
    assert out.err.strip() == f"TensorBoard graph in {logdir} (view: tensorboard --logdir {logdir})"
    gd = load(logdir / "train").Graph()
    fwd = nnc.compile(str(path)).lowered.forward
    assert len(gd.node) == len(fwd.nodes) + len(fwd.outputs)
    assert {n.op for n in gd.node} >= {"input", "mul", "add"}
    assert "b = [4. 7.]" in out.out
