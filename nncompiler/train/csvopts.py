"""A `data` line's options for CSV files: which columns, which labels, and the preprocessing.

    data "digits.csv" (label="digit", drop=["id"], one_hot=true, scale=1/16)
    data "houses.csv" (label="price", columns=["rooms", "area"], standardize=true)
    data "multi.csv"  (label=["l0", "l1", "l2"])

    label        the target column, or a list of them (multi-label targets: one column each)
    columns      the feature columns to use, in this order (every other non-label column is left out)
    drop         columns to leave out (an id, a name: they need not be numbers)
    one_hot      integer (or class-name) labels become one-hot rows, for categorical_crossentropy;
                 the number of classes is the target's declared last size
    scale        every feature multiplied by this number (`1/16` for 4-bit pixels)
    standardize  every feature column shifted and scaled to mean 0 and standard deviation 1,
                 with the training file's mean and deviation (a constant column is only shifted)

The same options apply when `nnc predict` reads a CSV, so features arrive as in training;
standardisation uses the statistics of the training file, which an `.nnx` file stores.

Reading goes through `csvfile.read_csv`: columns left out are read as (discarded) label
columns, which accept any non-empty text, so an id or name column never stops the read.
"""
from __future__ import annotations

import csv
import math

import numpy as np

from ..errors import DataError

OPTIONS = ("label", "columns", "drop", "one_hot", "scale", "standardize")


def header(path: str) -> list[str]:
    """The header row's column names (stripped), or [] when the file cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            row = next(csv.reader(f, delimiter="\t" if path.lower().endswith(".tsv") else ","), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return [h.strip() for h in row]


def _names(options: dict, key: str) -> list[str]:
    value = options.get(key)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def left_out(path: str, cols: list[str], labels: list[str], options: dict, predicting: bool = False) -> list[str]:
    """The columns that are neither labels nor features, per `columns` and `drop` (a file of new
    rows to predict need not have the dropped columns)."""
    keep, drop = _names(options, "columns"), _names(options, "drop")
    if predicting:
        drop = [c for c in drop if c in cols]
    for what, names in (("columns", keep), ("drop", drop)):
        missing = [c for c in names if c not in cols]
        if missing:
            raise DataError(f"{path}: error: {what}= names column {missing[0]!r}, which the file does not have "
                            f"(its columns: {', '.join(cols)})")
    both = [c for c in keep if c in labels or c in drop]
    if both:
        raise DataError(f"{path}: error: column {both[0]!r} is both a feature (columns=) and "
                        f"{'a label' if both[0] in labels else 'dropped (drop=)'}")
    if keep:
        return [c for c in cols if c not in keep and c not in labels]
    return [c for c in drop if c not in labels]


def read(path: str, options: dict, dtype_hint=None, labels_present: list[str] | None = None):
    """(features, labels, info) as `read_csv` returns them, with the options applied to the
    columns (labels, columns, drop) and, through `preprocess`, to the values of the features.
    `labels_present`: the label columns to take (prediction: those the file happens to have)."""
    from .csvfile import read_csv
    labels = _names(options, "label") if labels_present is None else labels_present
    cols = header(path)
    skip = left_out(path, cols, labels, options, predicting=labels_present is not None) if cols else []
    keep = _names(options, "columns")
    if not skip:   # nothing left out: read_csv as the label option says
        label_arg = options.get("label") if labels_present is None else \
            (None if not labels else labels[0] if len(labels) == 1 else labels)
        features, ys, info = read_csv(path, label=label_arg, dtype_hint=dtype_hint)
    else:          # the left-out columns are read as labels too, then discarded
        features, ys, info = read_csv(path, label=labels + skip, dtype_hint=dtype_hint)
        real = np.asarray(ys)[:, :len(labels)]
        if real.dtype.kind == "f" and real.size and np.all(real == np.round(real)):
            real = real.astype(np.int32)       # as read_csv gives integral labels
        single = len(labels) == 1 and (labels_present is not None or isinstance(options.get("label"), str))
        ys = None if not labels else (real[:, 0] if single else real)
        classes = (info.get("label_classes") or {}).get(labels[0]) if single else None
        info = {**info, "labels": list(labels), "classes": classes}
    if keep:   # the order columns= gives
        order = [info["features"].index(c) for c in keep]
        features = features[:, order]
        info = {**info, "features": list(keep)}
    return features, ys, info


def check_scale(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value == 0:
        raise DataError(f"scale must be a non-zero finite number, got {value!r}")
    return float(value)


def statistics(features: np.ndarray) -> dict:
    """Per-column mean and standard deviation (population, as Keras's Normalization), float64."""
    f = np.asarray(features, dtype=np.float64)
    return {"mean": f.mean(axis=0).tolist(), "std": f.std(axis=0).tolist()}


def preprocess(features: np.ndarray, options: dict, stats: dict | None, where: str) -> np.ndarray:
    """The features scaled (`scale`) and standardised (`standardize`, with `stats`)."""
    out = np.asarray(features)
    scale = check_scale(options.get("scale"))
    if scale is not None:
        out = (out.astype(np.float64) * scale).astype(np.float32)
    if options.get("standardize"):
        if stats is None:
            raise DataError(f"{where}: standardize=true needs the training data's mean and deviation")
        mean, std = np.asarray(stats["mean"], np.float64), np.asarray(stats["std"], np.float64)
        if mean.shape != out.shape[1:]:
            raise DataError(f"{where}: error: {out.shape[1] if out.ndim > 1 else 0} feature columns, but the "
                            f"training data had {mean.size} (standardize=true uses its statistics per column)")
        std = np.where(std > 0, std, 1.0)       # a constant column: shifted to 0, not divided by 0
        out = ((out.astype(np.float64) - mean) / std).astype(np.float32)
    return out


def one_hot(labels: np.ndarray, classes: int, where: str, target: str) -> np.ndarray:
    """Integer labels [rows] as float32 one-hot rows [rows, classes]."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise DataError(f"{where}: error: one_hot=true takes one label column of class ids, got {y.ndim - 1 + 1} "
                        f"columns")
    if y.dtype.kind == "f":
        if not np.all(y == np.round(y)):
            i = int(np.argwhere(y != np.round(y))[0][0])
            raise DataError(f"{where}: error: one_hot=true needs integer class ids; data row {i + 1} has "
                            f"{y[i]:g}")
        y = y.astype(np.int64)
    bad = np.argwhere((y < 0) | (y >= classes))
    if len(bad):
        i = int(bad[0][0])
        raise DataError(f"{where}: error: class id {int(y[i])} in data row {i + 1} is outside 0..{classes - 1} "
                        f"(target '{target}' has {classes} classes)")
    out = np.zeros((len(y), classes), np.float32)
    out[np.arange(len(y)), y] = 1.0
    return out


def training_statistics(lowered, features: np.ndarray | None = None) -> dict | None:
    """The mean and deviation standardize=true uses: kept in the train config once known (an .nnx
    file brings them), else computed from `features` (training data being read), else from the
    train block's data file (predicting or evaluating other data with a .nn program)."""
    import os
    cfg = lowered.train
    if cfg is None or not cfg.data_options.get("standardize"):
        return None
    if cfg.preprocessing.get("mean") is not None:
        return cfg.preprocessing
    if features is None:
        if cfg.data_path is None or not cfg.data_path.lower().endswith((".csv", ".tsv")):
            raise DataError(f"standardize=true: the training data's mean and deviation are not known "
                            f"(model {lowered.name}'s train block names no CSV file to compute them from)")
        path = cfg.data_path if os.path.isabs(cfg.data_path) else os.path.join(cfg.base_dir, cfg.data_path)
        dtype = next(iter(lowered.inputs.values())).dtype
        features, _, _ = read(path, cfg.data_options, dtype_hint=dtype if dtype != "f32" else None)
        features = preprocess(features, {"scale": cfg.data_options.get("scale")}, None, path)
    cfg.preprocessing = statistics(features)
    return cfg.preprocessing
