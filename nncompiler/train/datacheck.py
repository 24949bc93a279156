"""Checking arrays against a model's declared inputs and targets (shape, dtype, values)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..ir.shapes import NUMPY_DTYPE, Monomial

_DTYPES = {k: np.dtype(v) for k, v in NUMPY_DTYPE.items()}  # the model's dtype names
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}


def _fmt_shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_against(name: str, array, dtype: str, shape: Sequence[int | str],
                  bindings: dict[str, int] | None = None) -> np.ndarray:
    """Check `array` against a model input declared as `dtype[shape]`; return it cast.

    dtype: 'f32', 'f64', 'i32', 'i64' or 'bool'.
    shape: ints, symbols like 'B', or products like '4*B'.  A symbol binds to
        the size it first meets; `bindings` ({symbol: size}, updated in place)
        carries the bindings across the arrays of one data set, so the same
        symbol must mean the same size everywhere.
    An array whose only difference from the declared shape is a trailing axis
    of size 1 (shape (n,) for [B, 1] or (n, 1) for [B]) is reshaped.

    The result has the declared dtype.  Casts are allowed only when they lose
    nothing that matters: integers and booleans to floats; floats to a
    narrower float when the values fit its range; floats to integers only
    when every value is an integer in range; anything to bool only when every
    value is 0 or 1.  Float data must be finite.  Otherwise, and on any
    shape mismatch, a DataError names the array and the expected and actual
    shape or dtype.
    """
    if bindings is None:
        bindings = {}
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype '{dtype}' (expected one of {', '.join(_DTYPES)})")
    arr = np.asarray(array)
    shape = tuple(shape)
    want = f"{dtype}{_fmt_shape(shape)}"

    # --- shape
    if arr.ndim == len(shape) - 1 and Monomial.parse(shape[-1]) == Monomial(1):
        arr = arr.reshape(arr.shape + (1,))
    elif arr.ndim == len(shape) + 1 and arr.shape[-1] == 1 and arr.ndim > 1:
        arr = arr.reshape(arr.shape[:-1])
    if arr.ndim != len(shape):
        raise DataError(f"input '{name}': expected shape {want} ({len(shape)} dimensions), "
                        f"got shape {tuple(arr.shape)} ({arr.ndim} dimensions)")
    parsed = [Monomial.parse(d) for d in shape]  # a ShapeError names a malformed one
    new: dict[str, int] = {}
    # Pass 1 binds dimensions that are a multiple of one symbol ('B', '4*B');
    # pass 2 checks everything, including products of symbols.
    for pass_ in (1, 2):
        for axis, (dim, size) in enumerate(zip(parsed, arr.shape)):
            coef, syms = dim.coef, dim.syms
            known = {**bindings, **new}
            unbound = [s for s in syms if s not in known]
            if pass_ == 1 and len(syms) != 1:
                continue
            if not unbound:
                value = coef * math.prod(known[s] for s in syms)
                if value != size:
                    if len(syms) == 1 and syms[0] in bindings and coef == 1:
                        why = f"but {syms[0]} = {bindings[syms[0]]} from an earlier array"
                    elif syms:
                        bound = ", ".join(f"{s} = {known[s]}" for s in syms)
                        why = f"expected {shape[axis]} = {value} ({bound})"
                    else:
                        why = f"expected {value}"
                    raise DataError(f"input '{name}': expected shape {want}, got shape "
                                    f"{tuple(arr.shape)}: dimension {axis} is {size}, {why}")
                continue
            if len(unbound) > 1:
                if pass_ == 2:
                    raise DataError(f"input '{name}': cannot infer {', '.join(unbound)} from "
                                    f"dimension {axis} ({shape[axis]}) alone")
                continue
            rest = coef * math.prod(known[s] for s in syms if s in known)
            if rest == 0 or size % rest != 0:
                raise DataError(f"input '{name}': expected shape {want}, got shape {tuple(arr.shape)}: "
                                f"dimension {axis} is {size}, not a multiple of {rest}")
            new[unbound[0]] = size // rest
    bindings.update(new)

    # --- dtype
    return _cast(name, arr, dtype, want)


def _first_non_finite(arr: np.ndarray, chunk: int = 1 << 22) -> tuple[int, ...] | None:
    """Index of the first NaN/Inf, scanning a few million elements at a time (a mask of a
    multi-GB array at once would need a quarter of its size again)."""
    if arr.ndim == 0 or arr.size <= chunk:
        bad = ~np.isfinite(arr)
        return _first_index(bad) if bad.any() else None
    step = max(1, chunk // max(1, arr[0].size))
    for start in range(0, arr.shape[0], step):
        bad = ~np.isfinite(arr[start:start + step])
        if bad.any():
            i = _first_index(bad)
            return (i[0] + start,) + i[1:]
    return None


def _first_index(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _cast(name: str, arr: np.ndarray, dtype: str, want: str) -> np.ndarray:
    target = _DTYPES[dtype]
    have = _DTYPE_NAMES.get(arr.dtype, str(arr.dtype))
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise DataError(f"input '{name}': expected {want}, got {arr.dtype} data "
                        "(expected numbers)")
    if kind == "f":
        i = _first_non_finite(arr)
        if i is not None:
            what = "NaN" if np.isnan(arr[i]) else "infinite value"
            raise DataError(f"input '{name}': {what} at index {i} (expected finite numbers)")
    if arr.dtype == target:
        return arr
    if target.kind == "f":
        if kind == "f" and target.itemsize < arr.dtype.itemsize:
            big = np.abs(arr) > np.finfo(target).max
            if big.any():
                i = _first_index(big)
                raise DataError(f"input '{name}': value {arr[i]} at index {i} does not fit in {dtype}")
        return arr.astype(target)
    if target.kind == "b":
        ok = (arr == 0) | (arr == 1)
        if not ok.all():
            i = _first_index(~ok)
            raise DataError(f"input '{name}': expected {want} (0/1 values), got {have} data "
                            f"with value {arr[i]} at index {i}")
        return arr.astype(target)
    # integer target
    if kind == "f":
        frac = arr != np.round(arr)
        if frac.any():
            i = _first_index(frac)
            raise DataError(f"input '{name}': expected {want}, got {have} data with a non-integer "
                            f"value {arr[i]} at index {i}")
    if arr.size and kind != "b":
        info = np.iinfo(target)
        out = (arr < info.min) | (arr > info.max)
        if out.any():
            i = _first_index(out)
            raise DataError(f"input '{name}': value {arr[i]} at index {i} does not fit in {dtype}")
    return arr.astype(target)


# --------------------------------------------------------------------------- class labels

# Ops an integer label passes through, unchanged in value, on its way to a one-hot comparison.
_LABEL_PASS = {"cast", "reshape", "broadcast_to"}


def label_classes(graph) -> dict[str, int]:
    """{target name: number of classes} for every integer target the graph compares against an
    iota over a class axis (how `one_hot`, and so every sparse loss and metric, uses labels).

    A label outside [0, classes) matches no class: its one-hot row is all zeros and the example
    silently contributes nothing to the loss, so such labels must be refused before training."""
    users: dict[int, list] = {}
    for n in graph:
        for i in n.inputs:
            users.setdefault(i, []).append(n)
    out: dict[str, int] = {}
    for arg in graph.args_with_role("target"):
        if arg.dtype not in ("i32", "i64"):
            continue
        seen, stack = set(), [arg.id]
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            for u in users.get(v, ()):
                if u.op in _LABEL_PASS:
                    stack.append(u.id)
                elif u.op in ("sparse_xent", "sparse_xent_grad") and u.inputs[1] == v:
                    # the fused sparse cross-entropy: labels index the last axis of the logits
                    c = graph[u.inputs[0]].shape[-1]
                    if isinstance(c, int):
                        name = arg.attr["name"]
                        out[name] = min(c, out.get(name, c))
                elif u.op == "eq":
                    other = graph[u.inputs[0] if u.inputs[1] == v else u.inputs[1]]
                    while other.op in _LABEL_PASS:
                        other = graph[other.inputs[0]]
                    if other.op == "iota":
                        c = other.shape[other.attr["axis"]]
                        if isinstance(c, int):
                            name = arg.attr["name"]
                            out[name] = min(c, out.get(name, c))
    return out


def check_labels(arrays: Mapping[str, np.ndarray], classes: Mapping[str, int], where=None) -> None:
    """Refuse integer labels outside [0, classes) (Keras raises too: otherwise they are ignored).

    `where(name, index)` says where the bad value came from (a file and data row); by default
    the message names the array and its index."""
    for name, c in classes.items():
        if name not in arrays:
            continue
        a = np.asarray(arrays[name])
        if a.dtype.kind not in "iuf" or a.size == 0:
            continue
        bad = (a < 0) | (a >= c)
        if bad.any():
            i = _first_index(bad)
            place = where(name, i) if where else f"target '{name}': label {a[i]:g} at index {i}"
            raise DataError(f"{place} is not a class id: the model has {c} classes, so labels must "
                            f"be integers in [0, {c}) (a label outside that range would silently "
                            "count for nothing in the loss)")
