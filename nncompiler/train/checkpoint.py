"""Checkpoints: a model's whole training state in one `.npz` file.

    param/<name>      every parameter            (its declared dtype, as m.params)
    buffer/<name>     every buffer               (moving statistics)
    opt/<name>        optimizer slots and step   (opt.m.h.kernel, opt.step)
    callback/<key>/<name>  arrays a callback keeps (early stopping's best weights)
    __meta__          a JSON string: format name and version, model and optimizer
                      names, parameter shapes, steps taken, learning rate, the
                      epoch reached, the shuffle generator's state, the seed, the
                      history so far and the callbacks' own state

Nothing is pickled (`np.load(..., allow_pickle=False)` reads it all), and a file
is written atomically: to a temporary file beside it, flushed and fsync'ed, then
renamed over the target, so a crash never leaves half a checkpoint.

Loading reads every array header before decompressing anything (a zip bomb or a
forged header is refused against the memory limit), validates every meta field by
type and range and every array by dtype and values (ckptcheck.py), then checks
that the checkpoint fits the model (the same parameter names and shapes) and says
what differs otherwise.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ..errors import NNCError
from ..version import __version__
from .arrays import check_headers
from .callbacks import Callback
from .ckptcheck import CheckpointError, check_array, check_meta

FORMAT = "nncompiler-checkpoint"
VERSION = 1
META = "__meta__"


@dataclass
class Checkpoint:
    path: str
    meta: dict
    params: dict = field(default_factory=dict)
    buffers: dict = field(default_factory=dict)
    opt_state: dict = field(default_factory=dict)
    callback_arrays: dict = field(default_factory=dict)    # key -> {name: array}

    @property
    def epoch(self) -> int:
        return int(self.meta.get("epoch") or 0)

    def callback_state(self, key: str) -> dict | None:
        saved = (self.meta.get("callbacks") or {}).get(key)
        if saved is None:
            return None
        saved = dict(saved)
        if key in self.callback_arrays:
            saved["arrays"] = self.callback_arrays[key]
        return saved


def _shapes(arrays: dict) -> dict[str, list[int]]:
    return {k: list(np.shape(v)) for k, v in arrays.items()}


def callback_key(callbacks, c) -> str:
    """A stable name for a callback's state: its class name, numbered if there are several."""
    same = [x for x in callbacks if type(x) is type(c)]
    name = type(c).__name__
    return name if len(same) == 1 else f"{name}{same.index(c)}"


def save_checkpoint(model, path: str, *, epoch: int | None = None, rng: np.random.Generator | None = None,
                    seed: int | None = None, history: dict | None = None, callbacks=(),
                    extra: dict | None = None) -> None:
    """Write the model's state (and, from the training loop, the loop's) to `path`, atomically.

    `extra`: more JSON-able meta (safety.py's `partial`: where in an epoch training stopped)."""
    low = model.lowered
    params, buffers, opt_state = model.params, model.buffers, model.opt_state
    meta = {
        "format": FORMAT, "version": VERSION, "nncompiler": __version__,
        "model": low.name, "optimizer": low.optimizer.name if low.optimizer else None,
        "params": _shapes(params), "buffers": _shapes(buffers),
        "steps_taken": int(model.steps_taken), "lr": model.lr if low.optimizer else None,   # no optimizer: no lr (0.0 is not one)
        "epoch": epoch, "seed": seed,
        "rng": rng.bit_generator.state if rng is not None else None,
        "history": {k: [float(x) for x in v] for k, v in (history or {}).items()},
        "callbacks": {},
        **(extra or {}),
    }
    arrays: dict[str, np.ndarray] = {}
    arrays.update({f"param/{k}": v for k, v in params.items()})
    arrays.update({f"buffer/{k}": v for k, v in buffers.items()})
    arrays.update({f"opt/{k}": v for k, v in opt_state.items()})
    callbacks = list(callbacks)
    for c in callbacks:
        if hasattr(c, "get_state"):
            key = callback_key(callbacks, c)
            state = dict(c.get_state())
            for name, value in (state.pop("arrays", None) or {}).items():
                arrays[f"callback/{key}/{name}"] = np.asarray(value)
            meta["callbacks"][key] = state
    arrays[META] = np.array(json.dumps(meta))
    _atomic_savez(path, arrays)


def _atomic_savez(path: str, arrays: dict) -> None:
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory; name a checkpoint file such as {path.rstrip('/')}/ckpt.npz")
    from ..fsutil import atomic_write
    try:  # data and rename flushed to disk: a crash leaves the old checkpoint or the new one
        atomic_write(path, lambda f: np.savez(f, **arrays), fsync=True, make_dirs=False)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write checkpoint: {e.strerror or e}") from None


def read_checkpoint(path: str, allow_nonfinite: bool = False) -> Checkpoint:
    """Read and validate a checkpoint; NaN/Inf in its arrays only with `allow_nonfinite`."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: not a regular file")
    check_headers(path, lambda m: CheckpointError(f"{path}: error: {m}"))
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: not a checkpoint (cannot read it as .npz: {e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path}: not a checkpoint (a single .npy array, not an .npz archive)")
    with z:
        if META not in z.files:
            raise CheckpointError(f"{path}: not an nncompiler checkpoint (no {META} entry; "
                                  "write one with --save or Model.save)")
        try:
            meta = json.loads(str(z[META]))
            arrays = {k: z[k] for k in z.files if k != META}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"{path}: damaged checkpoint: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an nncompiler checkpoint")
    version = meta.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {meta.get('version')} is newer than this "
                              f"nncompiler reads ({VERSION}); upgrade nncompiler")
    check_meta(path, meta, VERSION)
    for key, value in arrays.items():
        check_array(path, key, value, allow_nonfinite)
    ck = Checkpoint(path, meta)
    for key, value in arrays.items():
        kind, _, name = key.partition("/")
        if kind == "param":
            ck.params[name] = value
        elif kind == "buffer":
            ck.buffers[name] = value
        elif kind == "opt":
            ck.opt_state[name] = value
        elif kind == "callback":
            cb, _, arr = name.partition("/")
            ck.callback_arrays.setdefault(cb, {})[arr] = value
    return ck


def _differences(what: str, model: dict, saved: dict) -> list[str]:
    out = []
    for name, value in model.items():
        if name not in saved:
            out.append(f"missing {what} '{name}'")
        elif tuple(np.shape(saved[name])) != tuple(np.shape(value)):
            out.append(f"{what} '{name}' has shape {list(np.shape(value))} in the model but "
                       f"{list(np.shape(saved[name]))} in the checkpoint")
    out += [f"unexpected {what} '{name}'" for name in saved if name not in model]
    return out


def check_fits(model, ck: Checkpoint, optimizer: bool = False) -> None:
    """Raise a CheckpointError naming what differs unless the checkpoint's arrays fit the model."""
    problems = _differences("parameter", model.params, ck.params)
    problems += _differences("buffer", model.buffers, ck.buffers)
    if optimizer and not problems:
        ours = model.lowered.optimizer.name if model.lowered.optimizer else None
        theirs = ck.meta.get("optimizer")
        if ours != theirs:
            problems.append(f"it was saved with optimizer {theirs}, the model uses {ours}")
        else:
            problems += _differences("optimizer slot", model.opt_state, ck.opt_state)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        src = ck.meta.get("model")
        raise CheckpointError(f"{ck.path}: checkpoint (of model {src}) does not fit model "
                              f"{model.lowered.name}: {'; '.join(problems[:3])}{more}")


def load_weights(model, path_or_checkpoint, allow_nonfinite: bool = False) -> Checkpoint:
    """Set the model's parameters and buffers from a checkpoint (its optimizer state is left alone)."""
    ck = path_or_checkpoint if isinstance(path_or_checkpoint, Checkpoint) else \
        read_checkpoint(path_or_checkpoint, allow_nonfinite)
    check_fits(model, ck)
    model.set_params({**ck.params, **ck.buffers})
    return ck


def restore_training(model, ck: Checkpoint) -> None:
    """Everything `load_weights` does, plus optimizer state, steps taken and (if saved) the lr."""
    check_fits(model, ck, optimizer=True)
    model.set_params({**ck.params, **ck.buffers})
    model.set_opt_state(ck.opt_state)
    model.steps_taken = int(ck.meta.get("steps_taken", 0))
    if ck.meta.get("lr") is not None:
        model.lr = float(ck.meta["lr"])


class ModelCheckpoint(Callback):
    """Save a checkpoint every `every` epochs (if given) and when training ends."""

    def __init__(self, path: str, every: int | None = None):
        if every is not None and (not isinstance(every, int) or every < 1):
            raise NNCError(f"save_every must be a positive integer, got {every!r}")
        self.path, self.every = os.fspath(path), every
        self.saved_epoch = None
        self.saved: list[int] = []

    def save(self, state) -> None:
        save_checkpoint(state.model, self.path, epoch=state.epoch, rng=state.rng, seed=state.seed,
                        history=state.history, callbacks=state.extra.get("callbacks", ()))
        self.saved_epoch = state.epoch
        self.saved.append(state.epoch)

    def on_epoch_end(self, state, record):
        if self.every and state.epoch % self.every == 0:
            self.save(state)

    def on_train_end(self, state):
        if self.saved_epoch != state.epoch or state.extra.get("restored_best"):
            self.save(state)
