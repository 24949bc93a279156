"""Fit-time memory check: one training step, and one validation pass, must fit in memory.

The arrays one step allocates come from the train_step graph's node shapes with
the batch dimension bound to the batch size. The estimate follows the numpy
backend's memory plan: generated code keeps every temporary alive until the
step returns, except values written in place into a dead operand, views
(reshape, transpose, broadcast, slice) and pooled workspace buffers, so the
estimate is the sum of the fresh allocations.
"""
from __future__ import annotations

from ..errors import NNCError
from ..ir.limits import available_memory, fmt_bytes, nbytes
from ..ir.shapes import Monomial


class ResourceError(NNCError):
    """A model or a training step that would not fit in the memory available."""


def step_bytes(graph, bindings: dict, copies_batch: bool = False) -> tuple[int, object]:
    """(bytes one call of `graph` allocates, the largest node) per the numpy backend's plan;
    `copies_batch`: the data arguments are fresh copies too (a training batch)."""
    from ..backends.numpy.memory import VIEW_OPS, plan
    try:
        p = plan(graph)
    except Exception:   # the plan is an optimisation: without it, count every node
        p = None
    total, slots, largest, largest_size = 0, set(), None, -1
    for n in graph.nodes:
        if n.op == "arg" and n.attr["role"] in ("input", "target") and copies_batch:
            pass                    # the loop gathers each batch (data[idx]): a copy of its rows
        elif n.op in ("arg", "const") or n.op in VIEW_OPS:
            continue
        if p is not None:
            if n.id in p.inplace:
                continue
            if p.kind.get(n.id) == "ws":
                if p.slot[n.id] in slots:
                    continue
                slots.add(p.slot[n.id])
        size = nbytes(n.type, bindings)
        total += size
        if size > largest_size:
            largest, largest_size = n, size
    return total, largest


def bind_symbols(model, data: dict, rows: int | None) -> dict:
    """Symbol -> size from the data's shapes, with the batch axis (each input's first, symbolic) = rows."""
    decls = {**model.lowered.inputs, **model.lowered.targets}
    out: dict[str, int] = {}
    for name, ty in decls.items():
        arr = data.get(name)
        shape = getattr(arr, "shape", None)
        if shape is None or len(shape) != len(ty.shape):
            continue
        for axis, (d, n) in enumerate(zip(ty.shape, shape)):
            m = Monomial.parse(d)
            if m.coef == 1 and len(m.syms) == 1:     # a bare symbol: its size is the array's
                out.setdefault(m.syms[0], rows if (axis == 0 and rows is not None) else int(n))
    return out


def check_step(model, kind: str, data: dict, rows: int | None, what: str, available: int | None = None) -> None:
    """ResourceError if one call of graph `kind` on `rows` rows of `data` would not fit in memory."""
    available = available_memory() if available is None else available
    if available is None:
        return
    bindings = bind_symbols(model, data, rows)
    graph = model.graph(kind)
    total, largest = step_bytes(graph, bindings, copies_batch=(kind == "train_step"))
    if total > available:
        refuse(total, largest, bindings, available, what,
               "use a smaller batch (--batch N)" if kind == "train_step" else "hold out less data (--validate)",
               arg_prefix="the batch of ")


def refuse(total, largest, bindings, available, what, hint, arg_prefix=""):
    """The ResourceError for a call that needs `total` bytes: the sizes bound, the largest
    array (an argument, or the op and its .nn position), and what to do about it."""
    where = ""
    if largest is not None:
        name = (f"{arg_prefix}{largest.attr['role']} '{largest.attr['name']}'" if largest.op == "arg"
                else f"{largest.op} at {largest.loc}" if largest.loc else largest.op)
        where = f"; the largest array is {name}, {largest.type} = {fmt_bytes(nbytes(largest.type, bindings))}"
    sizes = ", ".join(f"{k} = {v}" for k, v in bindings.items())
    raise ResourceError(f"{what} needs about {fmt_bytes(total)} of memory ({sizes}{where}), more than the "
                        f"{fmt_bytes(available)} available; {hint}")


def check_fit(model, data: dict, batch_size, rows: int, validation_data: dict | None = None) -> None:
    """Before training: one step on a batch, and one pass over the validation data, must fit."""
    available = available_memory()
    if available is None or rows == 0:
        return
    batch = rows if batch_size in (None, "all") else min(int(batch_size), rows)
    check_step(model, "train_step", data, batch, f"one training step (batch of {batch} rows)", available)
    if validation_data:
        val_rows = len(next(iter(validation_data.values())))
        if val_rows:
            check_step(model, "evaluate", validation_data, val_rows,
                       f"evaluating the validation data ({val_rows} rows at once)", available)
