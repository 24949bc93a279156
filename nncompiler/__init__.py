"""nncompiler: a small tensor compiler for neural networks.

    import nncompiler as nnc
    m = nnc.compile("examples/iris.nn")       # a path or source text
    y = m.forward(x=X)
    hist = m.fit(x=X, y=Y, epochs=5, batch_size=16)
"""
from __future__ import annotations

import os
import re

from .errors import CompileError, DataError, NNCError
from .model import Model
from .train import keras_callbacks as callbacks, layers   # Keras's names: nnc.layers.Dense, nnc.callbacks.EarlyStopping
from .train.sequential import Sequential
Sequential.model_class = Model     # what compile() makes (train/ does not import model.py back)
from .version import __version__


def _mount_kernels() -> None:
    """Make `nncompiler.kernels` the top-level kernels/ folder in a source checkout too.

    An install maps that folder to `nncompiler.kernels` (pyproject's package-dir); run from
    the source tree with nothing installed there is no such package, so load kernels/ once
    by its path under that name. Its modules then import normally (`nncompiler.kernels.matmul`)."""
    import importlib.util
    import sys
    name = f"{__name__}.kernels"
    if name in sys.modules or importlib.util.find_spec(name) is not None:
        return
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels")
    spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"),
                                                  submodule_search_locations=[folder])
    if spec is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


_mount_kernels()


# One-line program text starts with a block keyword ("model m { ... }"); a file name
# never has that shape, even when it contains braces ("my{model}.nn").
_PROGRAM_START = re.compile(r"\s*(?:(?:model|graph)\s+\w|train\b)")


def _is_path(source: str) -> bool:
    """Whether `source` names a file rather than holding program text: program text
    has several lines or starts like a block; a path exists or looks like a file name."""
    # an empty or blank string, or one with a NUL byte, is (bad) program text, never a path
    if "\n" in source or "\x00" in source or source.strip() == "":
        return False
    if os.path.exists(source) or source.rstrip().endswith(".nn"):
        return True
    return not _PROGRAM_START.match(source)


def _read(source: str) -> tuple[str, str]:
    if _is_path(source):
        if not os.path.exists(source):
            raise NNCError(f"{source}: no such file")
        with open(source, encoding="utf-8", errors="replace") as f:
            return f.read(), source
    return source, "<string>"


def compile_all(source: str, backend: str = "numpy", filename: str | None = None,
                precision: str | None = None) -> list[Model]:
    """Every model and graph block of a program, compiled."""
    from .frontend.compile import compile_source
    text, file = _read(source)
    return [Model(m, backend=backend, precision=precision) for m in compile_source(text, filename or file)]


def compile(source: str, backend: str = "numpy", model: str | None = None,
            filename: str | None = None, seed: int | None = None, precision: str | None = None) -> Model:
    """Compile a .nn program (a path or source text); returns its first model or graph (or `model`).

    `seed` overrides the train block's seed, which initialises the parameters. `precision`
    (fp32, tf32 or bf16: see precision.py) overrides the train block's; the default is fp32.
    A path ending in .onnx is imported (see `from_onnx`) with its weights, frozen; one ending in .nnx
    is loaded (see `load`) with its weights and train settings."""
    if isinstance(source, str) and source.endswith(".onnx") and "\n" not in source:
        return from_onnx(source, backend=backend)
    if isinstance(source, str) and source.lower().endswith(".nnx") and "\n" not in source:
        return load(source, backend=backend)      # a saved model: its graphs, weights and settings
    from .frontend.compile import compile_source
    text, file = _read(source)
    lowered = compile_source(text, filename or file, seed=seed)
    if model is not None:
        chosen = [m for m in lowered if m.name == model]
        if not chosen:
            from .errors import did_you_mean
            raise NNCError(f"no block named '{model}'{did_you_mean(model, [m.name for m in lowered])}")
        return Model(chosen[0], backend=backend, precision=precision)
    return Model(lowered[0], backend=backend, precision=precision)


def from_onnx(path, trainable: bool = False, loss: str | None = None, backend: str = "numpy",
              optimizer: str = "adam") -> Model:
    """An ONNX model (path, bytes or ModelProto) as a Model: forward(**inputs by ONNX name), outputs in
    graph order, the model's weights as parameters (`trainable=True`, `fit` with `loss`) or frozen buffers."""
    from .onnx.model import lowered_from_onnx
    lowered, weights = lowered_from_onnx(path, trainable=trainable, loss=loss, optimizer=optimizer)
    m = Model(lowered, backend=backend)
    if weights:
        m.set_params(weights)     # the init graph started them at zeros
    return m


def load_weights(model: Model, path, allow_nonfinite: bool = False) -> None:
    """Set a model's parameters and buffers from a checkpoint written by `Model.save` or `nnc run --save`.

    The checkpoint must fit the model (the same parameter names and shapes); NaN/Inf weights
    are refused unless `allow_nonfinite`."""
    from .train.checkpoint import load_weights as _load
    _load(model, path, allow_nonfinite)


def load(path, backend: str = "numpy", allow_nonfinite: bool = False) -> Model:
    """A model saved as .nnx (`Model.save("m.nnx")`, `nnc export m.nn -o m.nnx`), without its .nn
    source: it predicts, evaluates, and fine-tunes when the file holds the training graph."""
    from .train.nnx import load_nnx
    return load_nnx(path, Model, backend=backend, allow_nonfinite=allow_nonfinite)


__all__ = ["compile", "load", "Sequential", "layers", "callbacks", "compile_all", "from_onnx", "load_weights", "Model", "CompileError", "DataError", "NNCError", "__version__"]
