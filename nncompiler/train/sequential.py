"""`nnc.Sequential`: Keras's Sequential model, built as the `.nn` program it stands for.

    m = nnc.Sequential([nnc.layers.Dense(16, activation="relu", name="h"),
                        nnc.layers.Dense(3, activation="softmax", name="out")], input_shape=[4], name="Iris")
    m.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    m.fit(X, Y, epochs=5)
    print(m.to_nn())          # the .nn file: compiling it gives the same IR

The layers become one `model` block (input `x: f32[B, ...]`, target `y`, one statement per
layer) and `compile` adds the loss, the optimizer and a `train` block with the metrics and
the seed; the program then goes through the ordinary front end, so everything a `.nn` file
gets (checks with positions, the passes, every backend, `save("m.nnx")`) a Sequential model
gets too. After `compile` the model behaves as the `Model` it compiled to.
"""
from __future__ import annotations

from ..errors import NNCError, did_you_mean
from .layers import Input, Layer, name_text

# Keras's long names for the losses the library names short
_LOSS_ALIASES = {"mean_squared_error": "mse", "mean_absolute_error": "mae", "kld": "kl_divergence",
                 "kullback_leibler_divergence": "kl_divergence", "msle": "mean_squared_logarithmic_error"}


class Sequential:
    # nncompiler.Model, set by the package (nncompiler.Sequential): train/ sits beside model.py,
    # which imports train/, so this module does not import it back
    model_class = None
    def __init__(self, layers=None, input_shape=None, name: str = "Sequential", input_dtype: str = "f32"):
        self.name = name_text(name, "Sequential name")
        self._layers: list[Layer] = []
        self._input: Input | None = Input(input_shape, input_dtype) if input_shape is not None else None
        self._compiled = None
        self._program = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer) -> None:
        if isinstance(layer, Input):
            if self._input is not None or self._layers:
                raise NNCError("Input goes first, once (or give input_shape=)")
            self._input = layer
            return
        if not isinstance(layer, Layer):
            raise NNCError(f"Sequential takes nnc.layers objects (Dense, Dropout, ...), got {type(layer).__name__}")
        self._layers.append(layer)
        self._compiled = None

    @property
    def layers(self) -> list:
        return list(self._layers)

    def _names(self) -> list[str]:
        """Each layer's name: its own, or Keras's numbering per kind (dense, dense_1, ...)."""
        taken = {layer.name for layer in self._layers if layer.name}
        if self._input is not None:
            taken.add(self._input.name)
        counts: dict[str, int] = {}
        names = []
        for layer in self._layers:
            if layer.name:
                names.append(layer.name)
                continue
            while True:
                n = counts.get(layer.kind, 0)
                counts[layer.kind] = n + 1
                candidate = layer.kind if n == 0 else f"{layer.kind}_{n}"
                if candidate not in taken:
                    break
            taken.add(candidate)
            names.append(candidate)
        if len(set(names)) != len(names):
            raise NNCError(f"two layers are named {sorted({n for n in names if names.count(n) > 1})[0]!r}")
        return names

    def _model_block(self, loss: str | None, optimizer: str | None) -> str:
        if self._input is None:
            raise NNCError("give the input's shape per sample: Sequential([...], input_shape=[4]) "
                           "or nnc.layers.Input(shape=[4]) first")
        if not self._layers:
            raise NNCError("a Sequential model needs at least one layer")
        x = self._input
        names = self._names()
        width = max(len(n) for n in names)
        lines = [f"model {self.name} {{", f"    input  {x.name}: {x.dtype}[{', '.join(['B', *map(str, x.shape)])}]"]
        if loss is not None:
            lines.append(f"    target y: {self._target_type(loss)}")
        prev = x.name
        for name, layer in zip(names, self._layers):
            lines.append(f"    {name.ljust(width)} = {layer.statement(prev)}")
            prev = name
        lines.append(f"    output {prev}")
        if loss is not None:
            lines.append(f"    loss {loss}({prev}, y)")
        if optimizer is not None:
            lines.append(f"    optimizer {optimizer}")
        lines.append("}")
        return "\n".join(lines)

    def _target_type(self, loss: str) -> str:
        """The target's type: class indices for the sparse crossentropy, else the output's shape."""
        shape = self._input.shape
        for layer in self._layers:
            shape = layer.output_shape(shape)
        if loss == "sparse_categorical_crossentropy":    # one integer label per row
            return f"i32[{', '.join(['B', *map(str, shape[:-1])])}]"
        return f"f32[{', '.join(['B', *map(str, shape)])}]"

    def compile(self, loss, optimizer="rmsprop", metrics=None, seed: int = 0, backend: str = "numpy") -> None:
        """Keras's compile: a loss and an optimizer by name (`"adam"`, or with settings as the
        language writes them: `"adam(learning_rate=0.01)"`), metrics by name; `seed` initialises
        the parameters (a train block's `seed`)."""
        from ..library.losses import LOSSES
        from ..library.metrics import METRICS
        from ..library.optimizers import OPTIMIZERS
        from .layers import spec_text
        if not isinstance(loss, str):
            raise NNCError(f"loss must be a loss's name, e.g. \"mse\", got {type(loss).__name__}")
        loss = _LOSS_ALIASES.get(loss, loss)
        if loss not in LOSSES:
            raise NNCError(f"unknown loss '{loss}'{did_you_mean(loss, list(LOSSES))}")
        optimizer = spec_text(optimizer, "optimizer")
        opt_name = optimizer.split("(")[0]
        if opt_name not in OPTIMIZERS:
            raise NNCError(f"unknown optimizer '{opt_name}'{did_you_mean(opt_name, list(OPTIMIZERS))}")
        metrics = list(metrics or [])
        for metric in metrics:
            if not isinstance(metric, str) or metric not in METRICS:
                raise NNCError(f"unknown metric {metric!r}{did_you_mean(str(metric), list(METRICS))}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise NNCError(f"seed must be a non-negative integer, got {seed!r}")
        train = [f"train {self.name} {{"]
        if metrics:
            train.append(f"    metrics {', '.join(metrics)}")
        train += [f"    seed {seed}", "}"]
        program = self._model_block(loss, optimizer) + "\n" + "\n".join(train) + "\n"
        from ..frontend.compile import compile_source
        self._compiled = self.model_class(compile_source(program, f"{self.name}.nn")[0], backend=backend)
        self._program = program

    def to_nn(self) -> str:
        """The `.nn` program this model is (after compile: with its loss, optimizer and train block)."""
        if self._program is not None and self._compiled is not None:
            return self._program
        return self._model_block(None, None) + "\n"

    @property
    def model(self):
        """The compiled `nnc.Model` (after `compile`)."""
        if self._compiled is None:
            raise NNCError(f"Sequential model {self.name} is not compiled yet: call "
                           "compile(loss=..., optimizer=...) first")
        return self._compiled

    def __getattr__(self, attr):
        # fit, evaluate, predict, save, summary, params, ... are the compiled Model's
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self.model, attr)

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)


__all__ = ["Sequential"]
