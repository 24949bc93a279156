"""The triton backend computes what the numpy backend (the reference) computes: every
primitive, forward and gradient, and every example model through the Model API
(forward, loss_and_grads, a few fit steps), to rtol 1e-4. Without a GPU the kernels run
in Triton's interpreter (see conftest.py)."""
import functools
import os

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.autodiff import grad
from nncompiler.backends import get_backend
from nncompiler.backends.numpy import compile_graph
from nncompiler.ir import Builder, Graph
from nncompiler.ir.shapes import NUMPY_DTYPE, TensorType

try:
    from tests.oracle import (S, draw_cotangent_weight, every_primitive_args, every_primitive_graph,
                              missing_primitives, op_graph, type_of)
except ImportError:  # tests/ itself is on sys.path
    from oracle import (S, draw_cotangent_weight, every_primitive_args, every_primitive_graph,
                        missing_primitives, op_graph, type_of)

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples")
RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def backend():
    return get_backend("triton")


def run_both(backend, g: Graph, args: dict):
    ours = backend.compile(g)(args)
    ref = compile_graph(g)({k: np.asarray(v) for k, v in args.items()})
    return {k: backend.to_numpy(v) for k, v in ours.items()}, {k: np.asarray(v) for k, v in ref.items()}


def check_close(ours, ref, skip=()):
    for name, want in ref.items():
        if name in skip:
            continue
        got = ours[name]
        assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, numpy gives {want.dtype}"
        assert got.shape == want.shape, f"{name}: shape {got.shape}, numpy gives {want.shape}"
        if want.dtype == bool or np.issubdtype(want.dtype, np.integer):
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=name)


# ---- every primitive -------------------------------------------------------------------

def test_every_primitive_forward(backend):
    g = every_primitive_graph()
    assert not missing_primitives(g)
    ours, ref = run_both(backend, g, every_primitive_args())
    # rng_uniform draws from Philox on the device (numpy's stream only with Backend(host_rng=True))
    check_close(ours, ref, skip={"rng_uniform"})
    r = ours["rng_uniform"]
    assert r.dtype == np.float32 and r.shape == (2, 2) and ((r >= 0) & (r < 1)).all()


def test_every_primitive_with_host_rng_matches_numpy_stream(backend):
    from nncompiler.backends.triton import Backend
    g = every_primitive_graph()
    ours, ref = run_both(Backend(host_rng=True), g, every_primitive_args())
    check_close(ours, ref)


def test_rng_uniform_on_device_is_uniform_and_keyed(backend):
    b = Builder("rng")
    key = b.argument("rng.key", "rng", TensorType("i32", ()))
    out = b.rng_uniform(key, seed=3, dtype="f32", shape=(64, 64))
    fn = backend.compile(b.build({"r": out}))
    r1 = backend.to_numpy(fn({"rng.key": np.int32(1)})["r"])
    r1b = backend.to_numpy(fn({"rng.key": np.int32(1)})["r"])
    r2 = backend.to_numpy(fn({"rng.key": np.int32(2)})["r"])
    np.testing.assert_array_equal(r1, r1b)            # the same key: the same numbers
    assert not np.array_equal(r1, r2)                 # a new step: new numbers
    assert ((r1 >= 0) & (r1 < 1)).all()
    assert abs(r1.mean() - 0.5) < 0.02 and abs(r1.var() - 1 / 12) < 0.01


# forward + gradient of one op at a time: op(x...) then sum(out * r), differentiated
GRAD_CASES = [
    ("exp", (S(3, 5),), {}), ("log", (S(4, kind="pos"),), {}), ("log1p", (S(2, 3, kind="gt-1"),), {}),
    ("sqrt", (S(6, kind="pos"),), {}), ("tanh", (S(2, 7),), {}), ("tanh", (S(3, 4, kind="large"),), {}),
    ("sigmoid", (S(5, 3),), {}), ("sigmoid", (S(3, 4, kind="large"),), {}), ("neg", (S(4),), {}),
    ("abs", (S(3, 3, kind="away0"),), {}), ("sign", (S(5, kind="away0"),), {}),
    ("add", (S(3, 1), S(1, 4)), {}), ("sub", (S(4,), S(2, 3, 4)), {}), ("mul", (S(2, 3, 4), S(4,)), {}),
    ("div", (S(2, 3), S(2, 3, kind="away0")), {}), ("pow", (S(3, 4, kind="pos"), S(4)), {}),
    ("pow", (S(5, kind="pos"), S()), {}), ("maximum", (S(4, 5, kind="ties"), S(4, 5, kind="ties")), {}),
    ("minimum", (S(3, 1), S(1, 4)), {}), ("where", (S(2, 3, kind="bool"), S(3), S(2, 3)), {}),
    ("cast", (S(2, 3),), {"dtype": "f64"}), ("exp", (S(2, 3, dtype="f64"),), {}),
    ("sum", (S(2, 3, 4),), {"axes": (1,), "keepdims": False}),
    ("sum", (S(2, 3, 4),), {"axes": (0, 2), "keepdims": True}),
    ("sum", (S(2, 3, 4),), {"axes": (0, 1, 2)}), ("sum", (S(),), {"axes": ()}),
    ("max", (S(4, 6, kind="ties"),), {"axes": (1,)}), ("max", (S(3, 4, 5),), {"axes": (0, 2), "keepdims": True}),
    ("matmul", (S(3, 4), S(4, 5)), {}), ("matmul", (S(2, 3, 4), S(4, 5)), {}),
    ("matmul", (S(2, 1, 3, 4), S(5, 4, 2)), {}), ("matmul", (S(1, 1), S(1, 1)), {}),
    ("reshape", (S(2, 3, 4),), {"shape": (6, 4)}), ("reshape", (S(6),), {"shape": (1, 2, 3, 1)}),
    ("transpose", (S(2, 3, 4),), {"perm": (2, 0, 1)}), ("broadcast_to", (S(3, 1),), {"shape": (2, 3, 4)}),
    ("slice", (S(5, 6),), {"start": (1, 0), "stop": (5, 6), "step": (3, 2)}),
    ("slice", (S(3, 4, 5),), {"start": (1, 1, 0), "stop": (3, 4, 5), "step": (1, 2, 4)}),
    ("pad", (S(2, 3),), {"lo": (0, 2), "hi": (1, 0), "interior": (2, 0)}),
    ("pad", (S(3),), {"lo": (1,), "hi": (2,), "interior": (1,)}),
    ("concat", (S(2, 3), S(1, 3), S(4, 3)), {"axis": 0}), ("concat", (S(2, 1), S(2, 3)), {"axis": 1}),
    ("gather", (S(5, 3), S(4, kind="int")), {"axis": 0}), ("gather", (S(2, 6), S(2, 2, kind="int")), {"axis": 1}),
]


@pytest.mark.parametrize("op,specs,attrs", GRAD_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(GRAD_CASES)])
def test_op_forward_and_gradient(backend, op, specs, attrs):
    rng = np.random.default_rng(abs(hash((op, str(specs)))) % 2**32)
    inputs = [s.draw(rng) for s in specs]
    base = op_graph(op, [type_of(a) for a in inputs], attrs, weight=False)
    out_t = base.output("out").type
    r = draw_cotangent_weight(tuple(out_t.shape), out_t.dtype)
    g = op_graph(op, [type_of(a) for a in inputs], attrs)
    wrt = [f"x{i}" for i, a in enumerate(inputs) if np.asarray(a).dtype.kind == "f"]
    gg = grad(g, "loss", wrt)
    args = {f"x{i}": a for i, a in enumerate(inputs)}
    args["r"] = r
    ours, ref = run_both(backend, gg, args)
    check_close(ours, ref)


def test_symbolic_batch_sizes_share_one_compiled_graph(backend):
    b = Builder("sym")
    x = b.argument("x", "input", TensorType("f32", ("B", 5)))
    w = b.argument("w", "param", TensorType("f32", (5, 3)))
    h = b.matmul(x, w)
    s = b.sum(b.exp(h), axes=(1,), keepdims=True)
    g = b.build({"y": b.div(b.exp(h), s), "m": b.sum(h, axes=(0,))})
    fn = backend.compile(g)
    rng = np.random.default_rng(0)
    wv = rng.standard_normal((5, 3)).astype(np.float32)
    for n in (1, 3, 17, 70):
        xv = rng.standard_normal((n, 5)).astype(np.float32)
        ours, ref = run_both(backend, g, {"x": xv, "w": wv})
        check_close({k: backend.to_numpy(v) for k, v in fn({"x": xv, "w": wv}).items()}, ref)


# ---- every example, through the Model API --------------------------------------------------

def _data(m, rows):
    from nncompiler.program import TrainConfig
    from nncompiler.train.dataset import training_data
    low = m.lowered
    cwd = os.getcwd()
    data = training_data(low, low.train or TrainConfig(), None)
    os.chdir(cwd)
    return {k: v[:rows] for k, v in data.items()}


MODELS = ["iris", "linefit", "digits", "multilabel", "digits_cnn", "residual"]


@pytest.mark.parametrize("name", MODELS)
def test_example_model_matches_numpy(name, monkeypatch):
    if name == "residual":                      # dropout: draw numpy's stream for exact parity
        import nncompiler.backends.triton as triton_backend
        monkeypatch.setattr(triton_backend, "Backend", functools.partial(triton_backend.Backend, host_rng=True))
    path = os.path.join(EXAMPLES, f"{name}.nn")
    mt = nnc.compile(path, backend="triton")
    mn = nnc.compile(path)
    for k, v in mn.params.items():
        np.testing.assert_array_equal(mt.params[k], v)        # the same initial numbers
    plan = mt.backend.plan(mt.graph("train_step"))
    convs = [k for k in plan.kernels if any(plan.graph[n].op == "conv" for n in k.nodes)]
    assert all(k.kind == "matmul" for k in convs)           # digits_cnn: implicit-GEMM kernels, no torch conv
    assert len(convs) == (2 if name == "digits_cnn" else 0)
    # no torch call in a training step: convs and pooling are kernels (the residual's dropout
    # draws numpy's stream on the host here, for exact parity)
    assert all(k.kind != "fallback" or plan.graph[k.nodes[0]].op == "rng_uniform" for k in plan.kernels)
    pools = [k for k in plan.kernels if any(plan.graph[n].op in ("reduce_window", "select_scatter") for n in k.nodes)]
    assert len(pools) == (2 if name == "digits_cnn" else 0) and all(k.kind == "pointwise" for k in pools)
    batch = _data(mn, 16)
    inputs = {k: v for k, v in batch.items() if k in mn.lowered.inputs}
    np.testing.assert_allclose(mt.forward(**inputs), mn.forward(**inputs), rtol=RTOL, atol=ATOL)
    lt, gt = mt.loss_and_grads(**batch)
    ln, gn = mn.loss_and_grads(**batch)
    np.testing.assert_allclose(lt, ln, rtol=RTOL)
    for k in gn:
        np.testing.assert_allclose(gt[k], gn[k], rtol=RTOL, atol=ATOL, err_msg=k)
    ht = mt.fit(epochs=2, batch_size=8, shuffle=False, **batch)       # four optimizer steps
    hn = mn.fit(epochs=2, batch_size=8, shuffle=False, **batch)
    for k in hn:
        np.testing.assert_allclose(ht[k], hn[k], rtol=RTOL, atol=ATOL, err_msg=k)
    # batchnorm cancels some gradients to rounding noise, and Adam divides noise by its own square
    # root: those weights may move by up to lr per step in either backend
    atol = 2 * 0.003 * 4 if name == "residual" else ATOL
    for k, v in mn.params.items():
        np.testing.assert_allclose(mt.params[k], v, rtol=RTOL, atol=atol, err_msg=k)
    rel = 1e-3 if name == "residual" else RTOL
    assert mt.evaluate(**batch)["loss"] == pytest.approx(mn.evaluate(**batch)["loss"], rel=rel)


@pytest.mark.parametrize("name", ["basics", "softmax", "tensors"])
def test_example_graph_matches_numpy(name):
    path = os.path.join(EXAMPLES, f"{name}.nn")
    mt = nnc.compile(path, backend="triton")
    mn = nnc.compile(path)
    feeds = {}
    rng = np.random.default_rng(0)
    for k, t in mn.lowered.inputs.items():
        shape = tuple(d if isinstance(d, int) else 3 for d in t.shape)
        feeds[k] = rng.standard_normal(shape).astype(NUMPY_DTYPE[t.dtype]) if t.dtype.startswith("f") \
            else rng.integers(0, 2, shape).astype(NUMPY_DTYPE[t.dtype])
    yt, yn = mt.forward(**feeds), mn.forward(**feeds)
    yt, yn = (yt if isinstance(yt, tuple) else (yt,)), (yn if isinstance(yn, tuple) else (yn,))
    for a, b in zip(yt, yn):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_recurrent_example_matches_numpy():
    path = os.path.join(EXAMPLES, "sine_rnn.nn")
    mt = nnc.compile(path, backend="triton")
    mn = nnc.compile(path)
    batch = _data(mn, 4)
    lt, gt = mt.loss_and_grads(**batch)
    ln, gn = mn.loss_and_grads(**batch)
    np.testing.assert_allclose(lt, ln, rtol=RTOL)
    for k in gn:
        np.testing.assert_allclose(gt[k], gn[k], rtol=RTOL, atol=ATOL, err_msg=k)


def test_looped_reductions_over_long_rows(backend):
    # more rows than one interpreter tile (8192): the loop, its masks and argmax's tie-breaking
    b = Builder("long")
    x = b.argument("x", "input", TensorType("f32", ("B", 3)))
    g = b.build({"am": b.argmax(x, axis=0), "mx": b.max(x, axes=(0,)), "s": b.sum(x, axes=(0,)),
                 "mean": b.div(b.sum(x, axes=(0, 1)), b.size(x, axes=(0, 1), dtype="f32"))})
    rng = np.random.default_rng(1)
    xv = rng.integers(-3, 4, (9001, 3)).astype(np.float32)           # many ties: the first one wins
    ours, ref = run_both(backend, g, {"x": xv})
    check_close(ours, ref)


def test_integer_and_f64_matmuls(backend):
    b = Builder("mm")
    i = b.argument("i", "input", TensorType("i32", (5, 6)))
    j = b.argument("j", "input", TensorType("i32", (6, 3)))
    d = b.argument("d", "input", TensorType("f64", (2, 4, 8)))
    e = b.argument("e", "input", TensorType("f64", (8, 2)))
    g = b.build({"imm": b.matmul(i, j), "dmm": b.matmul(d, e)})
    rng = np.random.default_rng(2)
    ours, ref = run_both(backend, g, {"i": rng.integers(-9, 9, (5, 6)).astype(np.int32),
                                      "j": rng.integers(-9, 9, (6, 3)).astype(np.int32),
                                      "d": rng.standard_normal((2, 4, 8)), "e": rng.standard_normal((8, 2))})
    check_close(ours, ref)
