"""Commands that move a model between formats: `nnc export` (.nnx or ONNX) and
`nnc import` (ONNX to a .nn graph block with a side checkpoint)."""
from __future__ import annotations

import os
import sys

from .outputs import check_writable


def cmd_export(args) -> int:
    import nncompiler as nnc
    fmt = args.format or ("onnx" if args.output.lower().endswith(".onnx") else "nnx")
    m = nnc.compile(args.file, model=args.model)
    if args.weights:
        nnc.load_weights(m, args.weights)
    elif m.lowered.params and not args.file.lower().endswith(".nnx"):
        print("note: no --weights given: exported with freshly initialised parameters", file=sys.stderr)
    check_writable(args.output)
    if fmt == "onnx":
        from ..onnx.export import export_onnx
        export_onnx(m, args.output, opset=args.opset)
    else:
        from ..train.nnx import save_nnx
        save_nnx(m, args.output, train=not args.no_train)
    return 0


def cmd_import(args) -> int:
    """Write the ONNX model as a .nn graph block that compiles to the forward IR of
    `from_onnx(file, trainable=True)`; its weights (parameters) go to a side checkpoint."""
    import nncompiler as nnc
    from ..fsutil import atomic_write
    from ..onnx.to_nn import graph_to_nn
    m = nnc.from_onnx(args.file, trainable=True)
    ckpt = args.weights or os.path.splitext(args.output)[0] + ".npz"
    text = graph_to_nn(m.lowered.forward, source=os.path.basename(args.file),
                       weights=os.path.basename(ckpt) if m.params else "")
    check_writable(args.output)
    if m.params:
        check_writable(ckpt)
    atomic_write(args.output, text, make_dirs=False)
    if m.params:
        m.save(ckpt)
        print(f"note: weights in {ckpt}: give it as --weights (or nnc.load_weights) with {args.output}",
              file=sys.stderr)
    return 0
