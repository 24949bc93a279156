"""Keras's habits: positional fit/evaluate/predict, validation_data as a tuple, verbose, callbacks,
initial_epoch, History, clear errors for wrong types; nnc.Sequential reproducing iris.nn."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.errors import NNCError
from nncompiler.ir.text import print_graph
from nncompiler.train.data import read_csv

ROOT = Path(__file__).resolve().parents[1]
IRIS = str(ROOT / "examples" / "iris.nn")


@pytest.fixture(scope="module")
def iris():
    x, y, _ = read_csv(str(ROOT / "examples" / "data" / "iris.csv"), label="species")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return x[:120], y[:120], x[120:], y[120:]


def test_a_keras_style_script_runs_unchanged(iris, capsys):
    X, Y, Xv, Yv = iris
    m = nnc.compile(IRIS)
    history = m.fit(X, Y, epochs=5, validation_data=(Xv, Yv), verbose=1)
    assert history.history["val_loss"] is history["val_loss"] and len(history.history["val_loss"]) == 5
    assert history.epoch == [0, 1, 2, 3, 4]
    # the last epoch's val_loss is the loss of the trained model on the validation rows
    assert history.history["val_loss"][-1] == pytest.approx(m.evaluate(Xv, Yv)["loss"], rel=1e-6)
    out = capsys.readouterr().out.splitlines()   # a pipe: one line per epoch, no \r bar
    assert len(out) == 5 and out[0].startswith("epoch=1 loss=") and "val_loss=" in out[0]
    assert m.predict(Xv).shape == (30, 3)
    np.testing.assert_array_equal(m.predict(Xv, batch_size=7), m.forward(x=Xv))


def test_positional_and_keyword_forms_train_the_same(iris):
    X, Y, Xv, Yv = iris
    a, b = nnc.compile(IRIS), nnc.compile(IRIS)
    ha = a.fit(X, Y, 16, 3, verbose=0, shuffle=False)               # Keras's order: x, y, batch_size, epochs
    hb = b.fit(x=X, y=Y, batch_size=16, epochs=3, shuffle=False)
    assert ha == hb and len(ha["loss"]) == 3
    assert a.evaluate(Xv, Yv) == b.evaluate(x=Xv, y=Yv)
    hv = nnc.compile(IRIS).fit(X, Y, epochs=2, verbose=0, validation_data={"x": Xv, "y": Yv})
    assert "val_accuracy" in hv.history


def test_verbose_levels(iris, capsys):
    X, Y, _, _ = iris
    m = nnc.compile(IRIS)
    m.fit(X, Y, epochs=2)                      # "auto" in a pipe: silent, as a script's output expects
    m.fit(X, Y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    m.fit(X, Y, epochs=2, verbose=2)
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["epoch=1", "epoch=2"]

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    from nncompiler.train.keras_api import reporter_for
    term = Terminal()
    m.fit(X, Y, epochs=1, verbose=0, callbacks=[reporter_for(1, term)])
    assert re.search(r"\repoch 1/1 \[=+\] 4/4 .*loss=", term.getvalue())
    assert reporter_for("auto", term) is not None and reporter_for("auto", io.StringIO()) is None


def test_a_notebook_gets_the_bar(monkeypatch):
    import sys
    from nncompiler.train.keras_api import reporter_for
    from nncompiler.train.progress import ProgressBar
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert reporter_for("auto") is None
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert isinstance(reporter_for("auto"), ProgressBar)


def test_initial_epoch_and_callbacks(iris):
    X, Y, Xv, Yv = iris
    m = nnc.compile(IRIS)
    h = m.fit(X, Y, epochs=5, initial_epoch=3, verbose=0)
    assert h.epoch == [3, 4] and len(h["loss"]) == 2
    # the project's callbacks go in Keras's list: early stopping in mode max on val_loss, which
    # training lowers, stops at the first epoch that does not raise it
    stop = nnc.callbacks.EarlyStopping(monitor="val_loss", patience=0, mode="max")
    seen = []
    h = nnc.compile(IRIS).fit(X, Y, epochs=10, verbose=0, validation_data=(Xv, Yv),
                              callbacks=[stop, nnc.callbacks.LambdaCallback(lambda e, r: seen.append(e))])
    losses = h["val_loss"]
    assert len(losses) < 10 and seen == list(range(1, len(losses) + 1))
    assert losses[-1] <= max(losses[:-1]) and all(b > a for a, b in zip(losses[:-2], losses[1:-1]))


@pytest.mark.parametrize("call, message", [
    (lambda m, X, Y: m.fit(X, Y, epochs="5"), "epochs must be an integer >= 0, got '5'"),
    (lambda m, X, Y: m.fit(X, Y, verbose=3), "verbose must be 0, 1, 2 or \"auto\", got 3"),
    (lambda m, X, Y: m.fit(X, Y, validation_data=(X,)),
     "validation_data must be (x, y) or a dict of arrays by input and target name, got tuple of length 1"),
    (lambda m, X, Y: m.fit(X, Y, callbacks=[print]),
     "callbacks[0] is a builtin_function_or_method, not a callback"),
    (lambda m, X, Y: m.fit(X, Y, callbacks="early"), "callbacks must be a list of callbacks, got str"),
    (lambda m, X, Y: m.fit(X, Y, sample_weight=np.ones(3)),
     "sample_weight must be one number per training row (120), got float64 data of shape [3]"),
    (lambda m, X, Y: m.fit(X, Y, class_weight={"setosa": 2.0}),
     "class_weight must be a dict {class id: weight} with integer class ids >= 0"),
    (lambda m, X, Y: m.fit(X, Y, class_weight={0: -1.0}), "sample and class weights must be finite numbers >= 0"),
    (lambda m, X, Y: m.fit("data.csv", Y), "x must be an array (or a dict of arrays by input name), got str"),
    (lambda m, X, Y: m.fit(X, Y, initial_epoch=-1), "initial_epoch must be an integer >= 0, got -1"),
    (lambda m, X, Y: m.fit(X, Y, validation_freq=2), "fit: Keras's argument 'validation_freq' is not supported"),
    (lambda m, X, Y: m.evaluate(X, Y, steps=2), "evaluate: Keras's argument 'steps' is not supported"),
])
def test_wrong_types_get_one_clear_line(iris, call, message):
    X, Y, _, _ = iris
    with pytest.raises(NNCError) as e:
        call(nnc.compile(IRIS), X, Y)
    assert message in str(e.value)


def test_positional_data_for_a_model_with_two_inputs_says_how():
    m = nnc.compile("""model Two {
    input a: f32[B, 2]
    input b: f32[B, 2]
    target t: f32[B, 1]
    o = dense(add(a, b), 1)
    output o
    loss mse(o, t)
    optimizer sgd
}""")
    with pytest.raises(NNCError) as e:
        m.fit(np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32))
    assert str(e.value) == ("model Two has 2 inputs (a, b): pass x as a dict by name, or each as a keyword "
                            "(a=..., b=...)")
    h = m.fit({"a": np.ones((4, 2), np.float32), "b": np.ones((4, 2), np.float32)}, np.ones((4, 1), np.float32),
              epochs=1, verbose=0)
    assert len(h["loss"]) == 1


SGD_MODEL = """model S {
    input  x: f32[B, 4]
    target y: i32[B]
    out = dense(x, 3, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer sgd(lr=0.1)
}"""


def test_sample_weight_weighs_each_rows_loss_as_keras(iris):
    X, Y, _, _ = iris
    X, Y = X[:40], Y[:40]
    w = np.random.default_rng(1).integers(0, 4, size=40).astype(np.float32)
    m = nnc.compile(SGD_MODEL)
    p = m.forward(x=X).astype(np.float64)
    want_loss = np.sum(w * -np.log(p[np.arange(40), Y])) / 40       # Keras: sum(w * loss) / rows
    h = m.fit(X, Y, batch_size="all", epochs=1, shuffle=False, sample_weight=w, verbose=0)
    assert h["loss"][0] == pytest.approx(want_loss, rel=1e-5)
    # one full-batch SGD step with integer weights k = the unweighted step on each row repeated k
    # times, with the learning rate scaled by sum(k) / rows (the mean there divides by sum(k))
    ref = nnc.compile(SGD_MODEL)
    ref.lr = 0.1 * w.sum() / 40
    ref.fit(np.repeat(X, w.astype(int), axis=0), np.repeat(Y, w.astype(int)), batch_size="all", epochs=1,
            shuffle=False, verbose=0)
    for k, v in ref.params.items():
        np.testing.assert_allclose(m.params[k], v, rtol=1e-5, atol=1e-6)


def test_class_weight_is_sample_weight_by_label(iris):
    X, Y, Xv, Yv = iris
    table = {0: 1.0, 1: 3.0, 2: 0.5}
    a = nnc.compile(SGD_MODEL).fit(X, Y, epochs=2, class_weight=table, validation_data=(Xv, Yv), verbose=0)
    b = nnc.compile(SGD_MODEL).fit(X, Y, epochs=2, sample_weight=np.array([table[c] for c in Y]),
                                   validation_data=(Xv, Yv), verbose=0)
    c = nnc.compile(SGD_MODEL).fit(X, Y, epochs=2, validation_data=(Xv, Yv), verbose=0)
    assert a == b and a["loss"] != c["loss"]
    # held-out rows take their weights with them: the same split of weights and rows
    d = nnc.compile(SGD_MODEL).fit(X, Y, epochs=1, class_weight=table, validation_split=0.25, verbose=0)
    e = nnc.compile(SGD_MODEL).fit(X, Y, epochs=1, sample_weight=np.array([table[c] for c in Y]),
                                   validation_split=0.25, verbose=0)
    assert d == e


def test_an_input_declared_without_the_batch_says_how_to_declare_it():
    m = nnc.compile("""model M {
    input  x: f32[4]
    target y: i32[]
    o = dense(x, 3, activation=softmax)
    output o
    loss sparse_categorical_crossentropy(o, y)
    optimizer sgd
}""")
    with pytest.raises(nnc.DataError) as e:
        m.fit(np.zeros((10, 4), np.float32), np.zeros(10, np.int32), verbose=0)
    assert str(e.value) == ("input 'x': expected shape f32[4] (1 dimensions), got shape (10, 4) (2 dimensions); "
                            "the data has a batch dimension first: declare it as `input x: f32[B, 4]`")


# ---------------------------------------------------------------------------- Sequential

def test_sequential_reproduces_the_iris_example():
    s = nnc.Sequential([nnc.layers.Dense(16, activation="relu", name="h"),
                        nnc.layers.Dense(3, activation="softmax", name="out")], input_shape=[4], name="Iris")
    s.compile(loss="sparse_categorical_crossentropy", optimizer="adam(lr=0.01)", metrics=["accuracy"])
    ref = nnc.compile(IRIS)
    assert print_graph(s.lowered.forward, with_locs=False) == print_graph(ref.lowered.forward, with_locs=False)
    for k, v in ref.params.items():           # the same names and seed: the same initial weights
        np.testing.assert_array_equal(s.params[k], v)
    text = s.to_nn()
    assert "    h   = dense(x, 16, activation=relu)\n    out = dense(h, 3, activation=softmax)\n" in text
    # the printed program compiles to the same IR again
    again = nnc.compile(text)
    assert print_graph(again.graph("train_step"), with_locs=False) == print_graph(ref.graph("train_step"),
                                                                                 with_locs=False)


def test_sequential_trains_like_a_keras_model(iris, tmp_path):
    X, Y, Xv, Yv = iris
    s = nnc.Sequential([nnc.layers.Input(shape=(4,)), nnc.layers.Dense(8, activation="relu"),
                        nnc.layers.Dropout(0.1), nnc.layers.Dense(3, activation="softmax")])
    assert [line.split("=")[0].strip() for line in s.to_nn().splitlines() if " = " in line] == \
        ["dense", "dropout", "dense_1"]
    s.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    h = s.fit(X, Y, epochs=3, validation_data=(Xv, Yv), verbose=0)
    assert len(h.history["val_accuracy"]) == 3
    s.save(str(tmp_path / "s.nnx"))
    np.testing.assert_array_equal(nnc.load(str(tmp_path / "s.nnx")).predict(Xv), s.predict(Xv))


@pytest.mark.parametrize("build, message", [
    (lambda: nnc.Sequential([nnc.layers.Dense(0)], input_shape=[4]), "Dense units must be a positive integer, got 0"),
    (lambda: nnc.Sequential([nnc.layers.Dense(3, activation="relu; import os")], input_shape=[4]),
     "Dense activation must name a library function"),
    (lambda: nnc.Sequential(["dense"], input_shape=[4]), "Sequential takes nnc.layers objects"),
    (lambda: nnc.Sequential([nnc.layers.Dense(3)], input_shape=[0]), "Input shape must be a list of positive sizes"),
    (lambda: nnc.Sequential([nnc.layers.Dense(3)]).compile(loss="mse"), "give the input's shape per sample"),
    (lambda: nnc.Sequential([nnc.layers.Dense(3)], input_shape=[4]).compile(loss="msa"), "unknown loss 'msa'"),
    (lambda: nnc.Sequential([nnc.layers.Dense(3)], input_shape=[4]).compile(loss="mse", optimizer="adamm"),
     "unknown optimizer 'adamm'"),
    (lambda: nnc.Sequential([nnc.layers.Dense(3)], input_shape=[4]).fit, "is not compiled yet"),
])
def test_sequential_errors(build, message):
    with pytest.raises(NNCError) as e:
        build()
    assert message in str(e.value)
