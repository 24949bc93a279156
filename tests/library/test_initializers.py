"""Initialisers: seeded determinism, shapes, Keras's fan rule and the statistics of big draws."""
import inspect
import math

import numpy as np
import pytest

from nncompiler.backends.numpy import evaluate
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType
from nncompiler.library import INITIALIZERS, ParamDecl, Spec, compute_fans, initial_value

TRUNC = 0.87962566103423978


def draw(name, shape, seed=1, **kw):
    b = Builder()
    out = INITIALIZERS[name](b, tuple(shape), seed, **kw)
    res = evaluate(b.build({"w": out}))["w"]
    assert res.shape == tuple(shape) and res.dtype == np.float32, (name, res.shape, res.dtype)
    return res


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_seeded_determinism_and_shape(name):
    a = draw(name, (7, 5), seed=11)
    np.testing.assert_array_equal(a, draw(name, (7, 5), seed=11))
    if name not in ("zeros", "ones", "constant"):
        assert not np.array_equal(a, draw(name, (7, 5), seed=12))
        assert np.unique(a).size > 30          # not a constant fill
    for shape in [(4,), (3, 3, 2, 4), ()]:
        draw(name, shape)


def test_fans_follow_keras():
    assert compute_fans((4, 6)) == (4, 6)
    assert compute_fans((3, 3, 16, 32)) == (144, 288)     # receptive field 9
    assert compute_fans((5, 2, 7)) == (10, 35)             # conv1d kernel [k, in, out]
    assert compute_fans((10,)) == (10, 10)
    assert compute_fans(()) == (1, 1)


def test_constant_fills():
    assert np.all(draw("zeros", (3, 2)) == 0)
    assert np.all(draw("ones", (3, 2)) == 1)
    assert np.all(draw("constant", (3, 2), value=0.25) == 0.25)


def _check_uniform(w, limit):
    assert np.abs(w).max() <= np.float32(limit)
    assert np.abs(w).max() > 0.99 * limit                  # the whole range is used
    np.testing.assert_allclose(w.var(), limit ** 2 / 3, rtol=0.02)
    assert abs(w.mean()) < 0.01 * limit


def _check_truncated(w, stddev):
    raw = stddev / TRUNC                                   # Keras scales up before truncating at 2 sigma
    assert np.abs(w).max() <= 2 * raw * (1 + 1e-6)
    np.testing.assert_allclose(w.std(), stddev, rtol=0.02)
    assert abs(w.mean()) < 0.01 * stddev


SHAPE = (300, 500)


def test_glorot_uniform_statistics():
    _check_uniform(draw("glorot_uniform", SHAPE), math.sqrt(6 / (300 + 500)))
    # conv kernels use the receptive field
    _check_uniform(draw("glorot_uniform", (3, 3, 64, 128)), math.sqrt(6 / (9 * 64 + 9 * 128)))


def test_he_and_lecun_uniform_statistics():
    _check_uniform(draw("he_uniform", SHAPE), math.sqrt(6 / 300))
    _check_uniform(draw("lecun_uniform", SHAPE), math.sqrt(3 / 300))


def test_truncated_normal_family_statistics():
    _check_truncated(draw("glorot_normal", SHAPE), math.sqrt(2 / 800))
    _check_truncated(draw("he_normal", SHAPE), math.sqrt(2 / 300))
    _check_truncated(draw("lecun_normal", SHAPE), math.sqrt(1 / 300))
    w = draw("truncated_normal", SHAPE, mean=1.0, stddev=0.1)
    assert np.abs(w - 1.0).max() <= 0.2 * (1 + 1e-6)
    np.testing.assert_allclose(w.mean(), 1.0, atol=1e-3)
    np.testing.assert_allclose(w.std(), 0.1 * TRUNC, rtol=0.02)   # plain truncation shrinks it


def test_uniform_and_normal_parameters():
    w = draw("uniform", SHAPE, low=2.0, high=3.0)
    assert w.min() >= 2.0 and w.max() <= 3.0
    np.testing.assert_allclose(w.mean(), 2.5, atol=0.01)
    w = draw("normal", SHAPE, mean=-1.0, stddev=0.5)
    np.testing.assert_allclose(w.mean(), -1.0, atol=0.01)
    np.testing.assert_allclose(w.std(), 0.5, rtol=0.02)
    w = draw("uniform", SHAPE)                               # Keras defaults: +-0.05, stddev 0.05
    assert np.abs(w).max() <= 0.05
    np.testing.assert_allclose(draw("normal", SHAPE).std(), 0.05, rtol=0.02)


def _initial(init, shape=(2, 3), dtype="f32", seed=5):
    b = Builder()
    decl = ParamDecl("w", TensorType(dtype, shape), init, None, seed)
    return evaluate(b.build({"w": initial_value(decl, b)}))["w"]


def test_initial_value_from_literals_and_specs():
    np.testing.assert_array_equal(_initial(0.5), np.full((2, 3), 0.5, np.float32))
    lit = ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0))
    np.testing.assert_array_equal(_initial(lit), np.array(lit, np.float32))
    np.testing.assert_array_equal(_initial(Spec("normal", (("stddev", 0.1),))), draw("normal", (2, 3), 5, stddev=0.1))
    np.testing.assert_array_equal(_initial("glorot_uniform"), draw("glorot_uniform", (2, 3), 5))
    w64 = _initial("ones", dtype="f64")
    assert w64.dtype == np.float64 and np.all(w64 == 1)
    with pytest.raises(ValueError, match="shape"):
        _initial((1.0, 2.0))
    with pytest.raises(ValueError, match="did you mean 'glorot_uniform'"):
        _initial("glorot_unifrom")


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_signature_contract(name):
    """b, shape and seed are positional-only (the compiler's); keywords are the user's, all with defaults."""
    params = list(inspect.signature(INITIALIZERS[name]).parameters.values())
    assert [p.name for p in params[:3]] == ["b", "shape", "seed"]
    assert all(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in params[:3])
    for p in params[3:]:
        assert p.annotation is float and isinstance(p.default, float), p
