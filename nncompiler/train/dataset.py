"""Find the arrays a model trains on: a `train` block's data line, or a path given on the command line.

A CSV with a header feeds a model with one input and one target: the `label`
column(s) go to the target, the rest to the input. An .npz feeds arrays by the
model's input and target names; inline arrays and per-name paths likewise.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import DataError, did_you_mean
from .data import read_array, read_csv, read_npz


def _resolve(path: str, base_dir: str) -> str:
    return path if os.path.isabs(path) else os.path.join(base_dir, path)


def load_file(path: str, lowered, label=None) -> dict[str, np.ndarray]:
    inputs, targets = list(lowered.inputs), list(lowered.targets)
    if path.endswith(".npz"):
        arrays = read_npz(path)
        wanted = inputs + targets
        for name in arrays:
            if name not in wanted:
                raise DataError(f"{path}: array '{name}' is not an input or target of model "
                                f"{lowered.name}{did_you_mean(name, wanted)}")
        return arrays
    if len(inputs) != 1 or len(targets) > 1:
        raise DataError(f"{path}: a single file can feed a model with one input and one target; "
                        f"model {lowered.name} has inputs {inputs} and targets {targets} "
                        "(use an .npz with one array per name)")
    if path.endswith(".npy"):
        if targets:
            raise DataError(f"{path}: an .npy file holds one array; the model also needs '{targets[0]}'")
        return {inputs[0]: read_array(path)}
    if targets and label is None:
        raise DataError(f"{path}: say which column is the target, e.g. data \"{os.path.basename(path)}\" "
                        f"(label=\"...\")")
    feature_dtype = lowered.inputs[inputs[0]].dtype
    features, labels, _ = read_csv(path, label=label, dtype_hint=feature_dtype if feature_dtype != "f32" else None)
    out = {inputs[0]: features}
    if targets:
        out[targets[0]] = labels
    return out


def training_data(lowered, cfg, override_path: str | None = None) -> dict[str, np.ndarray]:
    """The arrays named by the train block (or by `override_path`, relative to the working directory)."""
    if override_path:
        return load_file(override_path, lowered, (cfg.data_options.get("label") if cfg else None))
    if cfg is None or (cfg.data_path is None and not cfg.arrays):
        raise DataError(f"model {lowered.name} has no training data: add a 'data' line to its train "
                        "block or pass --data PATH")
    if cfg.data_path is not None:
        return load_file(_resolve(cfg.data_path, cfg.base_dir), lowered, cfg.data_options.get("label"))
    out = {}
    for name, value in cfg.arrays.items():
        if name not in lowered.inputs and name not in lowered.targets:
            raise DataError(f"data names '{name}', which is not an input or target of model "
                            f"{lowered.name}{did_you_mean(name, list(lowered.inputs) + list(lowered.targets))}")
        out[name] = read_array(_resolve(value, cfg.base_dir)) if isinstance(value, str) else value
    return out
