"""What `nnc compile` prints: a summary of a model, or one stage of its compilation."""
from __future__ import annotations

import numpy as np

from .ir.text import print_graph


def summary(m) -> str:
    low = m.lowered
    lines = [f"{low.kind} {low.name}"]
    for role, decls in (("input", low.inputs), ("target", low.targets)):
        for name, ty in decls.items():
            lines.append(f"  {role:<7}{name}: {ty}")
    lines.append(f"  output {', '.join(low.output_names)}")
    lines.extend(layer_table(m))
    if low.params:
        lines.append("  parameters:")
        width = max(len(n) for n in low.params)
        for name, decl in low.params.items():
            lines.append(f"    {name:<{width}}  {decl.type}  {int(np.prod(m.params[name].shape))}")
        total = sum(int(np.size(v)) for v in m.params.values())
        lines.append(f"    total {total} trainable values")
    if low.buffers:
        lines.append("  buffers (non-trainable state):")
        for name, decl in low.buffers.items():
            lines.append(f"    {name}  {decl.type}")
    if low.params or low.buffers:
        trainable = sum(int(np.size(v)) for v in m.params.values())
        frozen = sum(int(np.prod(d.type.shape)) for d in low.buffers.values())
        lines.append(f"  total params: {trainable + frozen} (trainable {trainable}, non-trainable {frozen})")
    if low.kind == "model":
        opt = low.optimizer
        hyper = ", ".join(f"{k}={v:g}" for k, v in m.hyper.items())
        lines.append(f"  loss {low.loss_kind or 'expression'}; optimizer {opt.name}({hyper})")
        graphs = ("predict", "train_step")
    else:
        graphs = ("predict",)
    lines.append("  ops after optimisation:")
    for kind in graphs:
        g = m.graph(kind)
        counts = g.op_counts()
        body = ", ".join(f"{op} {n}" for op, n in counts.items())
        lines.append(f"    {kind}: {sum(counts.values())} ops ({body})")
    lines.extend(m.backend.summary_lines(m))   # e.g. the triton backend's "kernels per training step: N"
    return "\n".join(lines)


def layer_table(m) -> list[str]:
    """Keras's model.summary() table: each layer call's name, function, output shape (with the
    symbolic batch B), parameter count (its own parameters and buffers) and regularisers."""
    low = m.lowered
    if not low.layers:
        return []
    sizes = {name: int(np.prod(d.type.shape)) for name, d in {**low.params, **low.buffers}.items()}
    rows = [("name", "layer", "output", "params", "regularizers")]
    for info in low.layers:
        count = sum(n for p, n in sizes.items() if p.startswith(info.name + ".")) if info.name else 0
        rows.append((info.name or "-", info.layer, str(info.output), str(count),
                     "; ".join(info.regularizers) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = ["  layers:"]
    for r in rows:
        out.append("    " + "  ".join(c.ljust(w) if i != 3 else c.rjust(w)
                                      for i, (c, w) in enumerate(zip(r[:4], widths))) + "  " + r[4])
    return out


def _graph_kinds(m) -> tuple[str, ...]:
    return ("predict", "train_step") if m.lowered.kind == "model" else ("predict",)


CORE_STAGES = ("ir", "grad", "opt", "python", "passes")


def stage_owner(stage: str) -> str | None:
    """The backend whose `STAGES` list `stage` (mlir -> "mlir", ptx -> "triton"), or None."""
    import importlib

    from .backends import KNOWN
    for name in KNOWN:
        if stage in CORE_STAGES:
            return None
        module = importlib.import_module(f"nncompiler.backends.{name}")
        if stage in getattr(module, "STAGES", ()):
            return name
    return None


def emit(m, stage: str, target: str | None = None) -> str | bytes:
    """One stage of the compilation as text (or bytes for binary stages such as cubin).

    Stages other than the core ones belong to the backend (`Backend.stages`, `Backend.emit_stage`)."""
    low = m.lowered
    if stage not in CORE_STAGES:
        from .errors import NNCError, did_you_mean
        stages = m.backend.stages
        if stage not in stages:
            known = list(CORE_STAGES) + list(stages)
            owner = stage_owner(stage)
            hint = (f"; it is a stage of backend '{owner}': --backend {owner}" if owner
                    else did_you_mean(stage, known))
            raise NNCError(f"--emit {stage}: not a stage of backend '{m.backend_name}'{hint} "
                           f"(stages: {', '.join(known)})")
        return m.backend.emit_stage(m, stage, target)
    if stage == "ir":
        return print_graph(low.forward)
    if stage == "grad":
        if low.kind != "model":
            raise _no_grad(low)
        return print_graph(m.unoptimized_graph("gradients"))
    if stage == "opt":
        return "\n\n".join(print_graph(m.graph(k)) for k in _graph_kinds(m))
    if stage == "python":
        from .backends.numpy import generate
        return "\n\n".join(generate(m.graph(k), precision=m.precision) for k in _graph_kinds(m))
    if stage == "passes":
        from .passes.pipeline import format_records, optimize
        out = []
        for kind in _graph_kinds(m):
            _, records = optimize(m.unoptimized_graph(kind))
            out.append(f"{kind}:\n{format_records(records)}")
        return "\n".join(out)
    raise ValueError(stage)


def _no_grad(low):
    from .errors import NNCError
    return NNCError(f"{low.name} is a graph block: it has no loss to differentiate")
