"""Keras's calling habits for `Model.fit`, `evaluate` and `predict`.

    history = m.fit(X, Y, epochs=5, validation_data=(Xv, Yv), verbose=1)
    history.history["val_loss"]

What this module adds to the keyword form (`m.fit(x=X, y=Y)`, arrays by input and target
name, which stays): positional `x, y` for a model with one input and one target (or a dict
by name for several), `validation_data` as a tuple or a dict, `verbose`, `initial_epoch`,
and a `History` that is both Keras's object (`.history`, `.epoch`) and the dict fit has
always returned. Wrong types are explained in one line, naming the argument.
"""
from __future__ import annotations

import sys

import numpy as np

from ..errors import NNCError


class History(dict):
    """fit's result: `history["loss"]` (the dict it always was) and Keras's `history.history`,
    `history.epoch` (0-based epoch indices, as Keras counts them) and `history.params`."""

    def __init__(self, values: dict, first_epoch: int = 0, params: dict | None = None):
        super().__init__(values)
        n = max((len(v) for v in values.values()), default=0)
        self.epoch = list(range(first_epoch, first_epoch + n))
        self.params = dict(params or {})

    @property
    def history(self) -> dict:
        return self


def _is_array(v) -> bool:
    return isinstance(v, (np.ndarray, list, tuple, np.generic, int, float)) or hasattr(v, "__array__")


def _bind(model, value, declared: dict, what: str, arg: str, into: dict) -> None:
    """Put `value` (an array, or a dict of arrays by name) under the declared names of `what`."""
    name = model.lowered.name
    if value is None:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if k in into:
                raise NNCError(f"fit: '{k}' given twice (in {arg} and as a keyword)")
            into[k] = v
        return
    if len(declared) != 1:
        names = ", ".join(declared) or "none"
        raise NNCError(f"model {name} has {len(declared)} {what}s ({names}): pass {arg} as a dict by name, "
                       f"or each as a keyword ({', '.join(f'{n}=...' for n in declared) or '-'})")
    key = next(iter(declared))
    if key in into and into[key] is not value:
        raise NNCError(f"{arg} and the keyword {key}= both give the {what} '{key}'; give one")
    into[key] = value


# Keras fit/evaluate/predict arguments with no counterpart here: named in the error, instead of
# "model M has no input or target 'validation_freq'" (they arrive among the arrays by name)
UNSUPPORTED = ("steps_per_epoch", "validation_steps", "validation_batch_size", "validation_freq",
               "max_queue_size", "workers", "use_multiprocessing", "return_dict", "steps")


def collect(model, x, y, data: dict, where: str = "fit") -> dict:
    """Keyword arrays plus positional x (the inputs) and y (the targets) as one dict by name.
    `x`/`y` as keywords mean the single input and target when the model names them otherwise."""
    low = model.lowered
    for key in data:
        if key in UNSUPPORTED and key not in low.inputs and key not in low.targets:
            raise NNCError(f"{where}: Keras's argument '{key}' is not supported (every epoch goes over all "
                           "the rows, and validation runs after each epoch)")
    out = dict(data)
    # a model with an input or target literally named x (or y) takes x= (y=) as that one
    named = {**low.inputs, **low.targets}
    for arg, value, what in (("x", x, "input"), ("y", y, "target")):
        if value is not None and not isinstance(value, dict) and not _is_array(value):
            hint = (" (a file name? read it first: nncompiler.train.data.read_csv(path, label=...))"
                    if isinstance(value, str) else "")
            raise NNCError(f"{arg} must be an array (or a dict of arrays by {what} name), "
                           f"got {type(value).__name__}{hint}")
    if x is not None and "x" in named and not isinstance(x, dict):
        out["x"], x = x, None
    if y is not None and "y" in named and not isinstance(y, dict):
        out["y"], y = y, None
    _bind(model, x, low.inputs, "input", "x", out)
    _bind(model, y, low.targets, "target", "y", out)
    return by_argument_name(low, out)


def by_argument_name(low, data: dict) -> dict:
    """`data` with each name a user may give (an ONNX input's own name) as its argument's name."""
    if not low.aliases:
        return data
    out = {}
    for k, v in data.items():
        name = low.aliases.get(k, k)
        if name in out:
            raise NNCError(f"'{k}' and '{name}' name the same input; give one")
        out[name] = v
    return out


def validation(model, value) -> dict | None:
    """`validation_data` as Keras takes it: (x, y), (x, y, sample_weight) or a dict by name."""
    if value is None:
        return None
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (tuple, list)) and len(value) in (2, 3):
        if len(value) == 3 and value[2] is not None:
            raise NNCError("validation_data: sample weights (a third element) are not supported; "
                           "give (x, y)")
        return collect(model, value[0], value[1], {}, "validation_data")
    raise NNCError(f"validation_data must be (x, y) or a dict of arrays by input and target name, "
                   f"got {type(value).__name__}" + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""))


def reporter_for(verbose, stream=None):
    """Keras's verbose: 0 silent; 1 a progress bar (on a terminal or in a notebook; plain epoch
    lines in a pipe, where a redrawn bar would be noise); 2 one line per epoch; "auto" (the
    default) a bar on a terminal or in a notebook and silence elsewhere, so scripts and pipes
    see only what they print."""
    from .progress import EpochPrinter, ProgressBar
    stream = sys.stdout if stream is None else stream
    if verbose is True:
        verbose = 1
    if verbose is False or verbose is None:
        verbose = 0
    if verbose not in ("auto", 0, 1, 2):
        raise NNCError(f"verbose must be 0, 1, 2 or \"auto\", got {verbose!r}")
    isatty = getattr(stream, "isatty", None)
    # a Jupyter notebook's output is no terminal, but it redraws a \r line as one does
    tty = bool(isatty and isatty()) or (stream is sys.stdout and "ipykernel" in sys.modules)
    if verbose == 0 or (verbose == "auto" and not tty):
        return None
    if verbose == 2:
        return EpochPrinter(stream)
    return ProgressBar(stream) if tty else EpochPrinter(stream)


def check_callbacks(callbacks) -> list:
    from .callbacks import Callback
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise NNCError(f"callbacks must be a list of callbacks, got {type(callbacks).__name__}")
    hooks = ("on_epoch_end", "on_epoch_begin", "on_batch_end", "on_train_begin", "on_train_end")
    for i, c in enumerate(callbacks):
        if not isinstance(c, Callback) and not any(callable(getattr(c, h, None)) for h in hooks):
            raise NNCError(f"callbacks[{i}] is a {type(c).__name__}, not a callback (use nncompiler.callbacks: "
                           "EarlyStopping, ReduceLROnPlateau, LearningRateScheduler, ModelCheckpoint, "
                           "or a subclass of Callback)")
    return list(callbacks)


def check_count(value, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise NNCError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def row_weights(model, data: dict, class_weight, sample_weight):
    """One weight per training row from Keras's `sample_weight` (an array [rows]) and
    `class_weight` ({class id: weight}, looked up by each row's integer label or one-hot
    row's class; classes it leaves out weigh 1), multiplied when both are given; None if neither."""
    if class_weight is None and sample_weight is None:
        return None
    targets = list(model.lowered.targets)
    rows = len(np.asarray(data[targets[0]])) if targets else 0
    weights = np.ones(rows, np.float64)
    if sample_weight is not None:
        sw = np.asarray(sample_weight)
        if sw.dtype.kind not in "iuf" or sw.shape != (rows,):
            raise NNCError(f"sample_weight must be one number per training row ({rows}), got "
                           f"{sw.dtype.name} data of shape {list(sw.shape)}")
        weights *= sw
    if class_weight is not None:
        if not isinstance(class_weight, dict) or not all(
                isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0 for k in class_weight):
            raise NNCError("class_weight must be a dict {class id: weight} with integer class ids >= 0")
        if len(targets) != 1:
            raise NNCError(f"class_weight needs a model with one target; model {model.lowered.name} has "
                           f"{len(targets)}")
        y = np.asarray(data[targets[0]])
        if y.ndim == 2 and y.shape[1] > 1:
            y = np.argmax(y, axis=1)                 # one-hot rows
        elif y.ndim == 2:
            y = y[:, 0]
        if y.ndim != 1 or (y.dtype.kind == "f" and not np.all(y == np.round(y))):
            raise NNCError("class_weight needs integer class labels or one-hot rows as the target")
        table = {int(k): float(v) for k, v in class_weight.items()}
        weights *= np.array([table.get(int(c), 1.0) for c in y], np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise NNCError("sample and class weights must be finite numbers >= 0")
    return weights.astype(np.float32)
