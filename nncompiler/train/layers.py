"""Keras-style layer objects for `nnc.Sequential`: each stands for one `.nn` statement.

    nnc.Sequential([nnc.layers.Dense(16, activation="relu"), nnc.layers.Dense(3, activation="softmax")],
                   input_shape=[4])

A layer is a description, not code: `statement(prev)` is the `.nn` expression it becomes
(`dense(h, 3, activation=softmax)`), so a Sequential model is an ordinary `.nn` program
(`Sequential.to_nn()` prints it) and compiles to the same IR as that file. Every value a
layer puts in the program text is checked here (names, numbers, library names), so what
reaches the compiler is always a well-formed statement.
"""
from __future__ import annotations

import math
import re

from ..errors import NNCError

_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
# a library spec as the .nn language writes it: a name, or a call with literal keyword values
_SPEC = re.compile(r"[A-Za-z_][A-Za-z_0-9]*(\(\s*([A-Za-z_][A-Za-z_0-9]*\s*=\s*)?[-+0-9.eE]+"
                   r"(\s*,\s*([A-Za-z_][A-Za-z_0-9]*\s*=\s*)?[-+0-9.eE]+)*\s*\))?")


def name_text(value, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise NNCError(f"{what} must be a name (letters, digits, _), got {value!r}")
    return value


def spec_text(value, what: str) -> str:
    """A library function as the language writes it: `relu`, `normal(stddev=0.1)`, `l2(0.01)`."""
    if not isinstance(value, str) or not _SPEC.fullmatch(value.strip()):
        raise NNCError(f"{what} must name a library function, e.g. \"relu\" or \"l2(0.01)\", got {value!r}")
    return value.strip()


def number_text(value, what: str, lo: float | None = None, hi: float | None = None) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f" in [{lo}, {hi}]" if hi is not None else (f" >= {lo}" if lo is not None else "")
        raise NNCError(f"{what} must be a number{bounds}, got {value!r}")
    return repr(value)


class Layer:
    kind = "layer"            # the default name's stem, as Keras numbers them: dense, dense_1, ...

    def __init__(self, name: str | None = None):
        self.name = None if name is None else name_text(name, f"{type(self).__name__} name")

    def statement(self, prev: str) -> str:  # pragma: no cover - every layer overrides it
        raise NotImplementedError

    def output_shape(self, shape: tuple) -> tuple:
        """The per-sample shape out, from the one in (most layers keep it)."""
        return shape


class Input:
    """Keras's `Input(shape=(4,))` as a Sequential model's first item: the per-sample shape."""

    def __init__(self, shape, dtype: str = "f32", name: str = "x"):
        self.shape = _shape(shape, "Input shape")
        if dtype not in ("f32", "f64", "i32", "i64"):
            raise NNCError(f"Input dtype must be f32, f64, i32 or i64, got {dtype!r}")
        self.dtype, self.name = dtype, name_text(name, "Input name")


def _shape(shape, what: str) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (list, tuple)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise NNCError(f"{what} must be a list of positive sizes per sample (no batch size), e.g. [4], got {shape!r}")
    return tuple(shape)


class Dense(Layer):
    """`dense(prev, units, activation=..., ...)`: Keras's Dense."""

    kind = "dense"

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 kernel_initializer: str | None = None, bias_initializer: str | None = None,
                 kernel_regularizer: str | None = None, bias_regularizer: str | None = None,
                 activity_regularizer: str | None = None, name: str | None = None):
        super().__init__(name)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise NNCError(f"Dense units must be a positive integer, got {units!r}")
        if not isinstance(use_bias, bool):
            raise NNCError(f"Dense use_bias must be True or False, got {use_bias!r}")
        self.units = units
        self.options = []
        if activation is not None and activation != "linear":
            self.options.append(("activation", spec_text(activation, "Dense activation")))
        if not use_bias:
            self.options.append(("use_bias", "false"))
        for key, value in (("kernel_initializer", kernel_initializer), ("bias_initializer", bias_initializer),
                           ("kernel_regularizer", kernel_regularizer), ("bias_regularizer", bias_regularizer),
                           ("activity_regularizer", activity_regularizer)):
            if value is not None:
                self.options.append((key, spec_text(value, f"Dense {key}")))

    def output_shape(self, shape: tuple) -> tuple:
        return shape[:-1] + (self.units,)

    def statement(self, prev: str) -> str:
        return f"dense({prev}, {self.units}" + "".join(f", {k}={v}" for k, v in self.options) + ")"


class Dropout(Layer):
    kind = "dropout"

    def __init__(self, rate: float, name: str | None = None):
        super().__init__(name)
        self.rate = number_text(rate, "Dropout rate", 0, 1)
        if rate >= 1:
            raise NNCError(f"Dropout rate must be below 1, got {rate!r}")

    def statement(self, prev: str) -> str:
        return f"dropout({prev}, {self.rate})"


class Flatten(Layer):
    kind = "flatten"

    def output_shape(self, shape: tuple) -> tuple:
        return (math.prod(shape),)

    def statement(self, prev: str) -> str:
        return f"flatten({prev})"


class BatchNormalization(Layer):
    kind = "batch_normalization"

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, name: str | None = None):
        super().__init__(name)
        self.momentum = number_text(momentum, "BatchNormalization momentum", 0, 1)
        self.epsilon = number_text(epsilon, "BatchNormalization epsilon", 0)

    def statement(self, prev: str) -> str:
        return f"batchnorm({prev}, momentum={self.momentum}, epsilon={self.epsilon})"


class Activation(Layer):
    """`relu(prev)`: an activation on its own line."""

    kind = "activation"

    def __init__(self, activation: str, name: str | None = None):
        super().__init__(name)
        self.activation = name_text(activation, "Activation")

    def statement(self, prev: str) -> str:
        return f"{self.activation}({prev})"


__all__ = ["Layer", "Input", "Dense", "Dropout", "Flatten", "BatchNormalization", "Activation"]
