"""Resource limits: sizes that cannot be represented, and models that cannot fit in memory.

Two kinds of checks, both before anything is allocated:

* **Representable shapes.** A dimension must be below 2^31 (index arithmetic in
  int32 -- `iota`, `argmax`, `one_hot`, gather indices -- must not wrap) and a
  tensor's element count below 2^63 (numpy's shape products are int64). The IR
  builder calls `check_type` on every node it emits, so a shape computed by
  broadcasting, reshaping or flattening is checked where it is made, and the
  front end reports it at the `.nn` position that made it.

* **Memory.** At compile time (`check_model`): every tensor of a static size,
  and the model's state -- parameters, buffers and optimizer slots, which
  `Model` allocates as soon as it is built -- must fit in the memory available.
  At fit time (`check_step`): the arrays one training step allocates, from the
  train_step graph's node shapes with the batch dimension bound to the batch
  size, and one validation pass likewise. A step's estimate follows the numpy
  backend's memory plan: generated code keeps every temporary alive until the
  step returns, except values written in place into a dead operand, views
  (reshape, transpose, broadcast, slice) and pooled workspace buffers, so the
  estimate is the sum of the fresh allocations.

The memory available is `NNC_MEMORY_LIMIT` if set (bytes, or with a unit:
`512M`, `2G`, `1.5GiB`), else MemAvailable from /proc/meminfo, else the
free physical pages from `os.sysconf`; when none can be read, nothing is
refused.
"""
from __future__ import annotations

import math
import os
import re

from .errors import NNCError, ShapeError, error

MAX_DIM = 2**31 - 1          # int32 index arithmetic
MAX_ELEMENTS = 2**63 - 1     # numpy's int64 shape products
_ITEMSIZE = {"f32": 4, "f64": 8, "i32": 4, "i64": 8, "bool": 1}
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20,
          "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}


class ResourceError(NNCError):
    """A model or a training step that would not fit in the memory available."""


# --------------------------------------------------------------------------- sizes

def fmt_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'; huge sizes stay readable ('8.0e+12 TiB')."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            if unit == "bytes":
                return f"{int(n)} bytes"
            return f"{n:.1f} {unit}" if n < 1e6 else f"{n:.1e} {unit}"
        n /= 1024
    return f"{n} TiB"  # pragma: no cover


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise NNCError(f"NNC_MEMORY_LIMIT: expected a size such as 4G, 512M or 1000000000, got '{text}'")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def available_memory() -> int | None:
    """Bytes of memory a model may use (see the module docstring), or None if unknown."""
    limit = os.environ.get("NNC_MEMORY_LIMIT")
    if limit:
        return parse_size(limit)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _monomial(d) -> tuple[int, list[str]]:
    if isinstance(d, int):
        return d, []
    coef, syms = 1, []
    for part in str(d).split("*"):
        part = part.strip()
        if part.isdigit():
            coef *= int(part)
        else:
            syms.append(part)
    return coef, syms


def elements(shape, bindings: dict | None = None) -> int:
    """The element count of `shape` with symbols bound (unbound ones count as 1)."""
    bindings = bindings or {}
    n = 1
    for d in shape:
        coef, syms = _monomial(d)
        n *= coef * math.prod(int(bindings.get(s, 1)) for s in syms)
    return n


def nbytes(ty, bindings: dict | None = None) -> int:
    return elements(ty.shape, bindings) * _ITEMSIZE.get(ty.dtype, 8)


def check_type(ty) -> None:
    """ShapeError unless every dimension is below 2^31 and the static element count below 2^63."""
    static = 1
    for d in ty.shape:
        coef = d if type(d) is int else _monomial(d)[0]    # (called for every node the builder emits)
        if coef > MAX_DIM:
            text = str(d)
            if len(text) > 24:
                text = f"{text[:12]}...{text[-6:]} ({len(text)} {'digits' if text.isdigit() else 'characters'})"
            raise ShapeError(f"dimension {text} is too large (the limit is 2^31 - 1 = {MAX_DIM}, so that "
                             "index arithmetic cannot overflow)")
        static *= coef
    if static > MAX_ELEMENTS:
        raise ShapeError(f"a tensor of shape [{', '.join(str(d) for d in ty.shape)}] has about "
                         f"2^{static.bit_length() - 1} elements, more than 2^63 - 1")


# --------------------------------------------------------------------------- compile time

def _slots(lowered) -> int:
    if lowered.optimizer is None:
        return 0
    from .library.optimizers import OPTIMIZERS
    opt = OPTIMIZERS.get(lowered.optimizer.name)
    return len(opt.slots) if opt else 0


def check_model(lowered, available: int | None = None):
    """CompileError (positioned) if a static tensor or the model's state cannot fit in memory."""
    available = available_memory() if available is None else available
    if available is None:
        return
    # any single value of a static size (symbols count as 1: a lower bound)
    seen = set()
    for graph in (lowered.forward, lowered.inference):
        if graph is None:
            continue
        for n in graph.nodes:
            if n.op == "arg" or n.id in seen:
                continue
            seen.add(n.id)
            size = nbytes(n.type)
            if size > available:
                raise error(n.loc, f"this value ({n.type}) needs {fmt_bytes(size)}, more than the "
                            f"{fmt_bytes(available)} of memory available")
    # the state the model allocates when it is built
    decls = {**lowered.params, **lowered.buffers}
    if not decls:
        return
    sizes = {name: nbytes(d.type) for name, d in decls.items()}
    params = sum(sizes[n] for n in lowered.params)
    buffers = sum(sizes[n] for n in lowered.buffers)
    slots = _slots(lowered)
    # initialisers draw in float64 before rounding to float32: the largest one's draw is extra
    biggest = max(sizes, key=sizes.get)
    total = params * (1 + slots) + buffers + 2 * sizes[biggest]
    if total > available:
        d = decls[biggest]
        parts = [f"{fmt_bytes(params)} of parameters"]
        if slots:
            parts.append(f"{fmt_bytes(params * slots)} of optimizer state ({lowered.optimizer.name}: "
                         f"{slots} slot{'s' if slots > 1 else ''} per parameter)")
        if buffers:
            parts.append(f"{fmt_bytes(buffers)} of buffers")
        raise error(d.loc, f"model {lowered.name} needs about {fmt_bytes(total)} of memory "
                    f"({', '.join(parts)}, and initialising), more than the {fmt_bytes(available)} "
                    f"available; the largest is '{biggest}' ({d.type}, {fmt_bytes(sizes[biggest])})")


# --------------------------------------------------------------------------- fit time

def step_bytes(graph, bindings: dict, copies_batch: bool = False) -> tuple[int, object]:
    """(bytes one call of `graph` allocates, the largest node) per the numpy backend's plan;
    `copies_batch`: the data arguments are fresh copies too (a training batch)."""
    from .backends.numpy.memory import VIEW_OPS, plan
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
            if isinstance(d, str) and re.fullmatch(r"[A-Za-z_]\w*", d):
                out.setdefault(d, rows if (axis == 0 and rows is not None) else int(n))
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
        where = ""
        if largest is not None:
            what_ = (f"the batch of {largest.attr['role']} '{largest.attr['name']}'" if largest.op == "arg"
                     else f"{largest.op} at {largest.loc}" if largest.loc else largest.op)
            where = f"; the largest array is {what_}, {largest.type} = {fmt_bytes(nbytes(largest.type, bindings))}"
        sizes = ", ".join(f"{k} = {v}" for k, v in bindings.items())
        raise ResourceError(f"{what} needs about {fmt_bytes(total)} of memory ({sizes}{where}), more than "
                            f"the {fmt_bytes(available)} available; use a smaller batch (--batch N)"
                            if kind == "train_step" else
                            f"{what} needs about {fmt_bytes(total)} of memory ({sizes}{where}), more than "
                            f"the {fmt_bytes(available)} available; hold out less data (--validate)")


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
