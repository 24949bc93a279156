"""Training callbacks: hooks the training loop calls around epochs and batches.

    m.fit(x=X, y=Y, epochs=50, callbacks=[EarlyStopping("val_loss", patience=5)])

A callback overrides any of the hooks below; each receives the loop's
`TrainState` (the model, the epoch, the history so far, the shuffle generator,
...). Setting `state.stop = True` in `on_epoch_end` ends training after that
epoch. A callback whose progress must survive a checkpoint (early stopping's
best value, for instance) implements `get_state()` (a JSON-able dict, plus
optional numpy arrays under the key "arrays") and `set_state(dict)`.

Learning-rate schedules are callables `epoch -> lr` (epochs count from 1);
`parse_schedule` turns the command line's `step:N:FACTOR`, `exp:RATE` and
`cosine` into one. The learning rate is a graph argument (`opt.lr`), so a
schedule just sets `model.lr` before each epoch: nothing is recompiled.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import NNCError


def require_extra(module: str, extra: str, purpose: str):
    """Import an optional dependency, or fail with one line naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NNCError(f"{purpose} needs the '{module.split('.')[0]}' package, which is not installed: "
                       f"pip install 'nncompiler[{extra}]'") from None


@dataclass
class TrainState:
    """What the loop shares with its callbacks."""

    model: object
    epochs: int                              # the last epoch number (the total, counting resumed ones)
    epoch: int = 0                           # the current epoch (1-based); 0 before the first
    steps_per_epoch: int = 0
    rows: int = 0                            # training rows per epoch
    history: dict = field(default_factory=dict)
    rng: np.random.Generator | None = None   # the shuffle generator
    seed: int = 0
    stop: bool = False
    last_batch: dict | None = None           # the epoch's last training batch (for gradient histograms)
    has_validation: bool = False
    extra: dict = field(default_factory=dict)


class Callback:
    """Base class: every hook does nothing."""

    def on_train_begin(self, state: TrainState) -> None: ...
    def on_epoch_begin(self, state: TrainState) -> None: ...
    def on_batch_end(self, state: TrainState, batch: int, stats: dict, rows: int) -> None: ...
    def on_epoch_end(self, state: TrainState, record: dict) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...
    def close(self) -> None:
        """Release resources (files); called instead of on_train_end when training fails."""


class LambdaCallback(Callback):
    """Wrap a plain function `fn(epoch, record)` called after every epoch (fit's `callback=`)."""

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, state, record):
        self.fn(state.epoch, record)


class LearningRateScheduler(Callback):
    """Set `model.lr = schedule(epoch)` before every epoch (epochs count from 1)."""

    def __init__(self, schedule):
        if not callable(schedule):
            raise NNCError(f"lr_schedule must be a function epoch -> lr, got {schedule!r}")
        self.schedule = schedule

    def on_epoch_begin(self, state):
        lr = float(self.schedule(state.epoch))
        if not math.isfinite(lr) or lr < 0:
            raise NNCError(f"learning-rate schedule gave lr={lr} for epoch {state.epoch}")
        state.model.lr = lr


def parse_schedule(spec: str, base_lr: float, epochs: int):
    """`step:N:FACTOR` (lr * FACTOR every N epochs), `exp:RATE` (lr * RATE**(epoch-1)) or
    `cosine[:MIN]` (half a cosine from lr toward MIN, default 0, over `epochs` epochs, as torch's
    CosineAnnealingLR with T_max=epochs) as a function epoch -> lr (epochs count from 1)."""
    parts = spec.strip().split(":")
    kind = parts[0].lower()

    def bad(why: str) -> NNCError:
        return NNCError(f"--lr-schedule {spec}: {why} (expected step:N:FACTOR, exp:RATE or cosine[:MIN_LR])")

    def number(text: str, what: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise bad(f"{what} '{text}' is not a number") from None
        if not math.isfinite(v) or v < 0:
            raise bad(f"{what} must be a non-negative number, got {text}")
        return v

    if kind == "step":
        if len(parts) != 3:
            raise bad("step takes N and FACTOR")
        try:
            every = int(parts[1])
        except ValueError:
            every = 0
        if every < 1:
            raise bad(f"N must be a positive integer, got '{parts[1]}'")
        factor = number(parts[2], "FACTOR")
        return lambda epoch: base_lr * factor ** ((epoch - 1) // every)
    if kind == "exp":
        if len(parts) != 2:
            raise bad("exp takes RATE")
        rate = number(parts[1], "RATE")
        return lambda epoch: base_lr * rate ** (epoch - 1)
    if kind == "cosine":
        if len(parts) > 2:
            raise bad("cosine takes at most MIN_LR")
        low = number(parts[1], "MIN_LR") if len(parts) == 2 else 0.0
        span = max(epochs, 1)    # as torch's CosineAnnealingLR(T_max=epochs): the last epoch still learns
        return lambda epoch: low + (base_lr - low) * 0.5 * (1 + math.cos(math.pi * min(epoch - 1, span) / span))
    raise bad(f"unknown schedule '{parts[0]}'")


_MAX_MODE = ("accuracy", "acc")


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for `patience` epochs (Keras's EarlyStopping).

    `mode` "auto" maximises accuracy and minimises everything else. With
    `restore_best_weights` the parameters and buffers of the best epoch are put
    back when training ends.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, restore_best_weights: bool = False,
                 min_delta: float = 0.0, mode: str = "auto"):
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 0:
            raise NNCError(f"early stopping patience must be a non-negative integer, got {patience!r}")
        if mode not in ("auto", "min", "max"):
            raise NNCError(f"early stopping mode must be auto, min or max, got {mode!r}")
        self.monitor, self.patience, self.restore = monitor, patience, restore_best_weights
        self.min_delta = abs(min_delta)
        base = monitor[4:] if monitor.startswith("val_") else monitor
        self.mode = mode if mode != "auto" else ("max" if base in _MAX_MODE else "min")
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: dict | None = None
        self.stopped_epoch = 0
        self.restored = False

    def _better(self, value: float) -> bool:
        if self.best is None:
            return math.isfinite(value)
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, state, record):
        if self.monitor not in record:
            from ..errors import did_you_mean
            hint = " (no validation data: hold some out, e.g. --validate 0.2)" \
                if self.monitor.startswith("val_") and not state.has_validation else ""
            raise NNCError(f"early stopping monitors '{self.monitor}', which training does not report"
                           f"{did_you_mean(self.monitor, record)}{hint}; reported: {', '.join(record)}")
        value = float(record[self.monitor])
        if self._better(value):
            self.best, self.best_epoch, self.wait = value, state.epoch, 0
            if self.restore:
                m = state.model
                self.best_weights = {**m.params, **m.buffers}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = state.epoch
                state.stop = True

    def on_train_end(self, state):
        if self.restore and self.best_weights is not None and self.best_epoch != state.epoch:
            state.model.set_params(self.best_weights)
            self.restored = True
            state.extra["restored_best"] = True

    def message(self) -> str | None:
        if not self.stopped_epoch:
            return None
        text = (f"early stopping at epoch {self.stopped_epoch}: {self.monitor} has not improved for "
                f"{self.patience} epochs (best {self.best:.4f} at epoch {self.best_epoch})")
        return text + ("; restored the best weights" if self.restored else "")

    def get_state(self) -> dict:
        out = {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}
        if self.best_weights is not None:
            out["arrays"] = dict(self.best_weights)
        return out

    def set_state(self, saved: dict) -> None:
        self.best, self.best_epoch, self.wait = saved.get("best"), saved.get("best_epoch", 0), saved.get("wait", 0)
        if self.restore and saved.get("arrays"):
            self.best_weights = dict(saved["arrays"])


def early_stopping_callback(spec) -> EarlyStopping:
    """fit's `early_stopping=`: an EarlyStopping, `(monitor, patience)` or `(monitor, patience, restore_best)`."""
    if isinstance(spec, EarlyStopping):
        return spec
    if isinstance(spec, dict):
        return EarlyStopping(**spec)
    if isinstance(spec, (tuple, list)) and len(spec) in (2, 3) and isinstance(spec[0], str):
        return EarlyStopping(spec[0], spec[1], *(bool(spec[2]),) if len(spec) == 3 else ())
    raise NNCError("early_stopping must be (monitor, patience), (monitor, patience, restore_best_weights) "
                   f"or an EarlyStopping, got {spec!r}")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved by more than
    `min_delta` for `patience` epochs (Keras's ReduceLROnPlateau, with its defaults); after a
    reduction, wait `cooldown` epochs before counting again; never go below `min_lr`."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0, mode: str = "auto"):
        if not 0 < factor < 1:
            raise NNCError(f"ReduceLROnPlateau factor must be between 0 and 1, got {factor!r}")
        if mode not in ("auto", "min", "max"):
            raise NNCError(f"ReduceLROnPlateau mode must be auto, min or max, got {mode!r}")
        self.monitor, self.factor, self.patience = monitor, float(factor), int(patience)
        self.min_delta, self.cooldown, self.min_lr = abs(min_delta), int(cooldown), float(min_lr)
        base = monitor[4:] if monitor.startswith("val_") else monitor
        # Keras's auto mode: maximise anything named like an accuracy
        self.mode = mode if mode != "auto" else ("max" if "acc" in base else "min")
        self.best: float | None = None
        self.wait = self.cooldown_left = 0
        self.reductions: list[tuple[int, float]] = []     # (epoch, new lr)

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

    def on_epoch_end(self, state, record):
        if self.monitor not in record:
            from ..errors import did_you_mean
            raise NNCError(f"reduce_lr_on_plateau monitors '{self.monitor}', which training does not report"
                           f"{did_you_mean(self.monitor, record)}; reported: {', '.join(record)}")
        value = float(record[self.monitor])
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self._better(value):
            self.best, self.wait = value, 0
        elif self.cooldown_left == 0:
            self.wait += 1
            if self.wait >= self.patience:
                model = state.model
                if model.lr > self.min_lr:
                    model.lr = max(model.lr * self.factor, self.min_lr)
                    self.reductions.append((state.epoch, model.lr))
                    self.cooldown_left, self.wait = self.cooldown, 0

    def get_state(self) -> dict:
        return {"best": self.best, "wait": self.wait, "cooldown_left": self.cooldown_left}

    def set_state(self, saved: dict) -> None:
        self.best, self.wait = saved.get("best"), saved.get("wait", 0)
        self.cooldown_left = saved.get("cooldown_left", 0)


TRAIN_BLOCK_CALLBACKS = {"early_stopping": EarlyStopping, "reduce_lr_on_plateau": ReduceLROnPlateau}


def train_block_callbacks(specs, has_validation: bool) -> dict:
    """A train block's callback statements -> {kind: callback}; `monitor` defaults to val_loss
    with validation data and to loss without (there is no val_loss to watch)."""
    out = {}
    for kind, options in specs:
        options = dict(options)
        options.setdefault("monitor", "val_loss" if has_validation else "loss")
        out[kind] = TRAIN_BLOCK_CALLBACKS[kind](**options)
    return out


class CallbackList:
    """Calls every callback in order; `on_train_end` runs for all of them even if one fails."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def __iter__(self):
        return iter(self.callbacks)

    def on_train_begin(self, state):
        for c in self.callbacks:
            c.on_train_begin(state)

    def on_epoch_begin(self, state):
        for c in self.callbacks:
            c.on_epoch_begin(state)

    def on_batch_end(self, state, batch, stats, rows):
        for c in self.callbacks:
            c.on_batch_end(state, batch, stats, rows)

    def on_epoch_end(self, state, record):
        for c in self.callbacks:
            c.on_epoch_end(state, record)

    def on_train_end(self, state):
        error = None
        for c in self.callbacks:
            try:
                c.on_train_end(state)
            except Exception as e:   # close every writer, then report the first failure
                error = error or e
        if error is not None:
            raise error

    def abort(self):
        for c in self.callbacks:
            try:
                c.close()
            except Exception:   # the error that stopped training is the one to report
                pass
