"""Recurrent layers (rnn, lstm, gru) over [B, T, F] inputs, as one `scan` over a static T.

Layout and gate order are Keras's, so weights carry across: a layer bound to `h` owns

    h.kernel            [F, G*units]      input weights, gates side by side
    h.recurrent_kernel  [units, G*units]  state weights, same gate order
    h.bias              [G*units]         ([2, 3*units] for gru: input bias, recurrent bias)

with G = 1 (rnn), 4 (lstm: gates i, f, c, o) or 3 (gru: gates z, r, h). The
initial state is zero. The output is the last hidden state [B, units], or every
hidden state [B, T, units] with `return_sequences=true`.

The time loop is IR
-------------------
The input projection x @ kernel (+ the input bias) is ONE matmul over all of [B, T, F];
then one `scan` runs the step (recurrent matmul, gates, activations) with the state as
its carries, the projection as its sequence and the recurrent kernel (and gru's
recurrent bias) as invariants. The graph's size does not depend on T, autodiff gives
backpropagation through time as a reverse scan (autodiff/scan.py), and the front end
unrolls the scan when T is at most passes/unroll.UNROLL_MAX_LENGTH, where straight-line
code is faster.

Differences from Keras: there is no orthogonal initialiser yet, so the recurrent
kernel defaults to glorot_uniform (Keras: orthogonal); dropout,
recurrent_dropout, stateful/initial states, masking and gru's `reset_after=False`
form are not implemented.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.graph import Builder
from ..ir.interpret import interpret
from . import initializers, regularizers
from .activations import vid
from .context import (Activation, Initializer, LayerContext, Regularizer, Spec, Tensor, Value,
                      _stable_seed)
from ..ir.shapes import TensorType
from .layers import apply_activation

__all__ = ["rnn", "lstm", "gru", "LAYERS", "recurrent_scan"]


# ---- shared plumbing ----------------------------------------------------------------

def _check_input(ctx: LayerContext, x, units: int):
    """(x as a float node id, B, T, F, dtype) for a [B, T, F] input; ShapeErrors for the rest."""
    b, x = ctx.b, vid(x)
    shape = tuple(b.shape(x))
    if len(shape) != 3:
        raise ShapeError(f"expects a [batch, time, features] input, got a tensor of rank {len(shape)} "
                         f"{list(shape)} (reshape a [B, T] sequence to [B, T, 1])")
    batch, steps, features = shape
    if not isinstance(steps, int):
        raise ShapeError(f"the time dimension must be static (the scan runs a fixed number of steps), got {steps}")
    if not isinstance(features, int):
        raise ShapeError(f"the input's last dimension must be static, got {features}")
    if isinstance(units, bool) or units <= 0:
        raise ShapeError(f"units must be > 0, got {units}")
    # parameters take the input's float type (f64 graphs stay f64); integer data computes in f32
    dtype = b.dtype(x) if b.dtype(x) in ("f32", "f64") else "f32"
    if b.dtype(x) != dtype:
        x = b.cast(x, dtype=dtype)
    return x, batch, steps, features, dtype


def _activation(ctx: LayerContext, activation, what: str):
    """The activation as a function node id -> node id, applied once per time step."""
    def apply(z: int) -> int:
        before = len(ctx.params)
        out = vid(apply_activation(ctx, activation, z))
        if len(ctx.params) != before:
            name = activation if isinstance(activation, str) else activation.name
            raise ShapeError(f"{what} '{name}' has its own parameters, which a recurrent layer "
                             f"cannot use (it would need one copy per time step)")
        return out
    return apply


def _cols(b, z: int, gate: int, units: int) -> int:
    """Last-axis entries [gate*units, (gate+1)*units) of a [B, G*units] (or [G*units]) tensor:
    one gate's pre-activation."""
    lead = len(b.shape(z)) - 1
    return b.slice(z, start=(0,) * lead + (gate * units,), stop=(None,) * lead + ((gate + 1) * units,),
                   step=(1,) * (lead + 1))


def _bias_row(b, bias: int, row: int, width: int) -> int:
    """Row `row` of gru's [2, width] bias, as [width]."""
    return b.reshape(b.slice(bias, start=(row, 0), stop=(row + 1, None), step=(1, 1)), shape=(width,))


def recurrent_scan(b, name: str, xw: int, init, recurrent: int, recurrent_bias, step, axis: int,
                   reverse: bool = False, sequences: bool = True) -> list[int]:
    """One `scan` of a recurrent step over `axis` of `xw` (every step's input projection,
    [.., T, .., G*units]), emitted into `b`: the final states' ids, then (with `sequences`)
    the stacked per-step h. `init` are the initial states (h first), [B, units] each;
    `recurrent` [units, G*units] and `recurrent_bias` ([G*units] or None) are the loop's
    invariants. The body, built by a builder of `b`'s own class, computes
    hu = h_{t-1} @ recurrent (+ recurrent_bias) and calls
    `step(body, xw_t, hu, state, recurrent, recurrent_bias) -> (h, state)` with the body's
    own ids for all of them. The language's layers and the ONNX importer (onnx/ops_rnn.py)
    both build their loops here."""
    step_type = b.type_of(xw)
    step_shape = step_type.shape[:axis] + step_type.shape[axis + 1:]
    body = type(b)(name)
    body._loc = b._loc
    state = tuple(body.argument(f"s{k}", "carry", b.type_of(v)) for k, v in enumerate(init))
    xt = body.argument("xw", "input", TensorType(step_type.dtype, step_shape))
    u = body.argument("recurrent_kernel", "param", b.type_of(recurrent))
    invariants = [recurrent]
    hu = body.matmul(state[0], u)
    rb = None
    if recurrent_bias is not None:
        invariants.append(recurrent_bias)
        rb = body.argument("recurrent_bias", "param", b.type_of(recurrent_bias))
        hu = body.add(hu, rb)
    h, state = step(body, xt, hu, state, u, rb)
    outs = [(f"s{k}", v) for k, v in enumerate(state)] + ([("h", h)] if sequences else [])
    return b.loop(body.build(outs), list(init), [xw], invariants, axis=axis, reverse=reverse)


def _run(ctx: LayerContext, x, units: int, gates: int, kernel_initializer, recurrent_initializer,
         kernel_regularizer, recurrent_regularizer, return_sequences: bool, go_backwards: bool,
         bias_decl, n_state: int, step) -> Value:
    """Declare kernel, recurrent_kernel and (via `bias_decl`) the bias, project the whole input
    once, then emit one `scan` over time whose body is one step:
    `step(b, xw_t, hu, state) -> (h, state)`, emitting into the body's builder `b`, where xw_t
    is the step's input projection [B, G*units], hu = h_{t-1} @ recurrent_kernel (+ recurrent
    bias) and state the `n_state` carries (h first; zeros at t = 0)."""
    b = ctx.b
    x, batch, steps, features, dtype = _check_input(ctx, x, units)
    width = gates * units
    kernel = ctx.param("kernel", (features, width), initializers.as_spec(kernel_initializer),
                       regularizers.as_spec(kernel_regularizer), dtype=dtype)
    recurrent = ctx.param("recurrent_kernel", (units, width), initializers.as_spec(recurrent_initializer),
                          regularizers.as_spec(recurrent_regularizer), dtype=dtype)
    input_bias, recurrent_bias = bias_decl(dtype, width)
    xw = b.matmul(x, kernel)                    # [B, T, G*units]: every step's input projection at once
    if input_bias is not None:
        xw = b.add(xw, input_bias)

    def body_step(body, xt, hu, state, u, rb):
        ctx.b = body                            # activations emit through ctx.b
        try:
            return step(body, xt, hu, state)
        finally:
            ctx.b = b

    zero = b.broadcast_to(b.scalar(0.0, dtype), shape=(batch, units))
    # Every length gets a scan; frontend/lower.py unrolls the short ones (passes/unroll.py),
    # where straight-line code is faster than a loop.
    results = recurrent_scan(b, ctx._name("step"), xw, [zero] * n_state, recurrent, recurrent_bias, body_step,
                             axis=1, reverse=go_backwards, sequences=return_sequences)
    if not return_sequences:
        return Value(results[0])
    hs = results[n_state]
    if go_backwards:   # Keras returns the states in processing order: last time step first
        hs = b.gather(hs, b.constant(tuple(range(steps - 1, -1, -1)), "i32", (steps,)), axis=1)
    return Value(hs)


def _plain_bias(ctx: LayerContext, use_bias: bool, init, regularizer):
    def decl(dtype, width):
        if not use_bias:
            return None, None
        return ctx.param("bias", (width,), initializers.as_spec(init), regularizers.as_spec(regularizer),
                         dtype=dtype), None
    return decl


# ---- the layers -------------------------------------------------------------------------

def rnn(ctx: LayerContext, x: Tensor, units: int, activation: Activation = "tanh",
        return_sequences: bool = False, use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        recurrent_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros", kernel_regularizer: Regularizer = None,
        recurrent_regularizer: Regularizer = None, bias_regularizer: Regularizer = None,
        go_backwards: bool = False) -> Value:
    """Keras SimpleRNN: h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias), h_0 = 0."""
    act = _activation(ctx, activation, "activation")

    def step(b, xt, hu, state):
        h = act(b.add(xt, hu))
        return h, (h,)

    return _run(ctx, x, units, 1, kernel_initializer, recurrent_initializer, kernel_regularizer,
                recurrent_regularizer, return_sequences, go_backwards,
                _plain_bias(ctx, use_bias, bias_initializer, bias_regularizer), 1, step)


def _lstm_bias(ctx: LayerContext, use_bias: bool, init, regularizer, unit_forget_bias: bool, units: int):
    """lstm's bias; with unit_forget_bias the forget gate's quarter starts at 1 (Keras):
    [bias_initializer(units), ones(units), bias_initializer(2*units)]."""
    if not unit_forget_bias:
        return _plain_bias(ctx, use_bias, init, regularizer)

    def decl(dtype, width):
        if not use_bias:
            return None, None
        spec = initializers.as_spec(init)
        value = _forget_bias_value(ctx, spec, units)
        return ctx.param("bias", (width,), value, regularizers.as_spec(regularizer), dtype=dtype), None
    return decl


def _forget_bias_value(ctx: LayerContext, spec: Spec, units: int) -> tuple:
    """The initial lstm bias as a literal: the i and (c, o) parts drawn from `spec` (evaluated
    here through the IR's reference interpreter, with seeds derived from the parameter's name like any
    parameter's), the f part ones."""
    if spec.name in ("zeros", "ones", "constant"):
        fill = {"zeros": 0.0, "ones": 1.0}.get(spec.name, spec.kw.get("value", 0.0))
        i_part, co_part = np.full(units, fill, np.float32), np.full(2 * units, fill, np.float32)
    else:
        ib = Builder("lstm_bias_init")
        name = ctx._name("bias")
        fn = initializers.INITIALIZERS[spec.name]
        outs = {"i": fn(ib, (units,), _stable_seed(ctx.seed_base, f"{name}#i"), **spec.kw),
                "co": fn(ib, (2 * units,), _stable_seed(ctx.seed_base, f"{name}#co"), **spec.kw)}
        vals = interpret(ib.build(outs))
        i_part, co_part = np.asarray(vals["i"], np.float32), np.asarray(vals["co"], np.float32)
    value = np.concatenate([i_part, np.ones(units, np.float32), co_part])
    return tuple(float(v) for v in value)


def lstm(ctx: LayerContext, x: Tensor, units: int, activation: Activation = "tanh",
         recurrent_activation: Activation = "sigmoid", return_sequences: bool = False,
         use_bias: bool = True, kernel_initializer: Initializer = "glorot_uniform",
         recurrent_initializer: Initializer = "glorot_uniform", bias_initializer: Initializer = "zeros",
         unit_forget_bias: bool = True, kernel_regularizer: Regularizer = None,
         recurrent_regularizer: Regularizer = None, bias_regularizer: Regularizer = None,
         go_backwards: bool = False) -> Value:
    """Keras LSTM, gates i, f, c, o (σ = recurrent_activation, act = activation):
    i, f, o = σ(x_t W + h U + b) slices; c̃ = act(...); c_t = f ⊙ c_{t-1} + i ⊙ c̃; h_t = o ⊙ act(c_t)."""
    act = _activation(ctx, activation, "activation")
    gate = _activation(ctx, recurrent_activation, "recurrent_activation")

    def step(b, xt, hu, state):
        z = b.add(xt, hu)
        i = gate(_cols(b, z, 0, units))
        f = gate(_cols(b, z, 1, units))
        cand = act(_cols(b, z, 2, units))
        o = gate(_cols(b, z, 3, units))
        c = b.add(b.mul(f, state[1]), b.mul(i, cand))
        h = b.mul(o, act(c))
        return h, (h, c)

    return _run(ctx, x, units, 4, kernel_initializer, recurrent_initializer, kernel_regularizer,
                recurrent_regularizer, return_sequences, go_backwards,
                _lstm_bias(ctx, use_bias, bias_initializer, bias_regularizer, unit_forget_bias, units), 2, step)


def gru(ctx: LayerContext, x: Tensor, units: int, activation: Activation = "tanh",
        recurrent_activation: Activation = "sigmoid", return_sequences: bool = False,
        use_bias: bool = True, kernel_initializer: Initializer = "glorot_uniform",
        recurrent_initializer: Initializer = "glorot_uniform", bias_initializer: Initializer = "zeros",
        kernel_regularizer: Regularizer = None, recurrent_regularizer: Regularizer = None,
        bias_regularizer: Regularizer = None, go_backwards: bool = False) -> Value:
    """Keras GRU (reset_after=True, gates z, r, h; bias [2, 3*units] = input bias, recurrent bias):
    xw = x_t W + b_in, hu = h U + b_rec; z = σ(xw_z + hu_z), r = σ(xw_r + hu_r),
    h̃ = act(xw_h + r ⊙ hu_h), h_t = z ⊙ h_{t-1} + (1 - z) ⊙ h̃."""
    b = ctx.b
    act = _activation(ctx, activation, "activation")
    gate = _activation(ctx, recurrent_activation, "recurrent_activation")

    def bias_decl(dtype, width):
        if not use_bias:
            return None, None
        bias = ctx.param("bias", (2, width), initializers.as_spec(bias_initializer),
                         regularizers.as_spec(bias_regularizer), dtype=dtype)
        return _bias_row(b, bias, 0, width), _bias_row(b, bias, 1, width)

    def step(b, xt, hu, state):
        pre_z, pre_r, pre_h = (_cols(b, xt, g, units) for g in range(3))
        z = gate(b.add(pre_z, _cols(b, hu, 0, units)))
        r = gate(b.add(pre_r, _cols(b, hu, 1, units)))
        cand = act(b.add(pre_h, b.mul(r, _cols(b, hu, 2, units))))
        one = b.scalar(1.0, b.dtype(z))
        h = b.add(b.mul(z, state[0]), b.mul(b.sub(one, z), cand))
        return h, (h,)

    return _run(ctx, x, units, 3, kernel_initializer, recurrent_initializer, kernel_regularizer,
                recurrent_regularizer, return_sequences, go_backwards, bias_decl, 1, step)


LAYERS = {
    "rnn": rnn,
    "lstm": lstm,
    "gru": gru,
}
