"""The numpy backend's generated scan loops (backends/numpy/loopgen.py) against loop.run_scan,
which runs the same body compiled alone once per step: the same bits for every body that
qualifies (recurrent layers' steps and their VJPs, and a synthetic body with every kind of
value and output), the same training steps, and the generated code's shape (no allocation
and no copy of a result inside the loop)."""
from __future__ import annotations

import re
import weakref

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.backends.numpy import loopgen
from nncompiler.backends.numpy.codegen import compile_graph
from nncompiler.backends.numpy.loop import run_scan, scan_body
from nncompiler.ir import Builder, TensorType, print_graph
from nncompiler.ir.interpret import interpret


def _operands(scan, rng, batch=3):
    """Random operands of a scan node's types, with the batch B bound to `batch`."""
    def draw(node_type):
        shape = tuple(batch if d == "B" else d for d in node_type.shape)
        if node_type.dtype == "bool":
            return rng.random(shape) < 0.5
        return rng.standard_normal(shape).astype(np.float32)
    return [draw(t) for t in scan]


def _same(fast, slow):
    assert len(fast) == len(slow)
    for f, s in zip(fast, slow):
        assert f.shape == s.shape and f.dtype == s.dtype
        np.testing.assert_array_equal(f, s)
        if f.dtype.kind == "f":      # bit for bit: NaNs' signs and -0.0 included
            u = np.dtype(f"u{f.dtype.itemsize}")
            np.testing.assert_array_equal(np.ascontiguousarray(f).view(u), np.ascontiguousarray(s).view(u))


def _run_both(body, n_carry, n_seq, axis, length, reverse, operands):
    text = print_graph(body)
    assert loopgen.qualifies(body, n_carry, n_seq)
    fast = loopgen.loop_function(text, n_carry, n_seq)(axis, length, reverse, *operands)
    slow = run_scan(scan_body(text), n_carry, n_seq, axis, length, reverse, *operands)
    _same(fast, slow)


_LAYERS = {"lstm": ("lstm(x, 5)", "[B, 1]"), "rnn": ("rnn(x, 5)", "[B, 1]"),
           "rnn_relu": ("rnn(x, 5, activation=relu)", "[B, 1]"), "gru": ("gru(x, 5)", "[B, 1]"),
           "lstm_seq": ("lstm(x, 5, return_sequences=true)", "[B, 7, 1]"),
           "gru_back": ("gru(x, 5, go_backwards=true)", "[B, 1]")}


def _model_source(layer: str, comment: str = "", steps: int = 7) -> str:
    call, target = _LAYERS[layer]
    return f"""model M {{
    input x: f32[B, {steps}, 3]
    target y: f32{target}
    h = {call}
    out = dense(h, 1)
    output out
    loss mse(out, y)
    optimizer adam(lr=0.01)
}}
{comment}"""


def _scans(graph):
    return [n for n in graph.nodes if n.op == "scan"]


@pytest.mark.parametrize("layer", sorted(_LAYERS))
def test_recurrent_steps_and_their_vjps_give_run_scans_bits(layer):
    m = nnc.compile(_model_source(layer))
    scans = _scans(m.graph("train_step"))
    qualified = [loopgen.qualifies(s.attr["body"], s.attr["n_carry"], s.attr["n_seq"]) for s in scans]
    # every step and VJP qualifies but the GRU's VJP, which sums its recurrent bias
    # gradient over the batch inside the loop (an [3*units] carry)
    assert qualified == ([True, False] if layer.startswith("gru") else [True, True])
    rng = np.random.default_rng(0)
    for s, ok in zip(scans, qualified):
        if ok:
            a = s.attr
            types = [m.graph("train_step")[i].type for i in s.inputs]
            _run_both(a["body"], a["n_carry"], a["n_seq"], a["axis"], a["length"], a["reverse"],
                      _operands(types, rng))


def _synthetic_body():
    """Two carries; a product with an invariant and with an invariant's transpose, a [N]
    bias and a [B, N] invariant, slices, a concat, a comparison and a select, a constant;
    outputs: the carries, the carry going in, a carry coming out again, a sequence passed
    through, a slice, the concat and a boolean."""
    b = Builder("step")
    h = b.argument("h", "carry", TensorType("f32", ("B", 4)))
    c = b.argument("c", "carry", TensorType("f32", ("B", 2)))
    x = b.argument("x", "input", TensorType("f32", ("B", 6)))
    w = b.argument("w", "param", TensorType("f32", (4, 6)))
    v = b.argument("v", "param", TensorType("f32", (2, 6)))
    bias = b.argument("bias", "param", TensorType("f32", (6,)))
    r = b.argument("r", "param", TensorType("f32", ("B", 4)))
    z = b.add(b.add(b.matmul(h, w), x), bias)
    a = b.slice(z, start=(0, 0), stop=(None, 4), step=(1, 1))
    g = b.sigmoid(b.slice(z, start=(0, 2), stop=(None, None), step=(1, 1)))
    pos = b.gt(a, b.scalar(0.0))
    hn = b.tanh(b.add(b.where(pos, a, b.mul(g, b.scalar(0.5))), r))
    q = b.concat(hn, b.slice(z, start=(0, 0), stop=(None, 2), step=(1, 1)), axis=1)
    cn = b.add(b.matmul(q, b.transpose(v, perm=(1, 0))), b.mul(c, b.scalar(0.9)))
    return b.build({"h": hn, "c": cn, "h_in": h, "h_out": hn, "x": x, "a": a, "q": q, "pos": pos})


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axis", [0, 1])
def test_every_kind_of_value_and_output_gives_run_scans_bits(reverse, axis):
    body = _synthetic_body()
    assert loopgen.qualifies(body, 2, 1)
    rng = np.random.default_rng([axis, reverse])
    B, T = 3, 5
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    xs = f(T, B, 6) if axis == 0 else f(B, T, 6)
    _run_both(body, 2, 1, axis, T, reverse, [f(B, 4), f(B, 2), xs, f(4, 6), f(2, 6), f(6), f(B, 4)])
    # a strided sequence and a broadcast zero one, as the IR produces them
    strided = xs[..., ::-1]
    _run_both(body, 2, 1, axis, T, reverse, [f(B, 4), f(B, 2), strided, f(4, 6), f(2, 6), f(6), f(B, 4)])
    zero = np.broadcast_to(np.float32(0), xs.shape)
    _run_both(body, 2, 1, axis, T, reverse, [f(B, 4), f(B, 2), zero, f(4, 6), f(2, 6), f(6), f(B, 4)])


def test_bodies_outside_the_plan_are_refused():
    b = Builder("step")
    h = b.argument("h", "carry", TensorType("f32", ("B", 4)))
    w = b.argument("w", "param", TensorType("f32", (4, 4)))
    total = b.sum(h, axes=(0,))                       # a reduction over the batch
    refused = b.build({"h": b.add(b.matmul(h, w), total)})
    assert loopgen.plan(refused, 1, 0) is None
    b = Builder("step")
    h = b.argument("h", "carry", TensorType("f32", ("B", 4)))
    refused = b.build({"h": b.mul(h, h), "y": b.reshape(h, shape=("B", 2, 2))})
    assert loopgen.plan(refused, 1, 0) is None       # a rank-3 value
    assert not loopgen.qualifies(_synthetic_body(), 2, 1, precision="bf16")   # products round operands


@pytest.mark.parametrize("layer", ["lstm", "rnn", "lstm_seq"])
def test_training_steps_are_bitwise_those_of_run_scan(layer, monkeypatch):
    rng = np.random.default_rng(1)
    y_shape = (4, 7, 1) if layer == "lstm_seq" else (4, 1)
    feeds = {"x": rng.standard_normal((4, 7, 3)).astype(np.float32),
             "y": rng.standard_normal(y_shape).astype(np.float32)}
    fast = nnc.compile(_model_source(layer))
    assert "= _loop_function(" in fast.compiled("train_step").source
    monkeypatch.setattr(loopgen, "qualifies", lambda *a, **k: False)
    slow = nnc.compile(_model_source(layer, "# compiled again"))
    assert "= _loop_function(" not in slow.compiled("train_step").source
    slow.set_params(fast.params)
    for _ in range(3):
        assert fast.step(**feeds)["loss"] == slow.step(**feeds)["loss"]
    for name, value in fast.params.items():
        np.testing.assert_array_equal(value, slow.params[name], err_msg=name)
    np.testing.assert_array_equal(fast.forward(x=feeds["x"]), slow.forward(x=feeds["x"]))


def _loop_lines(source: str) -> list[str]:
    """The statements of the forward loop of a generated loop function, its header first."""
    body = source.split("def loop(")[1].split("\n    else:\n")[1].split("\n    return")[0]
    return [line.strip() for line in body.splitlines()]


def test_lstm_loops_allocate_nothing_and_copy_nothing_but_the_vjps_concat():
    m = nnc.compile(_model_source("lstm"))
    forward, vjp = (loopgen.generate(s.attr["body"], s.attr["n_carry"], s.attr["n_seq"],
                                     loopgen.plan(s.attr["body"], s.attr["n_carry"], s.attr["n_seq"]))
                    for s in _scans(m.graph("train_step")))
    for source, calls in ((forward, 15), (vjp, 11)):
        header, *lines = _loop_lines(source)
        # the step's rows of stacks and sequences are named by iterating them
        assert re.fullmatch(r"for (\w+, )+in zip\(.*\):", header)
        numpy_calls = [s for s in lines if re.match(r"_\w+\(", s)]
        # every call writes into a buffer it is given (its last argument, positional but for
        # maximum's out=): nothing is allocated per step
        assert all(re.fullmatch(r"_(\w+)\(.*, (out=)?\w+\)  # .*", s) for s in numpy_calls), numpy_calls
        assert all(("out=" in s) == s.startswith("_maximum(") for s in numpy_calls), numpy_calls
        assert len(numpy_calls) == calls == len(lines)     # and no other Python work per step
    # forward: product, add, the pre-activation's copy into blocks, the 6 calls of sigmoid,
    # tanh, 2 mul, add, tanh, mul. The pre-activation and the gates are block-major,
    # [4, B, units]: the gates i, f, o (which the VJP reads) are blocks of one [T, 4, B, units]
    # stack the sigmoid writes, tanh reads the cell block in place; no column slice is copied
    copies = [s for s in _loop_lines(forward)[1:] if s.startswith("_copyto(")]
    assert len(copies) == 1 and "into its blocks" in copies[0]
    assert re.search(r"_keep\(_ws, .G\d+., \(T, 4, B, 5\), np.float32\)", forward)
    # VJP: the gates' gradients are computed into the blocks of one [4, B, units] buffer, and
    # their concat is one copy of it into the stacked [B, 4*units] row, no np.concatenate
    copies = [s for s in _loop_lines(vjp)[1:] if s.startswith("_copyto(")]
    assert len(copies) == 1 and "concat" in copies[0]
    assert not any("_concatenate(" in s for s in _loop_lines(vjp))
    # and the gates' gradients are one multiply of a [4, B, units] buffer by the gates'
    # derivatives stacked once a call (loopgroups.py): 14 -> 11 calls a step
    grouped = [s for s in _loop_lines(vjp)[1:] if ", grouped" in s]
    assert len(grouped) == 1 and re.match(r"_multiply\(P\d+, d0, g\d+\)", grouped[0]), grouped
    assert vjp.count("= _stack_seqs(") == 1


def _block_major_body():
    """An LSTM-like step whose [B, 8] values are read only in blocks of 2 columns: the
    pre-activation (a product plus a sequence), a chain of elementwise values after it (with
    an invariant row and the carry h as operands), its sigmoid; the blocks are stacked
    outputs (views of a block stack), a carry (copied), a repeated output, concat parts."""
    b = Builder("step")
    h = b.argument("h", "carry", TensorType("f32", ("B", 8)))
    c = b.argument("c", "carry", TensorType("f32", ("B", 2)))
    q = b.argument("q", "carry", TensorType("f32", ("B", 2)))
    x = b.argument("x", "input", TensorType("f32", ("B", 8)))
    y = b.argument("y", "input", TensorType("f32", ("B", 2)))
    w = b.argument("w", "param", TensorType("f32", (8, 8)))
    r = b.argument("r", "param", TensorType("f32", ("B", 8)))

    def block(v, j):
        return b.slice(v, start=(0, 2 * j), stop=(None, 2 * j + 2), step=(1, 1))
    z = b.add(b.matmul(h, w), x)
    z2 = b.mul(b.add(b.add(z, r), x), h)
    g = b.sigmoid(z2)
    i, f, o = block(g, 0), block(g, 1), block(g, 3)
    cn = b.add(b.mul(f, c), b.mul(i, b.tanh(block(z, 2))))
    hn = b.concat(b.mul(o, b.tanh(cn)), i, f, b.tanh(b.add(y, q)), axis=1)
    m = b.concat(block(z2, 0), block(z2, 1), axis=1)
    return b.build({"h": hn, "c": cn, "q": block(g, 2), "i": i, "f": f, "o": o, "i_again": i,
                    "zs": block(z, 3), "m": m})


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axis", [0, 1])
def test_block_major_values_give_run_scans_bits(reverse, axis):
    body = _block_major_body()
    p = loopgen.plan(body, 3, 2)
    source = loopgen.generate(body, 3, 2, p)
    assert source.count("# block-major") == 3          # z + r, + x, z2 (z, g: in block stacks)
    assert "_in_blocks(a3, axis, 4, 2)" in source       # x, read in blocks by z + r + x
    assert source.count(", block-major: its blocks are stacked outputs") == 2   # g and z
    # z's operands are rows (a product and a sequence): computed as a row, copied into blocks
    assert source.count("as a row, before its blocks") == 1
    rng = np.random.default_rng([axis, reverse, 11])
    B, T = 3, 5
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    seq = (lambda n: f(T, B, n)) if axis == 0 else (lambda n: f(B, T, n))
    carries = [f(B, 8), f(B, 2), f(B, 2)]
    _run_both(body, 3, 2, axis, T, reverse, [*carries, seq(8), seq(2), f(8, 8), f(B, 8)])
    # a strided sequence and a broadcast zero one, as the IR produces them
    _run_both(body, 3, 2, axis, T, reverse, [*carries, seq(16)[..., ::2], seq(2), f(8, 8), f(B, 8)])
    zero = np.broadcast_to(np.float32(0), seq(8).shape)
    _run_both(body, 3, 2, axis, T, reverse, [*carries, zero, seq(2), f(8, 8), f(B, 8)])


def test_a_block_stacks_outputs_feed_another_scan_without_a_copy():
    from nncompiler.backends.numpy.loop import time_major
    stack = np.zeros((5, 4, 3, 2), np.float32)
    block = loopgen.stacked(stack[:, 1], 1)            # [B, T, w], as the loop returns it
    assert np.shares_memory(time_major(block, 1), stack)
    assert not time_major(block, 1).flags.c_contiguous and time_major(block, 1)[0].flags.c_contiguous
    strided = np.zeros((5, 3, 4), np.float32)[:, :, ::2]
    assert not np.shares_memory(time_major(strided, 0), strided)     # a strided step is copied


def _block_concat_body():
    """Concats whose parts the step computes for them alone, of one width: into a stacked
    output, into a carry, and into a value read by a product; and two that keep
    np.concatenate (a part that is an argument; parts of two widths)."""
    b = Builder("step")
    h = b.argument("h", "carry", TensorType("f32", ("B", 6)))
    x = b.argument("x", "input", TensorType("f32", ("B", 2)))
    y = b.argument("y", "input", TensorType("f32", ("B", 2)))
    w = b.argument("w", "param", TensorType("f32", (6, 6)))
    parts = [b.mul(x, y), b.tanh(x), b.sigmoid(b.add(x, y))]
    stacked = b.concat(*parts, axis=1)                                # [B, 6], a stacked output
    hn = b.concat(b.sub(x, y), b.mul(x, b.scalar(2.0)), b.tanh(y), axis=1)   # the carry
    z = b.matmul(b.concat(b.add(y, y), b.neg(x), b.exp(y), axis=1), w)       # read by a product
    # x is an argument: this one stays np.concatenate; its inner one is computed block by block
    mixed = b.concat(x, b.mul(y, y), b.tanh(b.concat(b.neg(y), b.abs(x), b.neg(x), axis=1)), axis=1)
    return b.build({"h": hn, "s": stacked, "z": b.add(z, h), "m": mixed})


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axis", [0, 1])
def test_concats_computed_block_by_block_give_run_scans_bits(reverse, axis):
    body = _block_concat_body()
    p = loopgen.plan(body, 1, 2)
    source = loopgen.generate(body, 1, 2, p)
    assert source.count("concat's parts, block by block") == 4
    assert source.count("_concatenate(") == 2       # the forward and reverse loops' `mixed`
    rng = np.random.default_rng([axis, reverse, 7])
    B, T = 3, 4
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    seq = (lambda: f(T, B, 2)) if axis == 0 else (lambda: f(B, T, 2))
    _run_both(body, 1, 2, axis, T, reverse, [f(B, 6), seq(), seq(), f(6, 6)])


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_written_out_sigmoid_has_the_helpers_bits_on_special_values(dtype):
    b = Builder("step")
    h = b.argument("h", "carry", TensorType(dtype, ("B", 8)))
    x = b.argument("x", "input", TensorType(dtype, ("B", 8)))
    z = b.add(h, x)
    body = b.build({"h": b.mul(b.sigmoid(z), b.scalar(1.0, dtype)), "z": b.sigmoid(b.mul(z, b.scalar(3.0, dtype)))})
    np_type = np.float32 if dtype == "f32" else np.float64
    special = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 90.0, -90.0, 1e-40, -1e-40, 800.0, -800.0]
    rng = np.random.default_rng(3)
    xs = rng.choice(np.array(special, np_type), size=(5, 4, 8))
    with np.errstate(all="ignore"):
        _run_both(body, 1, 1, 1, 4, False, [rng.standard_normal((5, 8)).astype(np_type), xs])


def test_the_vjps_precomputed_gate_products_follow_the_stacks_layout():
    # the saved gates reach the VJP as [B, T, N] views of time-major stacks; the products
    # of them computed before the reverse loop (large enough for a workspace buffer: the
    # batch is guessed at 64) are laid out the same way
    src = nnc.compile(_model_source("lstm", steps=120)).compiled("train_step").source
    assert len(re.findall(r"out=_buf_like\(_ws, 'like\d+', t\d+, np\.float32\)", src)) == 5


def test_a_scans_results_are_never_overwritten_in_place():
    """A carry's final value is the last row of the stack of its per-step values; an op
    at the last use of that stack must not write into it (memory plan)."""
    s = Builder("cell")
    c = s.argument("c", "carry", TensorType("f32", ("B", 16)))
    x = s.argument("x", "input", TensorType("f32", ("B", 16)))
    h = s.tanh(s.add(c, x))
    body = s.build({"c": h, "h": h})
    b = Builder("g")
    c0 = b.argument("c0", "input", TensorType("f32", ("B", 16)))
    xs = b.argument("xs", "input", TensorType("f32", ("B", 40, 16)))
    final, hs = b.loop(body, [c0], [xs], [], axis=1)
    doubled = b.mul(hs, b.scalar(2.0))          # the stack's last use: large, a candidate
    g = b.build({"doubled": doubled, "final": b.add(final, b.scalar(1.0))})
    rng = np.random.default_rng(2)
    args = {"c0": rng.standard_normal((64, 16)).astype(np.float32),
            "xs": rng.standard_normal((64, 40, 16)).astype(np.float32)}
    got = compile_graph(g)(args)
    want = interpret(g, args)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6)


def test_a_body_name_reaches_the_generated_code_only_quoted():
    b = Builder("step\nraise SystemExit  # ")
    h = b.argument("h", "carry", TensorType("f32", ("B", 2)))
    body = b.build({"h": b.tanh(h)})
    source = loopgen.generate(body, 1, 0, loopgen.plan(body, 1, 0))
    assert "\nraise SystemExit" not in source
    namespace: dict = {}
    exec(compile(source, "<test>", "exec"), namespace)
    c = np.ones((2, 2), np.float32)
    final, = namespace["loop"](0, 3, False, c)
    np.testing.assert_array_equal(final, np.tanh(np.tanh(np.tanh(c))))


def test_a_scans_input_projection_is_computed_time_major_with_the_same_bits(monkeypatch):
    """x @ kernel + bias, [B, T, 4u], the LSTM's sequence operand: its workspace has the time
    axis outermost (codegen._scan_major_values), so the loop reads it without a copy, and the
    same per-batch products give the same training steps as the C-ordered workspace."""
    from nncompiler.backends.numpy import codegen
    from nncompiler.backends.numpy.loop import time_major
    rng = np.random.default_rng(5)
    feeds = {"x": rng.standard_normal((4, 30, 3)).astype(np.float32),
             "y": rng.standard_normal((4, 1)).astype(np.float32)}
    fast = nnc.compile(_model_source("lstm", steps=30))   # [B, 30, 20]: large enough for a workspace
    source = fast.compiled("train_step").source
    assert "_buf_major(_ws, " in source and "axis 1 outermost" in source
    monkeypatch.setattr(codegen, "_scan_major_values", lambda graph, mem: {})
    slow = nnc.compile(_model_source("lstm", "# compiled again", steps=30))
    assert "_buf_major(_ws" not in slow.compiled("train_step").source
    slow.set_params(fast.params)
    for _ in range(3):
        assert fast.step(**feeds)["loss"] == slow.step(**feeds)["loss"]
    for name, value in fast.params.items():
        np.testing.assert_array_equal(value, slow.params[name], err_msg=name)
    from nncompiler.backends.numpy.rules import PRELUDE
    ns = {}
    exec(compile(PRELUDE, "<prelude>", "exec"), ns)
    ws = {}
    a = ns["_buf_major"](ws, "k", (4, 7, 12), np.float32, 1)
    assert a.shape == (4, 7, 12) and ns["_buf_major"](ws, "k", (4, 7, 12), np.float32, 1) is a
    assert np.shares_memory(time_major(a, 1), a) and time_major(a, 1).flags.c_contiguous



def test_compiled_loops_and_bodies_are_bounded_and_a_recompiled_one_gives_the_same_bits(monkeypatch):
    """loopgen._LOOPS and loop._BODIES keep at most MAX_LOOPS / MAX_BODIES entries, the least
    recently used dropped first; a dropped entry compiles again, to a new function with the
    same results."""
    from nncompiler.backends.numpy import loop
    monkeypatch.setattr(loopgen, "MAX_LOOPS", 2)
    monkeypatch.setattr(loopgen, "_LOOPS", type(loopgen._LOOPS)())
    monkeypatch.setattr(loop, "MAX_BODIES", 2)
    monkeypatch.setattr(loop, "_BODIES", type(loop._BODIES)())
    m = nnc.compile(_model_source("lstm"))
    forward, vjp = ((print_graph(s.attr["body"]), s.attr["n_carry"], s.attr["n_seq"])
                    for s in _scans(m.graph("train_step")))
    third = (print_graph(_synthetic_body()), 2, 1)
    first = loopgen.loop_function(*forward)
    assert loopgen.loop_function(*forward) is first          # kept
    loopgen.loop_function(*vjp)
    loopgen.loop_function(*forward)                          # used again: vjp is now the oldest
    loopgen.loop_function(*third)
    assert list(loopgen._LOOPS) == [forward, third]          # vjp dropped, forward kept
    loopgen.loop_function(*vjp)                              # forward the oldest now: dropped
    assert list(loopgen._LOOPS) == [third, vjp]
    again = loopgen.loop_function(*forward)
    assert again is not first and len(loopgen._LOOPS) == 2
    rng = np.random.default_rng(5)
    s = _scans(m.graph("train_step"))[0]
    a = s.attr
    operands = _operands([m.graph("train_step")[i].type for i in s.inputs], rng)
    _same(first(a["axis"], a["length"], a["reverse"], *operands),
          again(a["axis"], a["length"], a["reverse"], *operands))
    # the bodies run_scan calls: the same bound
    fns = [scan_body(t) for t in (third[0], forward[0], vjp[0])]
    assert list(loop._BODIES) == [(forward[0], "fp32"), (vjp[0], "fp32")]
    body_again = scan_body(third[0])
    assert body_again is not fns[0] and len(loop._BODIES) == 2
    args = _operands([n.type for n in _synthetic_body().args], rng)
    _same(fns[0](*args), body_again(*args))


def test_kept_stacks_are_reused_only_while_no_view_of_them_is_held():
    """A loop keeps its stacks in the workspace it is given (loopgen.keep): the next call
    reuses one no view of which is held any more, and allocates a new one while a result
    of the last call (a view of it) is still held, which so stays what it was."""
    m = nnc.compile(_model_source("lstm"))
    s = _scans(m.graph("train_step"))[0]
    a = s.attr
    fn = loopgen.loop_function(print_graph(a["body"]), a["n_carry"], a["n_seq"])
    types = [m.graph("train_step")[i].type for i in s.inputs]
    rng = np.random.default_rng(3)
    first, second = _operands(types, rng), _operands(types, rng)

    def run(operands, ws):
        return fn(a["axis"], a["length"], a["reverse"], *operands, _ws=ws)
    want = [[np.array(r) for r in run(ops, None)] for ops in (first, second)]   # fresh buffers
    ws: dict = {}
    _same(run(first, ws), want[0])
    kept = {k: weakref.ref(v) for k, v in ws.items() if isinstance(v, np.ndarray)}   # (not held)
    assert len(kept) == 5                                 # C0, C1, the gates' stack, S4, S6
    # with the lists of their rows the loop iterates (loopgen.rows), one a row
    assert all(ws[f"{k}:rows"] for k in kept) and len(ws["C0:rows"]) == 2     # rows in, rows out
    assert ws["C0:refs"] == 3 + 2 * a["length"]             # ws, local, argument, the rows
    _same(run(second, ws), want[1])                       # nothing held: the same buffers
    assert all(ws[k] is v() for k, v in kept.items())
    held = run(first, ws)                                 # results held across the next call
    _same(run(second, ws), want[1])
    _same(held, want[0])                                  # not overwritten: new buffers
    assert all(ws[k] is not v() and v() is not None for k, v in kept.items())


def test_a_models_sequence_results_held_across_calls_stay_what_they_were():
    source = """model M {
    input x: f32[B, 6, 3]
    target y: f32[B, 6, 4]
    h = lstm(x, 4, return_sequences=true)
    output h
    loss mse(h, y)
    optimizer sgd(lr=0.1)
}
"""
    m = nnc.compile(source)
    rng = np.random.default_rng(4)
    x1, x2 = (rng.standard_normal((2, 6, 3)).astype(np.float32) for _ in range(2))
    h1 = m.forward(x=x1)
    h1_copy = np.array(h1)
    h2 = m.forward(x=x2)
    np.testing.assert_array_equal(h1, h1_copy)
    assert not np.array_equal(h1, h2)
    np.testing.assert_array_equal(m.forward(x=x1), h1_copy)
    # a training step between the calls does not touch them either
    m.step(x=x1, y=rng.standard_normal((2, 6, 4)).astype(np.float32))
    np.testing.assert_array_equal(h1, h1_copy)


def _grouped_body():
    """A carry whose next value is the concat of x_j - L_j, L_j computed by the step, x_j
    sequences (the sequence first: a grouped call keeps operand positions)."""
    b = Builder("step")
    h = b.argument("h", "carry", TensorType("f32", ("B", 6)))
    xs = [b.argument(f"x{j}", "input", TensorType("f32", ("B", 2))) for j in range(3)]
    parts = []
    for j, x in enumerate(xs):
        block = b.slice(h, start=(0, 2 * j), stop=(None, 2 * j + 2), step=(1, 1))
        parts.append(b.sub(x, b.tanh(b.mul(block, b.scalar(0.5 + j)))))
    return b.build({"h": b.concat(*parts, axis=1)})


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axis", [0, 1])
def test_grouped_calls_give_run_scans_bits(reverse, axis):
    body = _grouped_body()
    source = loopgen.generate(body, 1, 3, loopgen.plan(body, 1, 3))
    grouped = [s for s in _loop_lines(source)[1:] if ", grouped" in s]
    assert len(grouped) == 1 and grouped[0].startswith("_subtract(d0, P")    # x_j - L_j, in order
    rng = np.random.default_rng([axis, reverse, 7])
    B, T = 3, 5
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    seq = (lambda: f(T, B, 2)) if axis == 0 else (lambda: f(B, T, 2))
    xs = [seq() for _ in range(3)]
    xs[1][..., 0] = np.array(0xFFC01234, np.uint32).view(np.float32)    # a NaN keeps its bits
    xs[2] = xs[2][..., ::-1]                               # a strided sequence
    _run_both(body, 1, 3, axis, T, reverse, [f(B, 6), *xs])
