"""Checks on a lowered model that catch programs which compile but compute a wrong answer.

Each check exists because a plausible program trained "fine" and was silently wrong:

  * batch_broadcast: `y - p` with y: f32[B] and p: f32[B, 1] broadcasts to [B, B]
    (every label against every prediction), and `mean(square(y - p))` trains a wrong model;
  * unbound_symbols: `zeros([N])` where no input declares N cannot be run at all; say so at
    compile time, with the position, not with a traceback at run time;
  * zero_gradient: a loss that reaches every parameter only through ops whose derivative is
    zero (step's comparison, sign, argmax, a cast to an integer) trains with a constant loss.
"""
from __future__ import annotations

import warnings

from ..errors import CompileError, Diagnostic, Loc, error
from ..ir.shapes import fmt_shape, symbols


class CompileWarning(UserWarning):
    """A diagnostic about a program that compiles but is probably not what was meant.
    Its text is the rendered diagnostic (FILE:LINE:COL: warning: ...)."""


# --------------------------------------------------------------------------- broadcasting

def batch_broadcast(loc: Loc, op: str, left, right) -> CompileError | None:
    """The error for an elementwise op between types whose broadcast crosses a symbolic
    dimension with a new axis: [B] against [B, 1] gives [B, B].

    Only an axis that broadcasting *adds* (the shorter operand has none there) counts: a
    deliberate outer product, x[:, None] - x[None, :] with both operands of rank 2, passes."""
    a, b = tuple(left.shape), tuple(right.shape)
    if len(a) == len(b):
        return None
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    new = len(long_) - len(short)
    for j, d in enumerate(short):
        axis = new + j
        if isinstance(d, int) or long_[axis] != 1:
            continue
        if d in long_[:new]:
            i = long_[:new].index(d)
            out = list(long_)
            out[axis] = d
            return error(
                loc, f"'{op}' between {left} and {right} broadcasts {d} against a new axis: the result "
                f"is {fmt_shape(out)}, every element of one side against every element of the other "
                f"(axes {i} and {axis} are both {d})",
                f"to combine them element by element, give both the same shape, e.g. "
                f"expand_dims(..., -1) on the {fmt_shape(short)} side or squeeze(..., -1) on the "
                f"{fmt_shape(long_)} side",
                f"if the {fmt_shape(out)} table is what you want, ask for it: "
                f"broadcast_to(..., {fmt_shape(out)})")
    return None


# Library functions that combine their tensor arguments elementwise, with broadcasting.
ELEMENTWISE_FUNCTIONS = frozenset({
    "pow", "maximum", "minimum", "where", "equal", "not_equal", "less", "less_equal", "greater",
    "greater_equal", "logical_and", "logical_or"})


def elementwise_call(loc: Loc, func: str, types: list) -> CompileError | None:
    """batch_broadcast for a call such as maximum(y, p): every pair of its tensor arguments."""
    if func not in ELEMENTWISE_FUNCTIONS:
        return None
    for i, a in enumerate(types):
        for b in types[i + 1:]:
            if (err := batch_broadcast(loc, f"{func}()", a, b)) is not None:
                return err
    return None


# --------------------------------------------------------------------------- shape symbols

def unbound_symbols(graph, declared) -> None:
    """Refuse a node whose shape uses a symbol no input or target declares (`zeros([N])`):
    nothing could ever give N a value, so the model could not run."""
    known = {s for ty in declared for s in symbols(ty.shape)}
    for n in graph:
        if n.op == "arg":
            continue
        free = [s for s in symbols(n.shape) if s not in known]
        if free:
            names = ", ".join(free)
            hint = (f"declared symbols: {', '.join(sorted(known))}" if known
                    else "no input declares a symbolic dimension")
            raise error(n.loc, f"dimension {names} in shape {fmt_shape(n.shape)} is not bound: no input "
                        f"or target of the model declares {names}, so its size is never known",
                        f"use a number, or a symbol of an input's declared shape ({hint})")


# --------------------------------------------------------------------------- zero gradients

# Why an op passes no gradient to an input, for the message.
_ZERO_WHY = {
    "sign": "sign(), whose derivative is zero",
    "argmax": "argmax(), which has no gradient",
    "cast": "a cast to an integer or bool (round, floor, step's threshold), whose derivative is zero",
}


def _blocks(n, i: int) -> str | None:
    """Why node `n` passes no gradient to its input number `i` (None if it passes one)."""
    if n.op == "stop_gradient":
        return "stop_gradient"
    if n.op in _ZERO_WHY and (n.op != "cast" or not n.dtype.startswith("f")):
        return _ZERO_WHY[n.op]
    if n.op == "where" and i == 0:
        return "where()'s condition, which has no gradient"
    if n.op in ("gather", "scatter_add") and i == 1:
        return f"{n.op}()'s indices, which have no gradient"
    if n.prim.kind == "compare":
        return f"a comparison ('{n.op}', as in step or x > y), whose derivative is zero"
    if not n.prim.differentiable:
        return f"{n.op}, which has no gradient"
    return None


def zero_gradient(graph, loss: str = "loss") -> Diagnostic | None:
    """A warning when the loss depends on parameters but only through ops with zero
    derivative, so every parameter's gradient is structurally zero. It names the op that
    cut the gradient and where the program wrote it (None when the cut is an explicit
    stop_gradient: that was asked for)."""
    outs = dict(graph.outputs)
    if loss not in outs:
        return None
    depends: dict[int, bool] = {}      # the value depends on some parameter
    carries: dict[int, bool] = {}      # ... and a gradient can flow back from it to one
    blocker: dict[int, tuple] = {}     # (node, why) of the op that cut the gradient on the way here
    for n in graph:
        if n.op == "arg":
            depends[n.id] = carries[n.id] = n.attr["role"] == "param"
            continue
        depends[n.id] = any(depends[i] for i in n.inputs)
        carries[n.id] = any(carries[i] and _blocks(n, k) is None for k, i in enumerate(n.inputs))
        if depends[n.id] and not carries[n.id]:
            for k, i in enumerate(n.inputs):
                if carries[i]:
                    blocker[n.id] = (n, _blocks(n, k))
                    break
                if i in blocker:
                    blocker[n.id] = blocker[i]
                    break
    root = outs[loss]
    if carries[root] or root not in blocker:
        return None
    n, why = blocker[root]
    if why == "stop_gradient":
        return None
    return Diagnostic(n.loc, f"the loss's gradient is zero for every parameter: it reaches them only "
                      f"through {why}, so training cannot change the model",
                      severity="warning",
                      notes=["to train a perceptron through a threshold, use step(z, gradient=straight_through): "
                             "it passes the gradient on as if step were the identity (with sgd and mse this "
                             "is Rosenblatt's learning rule)"])


def warn_zero_gradient(graph, sources: dict[str, str]) -> None:
    d = zero_gradient(graph)
    if d is not None:
        warnings.warn(CompileWarning(d.render(sources)), stacklevel=2)
