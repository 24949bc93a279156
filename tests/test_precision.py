"""Precision modes (nncompiler/precision.py): fp32 (the default), tf32 and bf16.

The rounding is round-to-nearest-even on the float32 bits, the conversion torch and the
tensor cores use; the mode is chosen by `precision` in the train block, `--precision` or
`nnc.compile(precision=)` (in that order of precedence, last wins), changes only float32
matmul operands, and is part of the generated code, so every cache keyed on that code
keys on the mode. The iris and digits examples reach their accuracy in bf16."""
from __future__ import annotations

import re

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.cli import main
from nncompiler.errors import CompileError, NNCError
from nncompiler.precision import round_bf16, round_tf32

IRIS = "examples/iris.nn"


def test_bf16_rounding_is_nearest_even_on_the_bits():
    one = np.float32(1.0)
    ulp = np.float32(2.0 ** -7)                       # bfloat16 keeps 7 mantissa bits
    x = np.array([one + ulp / 2, one + 3 * ulp / 2,   # ties: to the even neighbour
                  one + ulp * 0.51, one + ulp * 0.49, -(one + ulp * 0.51),
                  np.inf, -np.inf, 3.4e38], np.float32)
    want = np.array([one, one + 2 * ulp, one + ulp, one, -(one + ulp), np.inf, -np.inf, np.inf], np.float32)
    np.testing.assert_array_equal(round_bf16(x), want)
    assert np.isnan(round_bf16(np.float32(np.nan)))
    # the dropped bits are zero: the value is a bfloat16
    r = round_bf16(np.random.default_rng(0).normal(size=1000).astype(np.float32))
    assert not (r.view(np.uint32) & 0xFFFF).any()


def test_bf16_rounding_matches_torch():
    torch = pytest.importorskip("torch")
    x = (np.random.default_rng(1).normal(size=20000) * 1e3).astype(np.float32)
    want = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(round_bf16(x), want)


def test_tf32_keeps_ten_mantissa_bits():
    x = np.float32(1.0) + np.float32(2.0 ** -10) * np.array([0.5, 1.5, 0.75, 0.25], np.float32)
    want = np.float32(1.0) + np.float32(2.0 ** -10) * np.array([0, 2, 1, 0], np.float32)
    np.testing.assert_array_equal(round_tf32(x), want)
    r = round_tf32(np.random.default_rng(2).normal(size=1000).astype(np.float32))
    assert not (r.view(np.uint32) & 0x1FFF).any()


def _iris(precision_line: str = "") -> str:
    text = open(IRIS).read()
    return text.replace("    seed 0\n", "    seed 0\n" + precision_line) if precision_line else text


def test_the_mode_comes_from_the_train_block_then_the_argument():
    assert nnc.compile(IRIS).precision == "fp32"
    assert nnc.compile(_iris("    precision bf16\n")).precision == "bf16"
    assert nnc.compile(_iris("    precision bf16\n"), precision="tf32").precision == "tf32"


@pytest.mark.parametrize("line,message,col", [
    ("    precision bf61\n", "'precision' must be fp32, tf32 or bf16, got 'bf61'; did you mean 'bf16'?", 15),
    ("    precision 16\n", "expected a name", 15),
    ("    precision bf16\n    precision tf32\n", "'precision' is set twice", 5),
])
def test_bad_precision_statements_are_positioned_errors(line, message, col):
    with pytest.raises(CompileError) as e:
        nnc.compile(_iris(line))
    assert message in str(e.value)
    assert re.search(rf"<string>:\d+:{col}: error", str(e.value)), str(e.value)


def test_bad_precision_argument():
    with pytest.raises(NNCError, match="unknown precision 'bf8'.*choose fp32, tf32, bf16"):
        nnc.compile(IRIS, precision="bf8")


def test_precision_stays_usable_as_a_metric_name():
    # `precision` became a train-block keyword; the metric of that name still parses
    src = _iris().replace("metrics accuracy", "metrics precision")
    with pytest.raises(CompileError, match="metric 'precision' does not fit this model"):
        nnc.compile(src)


def test_numpy_rounds_matmul_operands_only_in_the_reduced_modes():
    gens = {p: nnc.compile(IRIS, precision=p).backend.emit(nnc.compile(IRIS, precision=p).graph("train_step"))
            for p in ("fp32", "tf32", "bf16")}
    assert "_round_" not in gens["fp32"]
    for p in ("tf32", "bf16"):
        matmuls = [ln for ln in gens[p].splitlines() if "# %" in ln and " matmul " in ln]
        assert matmuls and all(ln.count(f"_round_{p}(") == 2 for ln in matmuls), matmuls
        # nothing else is rounded: reductions, softmax, the loss and the Adam update stay float32
        assert gens[p].count(f"_round_{p}(") == 2 * len(matmuls)


def test_modes_change_results_by_their_rounding_error():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = rng.integers(0, 3, 40).astype(np.int32)
    loss = {p: nnc.compile(IRIS, precision=p).loss_and_grads(x=x, y=y)[0] for p in ("fp32", "tf32", "bf16")}
    # the loss moves by about the operands' relative rounding (2^-11 tf32, 2^-8 bf16), never 0
    assert 0 < abs(loss["tf32"] - loss["fp32"]) / loss["fp32"] < 1e-3
    assert 1e-6 < abs(loss["bf16"] - loss["fp32"]) / loss["fp32"] < 1e-2


def test_cli_precision_overrides_and_reaches_the_generated_code(capsys):
    assert main(["compile", IRIS, "--emit", "python", "--precision", "tf32"]) == 0
    assert "_round_tf32(a_x) @ _round_tf32(a_h_kernel)" in capsys.readouterr().out


def _last(out: str) -> dict[str, float]:
    line = [ln for ln in out.splitlines() if ln.startswith("epoch=")][-1]
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.e]+)", line)}


def test_iris_reaches_093_validation_accuracy_in_bf16(capsys):
    assert main(["run", IRIS, "--quiet", "--precision", "bf16"]) == 0
    assert _last(capsys.readouterr().out)["val_accuracy"] >= 0.93


def test_digits_reaches_095_held_out_accuracy_in_bf16(capsys):
    assert main(["run", "examples/digits.nn", "--quiet", "--precision", "bf16"]) == 0
    assert _last(capsys.readouterr().out)["val_accuracy"] >= 0.95
