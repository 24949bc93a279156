"""What the single-process loop (loop.py) and data-parallel training (distributed.py) share:
counting rows, telling batched data from unbatched, evaluating over the model's state, and a
step's loss and metrics kept where the step left them (StepStats).

In its own module so that neither of the two imports the other's private helpers."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import DataError


def count_rows(data: dict) -> int:
    """The number of rows every array of `data` has (a DataError if they differ)."""
    sizes = {name: len(np.asarray(a)) if np.ndim(a) else 1 for name, a in data.items()}
    if len(set(sizes.values())) > 1:
        raise DataError("arrays have different numbers of rows: "
                        + ", ".join(f"{k}={v}" for k, v in sizes.items()))
    return next(iter(sizes.values()), 0)


def feed_names(model) -> list[str]:
    return list(model.lowered.inputs) + list(model.lowered.targets)


def is_batched(model) -> bool:
    """Whether the data has a batch axis: the first dim of every input is symbolic."""
    decls = {**model.lowered.inputs, **model.lowered.targets}
    return all(t.shape and isinstance(t.shape[0], str) for t in decls.values())


def host_value(v):
    """A step output read back: a float, or a float64 array for a vector-valued metric part
    (a curve metric's per-threshold counts)."""
    if type(v) is np.ndarray and v.ndim == 0:     # the common case, read without a float64 copy
        return float(v)
    a = np.asarray(v, dtype=np.float64)
    return float(a.reshape(())) if a.size == 1 else a


def evaluate(model, data: dict, raw: bool = False) -> dict[str, float]:
    """Loss and metrics over `data` (inference mode), keyed `loss` and the metrics' names (a ratio
    metric's parts divided, a curve metric's counts made an AUC: `library.metrics.epoch_value`).
    `raw` keeps the parts (row means, some vectors) for a caller that sums them further."""
    from ..library.metrics import epoch_value
    from .datacheck import check_labels, label_classes
    from .memcheck import check_call
    check_labels(data, label_classes(model.lowered.forward))
    check_call(model, "evaluate", data, f"evaluating {count_rows(data)} rows at once",
               "evaluate a part of the data at a time")
    out = model.run("evaluate", data, roles=("input", "target"))
    to_numpy = model.backend.to_numpy
    record = {("loss" if k == "loss" else k[len("metric."):]): host_value(to_numpy(v)) for k, v in out.items()}
    return record if raw else epoch_value(record)


class StepStats(Mapping):
    """One step's loss and metrics. Reading one as a float waits for the step (on a GPU: a host
    sync); `device(name)` gives it where the step left it (a float for host backends), so the
    loop, the NaN guard and the progress bar sum on the device and read once in a while."""

    def __init__(self, raw: dict, to_numpy):
        # a copy: a CUDA graph's output buffers are rewritten two steps later
        self._raw = {k: v.clone() if hasattr(v, "clone") else host_value(to_numpy(v))
                     for k, v in raw.items()}
        self._to_numpy = to_numpy

    def device(self, name):
        return self._raw[name]

    def __getitem__(self, name):
        """A float; a float64 array for a vector-valued metric part."""
        v = self._raw[name]
        return v if isinstance(v, (float, np.ndarray)) else host_value(self._to_numpy(v))

    def __contains__(self, name) -> bool:     # Mapping's would read (and wait for) the value
        return name in self._raw

    def __iter__(self):
        return iter(self._raw)

    def __len__(self):
        return len(self._raw)


def on_device(stats, name):
    """A step's value where it lies (StepStats), else the float a callback was given."""
    return stats.device(name) if isinstance(stats, StepStats) else stats[name]
