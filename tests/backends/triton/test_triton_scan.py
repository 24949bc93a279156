"""`scan` on the Triton backend as a host loop over its body's kernels (backends/triton/loops.py,
scan_runner.py) instead of unrolled: the same numbers as the numpy backend (its loop is the
reference, itself checked against torch in tests/library/test_recurrent_layers.py), a kernel
count that does not grow with T, and -- through the CUDA-graph stand-in of test_triton_graphs
-- every step's launches inside the captured step, with only the batch uploaded.

Shapes are small: the interpreter runs each launch in milliseconds, and a looped scan of T
steps launches its body's kernels T times."""
import os

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.autodiff import grad
from nncompiler.backends import get_backend
from nncompiler.backends.numpy import compile_graph
from nncompiler.backends.triton import aot, loop_bodies
from nncompiler.backends.triton.cache import write_module
from nncompiler.backends.triton.loops import LOOP_MIN_LENGTH
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType

try:
    from tests.backends.triton.test_triton_graphs import FakeCuda
except ImportError:  # tests/ itself is on sys.path
    from backends.triton.test_triton_graphs import FakeCuda

RTOL, ATOL = 1e-4, 1e-5
T = LOOP_MIN_LENGTH          # the shortest scan that loops


def _source(layer, steps=T, return_sequences=False, go_backwards=False, batch=3, features=2, units=4,
            optimizer="sgd()"):
    rs, gb = ("true" if return_sequences else "false"), ("true" if go_backwards else "false")
    out = f"[{batch}, {steps}, {units}]" if return_sequences else f"[{batch}, {units}]"
    return f"""
model M {{
    input  x: f32[{batch}, {steps}, {features}]
    target r: f32{out}
    param  dx: f32[{batch}, {steps}, {features}] = 0.0
    h = {layer}(x + dx, {units}, return_sequences={rs}, go_backwards={gb})
    output h
    loss sum(h * r)
    optimizer {optimizer}
}}"""


def _models(tmp_path, source, name="m"):
    path = os.path.join(tmp_path, f"{name}.nn")
    with open(path, "w") as f:
        f.write(source)
    return nnc.compile(path, backend="triton"), nnc.compile(path)


def _batch(mn, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(tuple(t.shape)).astype(np.float32)
            for k, t in {**mn.lowered.inputs, **mn.lowered.targets}.items()}


def _loops(backend, graph) -> int:
    return sum(1 for k in backend.plan(graph).kernels if k.kind == "loop")


def _check_model(mt, mn, batch):
    assert _loops(mt.backend, mt.graph("predict")) == 1        # looped, not unrolled
    assert _loops(mt.backend, mt.graph("gradients")) == 2      # the forward scan and its reverse
    np.testing.assert_allclose(mt.forward(x=batch["x"]), mn.forward(x=batch["x"]), rtol=RTOL, atol=ATOL)
    (lt, gt), (ln, gn) = mt.loss_and_grads(**batch), mn.loss_and_grads(**batch)
    np.testing.assert_allclose(lt, ln, rtol=RTOL)
    assert set(gn) == {"dx", "h.kernel", "h.recurrent_kernel", "h.bias"}
    for k in gn:
        assert np.abs(gn[k]).max() > 0, k                    # a real gradient, compared below
        np.testing.assert_allclose(gt[k], gn[k], rtol=RTOL, atol=ATOL, err_msg=k)


@pytest.mark.parametrize("layer", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("flags", [(False, False), (True, True)], ids=["last", "sequences_backwards"])
def test_layer_forward_and_gradients_match_numpy(tmp_path, layer, flags):
    mt, mn = _models(tmp_path, _source(layer, return_sequences=flags[0], go_backwards=flags[1]))
    _check_model(mt, mn, _batch(mn))


@pytest.mark.parametrize("flags", [(True, False), (False, True)], ids=["sequences", "backwards"])
def test_lstm_other_flags_match_numpy(tmp_path, flags):
    mt, mn = _models(tmp_path, _source("lstm", return_sequences=flags[0], go_backwards=flags[1]))
    _check_model(mt, mn, _batch(mn, seed=1))


BIDIRECTIONAL = f"""
model Bi {{
    input  x: f32[3, {T}, 2]
    target r: f32[3, 8]
    fw = gru(x, 4)
    bw = gru(x, 4, go_backwards=true)
    h  = concat([fw, bw], axis=1)
    output h
    loss sum(h * r)
    optimizer sgd()
}}"""


def test_bidirectional_pair_matches_numpy(tmp_path):
    """The language has no Bidirectional wrapper: a forward and a go_backwards layer over the
    same input, concatenated (Keras's Bidirectional with merge_mode="concat"): two loops
    forward, their two reverse scans backward, and the gradient of x flowing from both. (ONNX's
    bidirectional layers import unrolled: onnx/ops_rnn.py emits no scan.)"""
    mt, mn = _models(tmp_path, BIDIRECTIONAL, "bi")
    batch = _batch(mn, seed=2)
    assert _loops(mt.backend, mt.graph("gradients")) == 4
    np.testing.assert_allclose(mt.forward(x=batch["x"]), mn.forward(x=batch["x"]), rtol=RTOL, atol=ATOL)
    (lt, gt), (ln, gn) = mt.loss_and_grads(**batch), mn.loss_and_grads(**batch)
    np.testing.assert_allclose(lt, ln, rtol=RTOL)
    for k in gn:
        np.testing.assert_allclose(gt[k], gn[k], rtol=RTOL, atol=ATOL, err_msg=k)


@pytest.mark.parametrize("layer", ["rnn", "lstm", "gru"])
def test_kernel_count_and_module_do_not_grow_with_T(tmp_path, layer):
    counts, units = {}, {}
    for steps in (20, 60):          # one file name: the modules' comments cite it
        mt, _ = _models(tmp_path, _source(layer, steps=steps, optimizer="adam(lr=0.01)"), layer)
        g = mt.graph("train_step")
        assert _loops(mt.backend, g) == 2
        counts[steps] = mt.backend.kernel_count(g)
        units[steps] = mt.backend.units(g)
    assert counts[20] == counts[60], counts
    # the bodies' modules are the same text at any T, so an AOT compile of one is a cache hit
    # for the other; the enclosing module has the same kernels, with other sizes
    assert [u[2] for u in units[20][1:]] == [u[2] for u in units[60][1:]]
    assert [k.name for k in units[20][0][3]] == [k.name for k in units[60][0][3]]
    # unrolled, the same layer at 7 steps already needs more kernels than the loop at 60
    mt, _ = _models(tmp_path, _source(layer, steps=LOOP_MIN_LENGTH - 1, optimizer="adam(lr=0.01)"), f"{layer}u")
    g = mt.graph("train_step")
    assert _loops(mt.backend, g) == 0
    assert mt.backend.kernel_count(g) > counts[60]


# Kernels per step of each layer's loop bodies: (forward body, VJP body). An unrolled step
# takes 2 / 4 / 4 (rnn / lstm / gru), fusing across step boundaries. The VJP's pointwise
# groups that read the same cotangent share one kernel as siblings (plan_fuse._fuse_siblings;
# plan_space._anchor_parts gives a part with no dataflow edge to the anchor its loop
# dimensions): lstm's VJP 4 -> 3, gru's 5 -> 3 (its two gate-gradient groups merge, and the
# concat of the gradients it stacks rides in the bias-gradient reduction over the same [B, 3u]).
# What stays, per step: the concat that makes the recurrent matmul's operand one buffer (lstm,
# gru: the pieces are computed in the pointwise kernel, and a concat of computed values has no
# address there), the gates' slices of the forward matmul's output (lstm, gru: a tile of the
# matmul holds only part of a row), and rnn's tanh' product feeding its backward matmul (no
# matmul prologue; the product is also stacked for the weight gradient).
BODY_KERNELS = {"rnn": (1, 2), "lstm": (2, 3), "gru": (2, 3)}     # before: (1, 2), (2, 4), (2, 5)


@pytest.mark.parametrize("layer", ["rnn", "lstm", "gru"])
def test_body_kernels_per_step(tmp_path, layer):
    mt, _ = _models(tmp_path, _source(layer))
    bodies = {b.name: b for b in loop_bodies(mt.backend.plan(mt.graph("gradients"))).values()}
    counts = (mt.backend.kernel_count(bodies["h.step"]), mt.backend.kernel_count(bodies["h.step_vjp"]))
    assert counts == BODY_KERNELS[layer], counts
    # one pointwise kernel over the backward step's [batch, units]: the sibling gate gradients merged
    vjp = mt.backend.plan(bodies["h.step_vjp"])
    assert sum(1 for k in vjp.kernels if k.kind == "pointwise" and tuple(k.space.shape) == (3, 4)) == 1


def test_symbolic_batch_body_fuses_its_gate_gradients():
    """sine_rnn's batch is the symbol B: the body's operands are all [B, 16], and its VJP's two
    gate-gradient groups share a kernel over [B, 16] as they do at a static batch."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "sine_rnn.nn")
    mt = nnc.compile(path, backend="triton")
    bodies = {b.name: b for b in loop_bodies(mt.backend.plan(mt.graph("train_step"))).values()}
    vjp = mt.backend.plan(bodies["h.step_vjp"])
    assert vjp.launches() == 3
    (k,) = [k for k in vjp.kernels if k.kind == "pointwise" and tuple(k.space.shape) == ("B", 16)]
    assert not [w for w in vjp.why if w.reason.startswith("siblings:")]


GRU_B = f"""
model G {{
    input  x: f32[B, {T}, 2]
    target r: f32[B, 4]
    param  dx: f32[1, {T}, 2] = 0.0
    h = gru(x + dx, 4)
    output h
    loss sum(h * r)
    optimizer sgd()
}}"""


def test_symbolic_batch_gru_sibling_in_a_looped_reduction_matches_numpy(tmp_path):
    """At a symbolic batch the gru VJP's bias-gradient sum over B loops over the batch; the
    concat it does not read (the stacked gate gradients) is its sibling over the same [B, 12]
    and is stored from inside that loop."""
    mt, mn = _models(tmp_path, GRU_B, "gru_b")
    bodies = {b.name: b for b in loop_bodies(mt.backend.plan(mt.graph("gradients"))).values()}
    vjp = mt.backend.plan(bodies["h.step_vjp"])
    (red,) = [k for k in vjp.kernels if k.kind == "reduction"]
    assert vjp.launches() == 3 and not red.space.persistent
    assert [vjp.graph[n].op for n in red.nodes].count("concat") == 2
    _check_model(mt, mn, _batch_of(mn, rows=5))


def _batch_of(mn, rows, seed=3):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(tuple(rows if d == "B" else d for d in t.shape)).astype(np.float32)
            for k, t in {**mn.lowered.inputs, **mn.lowered.targets}.items()}


def _launches_per_step(backend, graph) -> int:
    """What one call of the graph launches: its own kernels once, each loop body's T times."""
    plan = backend.plan(graph)
    bodies = loop_bodies(plan)
    own = sum(1 for k in plan.kernels if k.kind != "loop")
    return own + sum(plan.graph[sid].attr["length"] * _launches_per_step(backend, body)
                     for sid, body in bodies.items())


def test_captured_step_holds_every_step_of_the_loop_and_uploads_only_the_batch(tmp_path):
    mt, mn = _models(tmp_path, _source("lstm", optimizer="adam(lr=0.01)"))
    mt.backend.cuda_api = api = FakeCuda()          # before anything is compiled
    batches = [_batch(mn, seed=s) for s in range(4)]
    for b in batches[:2]:                            # the first call compiles, the second captures
        mt.step_on_device(**b)
    assert api.captures == 2
    cg = mt.compiled("train_step")
    per_step = _launches_per_step(mt.backend, mt.graph("train_step"))
    bodies = [mt.backend.kernel_count(body) for body in loop_bodies(mt.backend.plan(mt.graph("train_step"))).values()]
    assert sorted(bodies) == [2, 3]       # forward: matmul + gates; backward: gate grads, concat, matmul
    assert per_step == (mt.backend.plan(mt.graph("train_step")).launches() - 2) + T * sum(bodies)
    before = (api.uploads, api.copies, api.syncs, api.replays, cg.launches)
    for b in batches[2:]:
        mt.step_on_device(**b)
    steps = len(batches) - 2
    assert api.replays - before[3] == steps and api.captures == 2   # the bodies capture nothing of their own
    # a replay runs what was captured: every step of both loops, T launches per body kernel
    assert cg.launches - before[4] == steps * per_step
    assert api.uploads - before[0] == 2 * steps       # x and r, nothing per scan step
    assert api.copies - before[1] == 0 and api.syncs - before[2] == 0
    for b in batches:
        mn.step(**b)
    for k, v in mn.params.items():
        np.testing.assert_allclose(mt.params[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def _nested(inner_steps: int, outer_steps: int = T):
    """h threads through an outer scan over [B, To, Ti, F]; each outer step runs an inner scan
    over its [B, Ti, F] slice, carrying c from h; both stack their per-step states."""
    f = TensorType("f32", ("B", 3))
    ib = Builder("inner")
    c, x = ib.argument("c", "carry", f), ib.argument("x", "input", f)
    c2 = ib.tanh(ib.add(ib.mul(c, ib.scalar(0.5)), x))
    inner = ib.build([("c", c2), ("y", ib.mul(c2, c2))])
    ob = Builder("outer")
    h = ob.argument("h", "carry", f)
    xs = ob.argument("xs", "input", TensorType("f32", ("B", inner_steps, 3)))
    w = ob.argument("w", "param", TensorType("f32", (3, 3)))
    cf, ys = ob.loop(inner, [ob.matmul(h, w)], [xs], axis=1)
    outer = ob.build([("h", ob.add(cf, h)), ("ys", ys)])
    b = Builder("nested")
    x = b.argument("x", "input", TensorType("f32", ("B", outer_steps, inner_steps, 3)))
    w = b.argument("w", "param", TensorType("f32", (3, 3)))
    h0 = b.argument("h0", "input", f)
    hT, ys = b.loop(outer, [h0], [x], [w], axis=1, reverse=True)
    loss = b.sum(b.mul(b.add(ys, b.scalar(1.0)), b.tanh(x)), axes=(0, 1, 2, 3))
    return grad(b.build({"loss": b.add(loss, b.sum(hT, axes=(0, 1))), "hT": hT, "ys": ys}),
                wrt=["x", "w", "h0"])


@pytest.mark.parametrize("inner_steps", [T, 3], ids=["loop_of_loops", "inner_unrolled"])
def test_nested_scan_matches_numpy(inner_steps):
    be = get_backend("triton")
    g = _nested(inner_steps)
    plan = be.plan(g)
    bodies = loop_bodies(plan)
    assert len(bodies) == 2                          # the outer scan and its reverse (VJP)
    # the inner scan in the forward body; in the VJP body, its forward again and its reverse
    inner_loops = sum(_loops(be, body) for body in bodies.values())
    assert inner_loops == (3 if inner_steps >= LOOP_MIN_LENGTH else 0)   # short inner scans unroll
    rng = np.random.default_rng(4)
    args = {"x": rng.standard_normal((2, T, inner_steps, 3)).astype(np.float32),
            "w": (0.5 * rng.standard_normal((3, 3))).astype(np.float32),
            "h0": rng.standard_normal((2, 3)).astype(np.float32)}
    ours = {k: be.to_numpy(v) for k, v in be.compile(g)(args).items()}
    ref = compile_graph(g)(args)
    assert set(ours) == set(ref) >= {"grad.x", "grad.w", "grad.h0"}
    for k, want in ref.items():
        np.testing.assert_allclose(ours[k], np.asarray(want), rtol=RTOL, atol=ATOL, err_msg=k)


def test_short_scans_stay_unrolled(tmp_path):
    for steps, loops in ((LOOP_MIN_LENGTH - 1, 0), (LOOP_MIN_LENGTH, 2)):
        mt, _ = _models(tmp_path, _source("gru", steps=steps), f"g{steps}")
        assert _loops(mt.backend, mt.graph("train_step")) == loops


def test_emit_kernels_shows_the_loop_and_its_body(tmp_path):
    from nncompiler.report import emit
    mt, _ = _models(tmp_path, _source("lstm"))
    text = emit(mt, "kernels")
    assert "loop_scan_" in text and f"scan over {T} steps: graph h.step's kernels once per step" in text
    assert "scan over 8 steps, reverse: graph h.step_vjp's kernels" in text
    assert "graph h.step: 2 kernels" in text and "graph h.step_vjp: 3 kernels" in text
    assert "kernels per training step: " in text and f"(+ scan bodies: 2 x {T} steps, 3 x {T} steps)" in text


def test_body_kernels_compile_to_ptx_for_sm_90(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path / "cache"))
    mt, _ = _models(tmp_path, _source("lstm"))
    units = mt.backend.units(mt.graph("gradients"))[1:]        # the two bodies' modules
    assert [u[0].name for u in units] == ["h.step", "h.step_vjp"]
    items = [(write_module(g.name, text), kernels) for g, _, text, kernels in units]
    res = aot.compile_all(items, aot.parse_target("sm_90"))
    for (_, kernels), r in zip(items, res):
        assert kernels
        for ks in kernels:
            assert ".target sm_90" in r[ks.name]["ptx"] and f".entry {ks.name}(" in r[ks.name]["ptx"]


def test_carries_passed_through_swapped_and_stacked_twice_match_numpy():
    """The runner's buffer rules (scan_runner.py): a carry passed through unchanged, two carries
    swapping places, a carry that is also a stacked output (twice), a sequence slice stacked as
    is and a reduction per step -- none may alias a buffer a later step or the caller writes."""
    f = TensorType("f32", (2, 3))
    bb = Builder("step")
    a, c, k, keep = (bb.argument(n, "carry", f) for n in ("a", "c", "k", "keep"))
    x = bb.argument("x", "input", f)
    k2 = bb.tanh(bb.add(bb.mul(k, bb.scalar(0.9)), bb.mul(x, a)))
    body = bb.build([("a", c), ("c", a), ("k", k2), ("keep", keep),
                     ("y", k2), ("y2", k2), ("xs", x), ("s", bb.sum(a, axes=(1,)))])
    b = Builder("swaps")
    xs = b.argument("x", "input", TensorType("f32", (2, T, 3)))
    a0, c0, k0 = (b.argument(n, "input", f) for n in ("a0", "c0", "k0"))
    res = b.loop(body, [a0, c0, k0, b.add(a0, c0)], [xs], axis=1, reverse=True)
    out = {n: v for n, v in zip(("a", "c", "k", "keep", "y", "y2", "xs", "s"), res)}
    out["loss"] = b.add(b.sum(b.mul(out["y"], xs), axes=(0, 1, 2)), b.sum(out["s"], axes=(0, 1)))
    g = grad(b.build(out), wrt=["x", "a0", "c0", "k0"])
    be = get_backend("triton")
    assert len(loop_bodies(be.plan(g))) == 2
    rng = np.random.default_rng(5)
    args = {"x": rng.standard_normal((2, T, 3)).astype(np.float32),
            **{n: rng.standard_normal((2, 3)).astype(np.float32) for n in ("a0", "c0", "k0")}}
    ours = {k: be.to_numpy(v) for k, v in be.compile(g)(args).items()}
    ref = compile_graph(g)(args)
    np.testing.assert_array_equal(ours["xs"], args["x"])
    np.testing.assert_array_equal(ours["a"], args["a0"])       # T is even: swapped back
    for k, want in ref.items():
        np.testing.assert_allclose(ours[k], np.asarray(want), rtol=RTOL, atol=ATOL, err_msg=k)



def test_symbolic_batch_rebinds_inside_the_body_each_call():
    """sine_rnn's x is [B, 20]: its loop body's kernels see B from the step slices, per call."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "sine_rnn.nn")
    mt, mn = nnc.compile(path, backend="triton"), nnc.compile(path)
    assert _loops(mt.backend, mt.graph("predict")) == 1
    rng = np.random.default_rng(7)
    for rows in (2, 5, 2):
        x = rng.standard_normal((rows, 20)).astype(np.float32)
        np.testing.assert_allclose(mt.forward(x=x), mn.forward(x=x), rtol=RTOL, atol=ATOL, err_msg=str(rows))


def _quiet_body():
    f = TensorType("f32", (2, 3))
    bb = Builder("quiet")
    c, x = bb.argument("c", "carry", f), bb.argument("x", "input", f)
    return bb.build([("c", bb.add(bb.mul(c, bb.scalar(0.5)), x))])


def test_a_body_drawing_random_numbers_is_unrolled():
    """rng_uniform draws from one Philox key per node: a loop would replay the same numbers
    every step, so such a scan is unrolled at any length (passes.unroll.draws_random)."""
    f = TensorType("f32", (2, 3))
    bb = Builder("noisy")
    c, x = bb.argument("c", "carry", f), bb.argument("x", "input", f)
    key = bb.argument("key", "param", TensorType("i32", ()))
    c2 = bb.add(bb.mul(c, bb.rng_uniform(key, seed=1, dtype="f32", shape=(2, 3))), x)
    body = bb.build([("c", c2)])
    b = Builder("g")
    xs = b.argument("x", "input", TensorType("f32", (T, 2, 3)))
    key = b.argument("key", "rng", TensorType("i32", ()))
    (cT,) = b.loop(body, [b.broadcast_to(b.scalar(0.0), shape=(2, 3))], [xs], [key])
    g = b.build({"c": cT})
    be = get_backend("triton")
    assert _loops(be, g) == 0
    quiet = Builder("g")
    xs = quiet.argument("x", "input", TensorType("f32", (T, 2, 3)))
    (cT,) = quiet.loop(_quiet_body(), [quiet.broadcast_to(quiet.scalar(0.0), shape=(2, 3))], [xs])
    assert _loops(be, quiet.build({"c": cT})) == 1

