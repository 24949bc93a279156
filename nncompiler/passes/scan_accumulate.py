"""Accumulators out of loops: a carry that only sums per-step terms becomes one reduction
after the loop.

The reverse scan of a recurrent layer carries the recurrent kernel's gradient as
`acc' = acc + matmul(transpose(h_t), dz_t)`: every step pays a transpose, a small matmul
and an add for a value nothing in the loop reads. When a carry's only use in the body is
`add(acc, d)` and that add is only the carry's next value, the final carry is
`init + sum over t of d_t`, so the pass stacks the per-step terms and reduces them once:

  d = matmul(transpose(p), q), p: [K, m], q: [K, n]    (sum_t p_t^T q_t = sum of P^T Q)
      -> stack p and q (P, Q: [K, T, m], [K, T, n] for axis 1), then
         init + sum(matmul(transpose(P, [0, 2, 1]), Q), axes=[0])
  any other d   -> stack d, then  init + sum(D, axes=[axis])

The matmul form is batched over the stacked values' leading dimension rather than one
[m, K*T] x [K*T, n] product: with K*T in the thousands and m, n in the tens, one long
contraction ran 4 to 7x slower than the batch of short ones in OpenBLAS (measured on the
LSTM bench case, [16, 6400] x [6400, 64]).

A term the body already stacks, or a sequence slice, is read from the scan's existing
result or operand instead of being stacked twice. The sum's order of additions changes
(one reduction instead of a running total): the same value to float rounding.
"""
from __future__ import annotations

import time

from ..ir.graph import Builder, Graph, Node
from ..ir.shapes import FLOAT_DTYPES
from .records import PassRecord, value_names


def _accumulators(n: Node) -> dict[int, int]:
    """Carry index -> the term `d` (a body node id) of the carries that are pure sums."""
    a = n.attr
    body, nc = a["body"], a["n_carry"]
    users = body.users()
    out_ids = [i for _, i in body.outputs]
    found = {}
    for k, arg in enumerate(body.args[:nc]):
        node = body[out_ids[k]]
        if (node.op != "add" or arg.dtype not in FLOAT_DTYPES or users[arg.id] != [node.id]
                or list(node.inputs).count(arg.id) != 1 or users[node.id] or out_ids.count(node.id) != 1):
            continue
        term = node.inputs[1] if node.inputs[0] == arg.id else node.inputs[0]
        stackable = _matmul_factors(body, term, a["axis"]) or a["axis"] <= len(arg.shape)
        if body[term].type == arg.type and stackable:   # no broadcasting hidden in the add
            found[k] = term
    return found


def _matmul_factors(body: Graph, term: int, axis: int) -> tuple[int, int] | None:
    """(p, q) when `term` is matmul(transpose(p), q) of rank-2 p and q, stackable so that
    the per-step rows stay the leading dimensions (`axis` 0 or 1)."""
    d = body[term]
    if d.op != "matmul" or axis > 1:
        return None
    pt, q = (body[i] for i in d.inputs)
    if pt.op != "transpose" or pt.attr["perm"] != (1, 0) or len(q.shape) != 2:
        return None
    p = body[pt.inputs[0]]
    return (p.id, q.id) if len(p.shape) == 2 else None


def _rewrite(b: Builder, n: Node, operands: list[int], acc: dict[int, int]) -> tuple[int, dict[int, int]]:
    """Emit the scan without the carries in `acc`, the scan_outs of the values to reduce and
    the reductions; returns (new scan id, old result index -> new result index or, for a
    removed carry, -1 - the id of its reduction)."""
    a = n.attr
    body, nc, ns, axis = a["body"], a["n_carry"], a["n_seq"], a["axis"]
    args = body.args
    stacked_out = {i: k for k, (_, i) in enumerate(body.outputs) if k >= nc}
    seq_of = {x.id: j for j, x in enumerate(args[nc:nc + ns])}
    extra: list[int] = []                      # body nodes that become new stacked outputs

    def source(v: int):                        # where the stacked values of body node v will be
        if v in seq_of:
            return ("operand", nc + seq_of[v])
        if v in stacked_out:
            return ("result", stacked_out[v])
        if v not in extra:
            extra.append(v)
        return ("new", extra.index(v))

    plans = {}
    for k, term in acc.items():
        factors = _matmul_factors(body, term, axis)
        plans[k] = ("matmul", [source(v) for v in factors]) if factors else ("sum", [source(term)])

    keep = [k for k in range(nc) if k not in acc]
    removed = {args[k].id for k in acc}
    adds = {i for k, (_, i) in enumerate(body.outputs) if k in acc}
    outputs = [body.outputs[k] for k in keep] + list(body.outputs[nc:])
    outputs += [(f"stacked.{len(outputs) + j}", v) for j, v in enumerate(extra)]
    new_body = Graph(body.name, tuple(x for x in body.nodes if x.id not in removed | adds), tuple(outputs))
    new_nc = len(keep)
    new_operands = [operands[k] for k in keep] + operands[nc:]
    scan = b.copy(n, new_operands, body=new_body, n_carry=new_nc)
    from ..ir.primitives import scan_result_types
    types = scan_result_types([b.type_of(i) for i in new_operands], b.nodes[-1].attr)
    n_old_stacked = len(body.outputs) - nc

    def stacked(src) -> int:
        kind, j = src
        if kind == "operand":
            return operands[j]
        index = (j - nc + new_nc) if kind == "result" else new_nc + n_old_stacked + j
        t = types[index]
        return b.emit("scan_out", (scan,), index=index, dtype=t.dtype, shape=t.shape)

    index_map = {k: keep.index(k) for k in keep}
    index_map.update({k: k - nc + new_nc for k in range(nc, len(body.outputs))})
    for k, (kind, sources) in plans.items():
        if kind == "matmul":
            p_all, q_all = (stacked(s) for s in sources)
            total = b.sum(b.matmul(b.transpose(p_all, perm=(0, 2, 1)), q_all), axes=(0,), keepdims=False)
        else:
            total = b.sum(stacked(sources[0]), axes=(axis,), keepdims=False)
        index_map[k] = -1 - b.add(operands[k], total)
    return scan, index_map


def _leaves_no_result(n: Node, acc: dict[int, int]) -> bool:
    """Whether removing the carries `acc` would leave the scan with no result at all (every
    carry an accumulator of sequence slices, no per-step output): a scan needs one."""
    a = n.attr
    body, nc, ns = a["body"], a["n_carry"], a["n_seq"]
    seqs = {x.id for x in body.args[nc:nc + ns]}
    return len(acc) == nc and len(body.outputs) == nc and all(
        v in seqs for term in acc.values() for v in (_matmul_factors(body, term, a["axis"]) or (term,)))


def scan_accumulate(graph: Graph) -> tuple[Graph, PassRecord]:
    t0 = time.perf_counter()
    todo = {n.id: acc for n in graph.nodes if n.op == "scan" for acc in [_accumulators(n)]
            if acc and not _leaves_no_result(n, acc)}
    if not todo:
        return graph, PassRecord.of("scan_accumulate", graph, graph, [], t0)
    names = value_names(graph)
    changes = []
    b = Builder(graph.name)
    env: dict[int, int] = {}
    index_maps: dict[int, dict[int, int]] = {}
    for n in graph.nodes:
        operands = [env[i] for i in n.inputs]
        if n.id in todo:
            acc = todo[n.id]
            body = n.attr["body"]
            with b.at(n.loc):
                env[n.id], index_maps[n.id] = _rewrite(b, n, operands, acc)
            for k, term in acc.items():
                how = "one matmul" if _matmul_factors(body, term, n.attr["axis"]) else "one sum"
                changes.append(f"{names[n.id]} scan: carry {k} ({body.args[k].attr['name']}) accumulated "
                               f"per step, now {how} after the loop")
        elif n.op == "scan_out" and n.inputs[0] in index_maps:
            new = index_maps[n.inputs[0]][n.attr["index"]]
            env[n.id] = -1 - new if new < 0 else b.copy(n, operands, index=new)
        else:
            env[n.id] = b.copy(n, operands)
    out = b.build([(k, env[i]) for k, i in graph.outputs])
    return out, PassRecord.of("scan_accumulate", graph, out, changes, t0)
