"""Layers: `fn(ctx, x: Tensor, ...) -> Value`.

Parameters are declared through `ctx.param("<suffix>", shape, init, regularizer)`,
which names them `<layer>.<suffix>` and records the regulariser penalty; the
activation goes through ACTIVATIONS so a softmax output keeps its logits for
the loss.
"""

from ..errors import ShapeError, did_you_mean
from ..ir.shapes import numel
from . import initializers, regularizers
from .activations import ACTIVATIONS, vid
from .context import Activation, Initializer, LayerContext, Regularizer, Spec, Tensor, Value


def apply_activation(ctx: LayerContext, activation, x: int) -> Value:
    """Apply an activation given as a name, a Spec (leaky_relu(alpha=0.2)) or None (linear)."""
    if activation is None:
        return Value(x)
    spec = Spec(activation) if isinstance(activation, str) else activation
    fn = ACTIVATIONS.get(spec.name)
    if fn is None:
        raise ShapeError(f"unknown activation '{spec.name}'{did_you_mean(spec.name, ACTIVATIONS)}")
    return fn(ctx, Value(x), **spec.kw)


def dense(ctx: LayerContext, x: Tensor, units: int, activation: Activation = "linear",
          use_bias: bool = True, kernel_initializer: Initializer = "glorot_uniform",
          bias_initializer: Initializer = "zeros", kernel_regularizer: Regularizer = None,
          bias_regularizer: Regularizer = None, activity_regularizer: Regularizer = None) -> Value:
    """y = activation(x @ kernel + bias), kernel [in, units] (Keras's layout, the transpose of torch's).

    `activity_regularizer` adds its penalty of the output y to the loss (Keras 3: summed over
    the batch, not divided by its size)."""
    b, x = ctx.b, vid(x)
    shape = tuple(b.shape(x))
    if not shape:
        raise ShapeError("the input must have rank >= 1")
    n_in = shape[-1]
    if not isinstance(n_in, int):
        raise ShapeError(f"the input's last dimension must be static, got {n_in}")
    if units <= 0:
        raise ShapeError(f"units must be > 0, got {units}")
    # parameters take the input's float type (f64 graphs stay f64); integer data computes in f32
    dtype = b.dtype(x) if b.dtype(x) in ("f32", "f64") else "f32"
    if b.dtype(x) != dtype:
        x = b.cast(x, dtype=dtype)
    kernel = ctx.param("kernel", (n_in, units), initializers.as_spec(kernel_initializer),
                       regularizers.as_spec(kernel_regularizer), dtype=dtype)
    if len(shape) == 1:                 # matmul wants rank >= 2
        y = b.reshape(b.matmul(b.reshape(x, shape=(1, n_in)), kernel), shape=(units,))
    else:
        y = b.matmul(x, kernel)         # leading axes broadcast as batch axes
    if use_bias:
        bias = ctx.param("bias", (units,), initializers.as_spec(bias_initializer),
                         regularizers.as_spec(bias_regularizer), dtype=dtype)
        y = b.add(y, bias)
    return activity(ctx, apply_activation(ctx, activation, y), activity_regularizer)


def activity(ctx: LayerContext, out: Value, regularizer) -> Value:
    """Add a layer's activity regulariser's penalty of its output to the loss; returns the output."""
    spec = regularizers.as_spec(regularizer)
    if spec is not None:
        ctx.penalties.append(regularizers.apply_regularizer(ctx.b, spec, out.id))
    return out


def flatten(ctx: LayerContext, x: Tensor) -> Value:
    """[B, d1, d2, ...] -> [B, d1*d2*...] (symbolic dims allowed)."""
    b, x = ctx.b, vid(x)
    shape = tuple(b.shape(x))
    if len(shape) <= 1:
        return Value(x)
    return Value(b.reshape(x, shape=(shape[0], numel(shape[1:]))))


LAYERS = {
    "dense": dense,
    "flatten": flatten,
}
