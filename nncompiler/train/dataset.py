"""Find the arrays a model trains on: a `train` block's data line, or a path given on the command line.

A CSV with a header feeds a model with one input and one target: the `label`
column(s) go to the target, the rest to the input. An .npz feeds arrays by the
model's input and target names; inline arrays and per-name paths likewise.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import DataError, did_you_mean
from .data import check_against, check_labels, label_classes, read_array, read_npz
from .datafile import show, show_list


def _resolve(path: str, base_dir: str) -> str:
    return path if os.path.isabs(path) else os.path.join(base_dir, path)


def _against_model(path: str, arrays: dict, lowered, what=None) -> dict[str, np.ndarray]:
    """The arrays of one file checked against the model's declarations (dtype, shape, finite
    values, one row count); errors name the file and the array or column (`what(name)`)."""
    declared = {**lowered.inputs, **lowered.targets}
    out, bindings = {}, {}
    for name, arr in arrays.items():
        ty = declared[name]
        shape = tuple(ty.shape)
        if shape and isinstance(shape[0], str):   # rows: any count here, compared below
            bindings.pop(shape[0], None)
        try:
            out[name] = check_against(name, arr, ty.dtype, shape, bindings)
        except DataError as e:
            msg = str(e)
            if what is not None:       # "input 'x': ..." -> "the feature columns (a, b) for input 'x': ..."
                msg = f"{what(name)}: {msg.removeprefix(f'input {name!r}: ')}"
            raise DataError(f"{path}: error: {msg}{batch_hint(name, arr, ty, lowered)}") from None
    rows = {k: len(v) for k, v in out.items() if np.ndim(v)}
    if len(set(rows.values())) > 1:
        raise DataError(f"{path}: error: the arrays have different numbers of rows: "
                        + ", ".join(f"{k} has {v}" for k, v in rows.items()) + " (every array needs one row per example)")
    return out


def batch_hint(name: str, arr, ty, lowered) -> str:
    """Keras's `input_shape` is per sample; a .nn type includes the batch. When the data has
    exactly one more (leading) dimension than the declaration, say how to declare it."""
    shape = tuple(ty.shape)
    if np.ndim(arr) != len(shape) + 1 or (shape and isinstance(shape[0], str)):
        return ""
    if any(isinstance(d, int) and d != n for d, n in zip(shape, np.shape(arr)[1:])):
        return ""
    role = "input" if name in lowered.inputs else "target"
    dims = ", ".join(["B", *(str(d) for d in shape)])
    return f"; the data has a batch dimension first: declare it as `{role} {name}: {ty.dtype}[{dims}]`"


def load_file(path: str, lowered, label=None, options: dict | None = None,
              training: bool = True) -> dict[str, np.ndarray]:
    """The arrays of one file for the model. `options`: the data line's (train/csvopts.py), of
    which `label` alone may be given as `label`; `training`: the file is the training data (its
    statistics standardise it), not data evaluated with the training data's."""
    options = dict(options or {})
    if label is not None:
        options["label"] = label
    names: dict[str, list[str]] = {}      # target -> the CSV's class names, when its labels are names
    arrays = _load_file(path, lowered, options, training, names)
    csv = not path.endswith((".npz", ".npy"))

    def where(name, i):
        v = arrays[name][i]
        if not csv:
            return f"{path}: error: array '{name}': label {v:g} at index {i}"
        classes = names.get(name)
        what = f"class {show(classes[int(v)])} (label {v:g}; the file has {len(classes)} classes)" \
            if classes and 0 <= v < len(classes) else f"label {v:g}"
        return f"{path}: error: {what} in data row {i[0] + 1} (target '{name}')"
    check_labels(arrays, label_classes(lowered.forward), where)
    return arrays


def _load_file(path: str, lowered, options: dict, training: bool, names=None) -> dict[str, np.ndarray]:
    label = options.get("label")
    inputs, targets = list(lowered.inputs), list(lowered.targets)
    if path.endswith(".npz"):
        arrays = read_npz(path)
        wanted = inputs + targets
        for name in arrays:
            if name not in wanted:
                raise DataError(f"{path}: array '{name}' is not an input or target of model "
                                f"{lowered.name}{did_you_mean(name, wanted)}")
        declared = {**lowered.inputs, **lowered.targets}
        for name in wanted:
            if name not in arrays:
                kind = "input" if name in lowered.inputs else "target"
                raise DataError(f"{path}: error: no array '{name}' (model {lowered.name}'s {kind} "
                                f"{name}: {declared[name]}); the file holds {', '.join(arrays) or 'no arrays'}")
        return _against_model(path, arrays, lowered)
    if len(inputs) != 1 or len(targets) > 1:
        raise DataError(f"{path}: a single file can feed a model with one input and one target; "
                        f"model {lowered.name} has inputs {inputs} and targets {targets} "
                        "(use an .npz with one array per name)")
    if path.endswith(".npy"):
        if targets:
            raise DataError(f"{path}: an .npy file holds one array; the model also needs '{targets[0]}'")
        return _against_model(path, {inputs[0]: read_array(path)}, lowered)
    if targets and label is None:
        raise DataError(f"{path}: say which column is the target, e.g. data \"{os.path.basename(path)}\" "
                        f"(label=\"...\")")
    from . import csvopts
    feature_dtype = lowered.inputs[inputs[0]].dtype
    features, labels, info = csvopts.read(path, options, dtype_hint=feature_dtype if feature_dtype != "f32" else None)
    if options.get("scale") is not None or options.get("standardize"):
        features = csvopts.preprocess(features, {"scale": options.get("scale")}, None, path)
        stats = csvopts.training_statistics(lowered, features if training else None)
        features = csvopts.preprocess(features, {"standardize": options.get("standardize")}, stats, path)
    if options.get("one_hot") and targets and labels is not None:
        y_type = lowered.targets[targets[0]]
        classes = y_type.shape[-1] if y_type.shape and isinstance(y_type.shape[-1], int) else None
        if classes is None or len(y_type.shape) != 2:
            raise DataError(f"{path}: error: one_hot=true makes rows of class indicators: declare target "
                            f"'{targets[0]}' as f32[B, CLASSES] (it is {y_type})")
        labels = csvopts.one_hot(labels, classes, path, targets[0])
    x_type = lowered.inputs[inputs[0]]
    shape = tuple(x_type.shape)
    if len(shape) == 2 and isinstance(shape[1], int) and features.shape[1] != shape[1]:
        cols = show_list(info["features"]) or "none"
        beside = f" besides the label column{'s' if len(info['labels']) > 1 else ''} " \
                 f"{', '.join(repr(c) for c in info['labels'])}" if info["labels"] else ""
        raise DataError(f"{path}: error: {features.shape[1]} feature column{'s' if features.shape[1] != 1 else ''} "
                        f"({cols}){beside}, but input '{inputs[0]}' is declared {x_type}: "
                        f"expected {shape[1]} feature column{'s' if shape[1] != 1 else ''}")
    out = {inputs[0]: features}
    if targets:
        out[targets[0]] = labels
        if info["classes"] and names is not None:
            names[targets[0]] = info["classes"]
        y_type = lowered.targets[targets[0]]
        if y_type.dtype in ("i32", "i64", "bool") and labels is not None and labels.dtype.kind == "f":
            bad = np.argwhere(labels != np.round(labels)) if y_type.dtype != "bool" else \
                np.argwhere((labels != 0) & (labels != 1))
            if len(bad):
                row, *col = (int(i) for i in bad[0])
                name = info["labels"][col[0] if col else 0]
                raise DataError(f"{path}: error: label column '{name}' has the value {labels[tuple(bad[0])]:g} "
                                f"in data row {row + 1}, but target '{targets[0]}' is declared {y_type} "
                                f"({'0 or 1' if y_type.dtype == 'bool' else 'integer class ids'})")

    def what(name):
        if name == inputs[0]:
            return f"the feature columns ({show_list(info['features'])}) for input '{name}'"
        return f"the label column{'s' if len(info['labels']) > 1 else ''} " \
               f"{', '.join(repr(c) for c in info['labels'])} for target '{name}'"
    return _against_model(path, out, lowered, what)


def training_data(lowered, cfg, override_path: str | None = None, training: bool = True) -> dict[str, np.ndarray]:
    """The arrays named by the train block (or by `override_path`, relative to the working directory).
    `training=False`: data to evaluate, standardised with the training data's statistics."""
    if override_path:
        return load_file(override_path, lowered, options=cfg.data_options if cfg else None, training=training)
    if cfg is None or (cfg.data_path is None and not cfg.arrays):
        raise DataError(f"model {lowered.name} has no training data: add a 'data' line to its train "
                        "block or pass --data PATH")
    if cfg.data_path is not None:
        return load_file(_resolve(cfg.data_path, cfg.base_dir), lowered, options=cfg.data_options)
    out = {}
    for name, value in cfg.arrays.items():
        if name not in lowered.inputs and name not in lowered.targets:
            raise DataError(f"data names '{name}', which is not an input or target of model "
                            f"{lowered.name}{did_you_mean(name, list(lowered.inputs) + list(lowered.targets))}")
        out[name] = read_array(_resolve(value, cfg.base_dir)) if isinstance(value, str) else value
    return out
