"""numpy codegen's other pairs: nodes the generated code computes together with another one.

Each finder reads the graph only and maps a node to its partner; codegen.py emits the lines
(one call for both, or the partner's work folded into the node's). Max pools and their
gradients pair in pooling.py.
"""
from __future__ import annotations

import math

from ...ir.graph import Graph


def xent_pairs(graph: Graph) -> dict[int, int]:
    """sparse_xent nodes mapped to the sparse_xent_grad node of the same operands (a training
    step has both: the loss and its gradient), which the generated code computes in one call."""
    grads = {n.inputs: n.id for n in graph.nodes if n.op == "sparse_xent_grad"}
    return {n.id: grads[n.inputs] for n in graph.nodes if n.op == "sparse_xent" and n.inputs in grads}


def conv_epilogues(graph: Graph, pooled_relus: set[int]) -> dict[int, tuple[int, int | None]]:
    """Convs whose only reader adds a bias [F] (a conv layer's), mapped to that add and to the
    maximum(add, constant) that is in turn its only reader (relu), or None (also where a max
    pool applies that relu to its pooled values instead, pooling.py's cheaper way, given as
    pooled_relus: a relu applied twice would give the same bits, for no use): ir/convs.py adds
    and clamps y a chunk of rows at a time, in one pass instead of two, into y itself (the add
    and the maximum would overwrite it in place anyway, having no other reader). Same
    operands, same order: the same bits as the two ops apart."""
    users = graph.users()
    outputs = {i for _, i in graph.outputs}
    order = {n.id: k for k, n in enumerate(graph.nodes)}

    def only_reader(i: int, op: str):
        r = users.get(i, [])
        if i in outputs or len(r) != 1 or graph[r[0]].op != op or graph[r[0]].type != graph[i].type:
            return None
        return graph[r[0]]

    found: dict[int, tuple[int, int | None]] = {}
    for n in graph.nodes:
        if n.op != "conv" or n.dtype not in ("f32", "f64") or (add := only_reader(n.id, "add")) is None:
            continue
        bias = [graph[i] for i in add.inputs if i != n.id]
        if len(bias) != 1 or tuple(bias[0].shape) != tuple(n.shape[-1:]) or bias[0].dtype != n.dtype \
                or (bias[0].op not in ("arg", "const") and order[bias[0].id] > order[n.id]):   # made by then
            continue
        relu = only_reader(add.id, "maximum")
        if relu is not None and relu.id in pooled_relus:
            relu = None
        if relu is not None:
            floor = graph[relu.inputs[1]]
            if relu.inputs[0] != add.id or floor.op != "const" or floor.shape != () or floor.dtype != n.dtype:
                relu = None
        found[n.id] = (add.id, relu.id if relu is not None else None)
    return found


def conv_cols_pairs(graph: Graph) -> dict[int, int]:
    """Kernel-gradient convs mapped to the forward conv whose im2col columns they can reuse.

    The VJP writes conv(x, w)'s kernel gradient as conv(transpose(x) [C, *S, N], g^T) with
    stride and dilation swapped and the same padding, whose window is the forward's output;
    computed in the few-outputs layout (ir/convs.py), that is columns^T @ g with exactly the
    forward's im2col columns of x. Both must be groups 1, static, and in those two layouts."""
    from ...ir.convs import conv_layout
    forward: dict[tuple, int] = {}
    pairs: dict[int, int] = {}
    for n in graph.nodes:
        if n.op != "conv" or n.attr["groups"] != 1:
            continue
        x, w = (graph[i] for i in n.inputs)
        sp = len(n.shape) - 2
        ks, outs = tuple(w.shape[:sp]), tuple(n.shape[1:-1])
        key = (tuple(n.attr["stride"]), tuple(map(tuple, n.attr["padding"])), tuple(n.attr["dilation"]))
        if x.op == "transpose" and tuple(x.attr["perm"]) == (sp + 1,) + tuple(range(1, sp + 1)) + (0,):
            f = forward.get((x.inputs[0], outs, key[2], key[1], key[0]))
            if f is not None and math.prod(outs) < math.prod(ks):    # conv_layout's "few_outputs"
                pairs[n.id] = f
            continue
        c, fs = x.shape[-1], w.shape[-1]
        if isinstance(c, int) and conv_layout(ks, outs, c, fs, n.attr["stride"]) == "im2col":
            forward[(x.id, ks, key[0], key[1], key[2])] = n.id   # (x, window, stride, padding, dilation)
    return pairs


def swish_pairs(graph: Graph) -> dict[int, int]:
    """sigmoid nodes whose only use is `mul(x, sigmoid(x))` (swish), mapped to that mul."""
    users = graph.users()
    outputs = {i for _, i in graph.outputs}
    pairs = {}
    for n in graph.nodes:
        if n.op != "sigmoid" or n.id in outputs or len(users.get(n.id, [])) != 1:
            continue
        m = graph[users[n.id][0]]
        if m.op == "mul" and sorted(m.inputs) == sorted((n.id, n.inputs[0])) and m.type == n.type:
            pairs[n.id] = m.id
    return pairs
