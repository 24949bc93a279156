"""ONNX ModelProto -> nnc's forward IR (a `LoweredModel`), through one op table.

Every ONNX value during import is either an IR node id (computed at run time)
or a numpy array known at import time (initializers, `Constant`, and whatever
is computed only from them, e.g. a `Shape -> Gather -> Concat` chain feeding a
`Reshape`). Ops whose operands are all known are folded here, by lowering
them into a scratch graph and evaluating it with the reference (numpy)
semantics, so shape arithmetic never reaches the IR and `Reshape`/`Slice`/
`Pad` see their shapes as compile-time numbers, which the IR requires.

Float initializers become parameters (`trainable=True`) or buffers (frozen
state), so large weights never turn into literal constants; integer and bool
initializers are import-time constants.
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import NNCError, ShapeError
from ..frontend.grammar import BLOCK_KEYWORDS, MODEL_KEYWORDS
from ..ir.graph import Builder
from ..ir.interpret import interpret
from ..ir.shapes import TensorType
from .symbolic import SymInts

MIN_OPSET = 13
# words a .nn block cannot use as a name: an ONNX name that is one gets a trailing `_`
NN_RESERVED_WORDS = (*BLOCK_KEYWORDS, *MODEL_KEYWORDS, "true", "false")

# ONNX TensorProto element types nnc has a dtype for
DTYPES = {1: "f32", 11: "f64", 6: "i32", 7: "i64", 9: "bool"}
NP_DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}
ONNX_TYPE_NAMES = {0: "undefined", 1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
                   7: "int64", 8: "string", 9: "bool", 10: "float16", 11: "double", 12: "uint32",
                   13: "uint64", 14: "complex64", 15: "complex128", 16: "bfloat16",
                   17: "float8e4m3fn", 18: "float8e4m3fnuz", 19: "float8e5m2", 20: "float8e5m2fnuz", 21: "uint4",
                   22: "int4", 23: "float4e2m1", 24: "float8e8m0", 25: "uint2", 26: "int2"}


class OnnxImportError(NNCError):
    """An ONNX model nnc cannot import: names the node, its op and the opset."""


def dtype_of(elem_type: int, where: str) -> str:
    if elem_type not in DTYPES:
        name = ONNX_TYPE_NAMES.get(elem_type, str(elem_type))
        raise OnnxImportError(f"{where}: data type {name} is not supported "
                              f"(supported: float, double, int32, int64, bool)")
    return DTYPES[elem_type]


class _ImportBuilder(Builder):
    """The imported graph's builder: a slice's stop on a static axis is the number the
    .nn front end writes there (`x[0:1, :]` stops at the size), never none, so
    `nnc import` can spell every slice the lowerings emit."""

    def slice(self, x: int, start, stop, step) -> int:
        stop = tuple(d if e is None and isinstance(d, int) and st > 0 else e
                     for d, e, st in zip(self.shape(x), stop, step))
        return self.emit("slice", (x,), start=tuple(start), stop=stop, step=tuple(step))


def ir_name(name: str) -> str:
    """An ONNX value name as an IR argument name that is also a .nn name ([A-Za-z_][A-Za-z0-9_]*,
    not a keyword), so `nnc import` can write it back; other names are unchanged (torch's
    `0.weight` is `_0_weight`, an input named `input` is `input_`)."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    s = s if re.match(r"[A-Za-z_]", s) else "_" + s
    return s + "_" if s in NN_RESERVED_WORDS else s


def _symbol(name: str) -> str:
    s = re.sub(r"\W", "_", name)
    return s if re.match(r"[A-Za-z_]", s) else "d_" + s


class NodeCtx:
    """What one lowering function sees: the builder, the node's attributes and operands."""

    def __init__(self, b: Builder, node, opset: int, env: dict, where: str):
        self.b = b
        self.node = node
        self.opset = opset
        self.env = env
        self.where = where
        self.attrs = {a.name: a for a in node.attribute}
        self.read: set[str] = set()          # attributes a lowering looked at (the rest are unsupported)

    # -- errors ---------------------------------------------------------------
    def fail(self, message: str) -> OnnxImportError:
        return OnnxImportError(f"{self.where}: {message}")

    # -- attributes ------------------------------------------------------------
    def attr(self, name: str, default=None):
        from onnx import helper
        self.read.add(name)
        a = self.attrs.get(name)
        if a is None:
            return default
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            return v.decode()
        if hasattr(v, "dims") and hasattr(v, "data_type"):      # a TensorProto
            from onnx import numpy_helper
            return numpy_helper.to_array(v)
        if isinstance(v, list):
            return [x.decode() if isinstance(x, bytes) else x for x in v]
        return v

    def check_attrs(self) -> None:
        """An attribute no lowering read would be silently ignored: refuse it instead."""
        extra = sorted(set(self.attrs) - self.read - IGNORED_ATTRS.get(self.node.op_type, set()))
        if extra:
            read = sorted(self.read)
            raise self.fail(f"attribute '{extra[0]}' is not supported (supported: {', '.join(read) or 'none'})")

    # -- operands ---------------------------------------------------------------
    @property
    def n_inputs(self) -> int:
        return len(self.node.input)

    def has(self, i: int) -> bool:
        return i < len(self.node.input) and self.node.input[i] != ""

    def value(self, i: int):
        return self.env[self.node.input[i]]

    def is_const(self, i: int) -> bool:
        return isinstance(self.value(i), (np.ndarray, Weight))

    def const(self, i: int, what: str) -> np.ndarray:
        v = self.value(i)
        if isinstance(v, Weight):
            return v.array
        if isinstance(v, SymInts):
            if v.static:
                return v.array()
            raise self.fail(f"input {i} ({what}) depends on symbolic dimensions {list(v.dims)}; "
                            f"{what} must be static here")
        if not isinstance(v, np.ndarray):
            raise self.fail(f"input {i} ({what}) must be known at import time (an initializer, a Constant, "
                            f"or computed from static shapes); nnc's IR has static {what}")
        return v

    def x(self, i: int) -> int:
        """Operand i as an IR node (an import-time array becomes a `const` node)."""
        v = self.value(i)
        if isinstance(v, Weight):
            return v.materialise(self.b)
        if isinstance(v, SymInts):
            if not v.static:
                raise self.fail(f"input {i} is a shape with symbolic dimensions {list(v.dims)} used as a "
                                f"tensor; nnc keeps shapes out of the computed graph")
            v = v.array()
        if isinstance(v, np.ndarray):
            return const_node(self.b, v, self.where)
        return v

    def xs(self) -> list[int]:
        return [self.x(i) for i in range(len(self.node.input)) if self.has(i)]

    def shape(self, i: int) -> tuple:
        v = self.value(i)
        v = v.array if isinstance(v, Weight) else v.array() if isinstance(v, SymInts) else v
        return tuple(v.shape) if isinstance(v, np.ndarray) else tuple(self.b.shape(v))

    def dtype(self, i: int) -> str:
        v = self.value(i)
        v = v.array if isinstance(v, Weight) else v.array() if isinstance(v, SymInts) else v
        return np_dtype_name(v.dtype, self.where) if isinstance(v, np.ndarray) else self.b.dtype(v)

    def rank(self, i: int) -> int:
        return len(self.shape(i))

    def scalar(self, value, like: int) -> int:
        return self.b.scalar(value, self.b.dtype(like))

    def static_shape(self, i: int, what: str = "shape") -> tuple[int, ...]:
        s = self.shape(i)
        if not all(isinstance(d, int) for d in s):
            raise self.fail(f"input {i} has symbolic shape {list(s)}; {what} needs static dimensions here")
        return s


def np_dtype_name(dt, where: str) -> str:
    for k, v in NP_DTYPES.items():
        if np.dtype(v) == np.dtype(dt):
            return k
    raise OnnxImportError(f"{where}: data type {dt} is not supported (supported: float, double, int32, int64, bool)")


def const_node(b: Builder, arr: np.ndarray, where: str = "") -> int:
    """An import-time array as IR. The numpy backend cannot print nan/inf literals or
    empty arrays, so non-finite entries are built as 0/0 and +-1/0 and patched in."""
    arr = np.asarray(arr)
    dt = np_dtype_name(arr.dtype, where)
    if arr.size == 0:
        raise OnnxImportError(f"{where}: empty constant tensors (shape {list(arr.shape)}) are not supported")
    if dt in ("f32", "f64") and not np.isfinite(arr).all():
        base = const_node(b, np.where(np.isfinite(arr), arr, 0).astype(arr.dtype), where)
        zero, one = b.scalar(0.0, dt), b.scalar(1.0, dt)
        for mask, special in ((np.isnan(arr), b.div(zero, zero)), (arr == np.inf, b.div(one, zero)),
                              (arr == -np.inf, b.div(b.neg(one), zero))):
            if mask.any():
                base = b.where(const_node(b, mask), b.broadcast_to(special, shape=arr.shape), base)
        return base
    if arr.ndim == 0:
        return b.scalar(arr.item(), dt)
    from ..passes.fold import python_value
    return b.constant(python_value(arr), dt, arr.shape)


def fold_node(lower, node, opset: int, values: list, where: str) -> list:
    """Run one lowering on import-time arrays and evaluate it (reference semantics)."""
    sb = Builder("fold")
    env = dict(zip(node.input, values))
    cx = NodeCtx(sb, node, opset, env, where)
    outs = lower(cx)
    cx.check_attrs()
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    ids = {f"o{k}": (o if not isinstance(o, np.ndarray) else const_node(sb, o, where))
           for k, o in enumerate(outs) if o is not None}
    if not ids:
        return list(outs)
    with np.errstate(all="ignore"):
        res = interpret(sb.build(list(ids.items())))
    return [res[f"o{k}"] if f"o{k}" in res else outs[k] for k in range(len(outs))]


def subgraphs(node) -> list:
    """The graphs a node's attributes hold (a Scan's body)."""
    from onnx import AttributeProto
    out = []
    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            out.append(a.g)
        elif a.type == AttributeProto.GRAPHS:
            out.extend(a.graphs)
    return out


def outer_reads(graph) -> list[str]:
    """The names `graph`'s nodes (and their subgraphs') read from enclosing scopes."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    for n in graph.node:
        defined.update(n.output)
    reads: list[str] = []
    for n in graph.node:
        for name in reads_of(n):
            if name not in defined and name not in reads:
                reads.append(name)
    return reads


def reads_of(node) -> list[str]:
    """A node's inputs, then the outer values its subgraphs read by name (computed first too)."""
    return list(node.input) + [r for g in subgraphs(node) for r in outer_reads(g)]


def topo_order(graph, outer=frozenset(), prefix: str = "") -> list:
    """(index in the file, node) in an order where each input is produced first; a cycle
    or an undefined input is an error naming the node. `outer`: names enclosing scopes define."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""} | set(outer)
    producers = {}
    for k, n in enumerate(graph.node):
        for o in n.output:
            producers[o] = k
    order, state = [], {}
    for start in range(len(graph.node)):
        stack = [(start, False)]
        while stack:
            k, done = stack.pop()
            if done:
                state[k] = 2
                order.append((k, graph.node[k]))
                continue
            if state.get(k) == 2:
                continue
            if state.get(k) == 1:
                continue
            state[k] = 1
            stack.append((k, True))
            n = graph.node[k]
            for name in reads_of(n):
                if name in known:
                    continue
                if name not in producers:
                    what = f"input '{name}'" if name in n.input else f"its body reads '{name}', which"
                    raise OnnxImportError(f"{prefix}{describe(n, k)}: {what} is not a graph input, an initializer "
                                          f"or any node's output (a missing initializer?)")
                p = producers[name]
                if state.get(p) == 1:
                    raise OnnxImportError(f"{prefix}{describe(n, k)}: the graph has a cycle through '{name}'")
                if state.get(p) != 2:
                    stack.append((p, False))
    return order


def describe(node, index: int | None = None, opset: int | None = None) -> str:
    name = f"'{node.name}'" if node.name else f"#{index}" if index is not None else "(unnamed)"
    where = f"node {name} ({node.op_type}"
    return where + (f", opset {opset})" if opset is not None else ")")


# ---- the driver ---------------------------------------------------------------------

def load(source) -> "object":
    """A ModelProto from a path, bytes or a ModelProto; a truncated or non-ONNX file is an error."""
    try:
        import onnx
    except ImportError:
        raise OnnxImportError("reading ONNX models needs the onnx package: pip install 'nncompiler[onnx]'") from None
    if isinstance(source, onnx.ModelProto):
        return source
    try:
        if isinstance(source, (bytes, bytearray)):
            return onnx.load_from_string(bytes(source))
        return onnx.load(str(source))
    except FileNotFoundError:
        raise OnnxImportError(f"{source}: no such file") from None
    except Exception as e:   # protobuf's DecodeError and friends: the file is not (all of) an ONNX model
        raise OnnxImportError(f"{source}: not a valid ONNX model (truncated or corrupt file?): "
                              f"{type(e).__name__}: {e}") from None


def model_opset(model) -> int:
    opset = None
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            opset = o.version
    if opset is None:
        raise OnnxImportError("model: it imports no version of the default ONNX opset")
    import onnx
    newest = onnx.defs.onnx_opset_version()     # the installed onnx release's opset
    if not MIN_OPSET <= opset <= newest:
        raise OnnxImportError(f"model: opset {opset} is not supported (supported: {MIN_OPSET} to {newest}); "
                              f"convert it with onnx.version_converter.convert_version(model, {MIN_OPSET})")
    return opset


def _input_type(vi, override=None) -> TensorType:
    where = f"graph input '{vi.name}'"
    t = vi.type
    if not t.HasField("tensor_type"):
        raise OnnxImportError(f"{where}: only tensor inputs are supported (not sequences, maps or optionals)")
    dt = dtype_of(t.tensor_type.elem_type, where)
    if override is not None:
        return TensorType(dt, tuple(int(d) for d in override))
    if not t.tensor_type.HasField("shape"):
        raise OnnxImportError(f"{where}: the input has no shape (nnc needs each input's rank)")
    dims = []
    for k, d in enumerate(t.tensor_type.shape.dim):
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.dim_param:
            dims.append(_symbol(d.dim_param))
        else:
            dims.append(f"{_symbol(vi.name)}_{k}")     # an anonymous dimension: a symbol of its own
    return TensorType(dt, tuple(dims))


def import_graph(model, trainable: bool = False, input_shapes: dict | None = None, name: str | None = None,
                 pinned: dict | None = None):
    """ModelProto -> (Builder, outputs [(onnx name, node id)], inputs {onnx name: IR arg name},
    float initializers {IR arg name: array}). `input_shapes` fixes input shapes and `pinned`
    fixes input values (import-time constants): the test backend specialises on the arrays it
    is given, as a JIT does, when an op needs a value (a shape, axes) that the IR holds statically."""
    from onnx import numpy_helper
    opset = model_opset(model)
    g = model.graph
    b = _ImportBuilder(name or ir_name(g.name or "onnx"))
    env: dict[str, object] = {}
    weights: dict[str, np.ndarray] = {}
    role = "param" if trainable else "buffer"
    init_names = set()
    for t in g.initializer:
        where = f"initializer '{t.name}'"
        dtype_of(t.data_type, where)
        try:
            arr = numpy_helper.to_array(t)
        except Exception as e:
            raise OnnxImportError(f"{where}: cannot read its data ({e})") from None
        init_names.add(t.name)
        if arr.dtype in (np.float32, np.float64) and arr.size > 0 and arr.ndim > 0:
            arg = ir_name(t.name)
            weights[arg] = arr.astype(np.float32) if arr.dtype == np.float32 else arr
            env[t.name] = Weight(weights[arg], arg, role)
        else:
            env[t.name] = arr
    inputs: dict[str, str] = {}
    for vi in g.input:
        if vi.name in init_names:
            continue                 # IR version < 4: initializers are listed as inputs too
        if pinned and vi.name in pinned:
            env[vi.name] = np.asarray(pinned[vi.name])
            continue
        arg = ir_name(vi.name)
        ty = _input_type(vi, (input_shapes or {}).get(vi.name))
        env[vi.name] = b.argument(arg, "input", ty)
        inputs[vi.name] = arg
    lower_nodes(b, g, env, opset)
    outputs = []
    for vo in g.output:
        v = env.get(vo.name)
        if v is None:
            raise OnnxImportError(f"graph output '{vo.name}' is not computed by any node")
        if isinstance(v, Weight):
            v = v.materialise(b)
        if isinstance(v, np.ndarray):
            v = const_node(b, v, f"graph output '{vo.name}'")
        outputs.append((vo.name, v))
    used = {n.attr["name"] for n in b.nodes if n.op == "arg"}
    weights = {k: v for k, v in weights.items() if k in used}
    return b, outputs, inputs, weights


def lower_nodes(b: Builder, graph, env: dict, opset: int, outer=frozenset(), prefix: str = "") -> None:
    """Lower `graph`'s nodes into `b`, their outputs into `env` (ONNX name -> value). `outer`:
    the names enclosing scopes define, which a Scan body's nodes may read (ops_loop.py);
    `prefix` places a body's node inside its Scan in error messages."""
    from .table import OPS, unsupported
    for k, node in topo_order(graph, outer, prefix):
        where = prefix + describe(node, k, opset)
        if node.domain not in ("", "ai.onnx"):
            raise OnnxImportError(f"{where}: operator domain '{node.domain}' is not supported (only the default domain)")
        lower = OPS.get(node.op_type)
        if lower is None:
            raise OnnxImportError(f"{where}: operator {node.op_type} is not supported; {unsupported()}")
        operands = [env[i] if i else None for i in node.input]
        try:
            if _symbolic(node.op_type, operands):
                from .symbolic import OPS as SYM_OPS
                if not all(isinstance(v, (np.ndarray, SymInts)) or v is None for v in operands):
                    raise OnnxImportError(f"{where}: mixes a shape computed from symbolic dimensions with "
                                          f"run-time tensors, which nnc cannot express")
                outs = SYM_OPS[node.op_type](NodeCtx(b, node, opset, env, where))
            elif (operands and all(type(v) is np.ndarray or v is None for v in operands)
                    and node.op_type not in _NEVER_FOLD):
                outs = fold_node(lower, node, opset, operands, where)
            else:
                cx = NodeCtx(b, node, opset, env, where)
                outs = lower(cx)
                cx.check_attrs()
        except OnnxImportError:
            raise
        except (ShapeError, ValueError, IndexError, TypeError) as e:
            raise OnnxImportError(f"{where}: {e}") from None
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        for o_name, o in zip(node.output, outs):
            if o_name:
                if o is None:
                    raise OnnxImportError(f"{where}: output '{o_name}' is not supported")
                env[o_name] = o
        if len(node.output) > len(outs) and any(node.output[len(outs):]):
            raise OnnxImportError(f"{where}: output {len(outs)} ('{node.output[len(outs)]}') is not supported")


def _symbolic(op_type: str, operands) -> bool:
    """Whether a node computes on a shape vector holding symbolic dimensions (symbolic.py)."""
    from .symbolic import OPS as SYM_OPS
    if op_type not in SYM_OPS or not operands:
        return False
    if isinstance(operands[0], SymInts):
        return True
    return op_type in ("Concat", "Mul", "Add", "Div") and any(isinstance(v, SymInts) for v in operands)


# attributes that do not change an inference result (a random seed of an op nnc runs as the identity)
# and a saturation rule for 8-bit float targets, which nnc refuses anyway
IGNORED_ATTRS = {"Dropout": {"seed"}, "Cast": {"saturate"}, "CastLike": {"saturate"}}

# ops whose result must not be computed at import time even from constants
# (a Scan's body reads outer values by name, which folding on its explicit operands would not see)
_NEVER_FOLD = {"RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Dropout", "Scan"}


class Weight:
    """A float initializer: its array for ops that need the value at import time
    (`ctx.const`), and a parameter (or buffer) argument once an op uses it as a
    run-time operand (`ctx.x`)."""

    def __init__(self, array: np.ndarray, arg: str, role: str):
        self.array, self.arg, self.role = array, arg, role

    def materialise(self, b: Builder) -> int:
        for n in b.nodes:
            if n.op == "arg" and n.attr["name"] == self.arg:
                return n.id
        dt = np_dtype_name(self.array.dtype, self.arg)
        return b.argument(self.arg, self.role, TensorType(dt, tuple(self.array.shape)))
