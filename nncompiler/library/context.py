"""What library functions (layers, activations, losses, optimizers) build with.

Every library function is a small Python function that emits IR primitives
through `ctx.b` (a `Builder`). Its signature is its contract with the
language: the front end reads the parameter annotations to check and convert
the arguments a `.nn` call passes (arity, keyword names, kinds), so adding a
layer means writing one function and one registry entry.

Annotation kinds understood by the front end:
  Tensor       a tensor expression, passed as a `Value`
  Indices      an integer tensor expression (literals become i32), passed as a `Value`
  int, float, bool, str        a literal (str also accepts a bare name: padding=same)
  Shape        a list of ints, e.g. [2, 2]
  Axes         an int or a list of ints, or None for all axes
  Padding      an int, or a list with one entry per axis: an int (both sides) or a [lo, hi] pair
  Array        a literal (number, bool or nested list), passed as a numpy array; a tensor
               expression is passed as a `Value`
  DType        a dtype name: f32, f64, i32, i64, bool
  Activation   an activation name (activation=relu), passed as its name
  Initializer  an initialiser name or call (glorot_uniform, normal(stddev=0.1))
  Regularizer  a regulariser call (l2(0.01)) or name (l2), or None
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import Loc
from ..ir.graph import Builder
from ..ir.shapes import TensorType
from .regularizers import apply_regularizer
from .spec import Spec


@dataclass(frozen=True)
class Value:
    """A tensor during lowering: its node id, plus how it was produced.

    `activation`/`logits` remember that this value is `activation(logits)`, so a
    crossentropy can be computed from the logits (log-softmax, log-sigmoid),
    as Keras does with `from_logits`, instead of from clipped probabilities.
    """

    id: int
    activation: str | None = None
    logits: int | None = None


class Tensor:
    """Annotation: a tensor argument."""


class Indices:
    """Annotation: an integer tensor of indices; a literal (`take(x, [2, 0])`) becomes i32."""


class Shape:
    """Annotation: a list of ints."""


class Axes:
    """Annotation: an axis or a list of axes (negative counts from the end), or None for all."""


class Padding:
    """Annotation: padding amounts, `1`, `[1, 2]` or `[[0, 1], [2, 2]]` (one [lo, hi] pair per axis)."""


class Array:
    """Annotation: a literal as a numpy array (not yet a tensor), or a tensor expression as a Value."""


class DType:
    """Annotation: a dtype name (f32, i32, ...)."""


class Activation:
    """Annotation: an activation function name."""


class Initializer:
    """Annotation: an initialiser spec."""


class Regularizer:
    """Annotation: a regulariser spec."""


@dataclass
class ParamDecl:
    """A trainable parameter a layer (or a `param` statement) declared."""

    name: str
    type: TensorType
    init: Spec | float | tuple     # an initialiser spec, or a literal value
    loc: Loc | None
    seed: int
    regularizers: list[Spec] = field(default_factory=list)


@dataclass
class BlockState:
    """What every call in one model block shares besides parameters."""

    buffers: dict[str, ParamDecl] = field(default_factory=dict)
    updates: dict[str, int] = field(default_factory=dict)   # buffer name -> its value after the step
    rng_key: int | None = None
    rng_calls: int = 0


class LayerContext:
    """Handed to every library function: the builder, the layer's name, and registries for params.

    `ctx.param("kernel", shape, init)` declares `<layer name>.kernel` as a graph
    argument with role `param` and returns its node id.
    """

    def __init__(self, b: Builder, prefix: str, params: dict[str, ParamDecl], loc: Loc | None,
                 seed_base: int = 0, training: bool = True, state: "BlockState | None" = None):
        self.b = b
        self.prefix = prefix
        self.params = params
        self.loc = loc
        self.seed_base = seed_base
        self.training = training
        self.state = state if state is not None else BlockState()
        self.penalties: list[int] = []   # scalar node ids added to the loss (regularisers)
        self.param_ids: dict[str, int] = {}

    def _name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}" if self.prefix else suffix

    def buffer(self, suffix: str, shape, init, dtype: str = "f32") -> int:
        """A non-trainable state tensor (batchnorm's moving mean): role `buffer`, updated by `update`."""
        name = self._name(suffix)
        ty = TensorType(dtype, tuple(shape))
        self.state.buffers[name] = ParamDecl(name, ty, init, self.loc, _stable_seed(self.seed_base, name))
        return self.b.argument(name, "buffer", ty, loc=self.loc)

    def update(self, buffer_id: int, new_value: int) -> None:
        """Record a buffer's value after a training step (ignored at inference)."""
        if self.training:
            node = self.b.nodes[[n.id for n in self.b.nodes].index(buffer_id)]
            self.state.updates[node.attr["name"]] = new_value

    def random_uniform(self, shape, dtype: str = "f32") -> int:
        """Uniform [0, 1) numbers that differ at every training step (dropout masks).

        They are a function of the step's key (argument `rng.key`, advanced by
        the runtime) and a seed fixed per call site, so a run is reproducible."""
        if self.state.rng_key is None:
            self.state.rng_key = self.b.argument("rng.key", "rng", TensorType("i32", ()), loc=self.loc)
        self.state.rng_calls += 1
        seed = _stable_seed(self.seed_base, f"{self._name('rng')}#{self.state.rng_calls}")
        return self.b.rng_uniform(self.state.rng_key, seed=seed, dtype=dtype, shape=tuple(shape))

    def param(self, suffix: str, shape, init, regularizer: Spec | None = None, dtype: str = "f32") -> int:
        name = self._name(suffix)
        if name in self.params:
            raise ValueError(f"parameter '{name}' is declared twice")
        ty = TensorType(dtype, tuple(shape))
        seed = _stable_seed(self.seed_base, name)
        self.params[name] = ParamDecl(name, ty, init, self.loc, seed, [regularizer] if regularizer else [])
        pid = self.b.argument(name, "param", ty, loc=self.loc)
        self.param_ids[name] = pid
        if regularizer is not None:
            self.penalties.append(apply_regularizer(self.b, regularizer, pid))
        return pid


def _stable_seed(base: int, name: str) -> int:
    """A per-parameter seed that depends only on the model seed and the parameter's name."""
    h = 2166136261
    for ch in f"{base}:{name}".encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h


LibraryFn = Callable[..., object]
