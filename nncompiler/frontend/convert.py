"""Convert a call's non-tensor arguments by the kind the library function declares.

The kinds are the annotations of `library/context.py`; each has one converter
here, and each converter explains what it expected when the argument is wrong.
"""
from __future__ import annotations

import inspect

import numpy as np

from ..errors import did_you_mean, error
from ..ir.shapes import DTYPES
from ..library import ACTIVATIONS, INITIALIZERS, REGULARIZERS
from ..library.context import Spec
from . import ast
from .literals import _bool, _float, _int, _literal


def _word(e, what) -> str:
    """A bare name (padding=same) or a string ("same")."""
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.String):
        return e.value
    raise error(ast.start_loc(e), f"{what} must be a name")


def _shape(lowerer, e, what):
    if not isinstance(e, ast.ListLit):
        raise error(ast.start_loc(e), f"{what} must be a list of dimensions, e.g. [2, 3]")
    dims = []
    for item in e.items:
        if isinstance(item, ast.Name) and item.id not in lowerer.env:
            dims.append(item.id)  # a symbolic dimension such as B
        else:
            d = _int(lowerer, item, f"each dimension of {what}")
            if d < -1 or d == 0:
                raise error(ast.start_loc(item), f"dimension must be positive (or -1 to infer), got {d}")
            dims.append(d)
    return tuple(dims)


def _axes(lowerer, e, what):
    if isinstance(e, ast.Name) and e.id in ("none", "None"):  # "all axes" / "the default"
        return None
    if isinstance(e, ast.ListLit):
        return tuple(_int(lowerer, i, f"each axis of {what}") for i in e.items)
    return _int(lowerer, e, what)


def _padding(lowerer, e, what):
    """`1` (every side of every axis), or one entry per axis: `2` (both sides) or `[lo, hi]`.
    Returned as given (an int, or a tuple of ints and (lo, hi) pairs); the function knows the rank."""
    v = _literal(lowerer, e, what)
    hint = f"{what} must be an int or a list with an int or a [lo, hi] pair per axis, e.g. [[0, 1], [1, 1]]"
    got = str(v).replace("(", "[").replace(")", "]")       # nested literals are tuples

    def amount(a):
        if isinstance(a, bool) or not isinstance(a, int):
            raise error(ast.start_loc(e), f"{hint}; got {got}")
        return a
    if not isinstance(v, (list, tuple)):
        return amount(v)
    out = []
    for item in v:
        if isinstance(item, (list, tuple)):
            if len(item) != 2:
                raise error(ast.start_loc(e), f"{hint}; got {got}")
            out.append((amount(item[0]), amount(item[1])))
        else:
            out.append(amount(item))
    return tuple(out)


def _dtype(lowerer, e, what):
    name = _word(e, what)
    if name not in DTYPES:
        raise error(ast.start_loc(e), f"unknown dtype '{name}'{did_you_mean(name, DTYPES)}")
    return name


def _activation(lowerer, e, what):
    """A name (`relu`) or a call with the activation's own keywords (`leaky_relu(alpha=0.2)`),
    the latter as a Spec that `apply_activation` expands; the keywords are checked here,
    against the activation's signature, like any call's."""
    call = e if isinstance(e, ast.Call) else None
    name = call.func if call else _word(e, what)
    loc = call.func_loc if call else ast.start_loc(e)
    if name not in ACTIVATIONS:
        raise error(loc, f"unknown activation '{name}'{did_you_mean(name, ACTIVATIONS)} "
                    f"(activations: {', '.join(sorted(ACTIVATIONS))})")
    if call is None:
        return name
    params = list(inspect.signature(ACTIVATIONS[name]).parameters.values())[2:]   # skip ctx, x
    names = [p.name for p in params]
    if len(call.args) > len(params):
        raise error(ast.start_loc(call.args[len(params)]),
                    f"activation {name}() takes {len(params)} argument(s) besides its input"
                    + (f" ({', '.join(names)})" if names else ""))
    given = list(zip(names, call.args)) + [(kw.name, kw.value) for kw in call.kwargs]
    values = {}
    for key, value in given:
        if key not in names:
            kw_loc = next(kw.loc for kw in call.kwargs if kw.name == key)
            raise error(kw_loc, f"{name}() has no keyword '{key}'{did_you_mean(key, names)}")
        ann = params[names.index(key)].annotation
        ann = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
        values[key] = convert_argument(lowerer, ann, value, f"{name}() argument '{key}'")
    return Spec(name, tuple(values.items()))


def to_spec(lowerer, e, table: dict, skip: int) -> Spec:
    """`normal(stddev=0.1)` or `l2(0.01)` or a bare `zeros` -> Spec(name, kwargs).

    `skip` is how many leading parameters of the table's function are supplied
    by the library (e.g. builder, shape, seed), not by the user."""
    kind = "initializer" if table is INITIALIZERS else "regularizer"
    if isinstance(e, (ast.Name, ast.String)):
        name, args, kwargs, loc = _word(e, kind), (), (), ast.start_loc(e)
    elif isinstance(e, ast.Call):
        name, args, kwargs, loc = e.func, e.args, e.kwargs, e.func_loc
    else:
        raise error(ast.start_loc(e), f"expected an {kind} such as {sorted(table)[0]}(...)")
    if name not in table:
        raise error(loc, f"unknown {kind} '{name}'{did_you_mean(name, table)} ({kind}s: {', '.join(sorted(table))})")
    params = list(inspect.signature(table[name]).parameters)[skip:]
    params = [p for p in params if p not in ("kwargs",)]
    if len(args) > len(params):
        raise error(ast.start_loc(args[len(params)]), f"{name}() takes {len(params)} argument(s) ({', '.join(params)})")
    values = {p: _float(lowerer, a, f"{name}() argument '{p}'") for p, a in zip(params, args)}
    for kw in kwargs:
        if kw.name not in params:
            raise error(kw.loc, f"{name}() has no keyword '{kw.name}'{did_you_mean(kw.name, params)}")
        values[kw.name] = _float(lowerer, kw.value, f"{name}() argument '{kw.name}'")
    return Spec(name, tuple(values.items()))


def _initializer(lowerer, e, what):
    return to_spec(lowerer, e, INITIALIZERS, skip=3)


def _regularizer(lowerer, e, what):
    if isinstance(e, ast.Name) and e.id in ("none", "None"):
        return None
    return to_spec(lowerer, e, REGULARIZERS, skip=2)


CONVERTERS = {
    "int": _int, "float": _float, "bool": _bool, "str": lambda lw, e, what: _word(e, what),
    "Shape": _shape, "Axes": _axes, "Padding": _padding, "DType": _dtype, "Activation": _activation,
    "Initializer": _initializer, "Regularizer": _regularizer,
}


def convert_argument(lowerer, ann: str, e: ast.Expr, what: str):
    # annotations like "int | None" accept what their first kind accepts
    kind = ann.split("|")[0].strip()
    if kind not in CONVERTERS:
        raise TypeError(f"library function parameter has unsupported annotation {ann!r}")
    return CONVERTERS[kind](lowerer, e, what)


__all__ = ["convert_argument", "to_spec", "np"]
