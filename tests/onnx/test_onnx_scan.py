"""A scan exports as one ONNX `Scan` and a `Scan` imports as one scan (onnx/export.py, onnx/ops_loop.py).

Export: the .nn rnn/lstm/gru layers (last state or every state, go_backwards, two stacked
layers) run in ONNX Runtime and agree with the numpy backend at 1, 7 and 60 steps, the
exported graph has one Scan per layer and the same size at any length, and exporting then
importing gives back one scan per layer and the same values. Import: hand-written Scans
(axes and directions differing per input and output, invariants read from the outer graph,
a Scan inside a Scan's body) agree with ONNX Runtime, and what the IR cannot express is an
error naming the node."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nncompiler as nnc  # noqa: E402
from nncompiler.onnx.export import to_onnx  # noqa: E402
from nncompiler.onnx.importer import OnnxImportError  # noqa: E402

F32 = TensorProto.FLOAT
VARIANTS = {                      # layer keywords; "stacked": a second layer reads the first's sequence
    "last": {}, "sequences": {"return_sequences": "true"},
    "backwards": {"return_sequences": "true", "go_backwards": "true"},
    "stacked": {"go_backwards": "true", "stacked": True},
}


def recurrent_source(kind: str, steps: int, variant: str, features: int = 3) -> str:
    opts = dict(VARIANTS[variant])
    stacked = opts.pop("stacked", False)
    kw = "".join(f", {k}={v}" for k, v in opts.items())
    layers = (f"    h1 = {kind}(x, 5, return_sequences=true{kw})\n    h = {kind}(h1, 4{kw})\n" if stacked
              else f"    h = {kind}(x, 5{kw})\n")
    return f"graph R {{\n    input x: f32[B, {steps}, {features}]\n{layers}    output h\n}}\n"


def all_nodes(graph):
    """Every node of an ONNX graph and of the graphs its nodes' attributes hold."""
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from all_nodes(a.g)


def run_ort(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("steps", [1, 7, 60])
def test_recurrent_layers_export_as_scans_that_onnxruntime_runs_like_the_numpy_backend(kind, variant, steps):
    m = nnc.compile(recurrent_source(kind, steps, variant))
    proto = to_onnx(m)
    onnx.checker.check_model(proto, full_check=True)
    layers = 2 if variant == "stacked" else 1
    # a one-step scan is inlined by the front end (passes/unroll.UNROLL_MAX_LENGTH) before export
    assert [n.op_type for n in proto.graph.node].count("Scan") == (0 if steps == 1 else layers)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "B"
    for batch in (1, 3):                                # one file for every batch size
        x = np.random.default_rng(steps + batch).normal(size=(batch, steps, 3)).astype(np.float32)
        np.testing.assert_allclose(run_ort(proto, {"x": x})[0], m.forward(x=x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("variant", ["sequences", "stacked"])
def test_the_exported_graph_does_not_grow_with_the_number_of_steps(kind, variant):
    sizes = {steps: len(list(all_nodes(to_onnx(nnc.compile(recurrent_source(kind, steps, variant))).graph)))
             for steps in (5, 50)}
    assert sizes[5] == sizes[50], sizes
    assert sizes[50] < 100, sizes      # bodies included; unrolled, one lstm at 50 steps exported 907 nodes


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_export_then_import_gives_one_scan_per_layer_and_the_same_values(kind, variant):
    m = nnc.compile(recurrent_source(kind, 7, variant))
    back = nnc.from_onnx(to_onnx(m))
    assert back.graph("predict").op_counts()["scan"] == (2 if variant == "stacked" else 1)
    x = np.random.default_rng(7).normal(size=(4, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(back.forward(x=x), m.forward(x=x), rtol=1e-6, atol=1e-7)


# ---- hand-written Scans ------------------------------------------------------------------

def _init(name, shape, seed):
    return numpy_helper.from_array((np.random.default_rng(seed).normal(size=shape) * 0.5).astype(np.float32), name)


def _const(name, value, dtype=np.float32):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, dtype), name + "_v"))


def mixed_scan_model(order=1):
    """A Scan with one state, two scan inputs (x [T, B, F] along axis 0 forward, y [B, T, H]
    along axis 1 in reverse) and two scan outputs (the states stacked along axis 1 in reverse,
    3*x_t stacked along the last axis). Its body reads W (an initializer), V (computed in the
    main graph) and builds a constant of its own. `order=-1` lists the main nodes backwards."""
    body = helper.make_graph(
        [helper.make_node("MatMul", ["acc", "W"], ["aw"]), helper.make_node("MatMul", ["x_t", "V"], ["xv"]),
         helper.make_node("Add", ["aw", "xv"], ["s1"]), helper.make_node("Add", ["s1", "y_t"], ["s2"]),
         helper.make_node("Tanh", ["s2"], ["acc_next"]), _const("three", 3.0),
         helper.make_node("Mul", ["x_t", "three"], ["x3"]), helper.make_node("Identity", ["acc_next"], ["acc_out"])],
        "body", [helper.make_tensor_value_info(n, F32, None) for n in ("acc", "x_t", "y_t")],
        [helper.make_tensor_value_info(n, F32, None) for n in ("acc_next", "acc_out", "x3")])
    nodes = [helper.make_node("Mul", ["V0", "two"], ["V"]),
             helper.make_node("Scan", ["h0", "x", "y"], ["h_last", "hs", "xs"], name="loop", body=body,
                              num_scan_inputs=2, scan_input_axes=[0, 1], scan_input_directions=[0, 1],
                              scan_output_axes=[1, -1], scan_output_directions=[1, 0])]
    graph = helper.make_graph(
        nodes[::order], "mixed",
        [helper.make_tensor_value_info("h0", F32, ["B", 4]), helper.make_tensor_value_info("x", F32, [6, "B", 3]),
         helper.make_tensor_value_info("y", F32, ["B", 6, 4])],
        [helper.make_tensor_value_info(n, F32, None) for n in ("h_last", "hs", "xs")],
        [_init("W", (4, 4), 1), _init("V0", (3, 4), 2), numpy_helper.from_array(np.float32(2.0), "two")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _feeds(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return {"h0": rng.normal(size=(batch, 4)).astype(np.float32), "x": rng.normal(size=(6, batch, 3)).astype(np.float32),
            "y": rng.normal(size=(batch, 6, 4)).astype(np.float32)}


def test_a_scan_with_its_own_axis_and_direction_per_input_and_output_matches_onnxruntime():
    want = run_ort(mixed_scan_model(), _feeds(3))
    assert [w.shape for w in want] == [(3, 4), (3, 6, 4), (3, 3, 6)]
    for order in (1, -1):          # the body reads V by name: V is computed first however the file lists it
        m = nnc.from_onnx(mixed_scan_model(order))
        assert m.graph("predict").op_counts()["scan"] == 1
        for name, w, g in zip(("h_last", "hs", "xs"), want, m.forward(**_feeds(3))):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=name)


def nested_scan_model():
    """An outer Scan over x [B, T, F] (state h [B, H]) whose body runs an inner Scan over
    the H columns of h (state s [B]), reading k (an initializer of the main graph, two
    scopes out) and c (a value of the outer body)."""
    inner = helper.make_graph(
        [helper.make_node("Mul", ["s", "k"], ["sk"]), helper.make_node("Add", ["sk", "h_j"], ["t1"]),
         helper.make_node("Add", ["t1", "c"], ["t2"]), helper.make_node("Tanh", ["t2"], ["s_next"]),
         helper.make_node("Identity", ["s_next"], ["s_out"])],
        "inner", [helper.make_tensor_value_info(n, F32, None) for n in ("s", "h_j")],
        [helper.make_tensor_value_info(n, F32, None) for n in ("s_next", "s_out")])
    outer = helper.make_graph(
        [_const("axes1", [1], np.int64), helper.make_node("ReduceSum", ["x_t", "axes1"], ["c"], keepdims=0),
         helper.make_node("Scan", ["c", "h"], ["s_last", "ss"], name="inner_loop", body=inner, num_scan_inputs=1,
                          scan_input_axes=[1], scan_output_axes=[1]),
         helper.make_node("MatMul", ["x_t", "W"], ["xw"]), helper.make_node("MatMul", ["ss", "R"], ["sr"]),
         helper.make_node("Add", ["xw", "sr"], ["z"]), helper.make_node("Tanh", ["z"], ["h_next"]),
         helper.make_node("Identity", ["s_last"], ["s_step"])],
        "outer", [helper.make_tensor_value_info(n, F32, None) for n in ("h", "x_t")],
        [helper.make_tensor_value_info(n, F32, None) for n in ("h_next", "s_step")])
    graph = helper.make_graph(
        [helper.make_node("Scan", ["h0", "x"], ["h_last", "s_steps"], name="outer_loop", body=outer,
                          num_scan_inputs=1, scan_input_axes=[1], scan_output_axes=[1])],
        "nested", [helper.make_tensor_value_info("h0", F32, ["B", 4]), helper.make_tensor_value_info("x", F32, ["B", 5, 3])],
        [helper.make_tensor_value_info(n, F32, None) for n in ("h_last", "s_steps")],
        [_init("W", (3, 4), 3), _init("R", (4, 4), 4), numpy_helper.from_array(np.full(1, 0.7, np.float32), "k")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_scan_in_a_scan_imports_exports_and_matches_onnxruntime():
    rng = np.random.default_rng(5)
    feeds = {"h0": rng.normal(size=(2, 4)).astype(np.float32), "x": rng.normal(size=(2, 5, 3)).astype(np.float32)}
    want = run_ort(nested_scan_model(), feeds)
    m = nnc.from_onnx(nested_scan_model())
    (outer,) = [n for n in m.graph("predict").nodes if n.op == "scan"]
    assert [n.op for n in outer.attr["body"].nodes].count("scan") == 1
    got = m.forward(**feeds)
    again = to_onnx(m)                                  # the nested scan exports as a Scan in a Scan
    assert [n.op_type for n in all_nodes(again.graph)].count("Scan") == 2
    for name, w, g, e in zip(("h_last", "s_steps"), want, got, run_ort(again, feeds)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(e, w, rtol=1e-5, atol=1e-6, err_msg=name)


def _scan_attr(model, name, value):
    node = model.graph.node[-1]
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept + [helper.make_attribute(name, value)])
    return model


def _extra_body_input(model):
    model.graph.node[-1].attribute[0].g.input.append(helper.make_tensor_value_info("spare", F32, None))
    return model


def _symbolic_steps(model):
    model.graph.input[1].type.tensor_type.shape.dim[0].dim_param = "T"
    return model


def _state_changes_type(model):
    body = model.graph.node[-1].attribute[0].g
    body.node.append(helper.make_node("ReduceSum", ["acc_next", "axes0"], ["acc_sum"], keepdims=1))
    body.node.append(_const("axes0", [0], np.int64))
    body.output[0].name = "acc_sum"
    return model


def _unsupported_body_op(model):
    body = model.graph.node[-1].attribute[0].g
    body.node[2].op_type = "Frobnicate"
    body.node[2].name = "odd"
    return model


@pytest.mark.parametrize("change, message", [
    (lambda m: _scan_attr(m, "num_scan_inputs", 4), r"num_scan_inputs=4 with 3 inputs: nnc needs at least one"),
    (_extra_body_input, r"the body takes 4 inputs and gives 3 outputs; with 1 state variable\(s\) and 2 scan input\(s\) "
                        r"it must take 3"),
    (lambda m: _scan_attr(m, "scan_input_axes", [0]), r"scan_input_axes has 1 entries for 2 inputs"),
    (lambda m: _scan_attr(m, "scan_input_axes", [0, 3]), r"scan input 1 has axis 3, out of range for rank 3"),
    (lambda m: _scan_attr(m, "scan_output_directions", [1, 2]), r"scan directions must be 0 \(forward\) or 1"),
    (_symbolic_steps, r"the scan inputs' lengths along their scan axes must be one static number .*got \['6', 'T'\]"),
    (_state_changes_type, r"body output 'acc_sum' \(state variable 0\) is f32\[1,4\], but the state's initial "
                          r"value is f32\[B,4\]"),
    (_unsupported_body_op, r"body: node 'odd' \(Frobnicate, opset 17\): operator Frobnicate is not supported"),
])
def test_what_a_scan_cannot_express_is_an_error_naming_the_node(change, message):
    with pytest.raises(OnnxImportError, match=r"node 'loop' \(Scan, opset 17\): " + message):
        nnc.from_onnx(change(mixed_scan_model()))


def test_a_scan_without_sequences_and_with_pass_through_outputs_exports_like_the_interpreter():
    """A scan no recurrent layer builds: no sequence (Scan counts its steps from a scan input,
    so the export gives it one to count), a carry returned unchanged, an invariant and a
    constant as per-step outputs. ONNX Runtime against the IR's reference interpreter."""
    from types import SimpleNamespace

    from nncompiler.ir.graph import Builder
    from nncompiler.ir.interpret import interpret
    from nncompiler.ir.shapes import TensorType
    body = Builder("step")
    x, keep = body.argument("x", "carry", TensorType("f32", ("B", 3))), body.argument("k", "carry", TensorType("f32", (3,)))
    a = body.argument("a", "param", TensorType("f32", (3, 3)))
    nxt = body.tanh(body.add(body.matmul(x, a), keep))
    half = body.constant((0.5, 0.25), "f32", (2,))
    step = body.build([("x", nxt), ("k", keep), ("y", nxt), ("a", a), ("half", half), ("y2", nxt)])
    b = Builder("loop")
    x0, k0 = b.argument("x0", "input", TensorType("f32", ("B", 3))), b.argument("k0", "input", TensorType("f32", (3,)))
    w = b.argument("w", "param", TensorType("f32", (3, 3)))
    res = b.loop(step, [x0, k0], [], [w], axis=1, length=4)
    graph = b.build([(f"r{k}", r) for k, r in enumerate(res)])
    weights = {"w": (np.random.default_rng(3).normal(size=(3, 3)) * 0.6).astype(np.float32)}
    model = SimpleNamespace(graph=lambda kind: graph, params=weights, buffers={}, lowered=SimpleNamespace(name="loop"))
    proto = to_onnx(model)
    assert [n.op_type for n in proto.graph.node].count("Scan") == 1
    feeds = {"x0": np.random.default_rng(4).normal(size=(2, 3)).astype(np.float32),
             "k0": np.array([0.1, -0.2, 0.3], np.float32)}
    want = interpret(graph, {**feeds, **weights})
    for k, got in enumerate(run_ort(proto, feeds)):
        np.testing.assert_allclose(got, want[f"r{k}"], rtol=1e-6, atol=1e-6, err_msg=f"r{k}")
