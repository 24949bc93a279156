"""The dataflow IR: an immutable SSA graph of primitive ops.

A `Graph` is a tuple of `Node`s in topological order plus named outputs.
Graph arguments are nodes too (op `arg`, with a `name` and a `role`: input,
target, param, state, ...), so every value is a node id and every pass walks
one list. Graphs are never mutated: passes build new ones with a `Builder`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import Loc, ShapeError
from .limits import check_type
from .primitives import PRIMITIVES, infer_type
from .shapes import TensorType


def _freeze(v):
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    return v


@dataclass(frozen=True)
class Node:
    id: int
    op: str
    inputs: tuple[int, ...]
    attrs: tuple[tuple[str, object], ...]
    type: TensorType
    loc: Loc | None = None

    @property
    def attr(self) -> dict:
        return dict(self.attrs)

    @property
    def shape(self):
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def prim(self):
        return PRIMITIVES[self.op]


@dataclass(frozen=True)
class Graph:
    name: str
    nodes: tuple[Node, ...]
    outputs: tuple[tuple[str, int], ...]
    _index: dict = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "_index", {n.id: n for n in self.nodes})

    def __getitem__(self, node_id: int) -> Node:
        return self._index[node_id]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    @property
    def args(self) -> list[Node]:
        return [n for n in self.nodes if n.op == "arg"]

    def args_with_role(self, *roles: str) -> list[Node]:
        return [n for n in self.nodes if n.op == "arg" and n.attr["role"] in roles]

    def arg(self, name: str) -> Node:
        for n in self.args:
            if n.attr["name"] == name:
                return n
        raise KeyError(name)

    def output(self, name: str) -> Node:
        return self[dict(self.outputs)[name]]

    def users(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out[i].append(n.id)
        return out

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            if n.op != "arg":
                counts[n.op] = counts.get(n.op, 0) + 1
        return dict(sorted(counts.items()))

    def __str__(self) -> str:
        from .text import print_graph
        return print_graph(self)


class Builder:
    """Appends nodes with type inference; `b.add(x, y)` emits primitive `add`.

    Any primitive in the table is a method: positional arguments are operand
    node ids, keyword arguments are attributes. `with b.at(loc):` stamps the
    source location on everything emitted inside.
    """

    def __init__(self, name: str = "main", start_id: int = 0):
        self.name = name
        self.nodes: list[Node] = []
        self._types: dict[int, TensorType] = {}
        self._next = start_id
        self._loc: Loc | None = None

    # -- emission -------------------------------------------------------------
    def emit(self, op: str, inputs=(), loc: Loc | None = None, **attrs) -> int:
        attrs = {k: _freeze(v) for k, v in attrs.items() if v is not None}
        for i in inputs:
            if i not in self._types:
                raise ShapeError(f"{op}: operand %{i} is not defined")
        ty = infer_type(op, [self._types[i] for i in inputs], attrs)
        check_type(ty)   # dims < 2^31, element counts < 2^63: no silent index or shape overflow
        prim = PRIMITIVES[op]
        ordered = tuple((k, attrs[k]) for k in prim.attrs if k in attrs)
        node = Node(self._next, op, tuple(inputs), ordered, ty, loc or self._loc)
        self._next += 1
        self.nodes.append(node)
        self._types[node.id] = ty
        return node.id

    def __getattr__(self, op: str):
        if op.startswith("_") or op not in PRIMITIVES:
            raise AttributeError(op)
        return lambda *inputs, **attrs: self.emit(op, inputs, **attrs)

    def add_node(self, node: Node) -> int:
        """Adopt an existing node unchanged (ids must not clash)."""
        self.nodes.append(node)
        self._types[node.id] = node.type
        self._next = max(self._next, node.id + 1)
        return node.id

    def copy(self, node: Node, inputs, **attr_overrides) -> int:
        attrs = dict(node.attrs)
        attrs.update(attr_overrides)
        return self.emit(node.op, tuple(inputs), loc=node.loc, **attrs)

    # -- conveniences used by the library -------------------------------------
    def type_of(self, node_id: int) -> TensorType:
        return self._types[node_id]

    def shape(self, node_id: int):
        return self._types[node_id].shape

    def dtype(self, node_id: int) -> str:
        return self._types[node_id].dtype

    def argument(self, name: str, role: str, ty: TensorType, loc: Loc | None = None) -> int:
        return self.emit("arg", (), loc=loc, name=name, role=role, dtype=ty.dtype, shape=ty.shape)

    def scalar(self, value, dtype: str = "f32") -> int:
        if dtype in ("f32", "f64"):
            value = _f32(value) if dtype == "f32" else float(value)
        elif dtype == "bool":
            value = bool(value)
        else:
            value = int(value)
        return self.emit("const", (), value=value, dtype=dtype, shape=())

    def constant(self, value, dtype: str, shape) -> int:
        return self.emit("const", (), value=value, dtype=dtype, shape=tuple(shape))

    def loop(self, body: Graph, carries, seqs=(), invariants=(), axis: int = 0,
             reverse: bool = False, length: int | None = None) -> list[int]:
        """Emit a `scan` of `body` and one `scan_out` per result: returns the final carries'
        ids, then the stacked per-step outputs' ids."""
        if length is None:
            length = self.shape(seqs[0])[axis]
        s = self.emit("scan", tuple(carries) + tuple(seqs) + tuple(invariants), body=body,
                      n_carry=len(carries), n_seq=len(seqs), axis=axis, length=length,
                      reverse=bool(reverse))
        from .primitives import scan_result_types
        types = scan_result_types([self._types[i] for i in self.nodes[-1].inputs], self.nodes[-1].attr)
        return [self.emit("scan_out", (s,), index=k, dtype=t.dtype, shape=t.shape)
                for k, t in enumerate(types)]

    @contextlib.contextmanager
    def at(self, loc: Loc | None):
        saved = self._loc
        if loc is not None:
            self._loc = loc
        try:
            yield
        finally:
            self._loc = saved

    def build(self, outputs) -> Graph:
        outs = tuple(outputs.items()) if isinstance(outputs, dict) else tuple(outputs)
        return Graph(self.name, tuple(self.nodes), outs)


def _f32(v) -> float:
    import numpy as np
    return float(np.float32(v))


def rebuild(graph: Graph, fn, name: str | None = None) -> tuple[Graph, dict[int, int]]:
    """Walk `graph` in order; `fn(builder, node, new_inputs)` returns the new id for the node
    (or None to copy it unchanged). Returns the new graph (outputs remapped) and the id map."""
    b = Builder(name or graph.name)
    mapping: dict[int, int] = {}
    for node in graph.nodes:
        new_inputs = tuple(mapping[i] for i in node.inputs)
        new_id = fn(b, node, new_inputs)
        if new_id is None:
            new_id = b.copy(node, new_inputs)
        mapping[node.id] = new_id
    return b.build([(name_, mapping[i]) for name_, i in graph.outputs]), mapping
