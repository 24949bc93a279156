"""backends/mlir/loops.py: `scan` as calls of its body, a private function, one per chunk.

The emitted text (no IREE needed): one function per long scan, the same whatever its length,
called once per chunk; short scans unrolled. Run through IREE: forward scans and reverse scans along the leading and a later
axis, nested scans, and the VJP graphs autodiff builds from them, against the reference
interpreter (ir/interpret.py) and torch.autograd; rnn, lstm and gru layers (go_backwards,
return_sequences) against the numpy backend.
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

import nncompiler as nnc
from nncompiler.autodiff import grad
from nncompiler.backends import get_backend
from nncompiler.backends.mlir.emit import emit_module
from nncompiler.backends.mlir.loops import UNROLL_MAX_LENGTH
from nncompiler.ir import Builder, TensorType
from nncompiler.ir.interpret import interpret
from nncompiler.passes import optimize

try:
    from tests.backends.mlir.mlir_testlib import ROOT, requires_iree
except ImportError:  # tests/ itself is on sys.path
    from mlir_testlib import ROOT, requires_iree

LONG = 2 * UNROLL_MAX_LENGTH          # two chunks of UNROLL_MAX_LENGTH unrolled steps


def _rnn_graph(T, reverse=False, axis=1, counter=False):
    """h_t = tanh(h_{t-1} @ w + x_t + bias) and two per-step outputs, y_t = h_t * h_{t-1}
    (read) and h_t (never read); with `counter`, also a step count carried as i32[B] (not
    differentiable: forward only)."""
    s = Builder("cell")
    c = s.argument("c", "carry", TensorType("f32", ("B", 3)))
    k = s.argument("k", "carry", TensorType("i32", ("B",))) if counter else None
    x = s.argument("x", "input", TensorType("f32", ("B", 3)))
    w = s.argument("w", "param", TensorType("f32", (3, 3)))
    bias = s.argument("bias", "param", TensorType("f32", (3,)))
    h = s.tanh(s.add(s.add(s.matmul(c, w), x), bias))
    body = s.build({"c": h, **({"k": s.add(k, s.scalar(1, "i32"))} if counter else {}), "y": s.mul(h, c), "h": h})
    b = Builder("rnn")
    c0 = b.argument("c0", "param", TensorType("f32", ("B", 3)))
    xs = b.argument("xs", "param", TensorType("f32", ("B", T, 3) if axis == 1 else (T, "B", 3)))
    w = b.argument("w", "param", TensorType("f32", (3, 3)))
    bias = b.argument("bias", "param", TensorType("f32", (3,)))
    carries = [c0] + ([b.broadcast_to(b.scalar(0, "i32"), shape=("B",))] if counter else [])
    hT, *rest = b.loop(body, carries, [xs], [w, bias], axis=axis, reverse=reverse)
    ys = rest[-2]
    loss = b.add(b.sum(b.mul(ys, ys), axes=(0, 1, 2)), b.sum(hT, axes=(0, 1)))
    return b.build({"loss": loss, "ys": ys, "hT": hT, **({"count": rest[0]} if counter else {})})


def _args(T, axis, seed=0, batch=2):
    rng = np.random.default_rng(seed)
    f = lambda *s: (rng.standard_normal(s) * 0.7).astype(np.float32)  # noqa: E731
    xs = f(batch, T, 3) if axis == 1 else f(T, batch, 3)
    return {"c0": f(batch, 3), "xs": xs, "w": f(3, 3), "bias": f(3)}


def _torch_loss_and_grads(a, reverse, axis):
    t = {k: torch.tensor(v, requires_grad=True) for k, v in a.items()}
    c, ys = t["c0"], {}
    steps = range(a["xs"].shape[axis])
    for i in (reversed(steps) if reverse else steps):
        h = torch.tanh(c @ t["w"] + t["xs"].select(axis, i) + t["bias"])
        ys[i] = h * c
        c = h
    y = torch.stack([ys[i] for i in steps], axis)
    loss = (y * y).sum() + c.sum()
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in t.items()}


def _mlir_text(graph) -> str:
    return emit_module([graph])[0]


# ---- the emitted text ------------------------------------------------------------------------

def _functions(text: str) -> list[str]:
    """The private functions of a module's text (scan bodies), each from its header on."""
    return ["util.func private" + part.split("\n  }")[0] for part in text.split("util.func private")[1:]]


def test_a_long_scan_is_one_function_the_same_at_any_length():
    texts = [_mlir_text(optimize(grad(_rnn_graph(T)))[0]) for T in (LONG, 20 * LONG)]
    bodies = [_functions(t) for t in texts]
    assert [len(b) for b in bodies] == [2, 2]                     # the forward scan and its VJP
    assert bodies[0] == bodies[1]
    # one call per chunk of UNROLL_MAX_LENGTH steps, forward and back
    assert [t.count("util.call") for t in texts] == [2 * 2, 2 * 40]
    assert "inlining_policy = #util.inline.never" in bodies[0][0]
    assert "scf.for" not in texts[0] and "tensor.insert_slice" in texts[0]


def test_short_scans_are_unrolled():
    text = _mlir_text(optimize(grad(_rnn_graph(UNROLL_MAX_LENGTH)))[0])
    assert "util.call" not in text and "util.func" not in text


def test_only_the_per_step_outputs_something_reads_are_returned():
    text = _mlir_text(_rnn_graph(LONG))
    (body,) = _functions(text)
    head = body.splitlines()[0]
    # the carry h, and y's steps (h's own stack is never read), and the token
    results = head.split(") -> (")[1].split(") attributes")[0]
    assert results == f"tensor<?x3xf32>, tensor<?x{UNROLL_MAX_LENGTH}x3xf32>, %token", head
    # the sequence is read chunk-major: chunk j is the block [j]
    assert re.search(rf"tensor.extract_slice %\w+\[1, 0, 0, 0\] \[1, %B, {UNROLL_MAX_LENGTH}, 3\]", text)


def test_unrolled_steps_slice_their_sequence_at_opaque_offsets():
    """Step t of an unrolled scan reads xs[:, t] at an offset IREE cannot fold (the barrier
    values of the function's prologue), so every step's dispatches are one executable."""
    T = 4
    text = _mlir_text(optimize(grad(_rnn_graph(T)))[0])
    for t in range(T):
        assert len(re.findall(rf"%at{t}(?:_\d+)? = util.optimization_barrier %k{t}(?:_\d+)? : index", text)) == 1
    steps = re.findall(r"tensor.extract_slice %\w+\[0, (\S+), 0\] \[%B, 1, 3\]", text)
    assert steps and all(s.startswith("%at") for s in steps), steps
    head, body = text.split("{", 1)[1].split("%B = tensor.dim", 1)
    assert "util.optimization_barrier" in head                    # defined before the first dispatch


def test_a_body_function_ties_its_arguments_sizes():
    """Each dynamic size of a body function's argument is its own value to IREE; tying them to
    the one %B makes the chunk's first step (reading the carry arguments) and the others
    (reading the previous step's values) one executable."""
    text = _mlir_text(optimize(grad(_rnn_graph(LONG)))[0])
    forward, vjp = _functions(text)
    ties = re.findall(r"(%\S+) = flow.tensor.tie_shape (%\S+) : (tensor<[^>]+>)\{%B\}", forward)
    assert [(src, ty) for _, src, ty in ties] == [("%x", f"tensor<?x{UNROLL_MAX_LENGTH}x3xf32>")], ties
    assert "flow.tensor.tie_shape" in vjp
    assert "flow.tensor.tie_shape" not in text.split("util.func private")[0]   # public functions: never


def _flow_executables(text: str) -> int:
    """How many executables IREE makes of a module (its flow stage: cheap, no codegen)."""
    import iree.compiler as compiler
    from nncompiler.backends.mlir.runtime import FLAGS
    flow = compiler.compile_str(text, target_backends=["llvm-cpu"], extra_args=[*FLAGS, "--compile-to=flow"])
    return flow.decode().count("flow.executable private @")


@requires_iree
def test_the_steps_of_an_unrolled_scan_share_executables():
    # IREE's compile time is per executable (~60 ms of CPU each, docs/mlir.md "Compile time"):
    # with static offsets each step was its own (18, 22, 38 executables at T = 2, 4, 12)
    counts = [_flow_executables(_mlir_text(optimize(grad(_rnn_graph(T)))[0])) for T in (3, 12)]
    assert counts[0] == counts[1] <= 16, counts


@requires_iree
def test_a_chunks_first_step_shares_the_executables_of_the_others():
    """sine_rnn's LSTM (T = 20: two calls of a 10-step chunk). The chunk's first step reads the
    carry arguments h and c; tied to one %B they have the sizes of the later steps' values, so
    its dispatches are theirs: the forward body compiles to 6 executables (8 untied; 17 before
    the steps' slices had opaque offsets)."""
    import iree.compiler as compiler
    from nncompiler.backends.mlir.runtime import FLAGS
    m = nnc.compile(os.path.join(ROOT, "examples", "sine_rnn.nn"), backend="mlir")
    text = _mlir_text(m.graph("train_step"))
    flow = compiler.compile_str(text, target_backends=["llvm-cpu"], extra_args=[*FLAGS, "--compile-to=flow"])
    names = re.findall(r"flow.executable private @(\S+)_dispatch_\d+ ", flow.decode())
    forward, vjp = sorted({n for n in names if ".scan" in n}, key=lambda n: int(n.rsplit("scan", 1)[1]))
    assert names.count(forward) <= 6 and names.count(vjp) <= 6, (names.count(forward), names.count(vjp))


# ---- run through IREE --------------------------------------------------------------------------

@requires_iree
@pytest.mark.parametrize("steps", [LONG, LONG + 1], ids=["chunks", "chunks+remainder"])
@pytest.mark.parametrize("reverse,axis", [(False, 1), (True, 1), (False, 0), (True, 0)],
                         ids=["forward-axis1", "reverse-axis1", "forward-axis0", "reverse-axis0"])
def test_loop_and_its_vjp_match_the_interpreter_and_torch(reverse, axis, steps):
    g = optimize(grad(_rnn_graph(steps, reverse, axis)))[0]
    assert g.op_counts()["scan"] == 2
    a = _args(steps, axis)
    got = {k: np.asarray(v) for k, v in get_backend("mlir").compile(g)(a).items()}
    want = interpret(g, a)
    assert set(got) == set(want)
    for k in want:   # gradients through 30 tanh steps: IREE's tanh differs from numpy's by ulps
        assert got[k].dtype == want[k].dtype, k
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5, err_msg=k)
    loss, grads = _torch_loss_and_grads(a, reverse, axis)
    assert float(got["loss"]) == pytest.approx(loss, rel=1e-5)
    for k, v in grads.items():
        np.testing.assert_allclose(got[f"grad.{k}"], v, rtol=1e-4, atol=1e-5, err_msg=k)


@requires_iree
@pytest.mark.parametrize("reverse,axis", [(False, 1), (True, 0)], ids=["forward-axis1", "reverse-axis0"])
def test_a_one_step_scan_and_its_vjp_compile(reverse, axis):
    """T=1: the weight gradient's sum over the one step is a reshape (IREE refused the generic
    whose unit reduction loop no operand indexed)."""
    g = optimize(grad(_rnn_graph(1, reverse, axis)))[0]
    a = _args(1, axis)
    got = {k: np.asarray(v) for k, v in get_backend("mlir").compile(g)(a).items()}
    loss, grads = _torch_loss_and_grads(a, reverse, axis)
    assert float(got["loss"]) == pytest.approx(loss, rel=1e-5)
    for k, v in grads.items():
        np.testing.assert_allclose(got[f"grad.{k}"], v, rtol=1e-4, atol=1e-5, err_msg=k)


@requires_iree
def test_integer_carries_and_symbolic_batch():
    g = _rnn_graph(LONG, counter=True)
    fn = get_backend("mlir").compile(g)
    for batch in (1, 4):
        a = _args(LONG, 1, batch=batch)
        got, want = fn(a), interpret(g, a)
        for k in want:
            assert np.asarray(got[k]).dtype == want[k].dtype, k
            np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-5, atol=1e-6, err_msg=k)
        assert (np.asarray(got["count"]) == LONG).all()


def _nested_graph(T, inner):
    """An outer scan over T whose body scans its own [inner, 3] rows: per step,
    c <- c * 0.5 + sum over the rows r of tanh(r + c)."""
    i = Builder("row")
    acc = i.argument("acc", "carry", TensorType("f32", (3,)))
    r = i.argument("r", "input", TensorType("f32", (3,)))
    c = i.argument("c", "param", TensorType("f32", (3,)))
    inner_body = i.build({"acc": i.add(acc, i.tanh(i.add(r, c)))})
    o = Builder("step")
    c = o.argument("c", "carry", TensorType("f32", (3,)))
    rows = o.argument("rows", "input", TensorType("f32", (inner, 3)))
    (total,) = o.loop(inner_body, [o.broadcast_to(o.scalar(0.0), shape=(3,))], [rows], [c])
    new = o.add(o.mul(c, o.scalar(0.5)), total)
    outer_body = o.build({"c": new, "y": new})
    b = Builder("nested")
    c0 = b.argument("c0", "input", TensorType("f32", (3,)))
    xs = b.argument("xs", "input", TensorType("f32", (T, inner, 3)))
    cT, ys = b.loop(outer_body, [c0], [xs], [])
    return b.build({"cT": cT, "ys": ys})


@requires_iree
def test_nested_scans_are_nested_calls():
    g = _nested_graph(LONG, LONG + 1)
    text = _mlir_text(g)
    # the outer body is UNROLL_MAX_LENGTH steps, each calling the inner body (one function) for
    # its 2 chunks (and running 1 step unrolled); the outer body is called for 2 chunks
    assert len(_functions(text)) == 2
    assert text.count("util.call") == 2 + 2 * UNROLL_MAX_LENGTH
    rng = np.random.default_rng(1)
    a = {"c0": rng.standard_normal(3).astype(np.float32),
         "xs": rng.standard_normal((LONG, LONG + 1, 3)).astype(np.float32)}
    got = get_backend("mlir").compile(g)(a)
    want = interpret(g, a)
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-5, atol=1e-6, err_msg=k)


# ---- recurrent layers, forward and training step, against the numpy backend --------------------------

def _layer_model(layer, extra):
    return f"""
model M {{
    input  x: f32[B, {LONG}, 3]
    target y: f32[B, {LONG}, 2]
    s = {layer}(x, 4, {extra})
    h = dense(s, 2)
    output h
    loss mse(h, y)
    optimizer adam(lr=0.01)
}}"""


@requires_iree
@pytest.mark.parametrize("layer,extra", [
    # each is a 10-20 s IREE compile: one per layer in the default run, the rest in CI's slow step
    ("rnn", "return_sequences=true, go_backwards=true"),
    ("lstm", "return_sequences=true"),
    pytest.param("lstm", "return_sequences=true, go_backwards=true", marks=pytest.mark.slow),
    pytest.param("gru", "return_sequences=true", marks=pytest.mark.slow),
    ("gru", "return_sequences=true, go_backwards=true"),
])
def test_recurrent_layers_train_like_the_numpy_backend(layer, extra):
    src = _layer_model(layer, extra)
    a, b = nnc.compile(src, backend="numpy"), nnc.compile(src, backend="mlir")
    assert "util.call" in b.backend.emit(b.graph("train_step"))
    b.set_params(a.params)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, LONG, 3)).astype(np.float32)
    y = rng.standard_normal((5, LONG, 2)).astype(np.float32)
    np.testing.assert_allclose(b.forward(x=x), a.forward(x=x), rtol=1e-4, atol=1e-6)
    la, ga = a.loss_and_grads(x=x, y=y)
    lb, gb = b.loss_and_grads(x=x, y=y)
    assert float(lb) == pytest.approx(float(la), rel=1e-5)
    for k in ga:
        np.testing.assert_allclose(gb[k], ga[k], rtol=1e-4, atol=1e-5, err_msg=k)
    ha = a.fit(x=x, y=y, epochs=3, batch_size=5, shuffle=False)
    hb = b.fit(x=x, y=y, epochs=3, batch_size=5, shuffle=False)
    np.testing.assert_allclose(hb["loss"], ha["loss"], rtol=1e-4)
    for k in a.params:
        np.testing.assert_allclose(b.params[k], a.params[k], rtol=1e-4, atol=1e-5, err_msg=k)


@requires_iree
def test_sine_rnn_example_learns_with_its_lstm_as_a_loop(capsys, monkeypatch):
    """examples/sine_rnn.nn (T = 20, a loop of two 10-step chunks) reaches the numpy
    backend's bound (tests/library/test_recurrent_layers.py: under twice the noise floor)."""
    from nncompiler.cli import main
    monkeypatch.chdir(ROOT)
    assert main(["run", "examples/sine_rnn.nn", "--backend", "mlir", "--quiet"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch=")][-1]
    metrics = {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.e]+)", line)}
    assert metrics["epoch"] == 20
    assert metrics["val_loss"] < 0.005, line
