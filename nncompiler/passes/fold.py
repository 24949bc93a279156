"""Constant folding: replace nodes computable at compile time by `const` nodes.

A node folds when every operand is a constant (a `const`, or a node folding in
this same pass) and its result is small and static. Values come from the IR's
reference interpreter (ir/interpret.py, which computes what the numpy backend
computes) run on the original constant subgraph in one go, so each folded value
is bit-identical to what the unfolded graph computes (in the node's own dtype,
float32 included).

Not folded:
  - primitives the table declares not `foldable`: arguments and random draws;
  - results with more than MAX_ELEMENTS elements: a broadcast of a scalar stays
    a cheap lazy broadcast instead of becoming a big literal;
  - results with symbolic shapes (e.g. iota over [B]): no constant has one;
  - results with no elements, or with nan/inf: the numpy backend cannot emit
    those as constants (it writes `np.array([], ...)`, which loses the shape,
    and `np.float32(nan)`, which is a NameError).
`size` folds whenever the dimensions it counts are static, whatever its operand.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..ir.graph import Builder, Graph, Node, rebuild
from ..ir.interpret import interpret
from ..ir.primitives import norm_axes
from ..ir.shapes import is_static, numel
from .records import PassRecord, value_names

MAX_ELEMENTS = 1024


def python_value(a: np.ndarray):
    """An array as a const attribute: a python scalar or nested tuples of them.
    tolist() turns float32 elements into the python floats holding exactly their values."""
    v = np.asarray(a).tolist()
    return _tuples(v) if isinstance(v, list) else v


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def _static_size(node: Node, graph: Graph):
    """The value of a `size` node when the dimensions it counts are static, else None."""
    shape = graph[node.inputs[0]].shape
    dims = [shape[i] for i in norm_axes(node.attr["axes"], len(shape))]
    if not all(isinstance(d, int) for d in dims):
        return None
    return math.prod(dims)


def _foldable(node: Node, const_ids: set[int]) -> bool:
    if not node.prim.foldable or not all(i in const_ids for i in node.inputs):
        return False
    return is_static(node.shape) and 0 < numel(node.shape) <= MAX_ELEMENTS


def _finite_const(n: Node) -> bool:
    """False for consts holding nan/inf, which the numpy backend cannot evaluate (see above)."""
    v = n.attr["value"]
    return not isinstance(v, (tuple, float)) or _all_finite(np.asarray(v, dtype=float))


def _all_finite(a: np.ndarray) -> bool:
    return not np.issubdtype(a.dtype, np.floating) or bool(np.isfinite(a).all())


def fold(graph: Graph) -> tuple[Graph, PassRecord]:
    t0 = time.perf_counter()
    # 1. which nodes are constants, and a graph computing the folded ones from them
    const_ids: set[int] = set()  # ids whose value is known here
    sub = Builder(graph.name + "_fold")
    sub_id: dict[int, int] = {}
    folds: list[Node] = []
    for n in graph.nodes:
        if n.op == "const":
            if is_static(n.shape) and _finite_const(n):
                sub_id[n.id] = sub.copy(n, ())
                const_ids.add(n.id)
            continue
        if n.op == "size" and (count := _static_size(n, graph)) is not None:
            sub_id[n.id] = sub.scalar(count, n.dtype)  # the product codegen would cast
        elif _foldable(n, const_ids):
            sub_id[n.id] = sub.copy(n, [sub_id[i] for i in n.inputs])
        else:
            continue
        const_ids.add(n.id)
        folds.append(n)
    if not folds:
        return graph, PassRecord.of("fold", graph, graph, [], t0)
    with np.errstate(all="ignore"):  # log(0) etc. warn at run time, not at compile time
        values = interpret(sub.build([(f"n{n.id}", sub_id[n.id]) for n in folds]))

    # 2. rewrite: each folded node becomes a const holding its value
    names = value_names(graph)
    changes: list[str] = []

    def visit(b, node, ins):
        value = values.get(f"n{node.id}")
        if value is None or not _all_finite(value):
            return None
        what = "static dims" if node.op == "size" else "constants"
        changes.append(f"folded {names[node.id]} {node.op} of {what}")
        with b.at(node.loc):
            return b.constant(python_value(value), node.dtype, node.shape)

    out, _ = rebuild(graph, visit)
    if not changes:
        out = graph
    return out, PassRecord.of("fold", graph, out, changes, t0)
