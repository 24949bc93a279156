"""Compile-time memory check: a model whose static tensors or state cannot fit in memory
is refused at the `.nn` position that declares it (before anything is allocated).

Every tensor of a static size, and the model's state -- parameters, buffers and
optimizer slots, which `Model` allocates as soon as it is built -- must fit in
the memory available (ir/limits.py says how that is read).
"""
from __future__ import annotations

from ..errors import error
from ..ir.limits import available_memory, fmt_bytes, nbytes


def _slots(lowered) -> int:
    if lowered.optimizer is None:
        return 0
    from ..library.optimizers import OPTIMIZERS
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
