"""The runtime's state: everything a model's graphs read and a training step changes.

    parameters       trainable, declared by `param` statements and layers
    buffers          non-trainable (batchnorm's moving statistics)
    optimizer slots  `opt.<slot>.<param>` (the parameter's dtype) and `opt.step` (f32)
    hyper-parameters the optimizer's settings; `lr` is a graph argument a schedule may change
    step             steps taken; with the seed it gives each step's random key

Every array entry has a declared dtype, taken from the IR types (a `param w: f64[2]` stays
float64, an i32 buffer int32): values put in through `assign` are converted to it, and
checkpoints, snapshots and `Model.params` keep it. The arrays live on the backend's device
between steps (`Backend.to_device`); reading them (`numpy`) copies them to the host.

Generated code is pure (arrays in, arrays out); this object is the one place that owns
values across calls, so the training loop, the NaN guard, checkpoints and data-parallel
training all go through its methods.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Callable

import numpy as np

from .errors import did_you_mean


@dataclass(frozen=True)
class Snapshot:
    """A copy of a State's arrays, step and hyper-parameters at one moment."""

    values: dict
    step: int
    hyper: dict = field(default_factory=dict)


class State:
    """Named device arrays with declared dtypes, plus hyper-parameters, the step and the seed.

    `kinds` maps each entry's name to "param", "buffer" or "opt"; `dtypes` to its numpy
    dtype. Entries start without a value until `assign` gives them one."""

    def __init__(self, backend, kinds: dict[str, str], dtypes: dict[str, np.dtype],
                 hyper: dict[str, float] | None = None, seed: int = 0):
        missing = [n for n in kinds if n not in dtypes]
        if missing:
            raise ValueError(f"no dtype declared for {', '.join(missing)}")
        self.backend = backend
        self._kinds = dict(kinds)
        self._dtypes = {n: np.dtype(d) for n, d in dtypes.items()}
        # one dict for the State's life (restore refills it): bound graphs (`bind`) read it directly
        self._values: dict[str, object] = {}
        self._hyper = {k: float(v) for k, v in (hyper or {}).items()}
        self._lr_arg = np.array(self.lr, np.float32)
        self.seed = int(seed)
        self.step = 0

    # -- what is declared ------------------------------------------------------------------
    def names(self, kind: str | None = None) -> list[str]:
        """Names of the entries holding a value (of one kind: "param", "buffer", "opt")."""
        return [n for n in self._values if kind is None or self._kinds[n] == kind]

    def kind(self, name: str) -> str:
        return self._kinds[name]

    def dtype(self, name: str) -> np.dtype:
        return self._dtypes[name]

    def __contains__(self, name) -> bool:
        return name in self._values

    def __iter__(self):
        return iter(list(self._values))

    def __len__(self) -> int:
        return len(self._values)

    def __getitem__(self, name: str):
        """The device array (not a copy: do not write into it)."""
        return self._values[name]

    # -- values ------------------------------------------------------------------------------
    def numpy(self, names=None) -> dict[str, np.ndarray]:
        """Host copies (a caller's arrays never change under it when training goes on)."""
        names = self.names() if names is None else names
        return {k: np.array(self.backend.to_numpy(self._values[k]), copy=True) for k in names}

    def assign(self, values: dict) -> None:
        """Set entries from host values, converted to their declared dtypes; a value that would
        not survive the conversion (1.5 into an integer entry) is refused."""
        for name, value in values.items():
            if name not in self._dtypes:
                raise KeyError(f"no state entry '{name}'{did_you_mean(name, list(self._dtypes))}")
            self._values[name] = self.backend.to_device(_convert(name, value, self._dtypes[name]))

    def assign_device(self, values: dict) -> None:
        """Set entries to device arrays a graph computed: the graph's types are the declared
        ones, so nothing is converted or copied (a step's outputs stay on the device)."""
        for name, value in values.items():
            if name not in self._dtypes:
                raise KeyError(f"no state entry '{name}'{did_you_mean(name, list(self._dtypes))}")
            self._values[name] = value

    def take_outputs(self, outputs: dict, prefix: str) -> None:
        """Keep a step's `<prefix><name>` outputs (`new.w`, `update.moving_mean`) as the new values."""
        n = len(prefix)
        self.assign_device({k[n:]: v for k, v in outputs.items() if k.startswith(prefix)})

    def drop(self, kind: str) -> None:
        """Forget the values of every entry of one kind (the optimizer slots on a reset)."""
        for name in self.names(kind):
            del self._values[name]

    # -- hyper-parameters, step, random key -------------------------------------------------
    @property
    def hyper(self) -> dict[str, float]:
        return dict(self._hyper)

    def set_hyper(self, name: str, value: float) -> None:
        self._hyper[name] = float(value)
        if name == "lr":
            self._lr_arg = np.array(self._hyper[name], np.float32)

    def lr_arg(self) -> np.ndarray:
        """The lr as a graph's `opt.lr` argument: a 0-d float32 array (numpy multiplies by one
        faster than by a scalar), made when the lr changes and never written into afterwards,
        so a backend may keep it while a step runs."""
        return self._lr_arg

    @property
    def lr(self) -> float:
        return float(self._hyper.get("lr", 0.0))

    @lr.setter
    def lr(self, value: float) -> None:
        self.set_hyper("lr", value)

    def rng_key(self) -> np.int32:
        """The random key of the next step: dropout and friends draw from it, so the same
        seed and step give the same masks on every backend."""
        return np.int32((self.seed * 1000003 + self.step) & 0x7FFFFFFF)

    # -- snapshots ------------------------------------------------------------------------------
    def snapshot(self, into: Snapshot | None = None) -> Snapshot:
        """A copy of every array, the step and the hyper-parameters, on the device; `into`, an
        older snapshot no one needs any more, lends its arrays so nothing is allocated."""
        old = into.values if into is not None else {}
        copy = self.backend.copy
        return Snapshot({k: copy(v, old.get(k)) for k, v in self._values.items()}, self.step, dict(self._hyper))

    def restore(self, snap: Snapshot, *, hyper: bool = True) -> None:
        """Back to a snapshot (copied again, so the snapshot can be restored more than once).
        `hyper=False` keeps the current hyper-parameters: a schedule may have moved the lr since."""
        copy = self.backend.copy
        values = {k: copy(v) for k, v in snap.values.items()}
        self._values.clear()
        self._values.update(values)
        self.step = snap.step
        if hyper:
            self._hyper = dict(snap.hyper)
            self._lr_arg = np.array(self.lr, np.float32)

    # -- a compiled graph bound to this state ---------------------------------------------------
    def bind(self, call: Callable, arg_names, output_names, *, rng: bool = False, lr: bool = False,
             prefix: str = "new.") -> Callable[[dict], dict]:
        """`call`, a compiled graph taking `arg_names` positionally, as a function of its feeds
        (a dict): every other argument is read from this State (the random key as `rng.key` and
        the lr as `opt.lr` when `rng`/`lr`), each `<prefix><entry>` output is kept as the entry's
        new value, and the other outputs are returned. Names are matched here, once: a call
        merges two dicts, gathers the arguments with one itemgetter and stores the new state
        with one dict update (a tiny model's step is otherwise mostly per-name bookkeeping)."""
        n = len(prefix)
        new = [k for k in output_names if k.startswith(prefix)]
        for k in new:
            if k[n:] not in self._dtypes:
                raise KeyError(f"no state entry '{k[n:]}'{did_you_mean(k[n:], list(self._dtypes))}")
        entries = [k[n:] for k in new]
        rest = [k for k in output_names if not k.startswith(prefix)]
        gather, take = _getter(arg_names), _getter(new)
        values = self._values

        def run(feeds: dict) -> dict:
            merged = {**values, **feeds}
            if rng:
                merged["rng.key"] = self.rng_key()
            if lr:
                merged["opt.lr"] = self._lr_arg
            try:
                args = gather(merged)
            except KeyError as e:
                raise KeyError(f"missing argument {e.args[0]!r}") from None
            out = call(*args)
            values.update(zip(entries, take(out)))
            return {k: out[k] for k in rest}
        return run


def _getter(names) -> Callable[[dict], tuple]:
    """The values of `names` in a dict, as a tuple (itemgetter gives one name's value bare)."""
    names = tuple(names)
    if len(names) == 1:
        key = names[0]
        return lambda d: (d[key],)
    return itemgetter(*names) if names else (lambda d: ())


def _convert(name: str, value, dtype: np.dtype) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == dtype:
        return np.array(arr, copy=True)      # an initialiser may hand over a read-only view
    if dtype.kind in "iub" and arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"'{name}' holds {dtype.name}: got non-integral values ({arr.dtype.name})")
    return arr.astype(dtype)
