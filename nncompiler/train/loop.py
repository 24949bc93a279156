"""The training loop: epochs of mini-batch gradient descent over arrays.

`batch_size=1` is stochastic gradient descent, `"all"` (or None) full-batch
gradient descent. Shuffling draws from one generator seeded once, so the same
seed gives the same numbers. Per-epoch metrics are means over the epoch's
batches weighted by batch size, as Keras reports them.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from .data import batches, split_validation


def _rows(data: dict) -> int:
    sizes = {name: len(np.asarray(a)) if np.ndim(a) else 1 for name, a in data.items()}
    if len(set(sizes.values())) > 1:
        raise DataError("arrays have different numbers of rows: "
                        + ", ".join(f"{k}={v}" for k, v in sizes.items()))
    return next(iter(sizes.values()), 0)


def _feed_names(model) -> list[str]:
    return list(model.lowered.inputs) + list(model.lowered.targets)


def _batched(model) -> bool:
    """Whether the data has a batch axis: the first dim of every input is symbolic."""
    decls = {**model.lowered.inputs, **model.lowered.targets}
    return all(t.shape and isinstance(t.shape[0], str) for t in decls.values())


def evaluate(model, data: dict) -> dict[str, float]:
    out = model._run("evaluate", data, roles=("input", "target"))
    return {("loss" if k == "loss" else k[len("metric."):]): float(v) for k, v in out.items()}


def fit(model, data: dict, epochs: int, batch_size, shuffle: bool, validation_split: float,
        validation_data: dict | None, seed: int, callback=None) -> dict[str, list[float]]:
    data = {k: np.asarray(v) for k, v in data.items()}
    missing = [n for n in _feed_names(model) if n not in data]
    if missing:
        raise DataError(f"missing training data for {', '.join(repr(m) for m in missing)}")
    if validation_data is None and validation_split:
        data, validation_data = split_validation(data, validation_split, seed)
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {}
    n = _rows(data)
    if batch_size in ("all", None) or not _batched(model):
        batch_size = "all"
    for epoch in range(1, epochs + 1):
        totals: dict[str, float] = {}
        seen = 0
        for idx in batches(n, batch_size, shuffle, rng):
            batch = {k: v[idx] for k, v in data.items()}
            stats = model.step(**batch)
            rows = len(idx)
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + v * rows
            seen += rows
        record = {("loss" if k == "loss" else k[len("metric."):]): v / max(seen, 1) for k, v in totals.items()}
        if validation_data is not None and _rows(validation_data):
            for k, v in evaluate(model, validation_data).items():
                record[f"val_{k}"] = v
        for k, v in record.items():
            history.setdefault(k, []).append(v)
        if callback is not None:
            callback(epoch, record)
    return history


def format_epoch(epoch: int, record: dict[str, float]) -> str:
    """`epoch=3 loss=0.412 accuracy=0.951 val_loss=0.388 val_accuracy=0.967`."""
    return " ".join([f"epoch={epoch}"] + [f"{k}={v:.4g}" if abs(v) >= 1e4 else f"{k}={v:.4f}"
                                          for k, v in record.items()])
