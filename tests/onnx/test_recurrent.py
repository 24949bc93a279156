"""ONNX's RNN, GRU and LSTM import as one `scan` per direction (onnx/ops_rnn.py), not unrolled:
the graph's size does not depend on the sequence length, the values match ONNX Runtime (the
oracle) at one step, a few and many, gradients through an imported LSTM match torch autograd,
an imported recurrent model exports back to ONNX (a Scan per direction) and computes the same, and
the attributes the importer does not lower are refused with an error naming the node."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nncompiler as nnc  # noqa: E402
from nncompiler.ir.interpret import interpret  # noqa: E402
from nncompiler.onnx.importer import OnnxImportError, import_graph  # noqa: E402

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DIRECTIONS = ("forward", "reverse", "bidirectional")
OUTS = {"RNN": ("Y", "Y_h"), "GRU": ("Y", "Y_h"), "LSTM": ("Y", "Y_h", "Y_c")}


def recurrent_model(kind, steps, direction="forward", batch=2, features=3, hidden=4, layout=0, bias=True,
                    initial=False, seed=0, inputs_dims=None, **attrs):
    """(ModelProto of one `kind` node, its feeds): weights as initializers (scaled so that 60
    steps neither saturate nor explode), x and the initial states (with `initial`) as inputs."""
    rng = np.random.default_rng(seed)
    dirs, g = (2 if direction == "bidirectional" else 1), GATES[kind]

    def init(name, shape):
        return numpy_helper.from_array((rng.normal(size=shape) / np.sqrt(hidden)).astype(np.float32), name)

    inits = [init("W", (dirs, g * hidden, features)), init("R", (dirs, g * hidden, hidden))]
    names = ["x", "W", "R", "B" if bias else ""]
    if bias:
        inits.append(init("B", (dirs, 2 * g * hidden)))
    seq = (batch, steps) if layout else (steps, batch)
    state = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    feeds = {"x": rng.normal(size=(*seq, features)).astype(np.float32)}
    if initial:
        names += ["", "initial_h"] + (["initial_c"] if kind == "LSTM" else [])
        feeds.update({n: rng.normal(size=state).astype(np.float32) * 0.5 for n in names[5:]})
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, (inputs_dims or {}).get(n, list(v.shape)))
              for n, v in feeds.items()]
    node = helper.make_node(kind, names, list(OUTS[kind]), name=f"my_{kind.lower()}", hidden_size=hidden,
                            direction=direction, **({"layout": 1} if layout else {}), **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                                                    for n in OUTS[kind]], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), feeds


def _ort(model, feeds):
    """ONNX Runtime's outputs. It refuses layout=1 ("batchwise recurrent operations are not
    supported"), so such a model runs as its layout=0 twin on transposed inputs, outputs
    transposed back: the spec defines layout 1 as exactly that."""
    node = model.graph.node[0]
    if not any(a.name == "layout" and a.i == 1 for a in node.attribute):
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    attrs = [a for a in twin.graph.node[0].attribute if a.name != "layout"]
    del twin.graph.node[0].attribute[:]
    twin.graph.node[0].attribute.extend(attrs)
    for vi in twin.graph.input:
        dims = vi.type.tensor_type.shape.dim
        dims[0].dim_value, dims[1].dim_value = dims[1].dim_value, dims[0].dim_value
    outs = _ort(twin, {k: np.swapaxes(v, 0, 1) for k, v in feeds.items()})
    return [np.transpose(outs[0], (2, 0, 1, 3))] + [np.swapaxes(v, 0, 1) for v in outs[1:]]


def _scan_sizes(graph):
    """(nodes outside bodies, nodes inside scan bodies, scans)."""
    scans = [n for n in graph.nodes if n.op == "scan"]
    return len(graph.nodes), sum(len(n.attr["body"].nodes) for n in scans), len(scans)


@pytest.mark.parametrize("kind", list(GATES))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_the_imported_graph_does_not_grow_with_the_sequence_length(kind, direction):
    sizes = []
    for steps in (5, 50):
        model, _ = recurrent_model(kind, steps, direction, initial=True)
        b, outs, _, _ = import_graph(model)
        sizes.append(_scan_sizes(b.build(outs)))
        # the Model's forward graph too (the one every backend compiles)
        sizes.append(_scan_sizes(nnc.from_onnx(model).lowered.forward))
    assert len(set(sizes)) == 1, sizes
    assert sizes[0][2] == (2 if direction == "bidirectional" else 1)      # one scan per direction
    assert sizes[0][0] < 60, sizes       # not unrolled: a forward LSTM at T=50 was 971 nodes


# per sequence length, the options the case also exercises: layout 1, initial states, no bias (T=1);
# clip, non-default activations, linear_before_reset=1 (T=7); initial states, the defaults (T=60)
def _options(kind, steps, direction):
    dirs = 2 if direction == "bidirectional" else 1
    if steps == 1:
        return dict(layout=1, initial=True, bias=False)
    if steps == 7:
        acts = {"RNN": ["Relu"], "GRU": ["Tanh", "Sigmoid"], "LSTM": ["Tanh", "Relu", "Sigmoid"]}[kind]
        extra = {"linear_before_reset": 1} if kind == "GRU" else {}
        return dict(clip=0.8, activations=acts * dirs, **extra)
    return dict(initial=True)


@pytest.mark.parametrize("kind", list(GATES))
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("steps", [1, 7, 60])
def test_values_match_onnxruntime(kind, direction, steps):
    model, feeds = recurrent_model(kind, steps, direction, seed=steps, **_options(kind, steps, direction))
    want = _ort(model, feeds)
    # the numpy backend (a scan of one step is unrolled first, as for a .nn file's layers) ...
    got = nnc.from_onnx(model).forward(**feeds)
    # ... and the IR's reference interpreter on the import itself (a scan at every length)
    b, outs, inputs, weights = import_graph(model)
    graph = b.build(outs)
    assert _scan_sizes(graph)[2] == (2 if direction == "bidirectional" else 1)
    direct = interpret(graph, {**{inputs[k]: v for k, v in feeds.items()}, **weights})
    for name, w, g in zip(OUTS[kind], want, got):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6, err_msg=name)
        np.testing.assert_allclose(direct[name], w, rtol=2e-5, atol=2e-6, err_msg=name)


def test_default_linear_before_reset_gru_with_clip_on_many_steps_matches_onnxruntime():
    # GRU's default form multiplies the reset gate into h before the recurrent matmul: its own body
    model, feeds = recurrent_model("GRU", 40, "bidirectional", initial=True, clip=0.5, hidden=5, batch=3)
    for name, w, g in zip(OUTS["GRU"], _ort(model, feeds), nnc.from_onnx(model).forward(**feeds)):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6, err_msg=name)


def test_symbolic_batch_runs_every_batch_size_with_one_graph():
    model, _ = recurrent_model("LSTM", 9, "bidirectional", initial=True, inputs_dims={
        "x": [9, "batch", 3], "initial_h": [2, "batch", 4], "initial_c": [2, "batch", 4]})
    m = nnc.from_onnx(model)
    assert m.lowered.inputs["x"].shape == (9, "batch", 3)
    for batch in (1, 5):
        _, feeds = recurrent_model("LSTM", 9, "bidirectional", initial=True, batch=batch, seed=batch)
        for name, w, g in zip(OUTS["LSTM"], _ort(model, feeds), m.forward(**feeds)):
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6, err_msg=name)


def _torch_lstm_grads(bidirectional: bool, steps: int):
    """An imported torch LSTM (dynamic batch) trained with mse: nnc's loss and gradients, and
    torch autograd's on the same net, weights mapped to ONNX's layout (gates i, o, f, c)."""
    torch = pytest.importorskip("torch")
    from torch_models import LastStep, export
    torch.manual_seed(7)
    net = LastStep(torch.nn.LSTM(4, 5, batch_first=True, bidirectional=bidirectional)).eval()
    x = torch.randn(3, steps, 4, generator=torch.Generator().manual_seed(8))
    y = torch.randn(3, 3, generator=torch.Generator().manual_seed(9))
    m = nnc.from_onnx(export(net, x), trainable=True, loss="mse")
    assert "scan" in m.lowered.forward.op_counts()
    loss, grads = m.loss_and_grads(x=x.numpy(), target=y.numpy())
    ref = torch.nn.functional.mse_loss(net(x), y)
    ref.backward()
    return m, loss, grads, ref, net


def _onnx_gates(t, hidden: int):
    """torch's gate blocks (i, f, g, o) along axis 0 in ONNX's order (i, o, f, c)."""
    i, f, g, o = (t[k * hidden:(k + 1) * hidden] for k in range(4))
    return np.concatenate([i, o, f, g])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradients_through_an_imported_lstm_match_torch(bidirectional):
    steps, hidden = 12, 5
    m, loss, grads, ref, net = _torch_lstm_grads(bidirectional, steps)
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-5)
    suffixes = ["", "_reverse"] if bidirectional else [""]
    lstm = dict(net.rnn.named_parameters())

    def want(prefix):
        return np.stack([_onnx_gates(lstm[f"{prefix}_l0{s}"].grad.numpy(), hidden) for s in suffixes])

    by_shape = {tuple(v.shape): k for k, v in grads.items()}
    dirs = len(suffixes)
    w, r, b = (grads[by_shape[s]] for s in ((dirs, 4 * hidden, 4), (dirs, 4 * hidden, hidden), (dirs, 8 * hidden)))
    np.testing.assert_allclose(w, want("weight_ih"), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r, want("weight_hh"), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(b, np.concatenate([want("bias_ih"), want("bias_hh")], axis=1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads["head_weight"], net.head.weight.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_an_imported_lstm_trains():
    torch = pytest.importorskip("torch")
    m, loss, _, _, _ = _torch_lstm_grads(False, 8)
    x = torch.randn(3, 8, 4, generator=torch.Generator().manual_seed(8)).numpy()
    y = torch.randn(3, 3, generator=torch.Generator().manual_seed(9)).numpy()
    m.fit(x=x, target=y, epochs=15, batch_size=3, verbose=0)
    assert m.evaluate(x=x, target=y)["loss"] < loss


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_an_imported_recurrent_model_exports_as_scans_and_onnxruntime_agrees(kind):
    from nncompiler.onnx.export import to_onnx
    model, feeds = recurrent_model(kind, 7, "bidirectional", initial=True)
    m = nnc.from_onnx(model)
    assert "scan" in m.graph("predict").op_counts()
    exported = to_onnx(m)
    ops = [n.op_type for n in exported.graph.node]
    assert kind not in ops and ops.count("Scan") == 2                # one loop per direction
    got = _ort(exported, feeds)
    want = _ort(model, feeds)
    assert [o.name for o in exported.graph.output] == list(OUTS[kind])
    for name, w, g in zip(OUTS[kind], want, got):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("kind, change, message", [
    ("LSTM", dict(input_forget=1), "input_forget=1 is not supported"),
    ("GRU", dict(activation_alpha=[0.5, 0.5]), "activation_alpha/activation_beta are not supported"),
    ("RNN", dict(activations=["Softsign"]), r"activation 'Softsign' is not supported \(supported: Sigmoid, Tanh, Relu\)"),
    ("LSTM", dict(activations=["Sigmoid", "Tanh"]), r"activations lists 2 functions; LSTM with 1 direction\(s\) needs 3"),
    ("GRU", dict(direction="sideways"), "direction='sideways' is not supported"),
    ("RNN", dict(unknown_attr=3), "attribute 'unknown_attr' is not supported"),
])
def test_unsupported_attributes_are_errors_naming_the_node(kind, change, message):
    model, _ = recurrent_model(kind, 4, **change)
    with pytest.raises(OnnxImportError, match=rf"node 'my_{kind.lower()}' \({kind}, opset 14\): {message}"):
        nnc.from_onnx(model)


@pytest.mark.parametrize("kind, slot, message", [
    ("LSTM", 4, r"sequence_lens is not supported"),
    ("LSTM", 7, r"peephole weights \(input P\) are not supported"),
])
def test_unsupported_inputs_are_errors_naming_the_node(kind, slot, message):
    model, _ = recurrent_model(kind, 4, initial=True)
    node = model.graph.node[0]
    while len(node.input) <= slot:
        node.input.append("")
    node.input[slot] = "extra"
    extra = np.ones((1, 12), np.float32) if slot == 7 else np.full(2, 4, np.int32)   # P [1, 3H], or the lengths
    model.graph.initializer.append(numpy_helper.from_array(extra, "extra"))
    with pytest.raises(OnnxImportError, match=rf"node 'my_{kind.lower()}' \({kind}, opset 14\): {message}"):
        nnc.from_onnx(model)


def test_a_symbolic_sequence_length_is_an_error_naming_the_node():
    model, _ = recurrent_model("GRU", 4, inputs_dims={"x": ["T", 2, 3]})
    with pytest.raises(OnnxImportError, match=r"node 'my_gru' \(GRU, opset 14\): the sequence length must be "
                                              r"static \(the scan runs a fixed number of steps\), got T"):
        nnc.from_onnx(model)
