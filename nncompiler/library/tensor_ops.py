"""Tensor functions of the language (`sum(x, axis=1)`, `reshape(c, [4])`, `ones([2, 2])`, ...).

Each is a composition of IR primitives, with the same calling convention as
layers: `fn(ctx, ...) -> Value`, annotated so the front end can check calls.
The first paragraph of each docstring is its one-line summary in
dsl/functions.md; dsl/ref/tensors.md is the reference with examples.

Conventions (numpy's unless said otherwise):
  * axes may be negative; `axis=None` reduces over every axis;
  * integer and bool tensors are promoted to f32 where the result is a float
    (exp, log, sqrt, mean, var, ...), bools to i32 where it is a count (sum);
  * the random functions draw fixed numbers (they are computed once, like a
    parameter's initial value, not redrawn at every step); without `seed=`
    the seed is derived from the model seed and the call's position;
  * `concat` takes any number of positional tensors, `stack` up to four; a single tensor is a sequence along its first axis,
    so `concat([a, b], axis=0)` (a list literal stacks) works for equal shapes.

The functions live by kind in tensor_reductions, tensor_elementwise, tensor_shapes and
tensor_creation (tensor_args holds how they read axes and dtypes); this module is the
table the front end looks names up in. Several names shadow Python builtins (sum, max,
min, abs, pow, range, any, all); nothing here needs the originals.
"""
from __future__ import annotations

from .primitive_ops import PRIMITIVE_OPS
from .tensor_creation import (eye, fill, glorot_normal, glorot_uniform, he_normal, he_uniform,
                              lecun_normal, lecun_uniform, linspace, normal, ones, ones_like, range,
                              truncated_normal, uniform, zeros, zeros_like)
from .tensor_elementwise import (abs, cast, clip, equal, exp, greater, greater_equal, isnan, less, less_equal,
                                 log, log1p, logical_and, logical_not, logical_or, matmul, maximum, minimum,
                                 not_equal, pow, sign, sqrt, square, stop_gradient, where)
from .tensor_reductions import all, any, argmax, argmin, logsumexp, max, mean, min, std, sum, var
from .tensor_shapes import broadcast_to, expand_dims, flip, one_hot, permute, reshape, squeeze, stack, take, transpose

TENSOR_OPS = {f.__name__: f for f in (
    # reductions
    sum, mean, var, std, max, min, logsumexp, any, all, argmax, argmin,
    # elementwise
    exp, log, log1p, sqrt, abs, sign, square, pow, maximum, minimum, where, clip, stop_gradient,
    equal, not_equal, less, less_equal, greater, greater_equal, logical_and, logical_or, logical_not,
    isnan, cast, matmul,
    # shapes and indexing
    reshape, transpose, permute, squeeze, expand_dims, broadcast_to, stack, take, flip, one_hot,
    # creation
    fill, zeros, ones, zeros_like, ones_like, range, linspace, eye,
    normal, uniform, truncated_normal, glorot_uniform, glorot_normal, he_uniform, he_normal,
    lecun_uniform, lecun_normal)}
# one primitive each, with the primitive's own arguments (what `nnc import` writes)
TENSOR_OPS.update(PRIMITIVE_OPS)
