"""A model's inference graph (`predict`) with its current weights, as a standard ONNX model.

Values are emitted on demand from the outputs back, so a pattern rule that
recognises a standard op (Gemm for matmul + bias, Relu for max(x, 0), Softmax
for the max/sub/exp/sum/div chain the library emits) simply never emits the
primitives it replaces. Every other primitive maps to its ONNX operator one to
one. Symbolic dimensions (the batch "B") stay symbolic: graph inputs carry them
as dim_params and shapes that mention them are computed with `Shape` at run time.

A `scan` (a recurrent layer's loop over time) is one ONNX `Scan` node whose body is
exported by this same table (nested scans too), so the file does not grow with the
number of steps: carries are Scan's state variables, sequences its scan inputs along the
scan's `axis` (`reverse` is direction 1), per-step outputs its scan outputs stacked along
the same axis and in the same direction (output t is the step that read slice t, as the
IR's scan and Scan's `scan_output_directions` both define it), and loop invariants are
the outer graph's values, which the body reads by name (ONNX subgraphs see their outer
scopes). Constants of a body are initializers of the main graph, read the same way.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..errors import NNCError
from ..ir.primitives import norm_axes
from ..ir.shapes import dim_div, symbols

ONNX_DTYPE = {"f32": 1, "f64": 11, "i32": 6, "i64": 7, "bool": 9}
NP = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}
SIMPLE = {"exp": "Exp", "log": "Log", "sqrt": "Sqrt", "tanh": "Tanh", "sigmoid": "Sigmoid", "neg": "Neg",
          "abs": "Abs", "sign": "Sign", "stop_gradient": "Identity", "add": "Add", "sub": "Sub", "mul": "Mul",
          "div": "Div", "pow": "Pow", "maximum": "Max", "minimum": "Min", "lt": "Less", "le": "LessOrEqual",
          "gt": "Greater", "ge": "GreaterOrEqual", "eq": "Equal", "where": "Where", "matmul": "MatMul"}
INT64_MAX = 2 ** 63 - 1
# Scan with per-input axes and directions (scan_input_axes, ...) exists from opset 9; opset 8's
# Scan has a batch axis and sequence_lens instead, which an IR scan does not map to
SCAN_MIN_OPSET = 9


class OnnxExportError(NNCError):
    """A graph nnc cannot express in ONNX: names the IR node."""


class _Exporter:
    def __init__(self, graph, weights: dict, opset: int, outer: "_Exporter | None" = None):
        """`outer`: the exporter of the graph a scan body sits in. A body emits its own nodes but
        shares the model's initializers, the input dimensions symbols are read from and the
        name counter (ONNX names are unique across the main graph and all its subgraphs)."""
        from onnx import helper
        self.h = helper
        self.g = graph
        self.weights = weights
        self.opset = opset
        self.nodes, self.inputs = [], []
        self.names: dict[int, str] = {}
        self.results: dict[int, list[str]] = {}     # a scan's id -> its Scan node's outputs
        self.users = graph.users()
        self.inits = outer.inits if outer else []
        self.symbols: dict[str, tuple[str, int]] = outer.symbols if outer else {}   # symbol -> (input, axis)
        self._count = outer._count if outer else itertools.count(1)

    # -- helpers ---------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        return f"{hint}_{next(self._count)}"

    def op(self, op_type: str, inputs, hint: str = "t", **attrs) -> str:
        out = self.fresh(hint)
        self.nodes.append(self.h.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def const(self, arr, hint: str = "c") -> str:
        from onnx import numpy_helper
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def shape_tensor(self, dims) -> str:
        """An int64 [rank] tensor of `dims`, symbolic ones read from the inputs at run time."""
        if all(isinstance(d, int) for d in dims):
            return self.const(np.asarray(dims, dtype=np.int64), "shape")
        parts = []
        for d in dims:
            syms = symbols([d])                     # d = coef * product of its symbols ("4*B")
            coef = dim_div(d, "*".join(syms)) if syms else d
            v = self.const(np.asarray([coef], dtype=np.int64), "dim")
            for s in syms:
                if s not in self.symbols:
                    raise OnnxExportError(f"dimension '{s}' is not a dimension of any input")
                inp, axis = self.symbols[s]
                v = self.op("Mul", [v, self.op("Shape", [inp], "dim", start=axis, end=axis + 1)], "dim")
            parts.append(v)
        return self.op("Concat", parts, "shape", axis=0)

    def only_user(self, node_id: int, user_id: int) -> bool:
        return self.users[node_id] == [user_id]

    # -- emission ----------------------------------------------------------------
    def value(self, nid: int) -> str:
        if nid not in self.names:
            self.names[nid] = self.emit(self.g[nid])
        return self.names[nid]

    def emit(self, n) -> str:
        a = n.attr
        g = self.g
        if n.op == "arg":
            name = a["name"]
            if a["role"] == "input":
                return name
            if a["role"] in ("param", "buffer", "state"):
                from onnx import numpy_helper
                self.inits.append(numpy_helper.from_array(np.asarray(self.weights[name], NP[n.dtype]), name))
                return name
            raise OnnxExportError(f"argument '{name}' with role {a['role']} has no ONNX equivalent")
        if n.op == "const":
            return self.const(np.asarray(a["value"], dtype=NP[n.dtype]).reshape(n.shape) if n.shape
                              else np.asarray(a["value"], dtype=NP[n.dtype]))
        if n.op == "scan":
            return self.scan(n)
        if n.op == "scan_out":
            self.value(n.inputs[0])
            return self.results[n.inputs[0]][a["index"]]
        rule = self.pattern(n)
        if rule is not None:
            return rule
        ins = [self.value(i) for i in n.inputs]
        if n.op in SIMPLE:
            return self.op(SIMPLE[n.op], ins, n.op)
        if n.op == "log1p":
            return self.op("Log", [self.op("Add", [ins[0], self.const(np.asarray(1, NP[n.dtype]))])], "log1p")
        if n.op == "ne":
            return self.op("Not", [self.op("Equal", ins)], "ne")
        if n.op == "cast":
            return self.op("Cast", ins, "cast", to=ONNX_DTYPE[a["dtype"]])
        if n.op in ("sum", "max"):
            axes = list(norm_axes(a["axes"], len(g[n.inputs[0]].shape)))
            keep = int(bool(a.get("keepdims")))
            if n.op == "sum":
                return self.op("ReduceSum", [ins[0], self.const(np.asarray(axes, np.int64))], "sum", keepdims=keep)
            if self.opset >= 18:
                return self.op("ReduceMax", [ins[0], self.const(np.asarray(axes, np.int64))], "max", keepdims=keep)
            return self.op("ReduceMax", ins, "max", axes=axes, keepdims=keep)
        if n.op == "argmax":
            i = self.op("ArgMax", ins, "argmax", axis=a["axis"], keepdims=int(bool(a.get("keepdims"))))
            return self.op("Cast", [i], "argmax", to=ONNX_DTYPE["i32"])
        if n.op == "size":
            shape = g[n.inputs[0]].shape
            dims = [shape[k] for k in norm_axes(a["axes"], len(shape))]
            s = self.op("ReduceProd", [self.shape_tensor(dims)], "size", keepdims=0) if dims else \
                self.const(np.asarray(1, np.int64))
            return self.op("Cast", [s], "size", to=ONNX_DTYPE[n.dtype])
        if n.op in ("reshape", "broadcast_to"):
            return self.op("Reshape" if n.op == "reshape" else "Expand", [ins[0], self.shape_tensor(a["shape"])],
                           n.op)
        if n.op == "transpose":
            return self.op("Transpose", ins, "transpose", perm=list(a["perm"]))
        if n.op == "slice":
            stops = [INT64_MAX if s is None else s for s in a["stop"]]
            r = len(stops)
            return self.op("Slice", [ins[0], self.const(np.asarray(a["start"], np.int64)),
                                     self.const(np.asarray(stops, np.int64)),
                                     self.const(np.arange(r, dtype=np.int64)),
                                     self.const(np.asarray(a["step"], np.int64))], "slice")
        if n.op == "pad":
            if any(a["interior"]):
                raise OnnxExportError(f"node %{n.id}: interior padding has no ONNX operator")
            return self.op("Pad", [ins[0], self.const(np.asarray(list(a["lo"]) + list(a["hi"]), np.int64))], "pad")
        if n.op == "concat":
            return self.op("Concat", ins, "concat", axis=a["axis"])
        if n.op == "gather":
            return self.op("Gather", ins, "gather", axis=a["axis"])
        if n.op in ("conv", "reduce_window"):
            return self.window(n, ins)
        if n.op == "iota" and all(isinstance(d, int) for d in n.shape):
            shape = [1] * len(n.shape)
            shape[a["axis"]] = n.shape[a["axis"]]
            r = np.arange(n.shape[a["axis"]], dtype=NP[n.dtype]).reshape(shape)
            return self.const(np.broadcast_to(r, n.shape).copy())
        raise OnnxExportError(f"node %{n.id} ({n.op}) has no ONNX export (an inference graph should not need it)")

    def window(self, n, ins) -> str:
        """conv / reduce_window on NHWC as ONNX's NCHW Conv / MaxPool / AveragePool between transposes."""
        a, r = n.attr, len(n.shape)
        to_nchw, to_nhwc = [0, r - 1] + list(range(1, r - 1)), [0] + list(range(2, r)) + [1]
        x = self.op("Transpose", [ins[0]], n.op, perm=to_nchw)
        pads = [p[0] for p in a["padding"]] + [p[1] for p in a["padding"]]
        if n.op == "conv":
            w = self.op("Transpose", [ins[1]], "conv", perm=[r - 1, r - 2] + list(range(r - 2)))
            y = self.op("Conv", [x, w], "conv", strides=list(a["stride"]), pads=pads,
                        dilations=list(a["dilation"]), group=a["groups"])
        elif a["kind"] == "max":    # ONNX pads MaxPool with -inf, as reduce_window max does
            y = self.op("MaxPool", [x], "maxpool", kernel_shape=list(a["window"]), strides=list(a["stride"]),
                        pads=pads)
        else:                       # a window sum is the mean over the whole (padded) window times its size
            y = self.op("AveragePool", [x], "sumpool", kernel_shape=list(a["window"]),
                        strides=list(a["stride"]), pads=pads, count_include_pad=1)
            y = self.op("Mul", [y, self.const(np.asarray(float(np.prod(a["window"])), NP[n.dtype]))], "sumpool")
        return self.op("Transpose", [y], n.op, perm=to_nhwc)

    def scan(self, n) -> str:
        """One Scan node for the IR scan `n`; its results' names go to `self.results` (its
        `scan_out`s read them) and the first is the scan's own value."""
        a = n.attr
        nc, ns, axis, length = a["n_carry"], a["n_seq"], a["axis"], a["length"]
        direction = int(bool(a.get("reverse")))
        body = a["body"]
        operands = [self.value(i) for i in n.inputs]
        sub = _Exporter(body, self.weights, self.opset, outer=self)
        inputs = []
        for k, arg in enumerate(body.args):
            if k < nc + ns:           # a state variable or one step of a scan input: the body's own input
                sub.names[arg.id] = self.fresh("state" if k < nc else "step")
                inputs.append(self.h.make_tensor_value_info(sub.names[arg.id], ONNX_DTYPE[arg.dtype],
                                                            list(arg.shape)))
            else:                     # an invariant: the body reads the outer value by its name
                sub.names[arg.id] = operands[k]
        seqs, axes = operands[nc:nc + ns], [axis] * ns
        if ns == 0:                   # Scan counts its steps from its scan inputs: give it one to count
            seqs, axes = [self.const(np.arange(length, dtype=np.int64), "steps")], [0]
            inputs.append(self.h.make_tensor_value_info(self.fresh("step"), ONNX_DTYPE["i64"], []))
        graph = sub.subgraph(body.name, inputs)
        n_out = len(body.outputs) - nc
        outs = [self.fresh("scan") for _ in body.outputs]
        per_output = dict(scan_output_axes=[axis] * n_out, scan_output_directions=[direction] * n_out)
        self.nodes.append(self.h.make_node(
            "Scan", operands[:nc] + seqs, outs, body=graph, num_scan_inputs=len(seqs),
            scan_input_axes=axes, scan_input_directions=[direction] * len(seqs),
            **(per_output if n_out else {})))    # onnx cannot type an empty list attribute
        self.results[n.id] = outs
        return outs[0]

    def subgraph(self, name: str, inputs):
        """This (body) exporter's graph: `inputs`, then the body's outputs, each a name of
        its own (an output that is an input, an outer value or an earlier output is copied)."""
        outputs, taken = [], {i.name for i in inputs}
        for _, nid in self.g.outputs:
            v = self.value(nid)
            produced = any(v in node.output for node in self.nodes)
            if not produced or v in taken:
                v = self.op("Identity", [v], "out")
            taken.add(v)
            n = self.g[nid]
            outputs.append(self.h.make_tensor_value_info(v, ONNX_DTYPE[n.dtype], list(n.shape)))
        return self.h.make_graph(self.nodes, self.fresh(name.replace(".", "_")), inputs, outputs)

    # -- standard operators in place of primitive chains ---------------------------------
    def pattern(self, n):
        g, a = self.g, n.attr
        if n.op == "maximum":
            x, c = (g[i] for i in n.inputs)
            if c.op == "const" and c.shape == () and c.attr["value"] == 0:
                return self.op("Relu", [self.value(x.id)], "relu")
        if n.op == "add" and g[n.inputs[0]].op == "matmul" and self.only_user(n.inputs[0], n.id):
            mm, bias = g[n.inputs[0]], g[n.inputs[1]]
            x, w = (g[i] for i in mm.inputs)
            if len(x.shape) == 2 and len(w.shape) == 2 and len(bias.shape) == 1:
                return self.op("Gemm", [self.value(x.id), self.value(w.id), self.value(bias.id)], "gemm")
        if n.op == "div":
            e, s = (g[i] for i in n.inputs)
            if (e.op == "exp" and s.op == "sum" and s.inputs == (e.id,) and g[e.inputs[0]].op == "sub"):
                sub = g[e.inputs[0]]
                x, m = (g[i] for i in sub.inputs)
                axes = s.attr["axes"]
                if (m.op == "max" and m.inputs == (x.id,) and tuple(m.attr["axes"]) == tuple(axes)
                        and len(axes) == 1 and s.attr.get("keepdims") and m.attr.get("keepdims")):
                    return self.op("Softmax", [self.value(x.id)], "softmax", axis=int(axes[0]))
        return None

    def build(self, name: str):
        h = self.h
        for arg in self.g.args_with_role("input"):
            for k, d in enumerate(arg.shape):
                if isinstance(d, str) and "*" not in d:
                    self.symbols.setdefault(d, (arg.attr["name"], k))
            self.inputs.append(h.make_tensor_value_info(arg.attr["name"], ONNX_DTYPE[arg.dtype], list(arg.shape)))
        outputs = []
        for out_name, nid in self.g.outputs:
            v = self.value(nid)
            if v in {i.name for i in self.inputs} or any(v == t.name for t in self.inits) or out_name != v:
                self.nodes.append(h.make_node("Identity", [v], [out_name]))
            n = self.g[nid]
            outputs.append(h.make_tensor_value_info(out_name, ONNX_DTYPE[n.dtype], list(n.shape)))
        graph = h.make_graph(self.nodes, name, self.inputs, outputs, self.inits)
        return h.make_model(graph, opset_imports=[h.make_opsetid("", self.opset)], producer_name="nncompiler")


def to_onnx(model, opset: int = 17):
    """A `Model`'s predict graph and current parameters and buffers as a checked ModelProto."""
    import onnx
    from ..passes.unroll import unroll
    graph = model.graph("predict")
    if opset < SCAN_MIN_OPSET:     # no Scan a scan maps to (see SCAN_MIN_OPSET): straight-line steps
        graph = unroll(graph)[0]
    weights = {**model.params, **model.buffers}
    proto = _Exporter(graph, weights, opset).build(model.lowered.name)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:     # a bug here, not the user's: still say what failed
        raise OnnxExportError(f"the exported model of {model.lowered.name} fails ONNX's checker: {e}") from None
    return proto


def export_onnx(model, path, opset: int = 17) -> None:
    """Write `model` as an ONNX file (atomically)."""
    from ..fsutil import atomic_write
    data = to_onnx(model, opset).SerializeToString()
    atomic_write(str(path), lambda f: f.write(data), make_dirs=False)
