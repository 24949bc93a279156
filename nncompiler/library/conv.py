"""Convolution and pooling layers (NHWC, Keras's layout), as window primitives.

Each layer works out its window geometry at compile time and emits one primitive
(ir/primitives.py), so every backend sees a convolution, not a soup of slices:

  * convolution is `conv` with explicit (lo, hi) padding per spatial axis (TF's
    asymmetric `same` and Keras's `causal` are just paddings), plus bias and activation;
  * max pooling is `reduce_window` max, padded with -inf; its gradient
    (`select_scatter`) goes to the *first* maximal tap in window raster order, like PyTorch;
  * average pooling is `reduce_window` sum divided by a compile-time count of the
    valid (non-padding) pixels of each window, as Keras does for `same`.

`padding="same"` follows TensorFlow: the output size is ceil(in / stride), the
total padding max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0), with the
odd pixel at the end (bottom/right). `padding="causal"` (conv1d only) pads
(k - 1) * dilation steps at the start, as Keras's Conv1D.

Int-or-pair arguments (`kernel=3` or `kernel=[3, 2]`, likewise stride, dilation
and pool) are annotated `Axes`: it is the front-end kind that converts "an int
or a list of ints", which is exactly what these are (the values are validated
here as positive window sizes, not as axes).

The batch dimension may be symbolic (B); the spatial and channel dimensions
must be static, because the window arithmetic is done at compile time.
"""
from __future__ import annotations


import numpy as np

from ..errors import ShapeError, did_you_mean
from ..ir.shapes import fmt_shape, numel
from . import initializers, regularizers
from .activations import vid
from .context import Activation, Axes, Initializer, LayerContext, Regularizer, Tensor, Value
from .layers import apply_activation

_PADDINGS = ("valid", "same")


# ---- window arithmetic (compile time) ------------------------------------------------

def _ints(v, n: int, what: str) -> tuple[int, ...]:
    """An int or a list of n ints -> a tuple of n positive ints."""
    if isinstance(v, (list, tuple)):
        vals = tuple(v)
        if len(vals) != n:
            raise ShapeError(f"{what} must be an int or a list of {n} ints, got {list(vals)}")
    else:
        vals = (v,) * n
    for d in vals:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise ShapeError(f"{what} must be an int or a list of {n} ints, got {v!r}")
        if d < 1:
            raise ShapeError(f"{what} must be positive, got {v if isinstance(v, int) else list(vals)}")
    return tuple(int(d) for d in vals)


def _padding(padding, allowed=_PADDINGS) -> str:
    p = str(padding).lower()
    if p not in allowed:
        raise ShapeError(f"unknown padding '{padding}'{did_you_mean(p, allowed)} "
                         f"(paddings: {', '.join(allowed)})")
    return p


def _spatial(b, x: int, n: int, layout: str) -> tuple:
    """Check x is [B, *spatial, C] with static spatial and channel dims; returns its shape."""
    shape = tuple(b.shape(x))
    if len(shape) != n + 2:
        raise ShapeError(f"expects a rank-{n + 2} input {layout}, got {fmt_shape(shape)}")
    for d in shape[1:]:
        if not isinstance(d, int):
            raise ShapeError(f"the spatial and channel dimensions of the input {layout} must be static, "
                             f"got {fmt_shape(shape)}")
    return shape


def window_geometry(size: int, k: int, stride: int, dilation: int, padding: str) -> tuple[int, int, int]:
    """(output size, padding before, padding after) of one spatial axis, as TensorFlow computes them."""
    span = (k - 1) * dilation + 1                     # the dilated window
    if padding == "valid":
        if size < span:
            raise ShapeError(f"the input's spatial size {size} is smaller than the window {span}"
                             f"{f' (kernel {k}, dilation {dilation})' if dilation > 1 else ''} "
                             f"with padding=valid")
        return (size - span) // stride + 1, 0, 0
    if padding == "causal":
        lo = span - 1
        return (size + lo - span) // stride + 1, lo, 0
    out = -(-size // stride)                          # same: ceil(size / stride)
    total = max((out - 1) * stride + span - size, 0)
    return out, total // 2, total - total // 2


def _geometry(b, x: int, window, stride, dilation, padding: str):
    """(out sizes, per-axis (lo, hi) padding) of a window over the spatial axes of x."""
    shape = tuple(b.shape(x))
    geo = [window_geometry(shape[1 + a], window[a], stride[a], dilation[a], padding) for a in range(len(window))]
    return tuple(g[0] for g in geo), tuple((g[1], g[2]) for g in geo)


def _float_input(b, x: int) -> int:
    """Integer inputs compute in f32; float inputs keep their dtype (f64 graphs stay f64)."""
    return x if b.dtype(x) in ("f32", "f64") else b.cast(x, dtype="f32")


# ---- convolution ------------------------------------------------------------------------

def _conv(ctx: LayerContext, x, n: int, layout: str, filters, kernel, stride, padding, dilation,
          activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
          bias_regularizer, paddings=_PADDINGS) -> Value:
    b = ctx.b
    x = _float_input(b, vid(x))
    shape = _spatial(b, x, n, layout)
    if isinstance(filters, bool) or not isinstance(filters, int) or filters <= 0:
        raise ShapeError(f"filters must be a positive int, got {filters!r}")
    kernel = _ints(kernel, n, "kernel")
    stride = _ints(stride, n, "stride")
    dilation = _ints(dilation, n, "dilation")
    padding = _padding(padding, paddings)
    channels, dtype = shape[-1], b.dtype(x)
    _, pads = _geometry(b, x, kernel, stride, dilation, padding)
    w = ctx.param("kernel", kernel + (channels, filters), initializers.as_spec(kernel_initializer),
                  regularizers.as_spec(kernel_regularizer), dtype=dtype)
    y = b.conv(x, w, stride=stride, padding=pads, dilation=dilation, groups=1)
    if use_bias:
        bias = ctx.param("bias", (filters,), initializers.as_spec(bias_initializer),
                         regularizers.as_spec(bias_regularizer), dtype=dtype)
        y = b.add(y, bias)
    return apply_activation(ctx, activation, y)


def conv2d(ctx: LayerContext, x: Tensor, filters: int, kernel: Axes = 3, stride: Axes = 1,
           padding: str = "valid", dilation: Axes = 1, activation: Activation = "linear",
           use_bias: bool = True, kernel_initializer: Initializer = "glorot_uniform",
           bias_initializer: Initializer = "zeros", kernel_regularizer: Regularizer = None,
           bias_regularizer: Regularizer = None) -> Value:
    """2-D convolution of x [B, H, W, C]: y = activation(conv(x, kernel) + bias), [B, OH, OW, filters].

    kernel [kh, kw, C, filters] (Keras's layout; torch's weight is its permute(3, 2, 0, 1)),
    bias [filters]. kernel/stride/dilation: an int or [h, w]; padding: valid or same
    (TensorFlow's asymmetric same padding)."""
    return _conv(ctx, x, 2, "[B, H, W, C]", filters, kernel, stride, padding, dilation, activation,
                 use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)


def conv1d(ctx: LayerContext, x: Tensor, filters: int, kernel: Axes = 3, stride: Axes = 1,
           padding: str = "valid", dilation: Axes = 1, activation: Activation = "linear",
           use_bias: bool = True, kernel_initializer: Initializer = "glorot_uniform",
           bias_initializer: Initializer = "zeros", kernel_regularizer: Regularizer = None,
           bias_regularizer: Regularizer = None) -> Value:
    """1-D convolution of x [B, T, F]: [B, OT, filters]; kernel [k, F, filters], bias [filters].
    padding: valid, same or causal (left padding only, as Keras's Conv1D)."""
    return _conv(ctx, x, 1, "[B, T, F]", filters, kernel, stride, padding, dilation, activation,
                 use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                 paddings=_PADDINGS + ("causal",))


# ---- pooling ---------------------------------------------------------------------------

def _max_pool(ctx: LayerContext, x, n: int, layout: str, pool, stride, padding) -> Value:
    b = ctx.b
    x = _float_input(b, vid(x))
    _spatial(b, x, n, layout)
    pool = _ints(pool, n, "pool")
    stride = pool if stride is None else _ints(stride, n, "stride")
    _, pads = _geometry(b, x, pool, stride, (1,) * n, _padding(padding))
    # padding is max's identity (-inf), so it never reaches the output or the gradient; the
    # gradient goes to the first maximal tap in window raster order (torch's tie rule)
    return Value(b.reduce_window(x, kind="max", window=pool, stride=stride, padding=pads))


def _avg_pool(ctx: LayerContext, x, n: int, layout: str, pool, stride, padding) -> Value:
    b = ctx.b
    x = _float_input(b, vid(x))
    shape = _spatial(b, x, n, layout)
    pool = _ints(pool, n, "pool")
    stride = pool if stride is None else _ints(stride, n, "stride")
    padding = _padding(padding)
    outs, pads = _geometry(b, x, pool, stride, (1,) * n, padding)
    total = b.reduce_window(x, kind="sum", window=pool, stride=stride, padding=pads)
    if padding == "valid" or not any(lo or hi for lo, hi in pads):
        return Value(b.div(total, b.scalar(float(numel(pool)), b.dtype(x))))
    # Keras's same: divide by the number of real (non-padding) pixels in each window
    counts = np.ones((1,), np.float64)
    for a in range(n):
        lo, _ = pads[a]
        starts = np.arange(outs[a]) * stride[a] - lo
        valid = np.minimum(starts + pool[a], shape[1 + a]) - np.maximum(starts, 0)
        counts = np.multiply.outer(counts, valid.astype(np.float64))
    counts = counts.reshape((1,) + outs + (1,))
    count = b.constant(counts.tolist(), b.dtype(x), counts.shape)
    return Value(b.div(total, count))


def maxpool2d(ctx: LayerContext, x: Tensor, pool: Axes = 2, stride: Axes = None,
              padding: str = "valid") -> Value:
    """Max over pool windows of x [B, H, W, C] -> [B, OH, OW, C]; stride defaults to pool.
    The gradient goes to the first maximal element of each window (raster order), as torch."""
    return _max_pool(ctx, x, 2, "[B, H, W, C]", pool, stride, padding)


def avgpool2d(ctx: LayerContext, x: Tensor, pool: Axes = 2, stride: Axes = None,
              padding: str = "valid") -> Value:
    """Mean over pool windows of x [B, H, W, C] -> [B, OH, OW, C]; stride defaults to pool.
    With padding=same only the real pixels of a window are averaged (Keras)."""
    return _avg_pool(ctx, x, 2, "[B, H, W, C]", pool, stride, padding)


def maxpool1d(ctx: LayerContext, x: Tensor, pool: Axes = 2, stride: Axes = None,
              padding: str = "valid") -> Value:
    """Max over windows of x [B, T, F] -> [B, OT, F]."""
    return _max_pool(ctx, x, 1, "[B, T, F]", pool, stride, padding)


def avgpool1d(ctx: LayerContext, x: Tensor, pool: Axes = 2, stride: Axes = None,
              padding: str = "valid") -> Value:
    """Mean over windows of x [B, T, F] -> [B, OT, F]."""
    return _avg_pool(ctx, x, 1, "[B, T, F]", pool, stride, padding)


def global_avgpool2d(ctx: LayerContext, x: Tensor) -> Value:
    """Mean over the spatial axes of x [B, H, W, C] -> [B, C]."""
    b = ctx.b
    x = _float_input(b, vid(x))
    shape = _spatial(b, x, 2, "[B, H, W, C]")
    total = b.sum(x, axes=(1, 2), keepdims=False)
    return Value(b.div(total, b.scalar(float(shape[1] * shape[2]), b.dtype(x))))


LAYERS: dict = {
    "conv1d": conv1d,
    "conv2d": conv2d,
    "maxpool1d": maxpool1d,
    "maxpool2d": maxpool2d,
    "avgpool1d": avgpool1d,
    "avgpool2d": avgpool2d,
    "global_avgpool2d": global_avgpool2d,
}
