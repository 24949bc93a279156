"""Fuzzing the front end with random VALID programs (see strategies.py).

Properties, each run on hypothesis-drawn programs with a fixed seed (`derandomize`):

* every program compiles, and every graph the compiler derives from it -- the
  forward graph (training and inference mode) and predict, evaluate,
  gradients and train_step, before and after optimisation -- prints to the IR
  text form and parses back to the same text;
* gradients match central differences. The program is compiled a second time
  with every float declared f64 (the library builds the same graph in float64),
  and that gradients graph is checked element by element against central
  differences with step 1e-6: in float64 the rounding error of a difference
  quotient is about u*|L|/h ~ 1e-16/1e-6 = 1e-10 relative to the loss (times
  the number of ops, ~100), and the truncation error h^2/6*|L'''| ~ 1e-13, so
  rtol = atol = 1e-6 (the library tests' FD tolerances, with atol scaled by the
  loss) leaves a margin of 100x. Then the float32 model's own
  `Model.loss_and_grads` (the API a user calls) must agree with the float64
  gradients to float32 accuracy: rtol 1e-3 and atol 1e-3 * max(1, |grad|max),
  which bounds the error of ~100 float32 ops (each 6e-8 relative) on gradients
  of moderate condition.

The default run draws a few dozen programs per property (~10 s); `pytest -m fuzz`
runs the long versions, thousands of programs. Every case runs under a time
limit, and tests/fuzz/conftest.py prints how many cases each property ran.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import nncompiler as nnc
from fuzz.strategies import programs, record, time_limit
from nncompiler.ir import text as irtext

QUICK_PROGRAMS, LONG_PROGRAMS = 60, 3000
QUICK_GRADS, LONG_GRADS = 40, 2000
CASE_SECONDS = 60          # a hang in any stage fails the case


def _settings(n: int):
    return settings(max_examples=n, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def _round_trip(graph, what: str) -> None:
    text = irtext.print_graph(graph)
    again = irtext.print_graph(irtext.parse_graph(text, "<fuzz-ir>"))
    assert again == text, f"{what}: the IR text does not round-trip\n{text}\n---\n{again}"


def check_compiles_and_round_trips(program) -> None:
    src = program.source("f32")
    with time_limit(CASE_SECONDS):
        m = nnc.compile(src, filename="fuzz.nn")
        low = m.lowered
        _round_trip(low.forward, "forward")
        if low.inference is not None:
            _round_trip(low.inference, "forward (inference)")
        kinds = ["predict"] + (["evaluate", "gradients", "train_step"] if low.kind == "model" else [])
        for kind in kinds:
            _round_trip(m.unoptimized_graph(kind), f"{kind} (unoptimised)")
            _round_trip(m.graph(kind), f"{kind} (optimised)")
        # and it runs: the predict graph on data of the declared shapes
        data = program.data(seed=0)
        out = m.forward(**{k: v for k, v in data.items() if k in low.inputs})
        for value in (out if isinstance(out, tuple) else (out,)):
            assert np.asarray(value).dtype != object
        # the f64 twin compiles as well
        nnc.compile(program.source("f64"), filename="fuzz64.nn")
    record("programs: compile + IR round trip", low.kind)


def _feeds(graph, params: dict, data: dict) -> dict:
    args = {}
    for a in graph.args:
        name, role = a.attr["name"], a.attr["role"]
        if role == "param":
            args[name] = params[name]
        elif role in ("input", "target"):
            args[name] = data[name]
        elif role == "rng":
            args[name] = np.int32(0)
        else:
            raise AssertionError(f"unexpected argument {name} ({role})")
    return args


def check_gradients(program) -> None:
    with time_limit(CASE_SECONDS):
        m32 = nnc.compile(program.source("f32"), filename="fuzz.nn")
        m64 = nnc.compile(program.source("f64"), filename="fuzz64.nn")
        graph, fn = m64.graph("gradients"), m64.compiled("gradients")
        params = {k: v.astype(np.float64) for k, v in m32.params.items()}
        data64 = program.data(seed=1, float_dtype=np.float64)

        def run(ps):
            return fn(_feeds(graph, ps, data64))

        out = run(params)
        loss = float(out["loss"])
        assert np.isfinite(loss), program.source()
        h, tol = 1e-6, 1e-6 * max(1.0, abs(loss))
        for name, value in params.items():
            g = np.asarray(out.get(f"grad.{name}", np.zeros_like(value)), dtype=np.float64)
            assert g.shape == value.shape, name
            num = np.zeros_like(value)
            for i in np.ndindex(value.shape):
                vals = []
                for step in (h, -h):
                    moved = dict(params)
                    moved[name] = value.copy()
                    moved[name][i] += step
                    vals.append(float(run(moved)["loss"]))
                num[i] = (vals[0] - vals[1]) / (2 * h)
            np.testing.assert_allclose(g, num, rtol=1e-6, atol=tol,
                                       err_msg=f"d loss / d {name} (float64 vs central differences)")
            out[f"grad.{name}"] = g

        # the float32 model, through the API
        data32 = program.data(seed=1, float_dtype=np.float32)
        loss32, grads32 = m32.loss_and_grads(**data32)
        assert abs(loss32 - loss) <= 1e-3 * max(1.0, abs(loss)), (loss32, loss)
        for name, g32 in grads32.items():
            g64 = out[f"grad.{name}"]
            scale = max(1.0, float(np.abs(g64).max(initial=0.0)))
            np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-3 * scale,
                                       err_msg=f"d loss / d {name} (float32 API vs float64)")
    record("gradients vs central differences", program.loss or "model")


@_settings(QUICK_PROGRAMS)
@given(programs())
def test_random_programs_compile_and_round_trip(program):
    check_compiles_and_round_trips(program)


@_settings(QUICK_GRADS)
@given(programs(smooth=True, allow_graph=False))
def test_random_program_gradients_match_finite_differences(program):
    check_gradients(program)


@pytest.mark.fuzz
@_settings(LONG_PROGRAMS)
@given(programs())
def test_random_programs_compile_and_round_trip_long(program):
    check_compiles_and_round_trips(program)


@pytest.mark.fuzz
@_settings(LONG_GRADS)
@given(programs(smooth=True, allow_graph=False))
def test_random_program_gradients_match_finite_differences_long(program):
    check_gradients(program)
