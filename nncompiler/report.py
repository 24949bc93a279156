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
    if low.params:
        lines.append("  parameters:")
        width = max(len(n) for n in low.params)
        for name, decl in low.params.items():
            lines.append(f"    {name:<{width}}  {decl.type}  {int(np.prod(m.params[name].shape))}")
        total = sum(int(np.size(v)) for v in m.params.values())
        lines.append(f"    total {total} trainable values")
    if low.kind == "model":
        opt = low.optimizer
        hyper = ", ".join(f"{k}={v:g}" for k, v in m._hyper.items())
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
    return "\n".join(lines)


def _graph_kinds(m) -> tuple[str, ...]:
    return ("predict", "train_step") if m.lowered.kind == "model" else ("predict",)


def emit(m, stage: str) -> str:
    low = m.lowered
    if stage == "ir":
        return print_graph(low.forward)
    if stage == "grad":
        if low.kind != "model":
            raise _no_grad(low)
        return print_graph(m.unoptimized_graph("gradients"))
    if stage == "opt":
        return "\n\n".join(print_graph(m.graph(k)) for k in _graph_kinds(m))
    if stage == "python":
        return "\n\n".join(m._backend.emit(m.graph(k)) for k in _graph_kinds(m))
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
