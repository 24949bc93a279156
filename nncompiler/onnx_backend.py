"""`onnx.backend.base.Backend` on nnc: ONNX's conformance suite (onnx.backend.test) drives this.

`prepare` checks and imports the model once with its declared input shapes; `run`
re-imports it specialised to the shapes of the arrays it is given when those differ
(or are symbolic), because nnc compiles for static shapes except the symbolic ones
the IR can carry. On "CPU" a graph runs in the IR's reference interpreter
(ir/interpret.py, the numpy backend's semantics, one numpy call per primitive); on
"CUDA", claimed where torch sees a CUDA GPU and triton is installed, it runs as the
Triton backend's kernels (backends/triton), outputs fetched back as numpy arrays.

It sits above onnx/ and backends/ in the layer table (docs/design.md) because it
runs what onnx/ imports on what backends/ compile.
"""
from __future__ import annotations

import functools

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from .errors import NNCError
from .ir.interpret import interpret
from .onnx.importer import OnnxImportError, import_graph, load

DEVICES = ("CPU", "CUDA")


def cuda_available() -> bool:
    """A CUDA GPU torch can see, and triton to generate its kernels."""
    try:
        import torch
        import triton  # noqa: F401
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _triton_runner(graph):
    """The graph compiled by the Triton backend: {arg: array} -> {output: numpy array}."""
    from .backends import get_backend
    backend = get_backend("triton")
    compiled = backend.compile(graph)
    return lambda args: {k: backend.to_numpy(v) for k, v in compiled(args).items()}


class NncRep(BackendRep):
    def __init__(self, model, device: str = "CPU"):
        self.model, self.device = model, device
        self._compiled: dict[tuple, tuple] = {}
        self._names = [vi.name for vi in model.graph.input
                       if vi.name not in {t.name for t in model.graph.initializer}]
        try:
            self._compile(None)              # import errors surface at prepare time ...
        except OnnxImportError as e:
            if "must be known at import time" not in str(e):
                raise                        # ... except needing this run's integer inputs (see run)

    def _compile(self, shapes, pinned=None):
        key = (tuple(sorted(shapes.items())) if shapes else None,
               tuple((k, v.dtype.str, v.tobytes()) for k, v in sorted((pinned or {}).items())))
        if key not in self._compiled:
            b, outputs, inputs, weights = import_graph(self.model, input_shapes=shapes, pinned=pinned)
            graph = b.build(outputs)
            # the IR's reference interpreter computes what the numpy backend does, from layer 1
            run = _triton_runner(graph) if self.device == "CUDA" else functools.partial(interpret, graph)
            self._compiled[key] = (run, inputs, weights, [n for n, _ in outputs])
        return self._compiled[key]

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            if not isinstance(inputs, (list, tuple)):
                inputs = [inputs]
            feeds = dict(zip(self._names, inputs))
        shapes = {k: tuple(np.shape(v)) for k, v in feeds.items()}
        try:
            fn, names, weights, outs = self._compile(shapes)
        except OnnxImportError as e:
            if "must be known at import time" not in str(e):
                raise
            # an op needs this run's integer inputs (shape, axes, pads) as numbers: specialise on them
            pinned = {k: np.asarray(v) for k, v in feeds.items()
                      if np.asarray(v).dtype.kind in "iu" and np.size(v) <= 64}
            fn, names, weights, outs = self._compile(shapes, pinned)
        args = {names[k]: np.asarray(v) for k, v in feeds.items() if k in names}
        args.update(weights)
        with np.errstate(all="ignore"):
            res = fn(args)
        return tuple(np.asarray(res[o]) for o in outs)


class NncBackend(Backend):
    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs):
        model = load(model)
        super().prepare(model, device, **kwargs)
        if not cls.supports_device(device):
            why = ("needs a CUDA GPU (torch.cuda.is_available()) and triton" if device == "CUDA"
                   else f"devices: {', '.join(DEVICES)}")
            raise NNCError(f"device '{device}' is not available here: {why}")
        return NncRep(model, device)

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device: str = "CPU", outputs_info=None, **kwargs):
        from onnx import helper
        super().run_node(node, inputs, device=device, outputs_info=outputs_info, **kwargs)
        ins = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype),
                                             np.shape(v)) for name, v in zip(node.input, inputs)]
        outs = [helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None) for name in node.output]
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        model = helper.make_model(helper.make_graph([node], "node", ins, outs),
                                  opset_imports=[helper.make_opsetid("", opset)])
        return cls.prepare(model, device).run(list(inputs))

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """CPU always; CUDA where a GPU and triton are (the Triton backend runs the graphs)."""
        return device == "CPU" or (device == "CUDA" and cuda_available())


prepare = NncBackend.prepare
run_model = NncBackend.run_model
run_node = NncBackend.run_node
supports_device = NncBackend.supports_device
