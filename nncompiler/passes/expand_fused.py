"""Expand fused primitives into basic ones, for backends that have no rule of their own.

(Not a pipeline pass: which primitives are native depends on the backend; compare
passes/decompose.py, which rewrites for every backend.)

`sparse_xent` and `sparse_xent_grad` (softmax cross-entropy with integer labels, and its
gradient with respect to the logits) are single primitives so that the numpy backend can
compute each in a handful of numpy calls instead of the ~24 of the one-hot chain. A
backend without a rule for them (MLIR, Triton) calls `expand_fused(graph, native)` first and
gets the one-hot formulation, which is also the primitives' definition:

    one_hot = cast(eq(iota over classes, labels), float)
    s = z - max(z);  l = log(sum(exp(s)))
    sparse_xent(z, y)      = -sum(one_hot * (s - l))                 over the classes
    sparse_xent_grad(z, y) = sum(one_hot) * exp(s) / sum(exp(s)) - one_hot

(a label outside [0, C) has an all-zero one-hot row: loss 0 and gradient 0 for that row).
"""
from __future__ import annotations

from ..ir.graph import Builder, Graph, Node, rebuild

FUSED = ("sparse_xent", "sparse_xent_grad")


def _one_hot(b: Builder, z: int, y: int) -> int:
    shape = tuple(b.shape(z))
    if b.dtype(y) != "i32":
        y = b.cast(y, dtype="i32")
    labels = b.reshape(y, shape=shape[:-1] + (1,))
    classes = b.iota(axis=len(shape) - 1, dtype="i32", shape=shape)
    return b.cast(b.eq(classes, labels), dtype=b.dtype(z))


def expand(b: Builder, n: Node, z: int, y: int) -> int:
    """The basic-primitive form of one fused node whose operands are now `z`, `y`."""
    hot = _one_hot(b, z, y)
    s = b.sub(z, b.max(z, axes=(-1,), keepdims=True))
    e = b.exp(s)
    total = b.sum(e, axes=(-1,), keepdims=True)
    if n.op == "sparse_xent":
        return b.neg(b.sum(b.mul(hot, b.sub(s, b.log(total))), axes=(-1,)))
    return b.sub(b.mul(b.sum(hot, axes=(-1,), keepdims=True), b.div(e, total)), hot)


def expand_fused(graph: Graph, native=()) -> Graph:
    """`graph` with every fused primitive not in `native` expanded (the same object when none is)."""
    if not any(n.op in FUSED and n.op not in native for n in graph.nodes):
        return graph

    def visit(b: Builder, n: Node, ins):
        if n.op not in FUSED or n.op in native:
            return None
        with b.at(n.loc):
            return expand(b, n, *ins)
    out, _ = rebuild(graph, visit)
    return out
