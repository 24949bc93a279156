"""Hints for what a Keras user writes first, each with its exact message."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.cli import main
from nncompiler.errors import CompileError


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


CCE_WITH_LABELS = """model Iris {
    input  x: f32[B, 4]
    target y: i32[B]
    out = dense(x, 3, activation=softmax)
    output out
    loss categorical_crossentropy(out, y)
    optimizer adam()
}
"""


def test_categorical_crossentropy_with_integer_labels_suggests_the_sparse_loss():
    with pytest.raises(CompileError) as e:
        nnc.compile(CCE_WITH_LABELS)
    assert str(e.value).splitlines()[0] == (
        "<string>:6:10: error: categorical_crossentropy: the target [B] holds class labels, but it takes "
        "one-hot targets shaped like the prediction [B, 3]: use sparse_categorical_crossentropy for integer "
        "labels, or one-hot encode them")


@pytest.mark.parametrize("stage,backend", [("mlir", "mlir"), ("kernels", "triton")])
def test_emit_of_a_backend_stage_uses_that_backend(capsys, stage, backend):
    code, out, err = run(capsys, "compile", "examples/iris.nn", "--emit", stage)
    assert code == 0
    assert err.strip() == f"note: --emit {stage} is a stage of backend '{backend}'; compiling with --backend {backend}"
    assert ("module @Iris" in out) if stage == "mlir" else ("kernel 0" in out)


def test_emit_of_another_backends_stage_with_an_explicit_backend_names_the_owner(capsys):
    code, _, err = run(capsys, "compile", "examples/iris.nn", "--emit", "ptx", "--backend", "numpy")
    assert code != 0
    assert "--emit ptx: not a stage of backend 'numpy'; it is a stage of backend 'triton': --backend triton" in err


def test_the_batch_size_is_usable_in_an_expression():
    m = nnc.compile("""model Line {
    input  x: f32[B, 1]
    target y: f32[B, 1]
    h = dense(x, 1)
    output h
    loss 1 / (2 * B) * sum((h - y) ** 2)
    optimizer sgd(lr=0.1)
}""")
    x = np.arange(5, dtype=np.float32).reshape(5, 1)
    y = 3 * x + 1
    pred = m.predict(x=x)
    np.testing.assert_allclose(m.evaluate(x=x, y=y)["loss"], np.sum((pred - y) ** 2) / (2 * 5), rtol=1e-6)
    np.testing.assert_allclose(m.evaluate(x=x[:2], y=y[:2])["loss"], np.sum((pred[:2] - y[:2]) ** 2) / 4,
                               rtol=1e-6)   # B is read from the data, not fixed at compile time


def test_an_input_without_the_batch_dimension_gets_a_hint(tmp_path, capsys):
    shutil.copytree("examples/data", tmp_path / "data")
    src = open("examples/iris.nn").read().replace("f32[B, 4]", "f32[4]").replace("i32[B]", "i32")
    (tmp_path / "iris.nn").write_text(src)
    code, _, err = run(capsys, "run", str(tmp_path / "iris.nn"), "--epochs", "1")
    assert code != 0
    assert err.strip().endswith("expected shape f32[4] (1 dimensions), got shape (150, 4) (2 dimensions); "
                                "the data has a batch dimension first: declare it as `input x: f32[B, 4]`")
