"""Validating what a checkpoint file claims, field by field, before anything uses it.

A checkpoint is data, not code: it may be damaged or hand-edited. Every field of its
`__meta__` record is checked by type and range here, and every array by dtype and
values, so that a tampered file gives one clear error naming the file and the field
(`ckpt.npz: error: field 'epoch': expected an integer >= 0, got -5`) instead of a
traceback deep in the training loop, or worse, a run that trains epochs -4..5.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import NNCError


class CheckpointError(NNCError):
    """A checkpoint that cannot be read, or that does not fit the model."""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _show(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


class _Fields:
    """Checks on one mapping of the meta record; errors name the file and the field path."""

    def __init__(self, path: str, record: dict, prefix: str = ""):
        self.path, self.record, self.prefix = path, record, prefix

    def fail(self, name: str, expected: str) -> CheckpointError:
        got = _show(self.record.get(name)) if name in self.record else "nothing"
        return CheckpointError(f"{self.path}: error: damaged checkpoint: field '{self.prefix}{name}': "
                               f"expected {expected}, got {got}")

    def int(self, name: str, low: int = 0, high: int | None = None, optional: bool = False) -> None:
        v = self.record.get(name)
        if v is None and optional:
            return
        if not _is_int(v) or v < low or (high is not None and v >= high):
            bound = f"in [{low}, {high})" if high is not None else f">= {low}"
            raise self.fail(name, f"an integer {bound}" + (" or null" if optional else ""))

    def str(self, name: str, optional: bool = False) -> None:
        v = self.record.get(name)
        if not (isinstance(v, str) or (optional and v is None)):
            raise self.fail(name, "a string" + (" or null" if optional else ""))

    def dict(self, name: str, optional: bool = False) -> dict:
        v = self.record.get(name)
        if v is None and optional:
            return {}
        if not isinstance(v, dict):
            raise self.fail(name, "a mapping" + (" or null" if optional else ""))
        return v


def check_meta(path: str, meta: dict, version: int) -> None:
    """Raise a CheckpointError naming the first field of `meta` of the wrong type or range."""
    f = _Fields(path, meta)
    f.int("version", 1, version + 1)
    f.str("model")
    f.str("optimizer", optional=True)
    f.str("nncompiler", optional=True)
    for group in ("params", "buffers"):
        shapes = f.dict(group, optional=True)
        for name, shape in shapes.items():
            if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
                raise _Fields(path, shapes, f"{group}.").fail(name, "a list of dimensions")
    f.int("steps_taken", optional=True)
    lr = meta.get("lr")
    if lr is not None and not (_is_number(lr) and math.isfinite(lr) and lr > 0):
        raise f.fail("lr", "a positive finite number or null")
    f.int("epoch", optional=True)
    f.int("seed", 0, 2**64, optional=True)
    _check_rng(f, meta.get("rng"), "rng")
    history = f.dict("history", optional=True)
    for key, values in history.items():
        if not isinstance(values, list) or not all(_is_number(x) for x in values):
            raise _Fields(path, history, "history.").fail(key, "a list of numbers")
        if len(values) > 10**7:
            raise _Fields(path, history, "history.").fail(key, "at most 10^7 epochs")
    callbacks = f.dict("callbacks", optional=True)
    for key, state in callbacks.items():
        if not isinstance(state, dict):
            raise _Fields(path, callbacks, "callbacks.").fail(key, "a mapping")
        _check_callback(_Fields(path, state, f"callbacks.{key}."), state)
    if meta.get("partial") is not None:
        _check_partial(_Fields(path, f.dict("partial"), "partial."))


def _check_rng(f: _Fields, rng, name: str) -> None:
    """The shuffle generator's state: the only sure check is to set it on a fresh generator."""
    if rng is None:
        return
    try:
        if not isinstance(rng, dict) or rng.get("bit_generator") != "PCG64":
            raise ValueError
        np.random.default_rng().bit_generator.state = rng
    except (ValueError, TypeError, KeyError, OverflowError):
        raise f.fail(name, "the state of numpy's PCG64 generator") from None


def _check_callback(f: _Fields, state: dict) -> None:
    # EarlyStopping's keys (train/callbacks.py); other callbacks' keys pass as saved
    if "best" in state and state["best"] is not None and not _is_number(state["best"]):
        raise f.fail("best", "a number or null")
    for key in ("best_epoch", "wait"):
        if key in state:
            f.int(key)


def _check_partial(f: _Fields) -> None:
    """Where in an epoch an interrupted run stopped (train/safety.py)."""
    f.int("epoch", 1)
    f.int("batches")
    f.int("seen")
    f.int("rows")
    size = f.record.get("batch_size")
    if not (size is None or size == "all" or (_is_int(size) and size > 0)):
        raise f.fail("batch_size", "a positive integer, 'all' or null")
    totals = f.dict("totals")
    for key, value in totals.items():   # a curve metric's part is a list (a count per threshold)
        if not (_is_number(value) or (isinstance(value, list) and value and all(map(_is_number, value)))):
            raise _Fields(f.path, totals, "partial.totals.").fail(key, "a number or a list of numbers")


def check_array(path: str, key: str, value: np.ndarray, allow_nonfinite: bool) -> None:
    """A saved array must hold real numbers; NaN/Inf only when asked for (`allow_nonfinite`):
    a model with a NaN weight predicts NaN everywhere, which is never what a user wants to load."""
    kind = value.dtype.kind
    if kind == "c":
        raise CheckpointError(f"{path}: error: array '{key}' holds complex numbers ({value.dtype}); "
                              "weights are real")
    if kind not in "biuf":
        raise CheckpointError(f"{path}: error: array '{key}' holds {value.dtype} data, not numbers")
    if kind == "f" and not allow_nonfinite and value.size:
        bad = ~np.isfinite(value)
        if bad.any():
            i = tuple(int(x) for x in np.argwhere(bad)[0])
            what = "NaN" if np.isnan(value[i]) else "an infinite value"
            raise CheckpointError(f"{path}: error: array '{key}' holds {what} at index {i}; "
                                  "load it anyway with allow_nonfinite=True (--allow-nonfinite)")
    if kind in "fiu" and not allow_nonfinite and value.size and value.dtype.itemsize > 4:
        # float64 / int64 weights become float32 on load: beyond its range they would turn into inf
        big = np.abs(value.astype(np.float64)) > np.finfo(np.float32).max
        if big.any():
            i = tuple(int(x) for x in np.argwhere(big)[0])
            raise CheckpointError(f"{path}: error: array '{key}' holds {value[i].item():g} at index {i}, beyond "
                                  "float32's range (it would load as infinity)")
