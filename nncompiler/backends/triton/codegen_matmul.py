"""The matmul kernel of a planned group: kernels/matmul.py's template, filled.

A matmul group is one `matmul` node (C = A @ B over a flattened batch) with its fused
epilogue (bias, activation, an optimizer update) and the column sums a bias gradient
takes from the same tiles (`colsum`). A and B are read in place through their strided
views (a transpose or broadcast costs nothing); an operand whose layout a TMA tensor
descriptor can describe (tma.py) is also given a descriptor path, which the `TMA`
constexpr turns on for sm_90. The dot follows the precision mode (kernels/matmul.py's
DOTS); split-K partials and tile counters live in runtime-owned scratch buffers.
"""
from __future__ import annotations

from ...ir.shapes import numel
from . import tma
from .codegen_body import Body
from .codegen_scope import KernelScope
from .index import add_terms, mul_expr, right_align
from .ops import zero
from .plan import Group


def matmul_kernel(gen, kern: KernelScope, k: Group, stores) -> tuple[str, list, dict]:
    """(text, grid recipe, shape facts) of a matmul group's kernel; gen: the codegen.ModuleGen."""
    g = gen.graph
    plan = gen.plan
    mm = next(n for n in k.nodes if g[n].op == "matmul" and n not in k.colsums)
    mn = g[mm]
    D = k.space.shape
    r = len(D)
    body = Body(kern, k.space, "matmul")
    body.owned = set(k.nodes) - set(k.riders)
    av, bv = plan.operand_views[(mm, 0)], plan.operand_views[(mm, 1)]
    a_ptr, b_ptr = kern.buffer(av.base), kern.buffer(bv.base)
    M, N = D[-2], D[-1]
    K = av.shape[-1]

    def batch_offset(view):
        terms = [view.offset_expr()] if view.offset else []
        for j, oj in enumerate(right_align(view.shape[:-2], D[:-2])):
            if oj is None or view.strides[j] == 0:
                continue
            st = kern.dim(view.strides[j])
            terms.append(mul_expr(body.dvar(oj).expr, st))
        for t_ in view.offset:
            kern.dim(t_)
        return add_terms(terms)

    a_off = batch_offset(av)
    b_off = batch_offset(bv)
    body.extra_text += [a_off, b_off]
    a_base = a_ptr if a_off == "0" else f"{a_ptr} + {a_off}"
    b_base = b_ptr if b_off == "0" else f"{b_ptr} + {b_off}"
    dt = mn.dtype
    acc_dtype = {"f32": "tl.float32", "f64": "tl.float64", "i32": "tl.int32", "i64": "tl.int64"}[dt]
    if dt == "f32":
        dot, helper = gen.t["matmul"].DOTS[gen.precision]
        if helper:
            kern.helpers.add(helper)
    else:   # float64 stays IEEE in every mode (no tensor-core path); integers never dot
        dot = gen.t["matmul"].DOT_FLOAT if dt == "f64" else gen.t["matmul"].DOT_INT
    colsums = colsum_slots(gen, body, k, acc_dtype)
    kern.scratch("ws_ptr", "*fp32")
    kern.scratch("lock_ptr", "*i32")
    defs = epilogue(gen, body, k, mm, stores)
    top = gen.with_top(kern, defs.get("top", []))
    loads, descriptors, tma_layouts = operand_loads(gen, kern, k.space.shape, av, bv, dt)
    text = gen.t["matmul"].MATMUL.render(
        decorator="{decorator}", name=k.name, params="{params}", header=gen.header(k),
        M=kern.dim(M), N=kern.dim(N), K=kern.dim(K),
        top="\n".join("    " + x for x in top),
        a_base=a_base, b_base=b_base, acc_dtype=acc_dtype,
        descriptors=descriptors, load_a=loads[0], load_b=loads[1],
        dot=dot, **colsums,
        epilogue="\n".join("    " + x for x in body.sections["body"]))
    batch = numel(D[:-2]) if r > 2 else 1
    grid = [("matmul", M, N, batch)]
    info = {"M": M, "N": N, "K": K, "batch": batch, "dtype": dt, "colsums": len(k.colsums),
            "precision": gen.precision, "tma": tma_layouts}
    return text, grid, info


def epilogue(gen, body: Body, k: Group, root: int, stores) -> dict:
    """Emit the group's epilogue on MATMUL's accumulator tile `acc` (the value of node `root`):
    every other node of the closure in order, the column sums (colsum_slots) only stored; returns
    the body's index definitions."""
    body.vars[root] = "acc"
    if root in stores:
        body.store(root, "acc", "x", "body")
    for nid in k.space.closure:
        if nid == root:
            continue
        if nid in k.colsums:
            if nid in stores:
                body.store(nid, body.vars[nid], "x", "body")
            continue
        body.emit_node(nid, stores)
    gen.riders(body, k)
    return body.index_defs()


def colsum_slots(gen, body: Body, k: Group, acc_dtype: str) -> dict:
    """MATMUL's column-sum slots (colsum_init, colsum, ws_extra, split_store, split_sum) for the
    group's `colsums` (reduction node -> operand position), each sum's value bound in `body`."""
    cs_init, cs_loop, split_store, split_sum = [], [], [], []
    ws_extra = ""
    for rnode, pos in k.colsums.items():
        cvar = f"colsum{gen.num(rnode)}"
        length = "BLOCK_N" if pos == 1 else "BLOCK_M"
        cs_init.append(f"{cvar} = tl.zeros([{length}], dtype={acc_dtype})")
        if pos == 1:
            cs_loop.append(f"{cvar} += tl.sum(b, 0)" + body.comment(rnode) + " (column sums of B)")
            body.vars[rnode] = f"{cvar}[None, :]"
        else:
            cs_loop.append(f"{cvar} += tl.sum(a, 1)" + body.comment(rnode) + " (row sums of A)")
            body.vars[rnode] = f"{cvar}[:, None]"
        # split-K: this partial sum lives after the tile (and earlier sums) in the workspace
        at = f"BLOCK_M * BLOCK_N{ws_extra} + tl.arange(0, {length})"
        split_store.append(f"tl.store(ws_mine + {at}, {cvar})")
        split_sum.append(f"{cvar} += tl.load(ws_s + {at}, mask=tl.arange(0, {length}) * 0 + theirs != 0, "
                         f"other=0.0, cache_modifier=\".cg\")")
        ws_extra += f" + {length}"
    return {"colsum_init": "\n".join("    " + x for x in cs_init),
            "colsum": "\n".join("        " + x for x in cs_loop),
            "ws_extra": ws_extra,
            "split_store": "\n".join("        " + x for x in split_store),
            "split_sum": "\n".join("            " + x for x in split_sum)}


def operand_loads(gen, kern: KernelScope, space_shape, av, bv, dt) -> tuple[list[str], str, tuple]:
    """The K loop's loads of A and B (8-space indented), the descriptor statements before the
    loop (4-space), and each operand's TMA layout (tma.py; None: pointer loads only)."""
    mm = gen.t["matmul"]
    pointers = [mm.LOAD_A.render(sm=kern.dim(av.strides[-2]), sk=kern.dim(av.strides[-1]), other=zero(dt)),
                mm.LOAD_B.render(sk=kern.dim(bv.strides[-2]), sn=kern.dim(bv.strides[-1]), other=zero(dt))]
    layouts = tuple(tma.operand_layout(v, space_shape, dt) for v in (av, bv))
    # (logical rows, cols, block rows, block cols, tile row, tile col) of A[M, K] and B[K, N]
    logical = [("M", "K", "BLOCK_M", "BLOCK_K", "pid_m * BLOCK_M", "kb * BLOCK_K"),
               ("K", "N", "BLOCK_K", "BLOCK_N", "kb * BLOCK_K", "pid_n * BLOCK_N")]
    loads, desc_lines = [], []
    for pos, (var, view, layout) in enumerate(zip("ab", (av, bv), layouts)):
        if layout is None:
            loads.append(indent(pointers[pos], 2))
            continue
        rows, cols, brows, bcols, row, col = logical[pos]
        stride = view.strides[-2] if layout == tma.ROWS else view.strides[-1]
        desc_lines.append(tma.descriptor_lines(var, f"{var}_base", layout, rows, cols, str(stride), brows, bcols))
        loads.append(indent(mm.TMA_OR_POINTERS.render(
            var=var, tma=tma.descriptor_load(var, layout, row, col), pointers=indent(pointers[pos], 1)), 2))
    descriptors = indent(mm.TMA_DESCRIPTORS.render(lines=indent("\n".join(desc_lines), 1)), 1) \
        if desc_lines else ""
    return loads, descriptors, layouts


def indent(text: str, levels: int) -> str:
    pad = "    " * levels
    return "\n".join(pad + line for line in text.splitlines())
