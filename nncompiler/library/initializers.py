"""Initialisers: `fn(b, shape, seed, /, <keywords>) -> int`, emitting random/const primitives.

`b`, `shape` and `seed` are positional-only: the compiler supplies them; the
keywords after `/` are what a `.nn` call may set (normal(stddev=0.1)). The
values are f32; `initial_value` casts for parameters of another dtype.

Fans follow Keras: [in, out] -> (in, out); conv kernels [kh, kw, in, out] ->
(kh*kw*in, kh*kw*out); a 1-D [n] -> (n, n); a scalar -> (1, 1).

The *_normal variance-scaling initialisers use Keras's truncated normal: values
beyond 2 standard deviations are redrawn, with Keras's stddev correction
(/0.87962566103423978) so the truncated distribution keeps the intended
variance. There is no truncated-normal primitive, so redraws are done by
drawing four normals and taking the first that lands inside [-2, 2] (the
chance that all four miss is 4e-6; such rare values are clipped to +-2).
"""

import math

import numpy as np

from ..ir.graph import Builder
from ..ir.shapes import NUMPY_DTYPE
from .context import ParamDecl, Spec
from .spec import named_spec

_TRUNC_STDDEV = 0.87962566103423978   # stddev of a standard normal truncated to [-2, 2]
_REDRAWS = 4


def compute_fans(shape) -> tuple[int, int]:
    shape = tuple(shape)
    if not shape:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _fill(b: Builder, value: float, shape) -> int:
    return b.broadcast_to(b.scalar(value), shape=tuple(shape))


def _uniform(b: Builder, shape, seed: int, low: float, high: float) -> int:
    return b.random_uniform(low=float(low), high=float(high), seed=int(seed), dtype="f32", shape=tuple(shape))


def _normal(b: Builder, shape, seed: int, mean: float, stddev: float) -> int:
    return b.random_normal(mean=float(mean), stddev=float(stddev), seed=int(seed), dtype="f32",
                           shape=tuple(shape))


def _truncated(b: Builder, shape, seed: int, mean: float, stddev: float) -> int:
    """mean + stddev * z, z a standard normal truncated to [-2, 2] (redraws, see above)."""
    two = b.scalar(2.0)
    draws = [_normal(b, shape, (seed + 0x9E3779B9 * i) & 0xFFFFFFFF, 0.0, 1.0) for i in range(_REDRAWS)]
    z = b.maximum(b.minimum(draws[-1], two), b.neg(two))
    for d in reversed(draws[:-1]):
        z = b.where(b.le(b.abs(d), two), d, z)
    return b.add(b.mul(z, b.scalar(stddev)), b.scalar(mean))


# ---- the initialisers ------------------------------------------------------------------

def zeros(b: Builder, shape: tuple, seed: int, /) -> int:
    return _fill(b, 0.0, shape)


def ones(b: Builder, shape: tuple, seed: int, /) -> int:
    return _fill(b, 1.0, shape)


def constant(b: Builder, shape: tuple, seed: int, /, value: float = 0.0) -> int:
    return _fill(b, value, shape)


def uniform(b: Builder, shape: tuple, seed: int, /, low: float = -0.05, high: float = 0.05) -> int:
    return _uniform(b, shape, seed, low, high)


def normal(b: Builder, shape: tuple, seed: int, /, mean: float = 0.0, stddev: float = 0.05) -> int:
    return _normal(b, shape, seed, mean, stddev)


def truncated_normal(b: Builder, shape: tuple, seed: int, /, mean: float = 0.0, stddev: float = 0.05) -> int:
    return _truncated(b, shape, seed, mean, stddev)


def _scaled_uniform(b, shape, seed, scale: float, fan: float) -> int:
    limit = math.sqrt(3.0 * scale / fan)
    return _uniform(b, shape, seed, -limit, limit)


def _scaled_normal(b, shape, seed, scale: float, fan: float) -> int:
    return _truncated(b, shape, seed, 0.0, math.sqrt(scale / fan) / _TRUNC_STDDEV)


def glorot_uniform(b: Builder, shape: tuple, seed: int, /) -> int:
    fan_in, fan_out = compute_fans(shape)
    return _scaled_uniform(b, shape, seed, 1.0, (fan_in + fan_out) / 2.0)  # limit sqrt(6/(in+out))


def glorot_normal(b: Builder, shape: tuple, seed: int, /) -> int:
    fan_in, fan_out = compute_fans(shape)
    return _scaled_normal(b, shape, seed, 1.0, (fan_in + fan_out) / 2.0)  # stddev sqrt(2/(in+out))


def he_uniform(b: Builder, shape: tuple, seed: int, /) -> int:
    return _scaled_uniform(b, shape, seed, 2.0, compute_fans(shape)[0])     # limit sqrt(6/in)


def he_normal(b: Builder, shape: tuple, seed: int, /) -> int:
    return _scaled_normal(b, shape, seed, 2.0, compute_fans(shape)[0])      # stddev sqrt(2/in)


def lecun_uniform(b: Builder, shape: tuple, seed: int, /) -> int:
    return _scaled_uniform(b, shape, seed, 1.0, compute_fans(shape)[0])     # limit sqrt(3/in)


def lecun_normal(b: Builder, shape: tuple, seed: int, /) -> int:
    return _scaled_normal(b, shape, seed, 1.0, compute_fans(shape)[0])      # stddev sqrt(1/in)


INITIALIZERS = {
    "zeros": zeros,
    "ones": ones,
    "constant": constant,
    "uniform": uniform,
    "normal": normal,
    "truncated_normal": truncated_normal,
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
}


def as_spec(init) -> Spec:
    """A bare initialiser name -> Spec; checks the name exists."""
    return named_spec(init, INITIALIZERS, "initializer")


def initial_value(decl: ParamDecl, b: Builder) -> int:
    """Emit the initial value of a declared parameter: a literal (float, or nested
    tuple matching the shape, or one value to broadcast) or an initialiser spec."""
    shape, dtype = tuple(decl.type.shape), decl.type.dtype
    if not all(isinstance(d, int) for d in shape):
        raise ValueError(f"parameter '{decl.name}' needs a static shape, got {list(shape)}")
    init = decl.init
    if isinstance(init, (Spec, str)):
        spec = as_spec(init)
        out = INITIALIZERS[spec.name](b, shape, decl.seed, **spec.kw)
        return out if dtype == "f32" else b.cast(out, dtype=dtype)
    arr = np.asarray(init, dtype=NUMPY_DTYPE[dtype])
    if arr.size == 1:
        return b.broadcast_to(b.scalar(arr.reshape(()).item(), dtype), shape=shape)
    if arr.shape != shape:
        raise ValueError(f"initial value of '{decl.name}' has shape {list(arr.shape)}, "
                         f"the parameter {list(shape)}")
    return b.constant(arr.tolist(), dtype, shape)
