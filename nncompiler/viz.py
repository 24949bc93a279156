"""Pictures of a model's graph, through Graphviz's DOT language.

    nnc graph examples/iris.nn -o iris.svg          # one box per layer
    nnc graph examples/iris.nn --ops -o ops.svg     # every IR op, boxed by layer
    nnc graph examples/iris.nn --grad -o grad.svg   # with the backward pass

Layers are the `.nn` statements the IR nodes come from: every node carries a
`loc` pointing at its source line, and the name bound on that line (`h` in
`h = dense(x, 16)`, `loss` for the loss line) names the layer; a parameter
belongs to the layer its prefix names (`h.kernel` to `h`). The same grouping
gives the name scopes of the TensorBoard graph (train/tensorboard.py).

`to_dot` needs nothing but Python; `render` runs Graphviz's `dot` program,
which is a system package (`apt-get install graphviz`, `brew install graphviz`).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

from .errors import NNCError
from .ir.graph import Graph

INSTALL_HINT = ("install Graphviz for pictures: apt-get install graphviz (Debian/Ubuntu) "
                "or brew install graphviz (macOS)")

_BINDING = re.compile(r"\s*(?:param\s+|input\s+|target\s+|buffer\s+)?([A-Za-z_][A-Za-z_0-9]*)\s*[:=]")
_KEYWORD = re.compile(r"\s*([A-Za-z_][A-Za-z_0-9]*)")
_ROLE_GROUP = {"state": "optimizer", "hyper": "optimizer", "rng": "rng"}


def _source_line(sources: dict, loc) -> str | None:
    text = sources.get(loc.file) if loc is not None else None
    if text is None:
        return None
    lines = text.splitlines()
    return lines[loc.line - 1] if 1 <= loc.line <= len(lines) else None


def line_key(line: str) -> str | None:
    """The layer a source line defines: `h = dense(...)` -> h, `loss mse(...)` -> loss."""
    m = _BINDING.match(line)
    if m:
        return m.group(1)
    m = _KEYWORD.match(line)
    if not m:
        return None
    # metrics are located at the train block's header (`train Iris {`)
    return {"train": "metrics"}.get(m.group(1), m.group(1))


def layer_groups(g: Graph, sources: dict) -> dict[int, str]:
    """node id -> layer name ('' for a node with no source line)."""
    out: dict[int, str] = {}
    for n in g.nodes:
        if n.op == "arg":
            name, role = n.attr["name"], n.attr["role"]
            if role == "param" or role == "buffer":
                out[n.id] = name.split(".", 1)[0]
            elif role in _ROLE_GROUP:
                out[n.id] = _ROLE_GROUP[role]
            else:
                out[n.id] = name
            continue
        line = _source_line(sources, n.loc)
        key = line_key(line) if line is not None else None
        out[n.id] = key or (f"line {n.loc.line}" if n.loc is not None else "")
    # a node with no source line (autodiff's seed, a folded constant) joins its first user's layer
    users = g.users()
    for n in reversed(g.nodes):
        if not out[n.id]:
            near = [out[u] for u in users[n.id] if out[u]] or [out[i] for i in n.inputs if out[i]]
            out[n.id] = near[0] if near else "other"
    return out


def layer_labels(g: Graph, sources: dict, groups: dict[int, str]) -> dict[str, str]:
    """layer name -> the statement that defines it (`h = dense(x, 16, activation=relu)`)."""
    out: dict[str, str] = {}
    for n in g.nodes:
        key = groups[n.id]
        if key in out or n.loc is None:
            continue
        line = _source_line(sources, n.loc)
        if line is not None:
            out[key] = re.sub(r"\s+", " ", line.split("#", 1)[0].strip())
    metrics = [name[len("metric."):] for name, _ in g.outputs if name.startswith("metric.")]
    if "metrics" in out and metrics:
        out["metrics"] = "metrics " + ", ".join(metrics)
    return out


from .ir.text import value_names  # noqa: E402  (the names `--emit ir` prints)


def _q(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**kw) -> str:
    return "[" + ", ".join(f"{k}={_q(v)}" for k, v in kw.items() if v is not None) + "]"


def _fmt_const(n) -> str:
    v = n.attr.get("value")
    if isinstance(v, float):
        return f"{v:.4g}"
    text = str(v)
    return text if len(text) <= 12 else text[:11] + "…"


def model_graph(model, grad: bool = False) -> tuple[Graph, set[int]]:
    """The graph to draw and the ids of its backward nodes (empty unless `grad`)."""
    low = model.lowered
    if not grad:
        return low.forward, set()
    if low.kind != "model" or "loss" not in dict(low.forward.outputs):
        raise NNCError(f"{low.name} is a graph block: it has no loss, so no backward graph (drop --grad)")
    from .program import select_outputs
    g = model.unoptimized_graph("gradients")
    # the gradients graph starts with the forward nodes the loss needs, then appends the backward pass
    forward_ids = {n.id for n in select_outputs(low.forward, ["loss"], "forward").nodes}
    return g, {n.id for n in g.nodes if n.id not in forward_ids}


def to_dot(model, ops: bool = False, grad: bool = False) -> str:
    """The model's graph in DOT: one box per layer, or (`ops`) one node per IR op clustered by layer."""
    g, backward = model_graph(model, grad)
    sources = model.lowered.sources
    groups = layer_groups(g, sources)
    labels = layer_labels(g, sources, groups)
    return (_ops_dot if ops else _layers_dot)(model.lowered.name, g, groups, labels, backward)


_HEADER = ['  rankdir=TB;', '  node [fontname="Helvetica", fontsize=11];', '  edge [fontname="Helvetica", fontsize=9];']


def _layers_dot(name: str, g: Graph, groups, labels, backward) -> str:
    def box(i: int) -> str:
        return f"grad {groups[i]}" if i in backward else groups[i]

    arg_kinds: dict[str, str] = {}
    params: dict[str, list] = {}
    order: list[str] = []
    for n in g.nodes:
        key = box(n.id)
        if n.op == "arg":
            role = n.attr["role"]
            if role in ("param", "buffer"):
                params.setdefault(key, []).append(n)
                continue
            arg_kinds.setdefault(key, role)
        if key not in order:
            order.append(key)
    for key in params:            # a standalone parameter (`param slope: f32[]`) is a node of its own
        if key not in order:
            order.append(key)
            arg_kinds.setdefault(key, "param")
    # a layer's result: its last value used outside it (or returned); else its last value
    users, returned = g.users(), {i for _, i in g.outputs}
    shapes: dict[str, str] = {}
    leaving: set[str] = set()
    for n in g.nodes:
        key = box(n.id)
        escapes = n.id in returned or any(box(u) != key for u in users[n.id])
        if escapes or key not in leaving:
            shapes[key] = str(n.type)
        if escapes:
            leaving.add(key)

    lines = [f"digraph {_q(name)} {{", *_HEADER]
    for key in order:
        role = arg_kinds.get(key)
        if role in ("input", "target"):
            label = f"{key}\n{role} {shapes[key]}"
            style = _attrs(label=label, shape="ellipse", style="filled", fillcolor="#dbe9f6")
            lines.append(f"  {_q(key)} {style};")
            continue
        if role == "param":
            label = "\n".join([key] + [f"param {p.type}" if p.attr["name"] == key else f"{p.attr['name']}: {p.type}"
                                        for p in params[key]])
            lines.append(f"  {_q(key)} {_attrs(label=label, shape='ellipse', style='filled', fillcolor='#f6ecd0')};")
            continue
        if role in ("state", "hyper", "rng"):
            lines.append(f"  {_q(key)} {_attrs(label=key, shape='ellipse', style='dashed')};")
            continue
        parts = [key]
        stmt = labels.get(key[len("grad "):] if key.startswith("grad ") else key)
        if stmt and stmt != key:
            parts.append(stmt if len(stmt) <= 48 else stmt[:47] + "…")
        for p in params.get(key, []):
            parts.append(f"{p.attr['name']}: {p.type}")
        parts.append(f"→ {shapes[key]}")
        color = "#fde2cf" if key.startswith("grad ") else "#eeeeee"
        style = _attrs(label="\n".join(parts), shape="box", style="rounded,filled", fillcolor=color)
        lines.append(f"  {_q(key)} {style};")
    seen = set()
    for n in g.nodes:
        for i in n.inputs:
            a, b = box(i), box(n.id)
            if a != b and (a, b) not in seen:
                seen.add((a, b))
                lines.append(f"  {_q(a)} -> {_q(b)} {_attrs(label=str(g[i].type))};")
    for out_name, i in g.outputs:
        node = f"output {out_name}"
        lines.append(f"  {_q(node)} {_attrs(label=out_name, shape='plaintext')};")
        lines.append(f"  {_q(box(i))} -> {_q(node)} {_attrs(label=str(g[i].type))};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _ops_dot(name: str, g: Graph, groups, labels, backward) -> str:
    names = value_names(g)
    clusters: dict[str, list] = {}
    for n in g.nodes:
        key = groups[n.id]
        if n.op == "arg" and n.attr["role"] in ("input", "target"):
            key = ""
        key = f"grad {key}" if n.id in backward and key else key
        clusters.setdefault(key, []).append(n)

    def node_line(n, indent: str) -> str:
        if n.op == "arg":
            label = f"{n.attr['name']}\n{n.attr['role']} {n.type}"
            style = _attrs(label=label, shape="ellipse", style="filled", fillcolor="#dbe9f6")
            return f"{indent}{_q(names[n.id])} {style};"
        op = f"const {_fmt_const(n)}" if n.op == "const" else n.op
        label = f"{names[n.id]} = {op}\n{n.type}"
        return f"{indent}{_q(names[n.id])} {_attrs(label=label, shape='box', fontsize='10')};"

    lines = [f"digraph {_q(name)} {{", *_HEADER]
    for idx, (key, members) in enumerate(clusters.items()):
        if not key:
            lines.extend(node_line(n, "  ") for n in members)
            continue
        base = key[len("grad "):] if key.startswith("grad ") else key
        title = key + (f": {labels[base]}" if labels.get(base) and labels[base] != base else "")
        color = "#fde2cf" if key.startswith("grad ") else "#f4f4f4"
        lines.append(f"  subgraph cluster_{idx} {{")
        lines.append(f"    label={_q(title)}; style=\"rounded,filled\"; fillcolor={_q(color)};")
        lines.extend(node_line(n, "    ") for n in members)
        lines.append("  }")
    for n in g.nodes:
        for i in n.inputs:
            lines.append(f"  {_q(names[i])} -> {_q(names[n.id])};")
    for out_name, i in g.outputs:
        node = f"output {out_name}"
        lines.append(f"  {_q(node)} {_attrs(label=out_name, shape='plaintext')};")
        lines.append(f"  {_q(names[i])} -> {_q(node)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_available() -> bool:
    return shutil.which("dot") is not None


def render(dot_text: str, path: str, fmt: str | None = None) -> None:
    """Run `dot -T<fmt>` and write the picture to `path` (atomically)."""
    fmt = fmt or os.path.splitext(path)[1].lstrip(".").lower()
    exe = shutil.which("dot")
    if exe is None:
        raise NNCError(f"Graphviz's 'dot' program is not installed; {INSTALL_HINT}")
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NNCError(f"dot -T{fmt} failed: {e}") from None
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        why = msg[0] if msg else f"exit status {proc.returncode}"
        raise NNCError(f"dot -T{fmt} failed: {why}")
    from .fsutil import atomic_write
    try:
        atomic_write(path, proc.stdout, make_dirs=False)
    except OSError as e:
        raise NNCError(f"{path}: cannot write: {e.strerror or e}") from None
