"""Keras callbacks from the train block: early_stopping (with min_delta) and
reduce_lr_on_plateau, the latter step for step against torch's ReduceLROnPlateau."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from nncompiler.cli import main
from nncompiler.program import CALLBACK_OPTIONS
from nncompiler.train.callbacks import TRAIN_BLOCK_CALLBACKS, ReduceLROnPlateau, TrainState


class _Model:
    lr = 0.1


VALUES = [1.0, 0.9, 0.95, 0.9, 0.91, 0.8, 0.85, 0.86, 0.87, 0.88, 0.79, 0.8, 0.81, 0.82, 0.83, 0.84]


def _ours(**kw):
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, min_delta=0.01, **kw)
    state = TrainState(model=_Model(), epochs=len(VALUES))
    out = []
    for epoch, v in enumerate(VALUES, start=1):
        state.epoch = epoch
        cb.on_epoch_end(state, {"loss": v})
        out.append(state.model.lr)
    return out


@pytest.mark.parametrize("patience,min_lr", [(2, 0.0), (1, 0.0), (3, 0.002)])
def test_reduce_lr_on_plateau_matches_torch_without_cooldown(patience, min_lr):
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.1)
    # Keras reduces when `wait` reaches patience; torch when its bad-epoch count exceeds it
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=patience - 1, threshold=0.01,
                                                     threshold_mode="abs", min_lr=min_lr)
    theirs = []
    for v in VALUES:
        ref.step(v)
        theirs.append(opt.param_groups[0]["lr"])
    ours = _ours(patience=patience, min_lr=min_lr)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert ours[-1] < 0.1


def _keras_reduce_lr(patience, cooldown):
    """keras/src/callbacks/reduce_lr_on_plateau.py's on_epoch_end, transcribed (torch counts
    the cooldown differently: it restarts counting one epoch later)."""
    lr, best, wait, counter, out = 0.1, np.inf, 0, 0, []
    for v in VALUES:
        if counter > 0:
            counter -= 1
            wait = 0
        if v < best - 0.01:
            best, wait = v, 0
        elif counter <= 0:
            wait += 1
            if wait >= patience and lr > 0.0:
                lr, counter, wait = lr * 0.5, cooldown, 0
        out.append(lr)
    return out


@pytest.mark.parametrize("patience,cooldown", [(1, 2), (2, 1), (1, 0)])
def test_reduce_lr_on_plateau_cooldown_is_keras(patience, cooldown):
    np.testing.assert_allclose(_ours(patience=patience, cooldown=cooldown), _keras_reduce_lr(patience, cooldown))


def test_the_train_block_options_are_the_callbacks_signatures():
    for kind, table in CALLBACK_OPTIONS.items():
        params = inspect.signature(TRAIN_BLOCK_CALLBACKS[kind]).parameters
        assert {k: v[0] for k, v in table.items()} == {k: p.default for k, p in params.items()}, kind


SOURCE = """model Flat {{
  input x: f32[B, 1]
  target y: f32[B, 1]
  h = dense(x, 1)
  output h
  loss mse(h, y)
  optimizer sgd(lr={lr})
}}
train Flat {{
  data x=[[1.0], [2.0], [3.0], [4.0]], y=[[2.0], [4.0], [6.0], [8.0]]
  epochs 30
  batch all
  {callbacks}
}}
"""


def _run(tmp_path, capsys, lr, callbacks, *extra):
    path = tmp_path / "flat.nn"
    path.write_text(SOURCE.format(lr=lr, callbacks=callbacks))
    code = main(["run", str(path), "--json", *extra])
    out = capsys.readouterr()
    return code, out.out.strip().splitlines(), out.err


def test_early_stopping_in_the_train_block_stops_a_flat_loss(tmp_path, capsys):
    code, lines, err = _run(tmp_path, capsys, 0.0, "early_stopping patience=3")
    assert code == 0
    assert len(lines) == 4                      # the first epoch sets the best, three more do not beat it
    assert "early stopping at epoch 4: loss has not improved for 3 epochs" in err


def test_min_delta_ignores_improvements_smaller_than_it(tmp_path, capsys):
    # lr is tiny: the loss falls every epoch, but by far less than min_delta
    code, lines, err = _run(tmp_path, capsys, 1e-5, "early_stopping patience=2, min_delta=0.5")
    assert code == 0 and len(lines) == 3
    code, lines, _ = _run(tmp_path, capsys, 1e-5, "early_stopping patience=2")
    assert len(lines) == 30                     # without min_delta every small gain counts


def test_reduce_lr_on_plateau_in_the_train_block(tmp_path, capsys):
    code, lines, _ = _run(tmp_path, capsys, 0.0, "reduce_lr_on_plateau factor=0.5, patience=2")
    assert code == 0
    import json
    lrs = [json.loads(line)["lr"] for line in lines]
    # lr 0 cannot fall (min_lr 0): it stays; with lr > 0 the schedule is tested against torch above
    assert lrs == [0.0] * 30


def test_a_bad_callback_option_is_positioned(tmp_path, capsys):
    code, _, err = _run(tmp_path, capsys, 0.1, "early_stopping patience=2, min_delt=0.5")
    assert code != 0
    assert f"{tmp_path / 'flat.nn'}:13:30: error: early_stopping has no option 'min_delt'; did you mean " \
           "'min_delta'?" in err
    code, _, err = _run(tmp_path, capsys, 0.1, "reduce_lr_on_plateau factor=2")
    assert f"{tmp_path / 'flat.nn'}:13:31: error: reduce_lr_on_plateau option 'factor' must be a number " \
           "between 0 and 1, got 2" in err


def test_epochs_zero_says_so(tmp_path, capsys):
    code, lines, err = _run(tmp_path, capsys, 0.1, "", "--epochs", "0")
    assert code == 0 and lines == []
    assert "note: 0 epochs: nothing to train; the parameters keep their initial values" in err
