"""`nnc compile` and `m.summary()`: Keras's per-layer table (name, layer, output shape with B,
parameters, regularisers) and the trainable / non-trainable totals."""
import numpy as np

import nncompiler as nnc
from nncompiler.cli import main

SOURCE = """model S {
    input  x: f32[B, 4]
    target y: f32[B, 2]
    h = dense(x, 8, activation=leaky_relu(alpha=0.2), kernel_regularizer=l2(0.01), activity_regularizer=l1(0.001))
    n = batchnorm(h)
    out = dense(n, 2)
    output out
    loss mse(out, y)
    optimizer adam()
}
"""


def test_summary_has_keras_layer_table_and_totals():
    m = nnc.compile(SOURCE)
    text = m.summary()
    table = text[text.index("  layers:"):text.index("  parameters:")].splitlines()
    assert table == [
        "  layers:",
        "    name  layer      output    params  regularizers",
        "    h     dense      f32[B,8]      40  kernel: l2(l2=0.01); activity: l1(l1=0.001)",
        "    n     batchnorm  f32[B,8]      32  -",
        "    out   dense      f32[B,2]      18  -",
    ]
    # the counts, independently: 4*8+8, gamma/beta + moving mean/variance of 8, 8*2+2
    trainable = sum(int(np.size(v)) for v in m.params.values())
    assert trainable == 4 * 8 + 8 + 2 * 8 + 8 * 2 + 2
    assert f"  total params: {trainable + 16} (trainable {trainable}, non-trainable 16)" in text.splitlines()
    assert "    h.kernel    f32[4,8]  32" in text           # the existing parameter list stays


def test_cli_compile_prints_the_same_summary(tmp_path, capsys):
    path = tmp_path / "s.nn"
    path.write_text(SOURCE)
    assert main(["compile", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == nnc.compile(str(path)).summary().strip()
    assert "    h     dense      f32[B,8]      40" in out


def test_unnamed_layers_are_named_as_their_parameters():
    m = nnc.compile("""model U {
    input x: f32[B, 3]
    target y: f32[B, 1]
    o = dense(relu(dense(x, 5)), 1)
    output o
    loss mse(o, y)
    optimizer sgd()
}""")
    lines = m.summary().splitlines()
    assert "    dense_1  dense  f32[B,5]      20  -" in lines
    assert "    o        dense  f32[B,1]       6  -" in lines
