"""The mlir backend's rules for primitives that are not scalar code in a generic region:
gather, scatter_add, slice, pad, concat, matmul and seeded random constants.

`SINGLE_RULES` maps each to a function (function emitter, node) -> the result's SSA
value; `FunctionEmitter.emit_single` looks a node's op up here. (Reshapes, transposes
and broadcasts that head no fused cluster are `FunctionEmitter.emit_named_remap`.)
"""
from __future__ import annotations

import numpy as np

from ...errors import NNCError
from ...ir.graph import Node
from ...ir.shapes import NUMPY_DTYPE, TensorType, canon_dim, numel
from .convs import CONV_RULES
from .types import ELEM, FLOATS, _amap, dense_literal, tensor_type
from .windows import POOL_RULES


def op_desc(n: Node) -> str:
    return f"{n.loc}: {n.op}" if n.loc else n.op


def clamp_index(fe, v: str, dtype: str, n_dim, body: list[str], node: Node) -> str:
    """An index value (i32/i64) clamped to [0, n) as an `index`, like np.take(mode='clip')."""
    pad = fe.ind
    c0 = fe.index_const(0)
    last = fe.fresh("last")
    if isinstance(n_dim, int):
        fe.emit(f"{last} = arith.constant {max(n_dim - 1, 0)} : index")
    else:
        fe.emit(f"{last} = arith.subi {fe.dim(n_dim)}, {fe.index_const(1)} : index")
    i, lo, hi = fe.fresh("ix"), fe.fresh("ix"), fe.fresh("ix")
    body.append(f"{pad}{i} = arith.index_cast {v} : {ELEM[dtype]} to index{fe.loc(node)}")
    body.append(f"{pad}{lo} = arith.maxsi {i}, {c0} : index{fe.loc(node)}")
    body.append(f"{pad}{hi} = arith.minsi {lo}, {last} : index{fe.loc(node)}")
    return hi


def gather(fe, n: Node) -> str:
    """np.take(x, idx, axis, mode='clip'): a generic over the output reading idx, whose
    region extracts the element of x (tensor.extract) at the clamped index."""
    g = fe.g
    x, idx = g[n.inputs[0]], g[n.inputs[1]]
    axis = n.attr["axis"] % x.type.rank
    r, k = n.type.rank, idx.type.rank
    xs, ids = fe.tensor(x.id), fe.tensor(idx.id)
    e = fe.empty(n.dtype, n.shape, n)
    name = fe.node_name(n)
    body: list[str] = []
    a_in, a_out = fe.fresh("i"), fe.fresh("out")
    pos = clamp_index(fe, a_in, idx.dtype, x.shape[axis], body, n)
    coords = []
    for d in range(x.type.rank):
        if d == axis:
            coords.append(pos)
        else:
            loop = d if d < axis else d + k - 1
            v = fe.fresh("idx")
            body.append(f"{fe.ind}{v} = linalg.index {loop} : index{fe.loc(n)}")
            coords.append(v)
    val = fe.fresh("t")
    body.append(f"{fe.ind}{val} = tensor.extract {xs}[{', '.join(coords)}] : {tensor_type(x.type)}{fe.loc(n)}")
    body.append(f"{fe.ind}linalg.yield {val} : {ELEM[n.dtype]}")
    maps = [_amap(r, list(range(axis, axis + k))), _amap(r, list(range(r)))]
    iters = ", ".join(['"parallel"'] * r)
    pad = fe.ind * 2
    fe.comment(f"%{fe.printed[n.id]} gather (np.take along axis {axis}, indices clamped)")
    fe.lines.append(f"{pad}{name} = linalg.generic {{indexing_maps = [{', '.join(maps)}], iterator_types = "
                      f"[{iters}]}} ins({ids} : {tensor_type(idx.type)}) outs({e} : {tensor_type(n.type)}) {{")
    fe.lines.append(f"{pad}^bb0({a_in}: {ELEM[idx.dtype]}, {a_out}: {ELEM[n.dtype]}):")
    fe.lines += [pad + b for b in body]
    fe.lines.append(f"{pad}}} -> {tensor_type(n.type)}{fe.loc(n)}")
    return name


def scatter_add(fe, n: Node) -> str:
    """zeros(shape); out[..., clip(idx[j]), ...] += u[..., j, ...], as a contraction with a
    one-hot: out[p, c, q] = sum over j of (clip(idx[j]) == c ? u[p, j, q] : 0)."""
    g = fe.g
    u, idx = g[n.inputs[0]], g[n.inputs[1]]
    r, k = n.type.rank, idx.type.rank
    axis = n.attr["axis"] % r
    us, ids = fe.tensor(u.id), fe.tensor(idx.id)
    init = fe.filled(n.dtype, n.shape, 0, n)
    name = fe.node_name(n)
    nl = r + k                     # loops: the output's axes, then the index axes (reduced)
    jl = list(range(r, r + k))
    u_map = list(range(axis)) + jl + list(range(axis + 1, r))
    maps = [_amap(nl, u_map), _amap(nl, jl), _amap(nl, list(range(r)))]
    iters = ", ".join(['"parallel"'] * r + ['"reduction"'] * k)
    body: list[str] = []
    a_u, a_i, a_acc = fe.fresh("u"), fe.fresh("i"), fe.fresh("acc")
    pos = clamp_index(fe, a_i, idx.dtype, n.shape[axis], body, n)
    here, hit, val, s = fe.fresh("idx"), fe.fresh("hit"), fe.fresh("t"), fe.fresh("sum")
    e = ELEM[n.dtype]
    zero = fe.top_const(0, n.dtype)
    add = "arith.addf" if n.dtype in FLOATS else "arith.addi"
    body += [f"{fe.ind}{here} = linalg.index {axis} : index{fe.loc(n)}",
             f"{fe.ind}{hit} = arith.cmpi eq, {here}, {pos} : index{fe.loc(n)}",
             f"{fe.ind}{val} = arith.select {hit}, {a_u}, {zero} : {e}{fe.loc(n)}",
             f"{fe.ind}{s} = {add} {a_acc}, {val} : {e}{fe.loc(n)}",
             f"{fe.ind}linalg.yield {s} : {e}"]
    pad = fe.ind * 2
    fe.comment(f"%{fe.printed[n.id]} scatter_add along axis {axis}: a contraction with a one-hot "
                 f"of the indices")
    fe.lines.append(f"{pad}{name} = linalg.generic {{indexing_maps = [{', '.join(maps)}], iterator_types = "
                      f"[{iters}]}} ins({us}, {ids} : {tensor_type(u.type)}, {tensor_type(idx.type)}) "
                      f"outs({init} : {tensor_type(n.type)}) {{")
    fe.lines.append(f"{pad}^bb0({a_u}: {e}, {a_i}: {ELEM[idx.dtype]}, {a_acc}: {e}):")
    fe.lines += [pad + b for b in body]
    fe.lines.append(f"{pad}}} -> {tensor_type(n.type)}{fe.loc(n)}")
    return name


def random_constant(fe, n: Node) -> str:
    if not all(isinstance(d, int) for d in n.shape):
        raise NNCError(f"{op_desc(n)}: the mlir backend needs a static shape for {n.op}")
    a = n.attr
    shape = tuple(n.shape)
    gen = np.random.default_rng(a["seed"])
    if n.op == "random_uniform":
        arr = gen.uniform(a["low"], a["high"], size=shape).astype(NUMPY_DTYPE[n.dtype])
    else:
        arr = gen.normal(a["mean"], a["stddev"], size=shape).astype(NUMPY_DTYPE[n.dtype])
    name = fe.node_name(n)
    fe.comment(f"%{fe.printed[n.id]} {n.op}(seed={a['seed']}): drawn by numpy at compile time")
    fe.emit(f"{name} = arith.constant {dense_literal(arr, n.dtype)} : {tensor_type(n.type)}", n)
    return name


def tensor_slice(fe, n: Node) -> str:
    x = fe.g[n.inputs[0]]
    a = n.attr
    if not a["start"]:
        return fe.tensor(x.id)
    # one entry along an axis (an unrolled scan's step t of a sequence): the offset is opaque, so
    # the steps' dispatches share one executable (emit.FunctionEmitter.opaque_index)
    offs = ", ".join(fe.opaque_index(s) if d == 1 and full != 1 else str(s)
                     for s, d, full in zip(a["start"], n.shape, x.shape))
    sizes = ", ".join(str(d) if isinstance(d, int) else fe.dim(d) for d in n.shape)
    strides = ", ".join(str(s) for s in a["step"])
    name = fe.node_name(n)
    fe.emit(f"{name} = tensor.extract_slice {fe.tensor(x.id)}[{offs}] [{sizes}] [{strides}] : "
              f"{tensor_type(x.type)} to {tensor_type(n.type)}", n)
    return name


def tensor_pad(fe, n: Node) -> str:
    x = fe.g[n.inputs[0]]
    a = n.attr
    lo, hi, interior = a["lo"], a["hi"], a["interior"]
    if not lo:
        return fe.tensor(x.id)
    name = fe.node_name(n)
    if not any(interior):
        return fe.padded(name, fe.tensor(x.id), x.type, n.type, lo, hi, 0, n)
    base = fe.filled(n.dtype, n.shape, 0, n)
    sizes = ", ".join(str(d) if isinstance(d, int) else fe.dim(d) for d in x.shape)
    fe.emit(f"{name} = tensor.insert_slice {fe.tensor(x.id)} into {base}[{', '.join(map(str, lo))}] "
              f"[{sizes}] [{', '.join(str(k + 1) for k in interior)}] : {tensor_type(x.type)} into "
              f"{tensor_type(n.type)}", n)
    return name


def round_operand(fe, x: str, t: TensorType, n: Node) -> str:
    """A float32 matmul operand rounded as the precision mode's tensor core reads it
    (nncompiler/precision.py: tf32 or bf16, nearest with ties to even, kept as f32), with the
    same integer arithmetic as numpy's `round_mantissa`, so IREE's results match numpy's."""
    from ...precision import DROPPED_BITS
    drop = DROPPED_BITS[fe.precision]
    half, mask = (1 << (drop - 1)) - 1, ((0xFFFFFFFF << drop) & 0xFFFFFFFF) - (1 << 32)   # mask as i32
    e = fe.empty("f32", t.shape, n)
    name = fe.fresh("rounded")
    a_in, a_out = fe.fresh("x"), fe.fresh("o")
    v = {k: fe.fresh(k) for k in ("bits", "sh", "lsb", "up", "up2", "kept", "r", "ax", "fin", "y",
                                  "c_drop", "c_one", "c_half", "c_mask", "c_inf")}
    loc = fe.loc(n)
    body = [f"{v['c_drop']} = arith.constant {drop} : i32", f"{v['c_one']} = arith.constant 1 : i32",
            f"{v['c_half']} = arith.constant {half} : i32", f"{v['c_mask']} = arith.constant {mask} : i32",
            f"{v['c_inf']} = arith.constant 0x7F800000 : f32",
            f"{v['bits']} = arith.bitcast {a_in} : f32 to i32{loc}",
            f"{v['sh']} = arith.shrui {v['bits']}, {v['c_drop']} : i32{loc}",
            f"{v['lsb']} = arith.andi {v['sh']}, {v['c_one']} : i32{loc}",
            f"{v['up']} = arith.addi {v['bits']}, {v['c_half']} : i32{loc}",
            f"{v['up2']} = arith.addi {v['up']}, {v['lsb']} : i32{loc}",
            f"{v['kept']} = arith.andi {v['up2']}, {v['c_mask']} : i32{loc}",
            f"{v['r']} = arith.bitcast {v['kept']} : i32 to f32{loc}",
            # inf and NaN pass unchanged (a carry could turn one into the other)
            f"{v['ax']} = math.absf {a_in} : f32{loc}",
            f"{v['fin']} = arith.cmpf olt, {v['ax']}, {v['c_inf']} : f32{loc}",
            f"{v['y']} = arith.select {v['fin']}, {v['r']}, {a_in} : f32{loc}",
            f"linalg.yield {v['y']} : f32"]
    r = t.rank
    pad = fe.ind * 2
    ty = tensor_type(t)
    iters = ", ".join(['"parallel"'] * r)
    fe.comment(f"%{fe.printed[n.id]} matmul operand rounded to {fe.precision} (precision mode)")
    fe.lines.append(f"{pad}{name} = linalg.generic {{indexing_maps = [{_amap(r, list(range(r)))}, "
                    f"{_amap(r, list(range(r)))}], iterator_types = [{iters}]}} "
                    f"ins({x} : {ty}) outs({e} : {ty}) {{")
    fe.lines.append(f"{pad}^bb0({a_in}: f32, {a_out}: f32):")
    fe.lines += [pad + fe.ind + b for b in body]
    fe.lines.append(f"{pad}}} -> {ty}{loc}")
    return name


def matmul(fe, n: Node) -> str:
    g, plan = fe.g, fe.plan
    ai, bi = plan.inputs[n.id]
    ta, tb = plan.folded.get((n.id, 0), False), plan.folded.get((n.id, 1), False)
    A, B, out = g[ai].type, g[bi].type, n.type
    a, b = fe.tensor(ai), fe.tensor(bi)
    if fe.precision != "fp32" and n.dtype == "f32":
        a, b = round_operand(fe, a, A, n), round_operand(fe, b, B, n)
    init = fe.filled(n.dtype, out.shape, 0, n)
    name = fe.node_name(n)
    tys = f"{tensor_type(A)}, {tensor_type(B)}"
    t_out = tensor_type(out)
    note = [f"%{fe.printed[i]} transpose" for k, i in enumerate(n.inputs) if plan.folded.get((n.id, k))]
    if note:
        fe.comment(f"%{fe.printed[n.id]} matmul reads {' and '.join(note)} through its indexing map")
    if A.rank == 2 and B.rank == 2 and n.dtype != "bool":
        if not (ta or tb):
            fe.emit(f"{name} = linalg.matmul ins({a}, {b} : {tys}) outs({init} : {t_out}) -> {t_out}", n)
        else:
            maps = [_amap(3, [2, 0] if ta else [0, 2]), _amap(3, [1, 2] if tb else [2, 1]), _amap(3, [0, 1])]
            fe.emit(f"{name} = linalg.matmul indexing_maps = [{', '.join(maps)}] ins({a}, {b} : {tys}) "
                      f"outs({init} : {t_out}) -> {t_out}", n)
        return name
    if (A.rank == 3 and B.rank == 3 and not (ta or tb) and n.dtype != "bool"
            and canon_dim(A.shape[0]) == canon_dim(B.shape[0])):
        fe.emit(f"{name} = linalg.batch_matmul ins({a}, {b} : {tys}) outs({init} : {t_out}) -> {t_out}", n)
        return name
    # a contraction generic: batch loops (broadcast like numpy), m, n, k
    nb = out.rank - 2
    m_, n_, k_ = nb, nb + 1, nb + 2

    def operand_map(t: TensorType, inner):
        shift = nb - (t.rank - 2)
        ex = []
        for j, d in enumerate(t.shape[:-2]):
            ex.append(None if (d == 1 and out.shape[j + shift] != 1) else j + shift)
        return _amap(nb + 3, ex + inner)
    maps = [operand_map(A, [k_, m_] if ta else [m_, k_]), operand_map(B, [n_, k_] if tb else [k_, n_]),
            _amap(nb + 3, list(range(nb + 2)))]
    iters = ", ".join(['"parallel"'] * (nb + 2) + ['"reduction"'])
    e = ELEM[n.dtype]
    x, y, acc, p, s = (fe.fresh(v) for v in ("a", "b", "acc", "prod", "sum"))
    if n.dtype in FLOATS:
        mul, add = "arith.mulf", "arith.addf"
    elif n.dtype == "bool":
        mul, add = "arith.andi", "arith.ori"
    else:
        mul, add = "arith.muli", "arith.addi"
    pad = fe.ind * 2
    fe.comment(f"%{fe.printed[n.id]} matmul: a batched contraction")
    fe.lines += [
        f"{pad}{name} = linalg.generic {{indexing_maps = [{', '.join(maps)}], iterator_types = [{iters}]}} "
        f"ins({a}, {b} : {tys}) outs({init} : {t_out}) {{",
        f"{pad}^bb0({x}: {e}, {y}: {e}, {acc}: {e}):",
        f"{pad}{fe.ind}{p} = {mul} {x}, {y} : {e}",
        f"{pad}{fe.ind}{s} = {add} {acc}, {p} : {e}",
        f"{pad}{fe.ind}linalg.yield {s} : {e}",
        f"{pad}}} -> {t_out}{fe.loc(n)}",
    ]
    return name


def batch_summed_matmul(fe, n: Node) -> str:
    """sum over the batch axes of matmul(transpose(x), g) (plan.batch_summed): x [B.., K, M] and
    g [B.., K, N] collapse to [B..*K, M] and [B..*K, N] (contiguous, free) and one
    `linalg.matmul` reads the first transposed. A batched contraction and then a reduction over
    [B.., M, N] were two dispatches and executables, the batched one slower than one matmul."""
    g, plan = fe.g, fe.plan
    m = g[n.inputs[0]]
    ai, bi = plan.inputs[m.id]
    A, B = g[ai].type, g[bi].type
    nb = m.type.rank - 2
    flat = [canon_dim(numel(A.shape[:nb + 1]))]
    a2 = TensorType(A.dtype, tuple(flat) + (A.shape[-1],))
    b2 = TensorType(B.dtype, tuple(flat) + (B.shape[-1],))
    a = fe.reshape(fe.tensor(ai), A, a2, n)
    b = fe.reshape(fe.tensor(bi), B, b2, n)
    if fe.precision != "fp32" and m.dtype == "f32":
        a, b = round_operand(fe, a, a2, n), round_operand(fe, b, b2, n)
    init = fe.filled(n.dtype, n.shape, 0, n)
    name = fe.node_name(n)
    t_out = tensor_type(n.type)
    maps = [_amap(3, [2, 0]), _amap(3, [2, 1]), _amap(3, [0, 1])]
    fe.comment(f"%{fe.printed[n.id]} sum over the batches of %{fe.printed[m.id]} matmul: one matmul "
               f"of the operands collapsed to [{', '.join(map(str, flat))}, ..]")
    fe.emit(f"{name} = linalg.matmul indexing_maps = [{', '.join(maps)}] ins({a}, {b} : {tensor_type(a2)}, "
            f"{tensor_type(b2)}) outs({init} : {t_out}) -> {t_out}", n)
    return name


# A concat of at most this many parts, each one entry thick along the axis (a scan's per-step
# outputs stacked: passes/unroll.py, passes/chunk.py), is one generic reading every part; more
# parts make each output entry's select chain (one compare and select per part) too long.
STACK_MAX_PARTS = 16
# Every output entry of that generic reads all K parts. Measured (IREE 3.13, llvm-cpu, 2-core
# Xeon, min of 30 calls): up to 8 parts it is level with tensor.concat at any size (2 x [1024, 512]
# along axis 1: 0.63 vs 0.93 ms; 8 x [512, 256]: 0.65 vs 0.64 ms), but 16 big parts pay for the
# reads (16 x [256, 256] along axis 0: 1.19 vs 0.65 ms). So more than STACK_BIG_PARTS parts take
# the generic only while each part's static size (symbolic axes counted once) stays small, as a
# scan's per-step slices ([B, 1, 16]) do.
STACK_BIG_PARTS = 8
STACK_SMALL_PART = 1024


def concat(fe, n: Node) -> str:
    g = fe.g
    xs = [fe.tensor(i) for i in n.inputs]
    if len(xs) == 1:
        return xs[0]
    axis = n.attr["axis"] % n.type.rank
    width = g[n.inputs[0]].shape[axis]
    if (_stacks_as_one_generic(len(xs), g[n.inputs[0]].shape) and isinstance(width, int) and width > 0
            and all(g[i].shape[axis] == width for i in n.inputs)):
        return stack(fe, n, xs, axis, width)
    name = fe.node_name(n)
    tys = ", ".join(tensor_type(g[i].type) for i in n.inputs)
    fe.emit(f"{name} = tensor.concat dim({axis}) {', '.join(xs)} : ({tys}) -> {tensor_type(n.type)}", n)
    return name


def _stacks_as_one_generic(parts: int, part_shape) -> bool:
    """Whether a concat of `parts` parts of `part_shape` (equal widths) is worth one generic."""
    if parts > STACK_MAX_PARTS:
        return False
    static = 1
    for d in part_shape:
        static *= d if isinstance(d, int) else 1
    return parts <= STACK_BIG_PARTS or static <= STACK_SMALL_PART


def stack(fe, n: Node, xs: list[str], axis: int, width: int) -> str:
    """A concat of K parts `width` entries thick along `axis` as one generic over the output
    seen as [.., K, width, ..] whose entry t along K selects part t (each part seen as
    [.., 1, width, ..]; both reshapes are free). IREE 3.13 splits a tensor.concat into an
    insert_slice per part, each a copy dispatch of its own (and, strided, an executable of its
    own per offset): K dispatches for a K-step stack, against one here (docs/mlir.md, "Loops")."""
    g = fe.g
    if width != 1:
        def split(t: TensorType, k: int) -> TensorType:
            return TensorType(t.dtype, tuple(t.shape[:axis]) + (k, width) + tuple(t.shape[axis + 1:]))
        parts = [fe.reshape(x, g[i].type, split(g[i].type, 1), n) for x, i in zip(xs, n.inputs)]
        whole = split(n.type, len(xs))
        stacked = _stack_generic(fe, n, parts, [split(g[i].type, 1) for i in n.inputs], whole, axis,
                                 fe.fresh(f"stack{fe.printed[n.id]}"))
        return fe.reshape(stacked, whole, n.type, n, name=fe.node_name(n))
    return _stack_generic(fe, n, xs, [g[i].type for i in n.inputs], n.type, axis, fe.node_name(n))


def _stack_generic(fe, n: Node, xs: list[str], types: list[TensorType], t: TensorType, axis: int, name: str) -> str:
    """`name` = the parts `xs` (types one entry thick along `axis`) stacked along it, as one
    generic: entry k along the axis is a chain of selects picking part k."""
    r, e = t.rank, ELEM[t.dtype]
    out = fe.empty(t.dtype, t.shape, n)
    here = fe.fresh("step")
    args = [fe.fresh("part") for _ in xs]
    body = [f"{here} = linalg.index {axis} : index{fe.loc(n)}"]
    picked = args[0]
    for k in range(1, len(xs)):
        hit, sel = fe.fresh("hit"), fe.fresh("pick")
        body += [f"{hit} = arith.cmpi eq, {here}, {fe.index_const(k)} : index{fe.loc(n)}",
                 f"{sel} = arith.select {hit}, {args[k]}, {picked} : {e}{fe.loc(n)}"]
        picked = sel
    body.append(f"linalg.yield {picked} : {e}")
    part_map = _amap(r, [None if d == axis else d for d in range(r)])
    maps = [part_map] * len(xs) + [_amap(r, list(range(r)))]
    iters = ", ".join(['"parallel"'] * r)
    tys = ", ".join(tensor_type(ty) for ty in types)
    pad = fe.ind * 2
    fe.comment(f"%{fe.printed[n.id]} concat of {len(xs)} parts of one width along axis {axis}: one generic")
    fe.lines.append(f"{pad}{name} = linalg.generic {{indexing_maps = [{', '.join(maps)}], iterator_types = "
                    f"[{iters}]}} ins({', '.join(xs)} : {tys}) outs({out} : {tensor_type(t)}) {{")
    fe.lines.append(f"{pad}^bb0({', '.join(f'{a}: {e}' for a in args)}, {fe.fresh('out')}: {e}):")
    fe.lines += [f"{pad}{fe.ind}{line}" for line in body]
    fe.lines.append(f"{pad}}} -> {tensor_type(t)}{fe.loc(n)}")
    return name


def reshape(fe, n: Node) -> str:
    x = fe.g[n.inputs[0]]
    return fe.reshape(fe.tensor(x.id), x.type, n.type, n, name=fe.node_name(n))


def constant(fe, n: Node) -> str:
    return fe.tensor(n.id)


# primitive -> rule(function emitter, node) -> SSA value of the result
SINGLE_RULES = {
    "const": constant,
    "random_uniform": random_constant,
    "random_normal": random_constant,
    "matmul": matmul,
    "reshape": reshape,
    "slice": tensor_slice,
    "pad": tensor_pad,
    "concat": concat,
    "gather": gather,
    "scatter_add": scatter_add,
    **CONV_RULES,        # conv (convs.py)
    **POOL_RULES,        # reduce_window, select_scatter (windows.py)
}
