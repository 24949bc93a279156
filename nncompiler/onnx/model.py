"""An imported ONNX model as a `LoweredModel`, so it becomes the same `Model` a .nn file does.

Inputs are given by their ONNX names (forward(x=...)), or by their argument names, which
differ where an ONNX name is not a .nn name (`input` is the argument `input_`); outputs come in graph order. Float
initializers are parameters (trainable=True) or buffers; their values are set on
the Model after construction (the init graph starts them at zeros), so a large
weight never becomes a literal in any graph. With a loss, a target argument
`target` is added (int32 class labels for the sparse crossentropy, the output's
type otherwise) and the model can `fit`.
"""
from __future__ import annotations

from ..ir.shapes import TensorType
from ..library.context import LayerContext, ParamDecl, Spec
from ..passes.unroll import UNROLL_MAX_LENGTH, unroll
from ..program import LoweredModel
from .importer import OnnxImportError, import_graph, ir_name, load


def lowered_from_onnx(source, trainable: bool = False, loss: str | None = None, input_shapes=None,
                      optimizer: str = "adam", name: str | None = None):
    """(LoweredModel, initial weights {param or buffer name: array})."""
    from ..library.losses import LOSSES
    model = load(source)
    if loss is not None and loss not in LOSSES:
        from ..errors import did_you_mean
        raise OnnxImportError(f"unknown loss '{loss}'{did_you_mean(loss, LOSSES)} (losses: {', '.join(LOSSES)})")
    if loss is not None and not trainable:
        raise OnnxImportError("a loss needs trainable=True (otherwise there is nothing to fit)")
    b, outputs, inputs, weights = import_graph(model, trainable=trainable, input_shapes=input_shapes, name=name)
    out_names = [ir_name(n) for n, _ in outputs]
    graph_outputs = list(zip(out_names, [i for _, i in outputs]))
    targets: dict[str, TensorType] = {}
    if loss is not None:
        pred = outputs[0][1]
        pshape = tuple(b.shape(pred))
        tty = TensorType("i32", pshape[:-1]) if loss == "sparse_categorical_crossentropy" else b.type_of(pred)
        target = b.argument("target", "target", tty)
        targets["target"] = tty
        ctx = LayerContext(b, "", {}, None)
        graph_outputs.append(("loss", LOSSES[loss](ctx, pred, target)))
    # a recurrent op is a scan (ops_rnn.py); the shortest run faster as straight-line code, and
    # the compiler decides that by length, before autodiff, as it does for a .nn file's layers
    forward = unroll(b.build(graph_outputs), UNROLL_MAX_LENGTH)[0]
    decls = {}
    for arg in forward.args_with_role("param", "buffer"):
        n = arg.attr["name"]
        decls[n] = (arg.attr["role"], ParamDecl(n, arg.type, Spec("zeros"), None, 0))
    lowered = LoweredModel(
        name=forward.name, kind="model" if loss else "graph", forward=forward,
        params={n: d for n, (r, d) in decls.items() if r == "param"},
        output_names=out_names,
        inputs={a.attr["name"]: a.type for a in forward.args_with_role("input")},
        targets=targets, loss_kind=loss,
        optimizer=Spec(optimizer) if loss else None,
        file=str(source) if isinstance(source, str) else "<onnx>",
        buffers={n: d for n, (r, d) in decls.items() if r == "buffer"},
        aliases={n: ir_name(n) for n in inputs if ir_name(n) != n})
    return lowered, weights
