"""The mlir backend's rules for the pooling primitives (reduce_window, select_scatter), and
the window helpers convs.py shares (affine maps, spatial padding, the named ops' layouts).

    reduce_window   tensor.pad with the reduction's identity, then linalg.pooling_n*c_{max,sum};
                    a max over non-overlapping windows whose gradient comes later (pool_pairs):
                    one generic yielding the max and each window's winning tap (i8)
    select_scatter  two generics: the first maximal tap of every window (an order-free
                    (value, index) reduction: the lower index wins a tie), then for every
                    input pixel the sum of the g's of the windows whose chosen tap it is;
                    over non-overlapping windows one elementwise map over the input, reading
                    the winning taps its pool recorded where there are some
"""
from __future__ import annotations

from ...ir.graph import Node
from ...ir.shapes import TensorType, numel
from .types import ELEM, FLOATS, lowest, tensor_type

LAYOUT = {1: ("nwc", "wcf"), 2: ("nhwc", "hwcf"), 3: ("ndhwc", "dhwcf")}


def affine_map(nloops: int, exprs) -> str:
    dims = ", ".join(f"d{k}" for k in range(nloops))
    return f"affine_map<({dims}) -> ({', '.join(exprs)})>"


def dense_i64(vals) -> str:
    return f"dense<[{', '.join(map(str, vals))}]> : tensor<{len(vals)}xi64>"


def pad_spatial(fe, x_id: int, padding, fill, n: Node) -> tuple[str, TensorType]:
    """x [N, *S, C] padded on its spatial axes with the scalar `fill`."""
    x = fe.g[x_id]
    if not any(lo or hi for lo, hi in padding):
        return fe.tensor(x_id), x.type
    shape = (x.shape[0],) + tuple(d + lo + hi for d, (lo, hi) in zip(x.shape[1:-1], padding)) + (x.shape[-1],)
    ty = TensorType(x.dtype, shape)
    lo = [0] + [p[0] for p in padding] + [0]
    hi = [0] + [p[1] for p in padding] + [0]
    return fe.padded(fe.fresh("padded"), fe.tensor(x_id), x.type, ty, lo, hi, fill, n), ty


def reduce_window(fe, n: Node) -> str:
    if n.id in fe.pool_taps_for:
        return _max_pool_with_taps(fe, n)
    a = n.attr
    sp = n.type.rank - 2
    kind = a["kind"]
    ident = 0 if kind == "sum" else lowest(n.dtype)
    xs, xt = pad_spatial(fe, n.inputs[0], a["padding"], ident, n)
    init = fe.filled(n.dtype, n.shape, ident, n)
    window = fe.fresh("window")
    wt = f"tensor<{'x'.join(map(str, a['window']))}x{ELEM[n.dtype]}>"
    fe.emit(f"{window} = tensor.empty() : {wt}", n)
    name = fe.node_name(n)
    fe.emit(f"{name} = linalg.pooling_{LAYOUT[sp][0]}_{kind} {{dilations = {dense_i64([1] * sp)}, "
            f"strides = {dense_i64(a['stride'])}}} ins({xs}, {window} : {tensor_type(xt)}, {wt}) "
            f"outs({init} : {tensor_type(n.type)}) -> {tensor_type(n.type)}", n)
    return name


def _tap_index(fe, tap_loops, window, lines: list[str]) -> str:
    """The window-raster index of the tap at loops tap_loops (one per spatial axis), as an i32."""
    pad = fe.ind * 3
    lin = None
    for j, loop in enumerate(tap_loops):
        t = fe.fresh("t")
        lines.append(f"{pad}{t} = linalg.index {loop} : index")
        if lin is None:
            lin = t
        else:
            m, s = fe.fresh("t"), fe.fresh("t")
            lines.append(f"{pad}{m} = arith.muli {lin}, {fe.index_const(window[j])} : index")
            lines.append(f"{pad}{s} = arith.addi {m}, {t} : index")
            lin = s
    out = fe.fresh("tap")
    lines.append(f"{pad}{out} = arith.index_cast {lin} : index to i32")
    return out


def _chosen_taps(fe, n: Node, xs: str, xt: TensorType, xmap: str, gy) -> str:
    """The first maximal tap of every window: one order-free (value, index) reduction over the
    loops (n, o.., c, t..) whose x is read through xmap; the lower index wins a tie. Returns
    the SSA name of the index result [N, *O, C] (i32)."""
    sp = n.type.rank - 2
    el = ELEM[n.dtype]
    window = n.attr["window"]
    wt = f"tensor<{'x'.join(map(str, window))}x{el}>"
    pad = fe.ind * 3
    vals = fe.filled(n.dtype, gy.shape, lowest(n.dtype), n)
    idx_t = TensorType("i32", gy.shape)
    idx0 = fe.filled("i32", gy.shape, 0, n)
    win = fe.fresh("window")
    fe.emit(f"{win} = tensor.empty() : {wt}", n)
    L = 2 * sp + 2          # n, o.., c, t..
    wmap = affine_map(L, [f"d{sp + 2 + j}" for j in range(sp)])
    omap = affine_map(L, [f"d{k}" for k in range(sp + 2)])
    iters = ", ".join(['"parallel"'] * (sp + 2) + ['"reduction"'] * sp)
    r_val = fe.fresh("wmax")
    body: list[str] = []
    v, u, m, i = fe.fresh("v"), fe.fresh("u"), fe.fresh("m"), fe.fresh("i")
    tap = _tap_index(fe, range(sp + 2, 2 * sp + 2), window, body)
    gt, eq, lt, tie, take, nm, ni = (fe.fresh("c") for _ in range(7))
    body += [f"{pad}{gt} = arith.cmpf ogt, {v}, {m} : {el}",
             f"{pad}{eq} = arith.cmpf oeq, {v}, {m} : {el}",
             f"{pad}{lt} = arith.cmpi slt, {tap}, {i} : i32",
             f"{pad}{tie} = arith.andi {eq}, {lt} : i1",
             f"{pad}{take} = arith.ori {gt}, {tie} : i1",
             f"{pad}{nm} = arith.select {take}, {v}, {m} : {el}",
             f"{pad}{ni} = arith.select {take}, {tap}, {i} : i32",
             f"{pad}linalg.yield {nm}, {ni} : {el}, i32"]
    fe.lines.append(f"{fe.ind * 2}{r_val}:2 = linalg.generic {{indexing_maps = [{xmap}, {wmap}, {omap}, {omap}], "
                    f"iterator_types = [{iters}]}} ins({xs}, {win} : {tensor_type(xt)}, {wt}) "
                    f"outs({vals}, {idx0} : {tensor_type(gy.type)}, {tensor_type(idx_t)}) {{")
    fe.lines.append(f"{fe.ind * 2}^bb0({v}: {el}, {u}: {el}, {m}: {el}, {i}: i32):")
    fe.lines += body
    fe.lines.append(f"{fe.ind * 2}}} -> ({tensor_type(gy.type)}, {tensor_type(idx_t)}){fe.loc(n)}")
    return f"{r_val}#1"


# Windows of at most this many taps that tile the input are unrolled into one elementwise map.
UNROLLED_TAPS = 16


def _tiles_exactly(n: Node) -> bool:
    """Small windows that tile the input without overlap or padding (max pooling's usual
    form): every input pixel is tap h % w of window h // w, or in no window (the floor's
    leftover rows and columns)."""
    a = n.attr
    taps = 1
    for w in a["window"]:
        taps *= w
    return (tuple(a["window"]) == tuple(a["stride"]) and taps <= UNROLLED_TAPS
            and not any(lo or hi for lo, hi in a["padding"]))


def _tap_slices(fe, n: Node, x, outs, window) -> tuple[list[str], TensorType, TensorType]:
    """One [N, *O, C] slice per tap (window-raster order) of the view x[N, O1, W1, O2, W2, .., C]
    of the part of x that non-overlapping windows cover; with that view's type and the covered
    part's type."""
    sp = len(window)
    batch, chans = x.shape[0], x.shape[-1]
    covered = tuple(o * w for o, w in zip(outs, window))
    cov_t = TensorType(x.dtype, (batch,) + covered + (chans,))
    tiles_t = TensorType(x.dtype, (batch,) + tuple(d for ow in zip(outs, window) for d in ow) + (chans,))
    tap_t = TensorType(x.dtype, (batch,) + tuple(outs) + (chans,))
    dims = lambda shape: ", ".join(str(d) if isinstance(d, int) else fe.dim(d) for d in shape)  # noqa: E731
    xs = fe.tensor(x.id)
    if covered != tuple(x.shape[1:-1]):
        cut = fe.fresh("covered")
        fe.emit(f"{cut} = tensor.extract_slice {xs}[{', '.join(['0'] * (sp + 2))}] [{dims(cov_t.shape)}] "
                f"[{', '.join(['1'] * (sp + 2))}] : {tensor_type(x.type)} to {tensor_type(cov_t)}", n)
        xs = cut
    tiles = fe.reshape(xs, cov_t, tiles_t, n)
    taps = []
    for flat in range(numel(window)):
        at, rem = [], flat
        for w in reversed(window):
            at.insert(0, rem % w)
            rem //= w
        offs = ["0"] + [x for j in range(sp) for x in ("0", str(at[j]))] + ["0"]
        sizes = [batch] + [d for j in range(sp) for d in (outs[j], 1)] + [chans]
        tap = fe.fresh("tap")
        fe.emit(f"{tap} = tensor.extract_slice {tiles}[{', '.join(offs)}] [{dims(sizes)}] "
                f"[{', '.join(['1'] * len(sizes))}] : {tensor_type(tiles_t)} to {tensor_type(tap_t)}", n)
        taps.append(tap)
    return taps, tiles_t, cov_t


def _first_max(fe, vs, dtype: str, body: list[str]) -> tuple[str, str]:
    """(the max of vs, the index (i32) of its first maximal value), the numpy backend's running
    max (ir/pools.py): a later value wins where it is strictly greater than the running max
    (arith.maximumf, raster order), so a tie keeps the lowest index, a NaN never wins and no
    value after a NaN does (the running max is NaN from there on)."""
    pad, el = fe.ind * 3, ELEM[dtype]
    best, chosen = vs[0], fe.top_const(0, "i32")
    for k, v in enumerate(vs[1:], 1):
        gt, nb, nc = fe.fresh("gt"), fe.fresh("best"), fe.fresh("chosen")
        body += [f"{pad}{gt} = arith.cmpf ogt, {v}, {best} : {el}",
                 f"{pad}{nb} = arith.maximumf {best}, {v} : {el}",
                 f"{pad}{nc} = arith.select {gt}, {fe.top_const(k, 'i32')}, {chosen} : i32"]
        best, chosen = nb, nc
    return best, chosen


def _i8(t: TensorType) -> str:
    return tensor_type(TensorType("i32", t.shape)).replace("xi32>", "xi8>")


def _scatter_tail(fe, n: Node, x, spread: str, tiles_t: TensorType, cov_t: TensorType) -> str:
    """The scattered view as n's [N, *S, C], zeros on the rows and columns no window covers."""
    name = fe.node_name(n)
    if tuple(cov_t.shape) == tuple(x.shape):
        return fe.reshape(spread, tiles_t, n.type, n, name)
    flat = fe.reshape(spread, tiles_t, cov_t, n)
    hi = [0] + [d - c for d, c in zip(x.shape[1:-1], cov_t.shape[1:-1])] + [0]
    return fe.padded(name, flat, cov_t, n.type, [0] * len(hi), hi, 0, n)


def pool_pairs(graph) -> dict[int, int]:
    """reduce_window id -> select_scatter id, for each max pool over non-overlapping windows
    whose input a later tiled select_scatter reads through the same windows (max pooling and
    its gradient): the pool then also records each window's winning tap for it."""
    pools = {}
    for n in graph.nodes:
        if (n.op == "reduce_window" and n.attr["kind"] == "max" and n.dtype in FLOATS
                and _tiles_exactly(n)):
            pools.setdefault((n.inputs[0], tuple(n.attr["window"])), n.id)
    pairs = {}
    for m in graph.nodes:
        p = pools.get((m.inputs[0], tuple(m.attr["window"]))) if m.op == "select_scatter" else None
        if p is not None and p < m.id and p not in pairs and _tiles_exactly(m):
            pairs[p] = m.id
    return pairs


def _max_pool_with_taps(fe, n: Node) -> str:
    """A max pool over non-overlapping windows whose gradient (a select_scatter on the same
    input and windows) comes later: one generic over the taps' slices yields the pooled max
    (arith.maximumf in raster order from the first tap: linalg.pooling's bits) and each window's
    first maximal tap (_first_max) as an i8, the one _select_scatter_tiled would recompute. The gradient then
    reads 1 byte per window instead of keeping the pool's input alive (case F: its first conv's
    [N, 32, 32, 32] output, 128 KiB of the call's transient block per image)."""
    x = fe.g[n.inputs[0]]
    window = n.attr["window"]
    taps, _, _ = _tap_slices(fe, n, x, tuple(n.shape[1:-1]), window)
    el = ELEM[n.dtype]
    pad = fe.ind * 3
    vs = [fe.fresh("v") for _ in taps]
    body: list[str] = []
    best, chosen = _first_max(fe, vs, n.dtype, body)
    narrow = fe.fresh("tap")
    body += [f"{pad}{narrow} = arith.trunci {chosen} : i32 to i8",
             f"{pad}linalg.yield {best}, {narrow} : {el}, i8"]
    ident = affine_map(n.type.rank, [f"d{k}" for k in range(n.type.rank)])
    out_v = fe.empty(n.dtype, n.shape, n)
    out_i = fe.fresh("empty")
    fe.emit(f"{out_i} = tensor.empty({', '.join(fe.dyn_dims(n.shape))}) : {_i8(n.type)}", n)
    name = fe.node_name(n)
    iters = ", ".join(['"parallel"'] * n.type.rank)
    vt = tensor_type(n.type)
    fe.comment(f"{name} reduce_window max, with each window's first maximal tap for "
               f"%{fe.printed[fe.pool_taps_for[n.id]]} select_scatter")
    fe.lines.append(f"{fe.ind * 2}{name}:2 = linalg.generic {{indexing_maps = [{', '.join([ident] * (len(taps) + 2))}], "
                    f"iterator_types = [{iters}]}} ins({', '.join(taps)} : {', '.join([vt] * len(taps))}) "
                    f"outs({out_v}, {out_i} : {vt}, {_i8(n.type)}) {{")
    fe.lines.append(f"{fe.ind * 2}^bb0({', '.join(f'{v}: {el}' for v in vs)}, {fe.fresh('o')}: {el}, {fe.fresh('o')}: i8):")
    fe.lines += body
    fe.lines.append(f"{fe.ind * 2}}} -> ({vt}, {_i8(n.type)}){fe.loc(n)}")
    fe.pool_taps[fe.pool_taps_for[n.id]] = f"{name}#1"
    return f"{name}#0"


def _select_scatter_tiled(fe, n: Node, x, gy) -> str:
    """select_scatter of non-overlapping windows as one elementwise map over the view
    x[N, O1, W1, O2, W2, .., C] of the part of x the windows cover: every pixel reads its
    window's taps (one rank-reduced slice of the view per tap, indexed like g), finds the first
    maximal one and takes g if that is its own tap, else 0; zeros pad the leftover rows and
    columns. No gather and no scatter, so IREE vectorises it along the channels (the general
    form's gather took 19 ms of case F's step, this takes well under one). Where the forward
    pool recorded the winning taps (_max_pool_with_taps), the map reads those instead of x."""
    sp = n.type.rank - 2
    el = ELEM[n.dtype]
    window = n.attr["window"]
    outs = tuple(gy.shape[1:-1])
    fe.comment(f"%{fe.printed[n.id]} select_scatter over non-overlapping windows: "
               f"each window's gradient to its first maximal tap")
    L = 2 * sp + 2     # loops (n, o1, t1, o2, t2, .., c): the view's axes, all parallel
    gmap = affine_map(L, ["d0"] + [f"d{1 + 2 * j}" for j in range(sp)] + [f"d{L - 1}"])
    idmap = affine_map(L, [f"d{k}" for k in range(L)])
    pad = fe.ind * 3
    body: list[str] = []
    recorded = fe.pool_taps.get(n.id)
    if recorded is None:
        taps, tiles_t, cov_t = _tap_slices(fe, n, x, outs, window)
        vs = [fe.fresh("v") for _ in taps]
        gv, o = fe.fresh("g"), fe.fresh("o")
        own = _tap_index(fe, [2 + 2 * j for j in range(sp)], window, body)
        _, chosen = _first_max(fe, vs, n.dtype, body)
        ins, args = taps, [f"{v}: {el}" for v in vs]
        ins_t = [tensor_type(gy.type)] * len(taps)
    else:
        batch, chans = x.shape[0], x.shape[-1]
        cov_t = TensorType(x.dtype, (batch,) + tuple(o * w for o, w in zip(outs, window)) + (chans,))
        tiles_t = TensorType(x.dtype, (batch,) + tuple(d for ow in zip(outs, window) for d in ow) + (chans,))
        won, gv, o = fe.fresh("won"), fe.fresh("g"), fe.fresh("o")
        own = _tap_index(fe, [2 + 2 * j for j in range(sp)], window, body)
        chosen = fe.fresh("chosen")
        body.append(f"{pad}{chosen} = arith.extui {won} : i8 to i32")
        ins, args, ins_t = [recorded], [f"{won}: i8"], [_i8(gy.type)]
    hit, val = fe.fresh("hit"), fe.fresh("s")
    body += [f"{pad}{hit} = arith.cmpi eq, {chosen}, {own} : i32",
             f"{pad}{val} = arith.select {hit}, {gv}, {fe.top_const(0, n.dtype)} : {el}",
             f"{pad}linalg.yield {val} : {el}"]
    iters = ", ".join(['"parallel"'] * L)
    empty = fe.empty(n.dtype, tiles_t.shape, n)
    spread = fe.fresh("spread")
    ins_t.append(tensor_type(gy.type))
    fe.lines.append(f"{fe.ind * 2}{spread} = linalg.generic {{indexing_maps = [{', '.join([gmap] * (len(ins) + 1))}, "
                    f"{idmap}], iterator_types = [{iters}]}} "
                    f"ins({', '.join(ins)}, {fe.tensor(gy.id)} : {', '.join(ins_t)}) outs({empty} : {tensor_type(tiles_t)}) {{")
    fe.lines.append(f"{fe.ind * 2}^bb0({', '.join(args)}, {gv}: {el}, {o}: {el}):")
    fe.lines += body
    fe.lines.append(f"{fe.ind * 2}}} -> {tensor_type(tiles_t)}{fe.loc(n)}")
    return _scatter_tail(fe, n, x, spread, tiles_t, cov_t)


def select_scatter(fe, n: Node) -> str:
    a, g = n.attr, fe.g
    sp = n.type.rank - 2
    x, gy = g[n.inputs[0]], g[n.inputs[1]]
    if _tiles_exactly(n):
        return _select_scatter_tiled(fe, n, x, gy)
    el = ELEM[n.dtype]
    window, stride, padding = a["window"], a["stride"], a["padding"]
    wt = f"tensor<{'x'.join(map(str, window))}x{el}>"
    pad = fe.ind * 3
    fe.comment(f"%{fe.printed[n.id]} select_scatter: each window's gradient to its first maximal tap")
    # 1. the chosen tap of every window: max value, and the lowest index among the maximal taps
    xs, xt = pad_spatial(fe, x.id, padding, lowest(n.dtype), n)
    L = 2 * sp + 2          # n, o.., c, t..
    xmap = affine_map(L, ["d0"] + [f"d{1 + j} * {stride[j]} + d{sp + 2 + j}" for j in range(sp)] + [f"d{sp + 1}"])
    r_idx = _chosen_taps(fe, n, xs, xt, xmap, gy)
    idx_t = TensorType("i32", gy.shape)
    win = fe.fresh("window")
    fe.emit(f"{win} = tensor.empty() : {wt}", n)
    wmap = affine_map(L, [f"d{sp + 2 + j}" for j in range(sp)])
    iters = ", ".join(['"parallel"'] * (sp + 2) + ['"reduction"'] * sp)
    # 2. every input pixel h sums g over the windows o with o*stride + t == h + lo whose chosen tap is t
    init = fe.filled(n.dtype, n.shape, 0, n)
    gs = fe.tensor(gy.id)
    omap2 = affine_map(L, [f"d{k}" for k in range(sp + 2)])
    body = []
    acc, w_ = fe.fresh("acc"), fe.fresh("w")
    c0, zero = fe.index_const(0), fe.top_const(0, n.dtype)
    nb, cc = fe.fresh("n"), fe.fresh("ch")
    body.append(f"{pad}{nb} = linalg.index 0 : index")
    body.append(f"{pad}{cc} = linalg.index {sp + 1} : index")
    oks, coords = [], []
    for j in range(sp):
        h, t, hp, diff, q, r = (fe.fresh("h") for _ in range(6))
        nonneg, exact, inr, ok1, ok, qc, dcl = (fe.fresh("ok") for _ in range(7))
        body += [f"{pad}{h} = linalg.index {1 + j} : index",
                 f"{pad}{t} = linalg.index {sp + 2 + j} : index",
                 f"{pad}{hp} = arith.addi {h}, {fe.index_const(padding[j][0])} : index",
                 f"{pad}{diff} = arith.subi {hp}, {t} : index",
                 f"{pad}{nonneg} = arith.cmpi sge, {diff}, {c0} : index",
                 f"{pad}{dcl} = arith.maxsi {diff}, {c0} : index",
                 f"{pad}{q} = arith.divui {dcl}, {fe.index_const(stride[j])} : index",
                 f"{pad}{r} = arith.remui {dcl}, {fe.index_const(stride[j])} : index",
                 f"{pad}{exact} = arith.cmpi eq, {r}, {c0} : index",
                 f"{pad}{inr} = arith.cmpi slt, {q}, {fe.index_const(gy.shape[1 + j])} : index",
                 f"{pad}{ok1} = arith.andi {nonneg}, {exact} : i1",
                 f"{pad}{ok} = arith.andi {ok1}, {inr} : i1",
                 f"{pad}{qc} = arith.select {ok}, {q}, {c0} : index"]
        oks.append(ok)
        coords.append(qc)
    tap = _tap_index(fe, range(sp + 2, 2 * sp + 2), window, body)
    iv, gv, hit, val, res = (fe.fresh("s") for _ in range(5))
    at = ", ".join([nb] + coords + [cc])
    body += [f"{pad}{iv} = tensor.extract {r_idx}[{at}] : {tensor_type(idx_t)}",
             f"{pad}{gv} = tensor.extract {gs}[{at}] : {tensor_type(gy.type)}",
             f"{pad}{hit} = arith.cmpi eq, {iv}, {tap} : i32"]
    cond = hit
    for ok in oks:
        nxt = fe.fresh("ok")
        body.append(f"{pad}{nxt} = arith.andi {cond}, {ok} : i1")
        cond = nxt
    body += [f"{pad}{val} = arith.select {cond}, {gv}, {zero} : {el}",
             f"{pad}{res} = arith.addf {acc}, {val} : {el}",
             f"{pad}linalg.yield {res} : {el}"]
    name = fe.node_name(n)
    fe.lines.append(f"{fe.ind * 2}{name} = linalg.generic {{indexing_maps = [{wmap}, {omap2}], "
                    f"iterator_types = [{iters}]}} ins({win} : {wt}) outs({init} : {tensor_type(n.type)}) {{")
    fe.lines.append(f"{fe.ind * 2}^bb0({w_}: {el}, {acc}: {el}):")
    fe.lines += body
    fe.lines.append(f"{fe.ind * 2}}} -> {tensor_type(n.type)}{fe.loc(n)}")
    return name


POOL_RULES = {"reduce_window": reduce_window, "select_scatter": select_scatter}
