"""Commands that read a program without running it: `nnc compile` (a summary or any
compilation stage), `nnc opt` (passes over textual IR, like mlir-opt) and `nnc graph` (Graphviz)."""
from __future__ import annotations

import os
import sys

from ..errors import NNCError
from .outputs import write_binary, write_text


def cmd_compile(args) -> int:
    import nncompiler as nnc
    from ..report import emit, stage_owner, summary
    backend = args.backend
    if backend is None:          # `--emit mlir` means the mlir backend, not "numpy has no mlir stage"
        backend = stage_owner(args.emit) if args.emit else None
        if backend:
            print(f"note: --emit {args.emit} is a stage of backend '{backend}'; compiling with "
                  f"--backend {backend}", file=sys.stderr)
        backend = backend or "numpy"
    m = nnc.compile(args.file, backend=backend, model=args.model, precision=args.precision)
    text = emit(m, args.emit, target=args.target) if args.emit else summary(m)
    if isinstance(text, bytes):  # a binary stage (cubin) must go to a file
        if not args.output:
            raise NNCError(f"--emit {args.emit} is binary; name a file with -o")
        write_binary(args.output, lambda f: f.write(text))
        return 0
    write_text(text, args.output)
    return 0


def cmd_opt(args) -> int:
    from ..ir.text import parse_graphs, print_graphs
    from ..passes.pipeline import PASSES, format_records, optimize, run_pass
    unknown = [p for p in args.passes if p not in PASSES]
    if unknown:
        raise NNCError(f"unknown pass '{unknown[0]}' (known: {', '.join(PASSES)})")
    with open(args.file, encoding="utf-8") as f:
        graphs = parse_graphs(f.read(), args.file)
    out, records = [], []
    for g in graphs:
        if args.passes:
            for name in args.passes:
                g, record = run_pass(g, name)
                records.append(record)
        else:
            g, recs = optimize(g)
            records.extend(recs)
        out.append(g)
    if args.records:
        print(format_records(records, verbose=True), file=sys.stderr)
    write_text(print_graphs(out), args.output)
    return 0


def cmd_graph(args) -> int:
    import nncompiler as nnc
    from ..viz import INSTALL_HINT, dot_available, render, to_dot
    out = args.output
    ext = os.path.splitext(out)[1].lower() if out else ".dot"
    if ext not in (".dot", ".gv", ".svg", ".png", ".pdf"):
        raise NNCError(f"-o {out}: expected a .svg, .png, .pdf or .dot file")
    m = nnc.compile(args.file, model=args.model)
    text = to_dot(m, ops=args.ops, grad=args.grad)
    if out is None:
        sys.stdout.write(text)
        return 0
    if ext in (".dot", ".gv"):
        write_text(text, out)
        return 0
    if not dot_available():
        fallback = os.path.splitext(out)[0] + ".dot"
        write_text(text, fallback)
        print(f"wrote {fallback} instead of {out}: Graphviz's 'dot' is not installed; {INSTALL_HINT}",
              file=sys.stderr)
        return 0
    render(text, out)
    return 0
