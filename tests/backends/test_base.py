"""The backend protocol (nncompiler/backends/base.py): every backend implements it, keeps
dtypes when placing and fetching arrays, and compiles a graph whatever its name."""
from __future__ import annotations

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.backends import KNOWN, get_backend
from nncompiler.backends.base import Backend
from nncompiler.program import build_init

REQUIRED = ("compile", "emit", "to_device", "to_numpy")


@pytest.mark.parametrize("name", KNOWN)
def test_every_backend_implements_the_protocol(name):
    b = get_backend(name)
    assert isinstance(b, Backend) and b.name == name
    for method in REQUIRED:
        assert getattr(type(b), method) is not getattr(Backend, method), f"{name} does not implement {method}"
    assert isinstance(b.stages, tuple)


@pytest.mark.parametrize("name", KNOWN)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_place_fetch_and_copy_keep_values_and_dtypes(name, dtype):
    b = get_backend(name)
    host = (np.arange(6).reshape(2, 3) * 1.25).astype(dtype)
    dev = b.to_device(host)
    back = np.asarray(b.to_numpy(dev))
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, host)
    copied = np.asarray(b.to_numpy(b.copy(dev)))
    assert copied.dtype == dtype
    np.testing.assert_array_equal(copied, host)


INIT = """
model Init {
    input  x: f32[B, 3]
    target y: f32[B, 2]
    out = dense(x, 2)
    output out
    loss mse(out, y)
    optimizer sgd(lr=0.1)
}
"""


@pytest.mark.parametrize("name", ["triton", "mlir"])
def test_a_graph_named_init_is_compiled_by_the_backend_asked(name):
    """No dispatch on graph names: the init graph runs on numpy only because `Model` asks the
    numpy backend for it; given to another backend it is that backend's code, with the same values."""
    g = build_init(nnc.compile(INIT).lowered)
    assert g.name == "init" and not g.args
    numpy = get_backend("numpy")
    want = numpy.run(numpy.compile(g), {})
    b = get_backend(name)
    fn = b.compile(g)
    assert type(fn).__module__.startswith(f"nncompiler.backends.{name}.")
    got = b.run(fn, {})
    assert set(got) == set(want)
    for k, v in want.items():
        np.testing.assert_allclose(np.asarray(b.to_numpy(got[k])), v, rtol=1e-6, atol=1e-7)


def test_every_backend_starts_from_the_numpy_initial_values():
    ref = nnc.compile(INIT).params
    for name in ("triton", "mlir"):
        for k, v in nnc.compile(INIT, backend=name).params.items():
            np.testing.assert_array_equal(v, ref[k])


def test_positional_calls_give_what_run_gives_on_the_same_arguments():
    """The default `positional` goes through `run` with the arguments named; numpy's hands out the
    generated function itself (it takes the graph's arguments in the graph's order)."""
    class Recorder(Backend):
        def run(self, compiled, args):
            return {"sum": args["a"] + 10 * args["b"]}

    call = Recorder().positional(None, ("b", "a"))
    assert call(2.0, 1.0) == {"sum": 21.0}
    numpy = get_backend("numpy")
    m = nnc.compile(INIT)
    g = m.graph("predict")
    compiled = numpy.compile(g)
    names = tuple(a.attr["name"] for a in g.args)
    args = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), **{k: v for k, v in m.params.items()}}
    assert numpy.positional(compiled, names) is compiled.fn
    direct = numpy.positional(compiled, names)(*(args[n] for n in names))
    reordered = numpy.positional(compiled, names[::-1])(*(args[n] for n in names[::-1]))
    want = args["x"].astype(np.float64) @ m.params["out.kernel"] + m.params["out.bias"]
    for out in (direct, reordered, numpy.run(compiled, args)):
        np.testing.assert_allclose(out["out"], want, rtol=1e-6)
