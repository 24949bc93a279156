"""The mlir backend's rule for `conv`.

    tensor.pad, then linalg.conv_{1d_nwc_wcf, 2d_nhwc_hwcf, 3d_ndhwc_dhwcf} (groups == 1) or
    one linalg.generic over [N, *O, G, F/G] (grouped); a window with more taps than the output
    has positions (the kernel gradient's shape) as an im2col copy and one linalg.batch_matmul
    over the input channels, then their sum (plan.conv_by_channel), or one linalg.matmul where
    those partial sums would outgrow the copy (docs/mlir.md, "Kernel gradients").
"""
from __future__ import annotations

from ...ir.graph import Node
from ...ir.shapes import TensorType, numel
from .plan import conv_by_channel
from .types import ELEM, FLOATS, tensor_type
from .windows import LAYOUT, affine_map, dense_i64, pad_spatial


def conv(fe, n: Node) -> str:
    a, g = n.attr, fe.g
    if conv_by_channel(n, g):
        return _conv_by_channel(fe, n)
    sp = n.type.rank - 2
    w = g[n.inputs[1]]
    xs, xt = pad_spatial(fe, n.inputs[0], a["padding"], 0, n)
    ws, el = fe.tensor(w.id), ELEM[n.dtype]
    name = fe.node_name(n)
    fe.comment(f"%{fe.printed[n.id]} conv (stride {list(a['stride'])}, dilation {list(a['dilation'])}, "
               f"groups {a['groups']})")
    if a["groups"] == 1 and _reduction_heavy(n, w):
        return _conv_as_matmul(fe, n, xs, xt, w, name)
    if a["groups"] == 1 and sp in LAYOUT:
        init = fe.filled(n.dtype, n.shape, 0, n)
        op = f"linalg.conv_{sp}d_{LAYOUT[sp][0]}_{LAYOUT[sp][1]}"
        fe.emit(f"{name} = {op} {{dilations = {dense_i64(a['dilation'])}, strides = {dense_i64(a['stride'])}}} "
                f"ins({xs}, {ws} : {tensor_type(xt)}, {tensor_type(w.type)}) outs({init} : "
                f"{tensor_type(n.type)}) -> {tensor_type(n.type)}", n)
        return name
    # grouped: channels split as [G, C/G] and [G, F/G] so every loop is a plain index somewhere
    grp, cg, f = a["groups"], w.shape[-2], w.shape[-1]
    fg = f // grp
    xe_t = TensorType(xt.dtype, tuple(xt.shape[:-1]) + (grp, cg))
    we_t = TensorType(w.dtype, tuple(w.shape[:-1]) + (grp, fg))
    ye_t = TensorType(n.dtype, tuple(n.shape[:-1]) + (grp, fg))
    xe = fe.reshape(xs, xt, xe_t, n)
    we = fe.reshape(ws, w.type, we_t, n)
    init = fe.filled(n.dtype, ye_t.shape, 0, n)
    # loops: n, o_1..o_sp, g, f, t_1..t_sp, c
    L = 2 * sp + 4
    o = [f"d{1 + j}" for j in range(sp)]
    t = [f"d{sp + 3 + j}" for j in range(sp)]
    gd, fd, cd = f"d{sp + 1}", f"d{sp + 2}", f"d{2 * sp + 3}"
    xmap = affine_map(L, ["d0"] + [f"{o[j]} * {a['stride'][j]} + {t[j]} * {a['dilation'][j]}" for j in range(sp)]
                + [gd, cd])
    wmap = affine_map(L, t + [cd, gd, fd])
    ymap = affine_map(L, ["d0"] + o + [gd, fd])
    iters = ", ".join(['"parallel"'] * (sp + 3) + ['"reduction"'] * (sp + 1))
    ye = fe.fresh("conv")
    fe.lines.append(f"{fe.ind * 2}{ye} = linalg.generic {{indexing_maps = [{xmap}, {wmap}, {ymap}], "
                    f"iterator_types = [{iters}]}} ins({xe}, {we} : {tensor_type(xe_t)}, {tensor_type(we_t)}) "
                    f"outs({init} : {tensor_type(ye_t)}) {{")
    p, q, acc, m, s = fe.fresh("x"), fe.fresh("w"), fe.fresh("acc"), fe.fresh("m"), fe.fresh("s")
    fe.lines.append(f"{fe.ind * 2}^bb0({p}: {el}, {q}: {el}, {acc}: {el}):")
    fe.lines.append(f"{fe.ind * 3}{m} = arith.mulf {p}, {q} : {el}")
    fe.lines.append(f"{fe.ind * 3}{s} = arith.addf {acc}, {m} : {el}")
    fe.lines.append(f"{fe.ind * 3}linalg.yield {s} : {el}")
    fe.lines.append(f"{fe.ind * 2}}} -> {tensor_type(ye_t)}{fe.loc(n)}")
    return fe.reshape(ye, ye_t, n.type, n, name)


def _reduction_heavy(n: Node, w) -> bool:
    """More window taps than output positions: the shape of a kernel gradient (window = the
    forward output, output = the forward kernel). IREE's direct-convolution code vectorises
    along the output's width and filters and loops over the taps, so a 16x16 window onto a
    3x3 output ran at a few GFLOP/s (200 ms for case F's second kernel gradient); the same
    sum as a matmul over an im2col copy runs near matmul speed. The copy costs memory: about
    (output positions) x the input, 9x for a 3x3 kernel's gradient, 49x for a 7x7 one."""
    sp = n.type.rank - 2
    taps, positions = numel(w.shape[:sp]), numel(n.shape[1:-1])
    return isinstance(taps, int) and isinstance(positions, int) and taps > positions


def _conv_as_matmul(fe, n: Node, xs: str, xt: TensorType, w, name: str) -> str:
    """y[b, o, f] = sum over taps t and channels c of x[b, o*stride + t*dilation, c] * w[t, c, f]:
    copy the windows out, then matmuls over that copy (a static gather through the indexing map).

    By rows of taps (`_by_tap_row`): col[t1, b, o.., t2.., c] and one linalg.batch_matmul over
    the first tap axis t1, col[t1, (b, o..), (t2.., c)] @ w[t1, (t2.., c), f], then the sum over
    t1: each matmul is T/T1 * C deep instead of T * C, and w is read in its own layout. Otherwise
    col[b, o.., t.., c] and one matmul col[(b, o), (t, c)] @ w[(t, c), f], y in its own layout."""
    a = n.attr
    sp = n.type.rank - 2
    batch, outs, taps, chans = xt.shape[0], tuple(n.shape[1:-1]), tuple(w.shape[:sp]), w.shape[sp]
    f = w.shape[-1]
    rows_t = TensorType(n.dtype, (batch,) + outs)
    by_row = _by_tap_row(taps, chans, f)
    # loops: [t1,] b, o.., t.. (t1 left out when by rows), c
    lead = 1 if by_row else 0
    o0, t0 = lead + 1, lead + 1 + sp
    tl = [f"d{t0 + j}" for j in range(sp)]
    if by_row:   # t1 is loop d0; t2.. follow the output loops
        tl = ["d0"] + [f"d{t0 + j - 1}" for j in range(1, sp)]
        col_t = TensorType(n.dtype, (taps[0], batch) + outs + taps[1:] + (chans,))
    else:
        col_t = TensorType(n.dtype, (batch,) + outs + taps + (chans,))
    loops = col_t.rank
    xmap = affine_map(loops, [f"d{lead}"] + [f"d{o0 + j} * {a['stride'][j]} + {tl[j]} * {a['dilation'][j]}"
                                       for j in range(sp)] + [f"d{loops - 1}"])
    col = _im2col(fe, n, xs, xt, xmap, col_t)
    rows = numel(rows_t.shape)
    if not by_row:
        depth = numel(taps + (chans,))
        lhs_t, rhs_t, mm_t = (TensorType(n.dtype, s) for s in ((rows, depth), (depth, f), (rows, f)))
        lhs = fe.reshape(col, col_t, lhs_t, n)
        rhs = fe.reshape(fe.tensor(w.id), w.type, rhs_t, n)
        init = fe.filled(n.dtype, mm_t.shape, 0, n)
        mm = fe.fresh("mm")
        fe.emit(f"{mm} = linalg.matmul ins({lhs}, {rhs} : {tensor_type(lhs_t)}, {tensor_type(rhs_t)}) "
                f"outs({init} : {tensor_type(mm_t)}) -> {tensor_type(mm_t)}", n)
        return fe.reshape(mm, mm_t, n.type, n, name)
    t1, depth = taps[0], numel(taps[1:] + (chans,))
    lhs_t, rhs_t, part_t = (TensorType(n.dtype, s) for s in ((t1, rows, depth), (t1, depth, f), (t1, rows, f)))
    lhs = fe.reshape(col, col_t, lhs_t, n)
    rhs = fe.reshape(fe.tensor(w.id), w.type, rhs_t, n)
    init = fe.filled(n.dtype, part_t.shape, 0, n)
    part = fe.fresh("part")
    fe.emit(f"{part} = linalg.batch_matmul ins({lhs}, {rhs} : {tensor_type(lhs_t)}, {tensor_type(rhs_t)}) "
            f"outs({init} : {tensor_type(part_t)}) -> {tensor_type(part_t)}", n)
    full_t = TensorType(n.dtype, (t1,) + tuple(n.shape))
    full = fe.reshape(part, part_t, full_t, n)
    return _sum_leading(fe, n, full, full_t, name)


def _im2col(fe, n: Node, xs: str, xt: TensorType, xmap: str, col_t: TensorType) -> str:
    """The im2col copy: col [col_t] = x read through `xmap` (one generic: a static gather)."""
    el = ELEM[n.dtype]
    idmap = affine_map(col_t.rank, [f"d{k}" for k in range(col_t.rank)])
    iters = ", ".join(['"parallel"'] * col_t.rank)
    empty = fe.empty(n.dtype, col_t.shape, n)
    col = fe.fresh("im2col")
    v, o = fe.fresh("v"), fe.fresh("o")
    fe.lines += [f"{fe.ind * 2}{col} = linalg.generic {{indexing_maps = [{xmap}, {idmap}], "
                 f"iterator_types = [{iters}]}} ins({xs} : {tensor_type(xt)}) "
                 f"outs({empty} : {tensor_type(col_t)}) {{",
                 f"{fe.ind * 2}^bb0({v}: {el}, {o}: {el}):",
                 f"{fe.ind * 3}linalg.yield {v} : {el}",
                 f"{fe.ind * 2}}} -> {tensor_type(col_t)}{fe.loc(n)}"]
    return col


def _by_tap_row(taps, chans, f) -> bool:
    """Batch the matmul over the first tap axis: it has more than one entry, and the partial sums
    [T1, rows, F] are no bigger than the copy [T1, rows, T2.. * C] they come from (always taken
    for a symbolic C, a kernel gradient's batch: the partial sums stay the same size at any
    batch while the copy grows with it)."""
    rest = numel(taps[1:] + (chans,))
    return (isinstance(taps[0], int) and taps[0] > 1 and isinstance(f, int)
            and (not isinstance(rest, int) or f <= rest))


def _sum_leading(fe, n: Node, full: str, full_t: TensorType, name: str) -> str:
    """`name` = the sum of `full` [K, *n.shape] over its leading axis (a reduction generic)."""
    r = n.type.rank
    pmap = affine_map(r + 1, [f"d{r}"] + [f"d{k}" for k in range(r)])
    ymap = affine_map(r + 1, [f"d{k}" for k in range(r)])
    return _sum_into(fe, n, full, full_t, name, pmap, ymap)


def _sum_into(fe, n: Node, full: str, full_t: TensorType, name: str, pmap: str, ymap: str) -> str:
    """`name` [n.shape] = the sum of `full` over the one loop `ymap` leaves out (the last)."""
    el = ELEM[n.dtype]
    yinit = fe.filled(n.dtype, n.shape, 0, n)
    acc, p_, s_ = fe.fresh("acc"), fe.fresh("p"), fe.fresh("s")
    add = "arith.addf" if n.dtype in FLOATS else "arith.addi"
    iters = ", ".join(['"parallel"'] * n.type.rank + ['"reduction"'])
    fe.lines += [f"{fe.ind * 2}{name} = linalg.generic {{indexing_maps = [{pmap}, {ymap}], "
                 f"iterator_types = [{iters}]}} ins({full} : {tensor_type(full_t)}) "
                 f"outs({yinit} : {tensor_type(n.type)}) {{",
                 f"{fe.ind * 2}^bb0({p_}: {el}, {acc}: {el}):",
                 f"{fe.ind * 3}{s_} = {add} {acc}, {p_} : {el}",
                 f"{fe.ind * 3}linalg.yield {s_} : {el}",
                 f"{fe.ind * 2}}} -> {tensor_type(n.type)}{fe.loc(n)}"]
    return name


def _conv_by_channel(fe, n: Node) -> str:
    """y[b, o.., f] = sum over c of (sum over taps t of x[b, o*stride + t*dilation, c] * w[t.., c, f]):
    the inner sum is one matmul per channel c, so the contraction is T deep, not C*T.
    In a kernel gradient c is the forward batch, x = x_fwd^T and w = g^T; both transposes
    fold here (plan.py), so the copy col[c, t.., o.., b] reads x_fwd[c, .., b] in runs of b
    (the forward input channels) and g needs no copy: w[t.., c, f] = g[c, t.., f].

        col[c, t.., o.., b] = xpad[b, o*s + t*d, c]     (one generic: a static gather)
        part[c, (o.., b), f] = sum_t col[c, t, (o.., b)] * w[c, t, f]    (linalg.batch_matmul)
        y[b, o.., f] = sum_c part[c, o.., b, f]          (one reduction generic)

    Case F (batch 64): the second conv's kernel gradient took 19 ms as one [288 x 16384] @
    [16384 x 64] matmul and its im2col, 6 ms this way (one thread, with real data)."""
    a, g, plan = n.attr, fe.g, fe.plan
    sp = n.type.rank - 2
    xi, wi = plan.inputs[n.id][:2]
    xsrc, wsrc = g[xi], g[wi]
    # x axis k is source axis px[k] (identity when no transpose folded)
    px = plan.folded.get((n.id, 0)) or tuple(range(sp + 2))
    pw = plan.folded.get((n.id, 1)) or tuple(range(sp + 2))
    notes = [f"%{fe.printed[n.inputs[k]]} transpose" for k in (0, 1) if plan.folded.get((n.id, k))]
    fe.comment(f"%{fe.printed[n.id]} conv (stride {list(a['stride'])}, dilation {list(a['dilation'])}) "
               f"as a matmul per input channel" + (f", reading {' and '.join(notes)} through its maps"
                                                     if notes else ""))
    w_t = g[n.inputs[1]].type
    batch, chans = g[n.inputs[0]].shape[0], g[n.inputs[0]].shape[-1]
    outs, taps, f = tuple(n.shape[1:-1]), tuple(w_t.shape[:sp]), w_t.shape[-1]
    # 1. pad the source on the axes that are x's spatial ones
    xs, xt = fe.tensor(xi), xsrc.type
    lo, hi = [0] * (sp + 2), [0] * (sp + 2)
    for j, (l, h) in enumerate(a["padding"]):
        lo[px[1 + j]], hi[px[1 + j]] = l, h
    if any(lo) or any(hi):
        shape = tuple(d + l + h if l or h else d for d, l, h in zip(xt.shape, lo, hi))
        pt = TensorType(xt.dtype, shape)
        xs, xt = fe.padded(fe.fresh("padded"), xs, xt, pt, lo, hi, 0, n), pt
    # 2. col[c, t.., o.., b]: loops d0 = c, d1.. = t, d(1+sp).. = o, d(1+2sp) = b
    loops = 2 * sp + 2
    x_expr = ([f"d{loops - 1}"]
              + [f"d{1 + sp + j} * {a['stride'][j]} + d{1 + j} * {a['dilation'][j]}" for j in range(sp)]
              + ["d0"])
    src_expr = [""] * (sp + 2)
    for k, e in enumerate(x_expr):
        src_expr[px[k]] = e
    col_t = TensorType(n.dtype, (chans,) + taps + outs + (batch,))
    col = _im2col(fe, n, xs, xt, affine_map(loops, src_expr), col_t)
    depth, rows = numel(taps), numel(outs + (batch,))
    lhs_t = TensorType(n.dtype, (chans, depth, rows))
    lhs = fe.reshape(col, col_t, lhs_t, n)
    # 3. w as [c, t, f]: the source itself when its axes already come in that order
    order = (pw[sp],) + tuple(pw[:sp]) + (pw[sp + 1],)
    ws, wt = fe.tensor(wi), wsrc.type
    if order != tuple(range(sp + 2)):
        ct = TensorType(wt.dtype, tuple(wt.shape[k] for k in order))
        e = fe.empty(n.dtype, ct.shape, n)
        name = fe.fresh("by_channel")
        fe.emit(f"{name} = linalg.transpose ins({ws} : {tensor_type(wt)}) outs({e} : {tensor_type(ct)}) "
                f"permutation = [{', '.join(map(str, order))}]", n)
        ws, wt = name, ct
    rhs_t = TensorType(n.dtype, (chans, depth, f))
    rhs = fe.reshape(ws, wt, rhs_t, n)
    part_t = TensorType(n.dtype, (chans, rows, f))
    init = fe.filled(n.dtype, part_t.shape, 0, n)
    part = fe.fresh("part")
    maps = ", ".join(affine_map(4, e) for e in (["d0", "d3", "d1"], ["d0", "d3", "d2"], ["d0", "d1", "d2"]))
    fe.emit(f"{part} = linalg.batch_matmul indexing_maps = [{maps}] ins({lhs}, {rhs} : {tensor_type(lhs_t)}, "
            f"{tensor_type(rhs_t)}) outs({init} : {tensor_type(part_t)}) -> {tensor_type(part_t)}", n)
    # 4. y[b, o.., f] = sum over c: loops d0.. = o, d(sp) = b, d(sp+1) = f, d(sp+2) = c
    full_t = TensorType(n.dtype, (chans,) + outs + (batch, f))
    full = fe.reshape(part, part_t, full_t, n)
    L = sp + 3
    pmap = affine_map(L, [f"d{sp + 2}"] + [f"d{j}" for j in range(sp)] + [f"d{sp}", f"d{sp + 1}"])
    ymap = affine_map(L, [f"d{sp}"] + [f"d{j}" for j in range(sp)] + [f"d{sp + 1}"])
    return _sum_into(fe, n, full, full_t, fe.node_name(n), pmap, ymap)


CONV_RULES = {"conv": conv}
