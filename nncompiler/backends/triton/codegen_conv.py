"""The conv kernel of a planned group: a convolution as an implicit GEMM (kernels/conv.py's loads
in kernels/matmul.py's MATMUL skeleton, no im2col buffer).

A conv group is a "matmul" group (plan_conv.py): its anchor is the `conv` node, its iteration
space the output [N, *O, F] whose every axis but the channel is covered by the tile's rows
(`Body.m_dims`), so the epilogue -- bias, activation, the ops after -- is written by the same
`Body` as a matmul's. This module writes what differs: the output pixel of each row, the tap
and channel of each column, and the masked gather of the input (`ConvInput`: strides, padding,
dilation and a folded pad's input dilation per spatial axis). A grouped conv is one GEMM per
group, the group on the grid's batch axis (`pid_b`): it offsets the input's channels, the
kernel's columns and the output channel (`i_f`) by the group.
"""
from __future__ import annotations

from ...ir.shapes import canon_dim, dim_mul, numel
from .codegen_body import Body
from .codegen_matmul import colsum_slots, epilogue, indent
from .codegen_scope import KernelScope
from .index import add_terms, mul_expr, paren
from .ops import zero
from .plan import Group


def _decompose(lin: str, parts, dim) -> list[str]:
    """Lines `name = lin // (product of the sizes after it) % size` for (name, size) in `parts`
    (row-major, the first unbounded); `dim` renders a size."""
    lines = []
    for i, (name, _) in enumerate(parts):
        after = numel([s for _, s in parts[i + 1:]])
        expr = lin if after == 1 else f"{lin} // {paren(dim(after))}"
        if i > 0:
            expr = f"{paren(expr)} % {paren(dim(parts[i][1]))}"
        lines.append(f"{name} = {expr}")
    return lines


def _channel_last(xv, sp: int) -> bool:
    """Whether the input's channel stride is at most its last spatial axis's (NHWC as stored);
    a symbolic stride counts as far."""
    c, w = xv.strides[sp + 1], xv.strides[sp]
    if not isinstance(c, int):
        return False
    return not isinstance(w, int) or abs(c) <= abs(w)


def _flat_k(view, sp: int) -> bool:
    """Whether the kernel view's (*window, C) axes are one run of memory (k = (*t, c) is then
    one stride: the kernel as stored, [*window, C, F] row-major)."""
    shape, strides = view.shape, view.strides
    for a in range(sp):
        if shape[a] != 1 and canon_dim(strides[a]) != canon_dim(dim_mul(strides[a + 1], shape[a + 1])):
            return False
    return True


def conv_kernel(gen, kern: KernelScope, k: Group, stores) -> tuple[str, list, dict]:
    """(text, grid recipe, shape facts) of a conv group's kernel; gen: the codegen.ModuleGen."""
    g = gen.graph
    plan = gen.plan
    cv = next(n for n in k.nodes if g[n].op == "conv" and n not in k.colsums)
    cn = g[cv]
    ci = plan.conv_inputs[cv]
    xv, wv = ci.view, plan.operand_views[(cv, 1)]
    D = k.space.shape
    sp = len(D) - 2
    a = cn.attr
    # the template's own names for this conv's index variables
    rows_n, o_names = "o_n", [f"o_{j}" for j in range(sp)]
    h_names, t_names = [f"h_{j}" for j in range(sp)], [f"t_{j}" for j in range(sp)]
    p_names = [f"p_{j}" for j in range(sp)]
    kern.taken |= {rows_n, "c_in", "x_row", "i_f", *o_names, *h_names, *t_names, *p_names}
    body = Body(kern, k.space, "matmul")
    body.m_dims = tuple(range(sp + 1))
    body.owned = set(k.nodes) - set(k.riders)
    x_ptr, w_ptr = kern.buffer(xv.base), kern.buffer(wv.base)
    kern.scratch("ws_ptr", "*fp32")     # split-K partials and tile counters (the template's)
    kern.scratch("lock_ptr", "*i32")
    window, C, F = wv.shape[:sp], wv.shape[sp], wv.shape[sp + 1]      # C: channels per group
    groups = a["groups"]
    Fg = F // groups if groups > 1 else F
    M, K = numel(D[:-1]), numel(tuple(window) + (C,))
    dt = cn.dtype
    other = zero(dt)
    for t_ in tuple(xv.offset) + tuple(wv.offset):
        kern.dim(t_)
    a_base, b_base = _based(x_ptr, xv), _based(w_ptr, wv)
    if groups > 1:
        # one GEMM per group, the group on the grid's batch (pid_b): its channels of x, its
        # columns of the kernel, its output channels (i_f) -- K and N are the group's
        a_base += f" + pid_b * {paren(kern.dim(dim_mul(C, xv.strides[sp + 1])))}"
        b_base += f" + pid_b * {paren(kern.dim(dim_mul(Fg, wv.strides[sp + 1])))}"
        body.n_name = "i_f"

    # rows: m = (n, *o); the window of output position o starts at input position o * s - offset
    folded = f", {plan.name(ci.pad)} folded in" if ci.pad is not None else ""
    grouped = f", {groups} groups (pid_b)" if groups > 1 else ""
    rows = [f"# {plan.name(cv)}: stride {list(a['stride'])}, dilation {list(a['dilation'])}, input offset "
            f"{list(ci.offset)}, input dilation {list(ci.lhs)}{folded}{grouped}"]
    rows += _decompose("rm", [(rows_n, D[0])] + list(zip(o_names, D[1:-1])), kern.dim)
    for j in range(sp):
        start = mul_expr(o_names[j], str(a["stride"][j])) + (f" - {ci.offset[j]}" if ci.offset[j] else "")
        rows.append(f"{h_names[j]} = {start}")
    rows.append(f"x_row = {mul_expr(rows_n, kern.dim(xv.strides[0]))}")
    # columns: k = (*t, c), the channel fastest where the input's channels are adjacent in memory
    # (NHWC: a K block reads runs of channels); where they are far apart -- a kernel gradient, whose
    # "channel" is the batch -- k = (c, *t) instead, the output column fastest, so that a K block
    # reads neighbouring pixels. The sum is the same; only its order (float rounding) differs.
    channel_last = _channel_last(xv, sp)
    taps = list(zip(t_names, window))
    cols = _decompose("kk", taps + [("c_in", C)] if channel_last else [("c_in", C)] + taps, kern.dim)
    positions, masks, terms = [], [], ["x_row[:, None]"]
    for j in range(sp):
        d, lhs, size = a["dilation"][j], ci.lhs[j], ci.size[j]
        positions.append(f"{p_names[j]} = {h_names[j]}[:, None] + {t_names[j]}[None, :]"
                         + (f" * {d}" if d != 1 else ""))
        reach = (D[1 + j] - 1) * a["stride"][j] + (window[j] - 1) * d - ci.offset[j]   # the largest position read
        if ci.offset[j] > 0:
            masks.append(f"({p_names[j]} >= 0)")
        if lhs > 1:
            masks.append(f"({p_names[j]} % {lhs} == 0)")
        if reach > (size - 1) * lhs:
            masks.append(f"({p_names[j]} < {(size - 1) * lhs + 1})")
        at = p_names[j] if lhs == 1 else f"{p_names[j]} // {lhs}"
        terms.append(mul_expr(at, kern.dim(xv.strides[1 + j])))
    terms.append(_times("c_in[None, :]", kern.dim(xv.strides[sp + 1])))
    t = gen.t["conv"]
    load_a = t.LOAD_A.render(columns="\n".join(cols), positions="\n".join(positions),
                             address=add_terms(terms), mask="".join(f" & {m}" for m in masks), other=other)
    if channel_last and _flat_k(wv, sp):
        b_terms = [_times("kk[:, None]", kern.dim(wv.strides[sp]))]
    else:
        b_terms = [_times(f"{name}[:, None]", kern.dim(st)) for name, st in
                   zip(t_names + ["c_in"], wv.strides[:sp + 1]) if st != 0]
    b_terms.append(_times("rn[None, :]", kern.dim(wv.strides[sp + 1])))
    load_b = t.LOAD_B.render(address=add_terms(b_terms), other=other)

    # the bias gradient of a kernel gradient: column sums of B (plan_conv.colsum_operand)
    acc_dtype = {"f32": "tl.float32", "f64": "tl.float64"}[dt]
    colsums = colsum_slots(gen, body, k, acc_dtype)
    # epilogue: the matmul's, over the output pixel axes decomposed from i_m
    defs = epilogue(gen, body, k, cv, stores)
    group_lines = [f"i_f = pid_b * {Fg} + i_n  # the output channel: this group's columns"] if groups > 1 else []
    top = gen.with_top(kern, defs.get("top", [])) + t.ROWS.render(rows="\n".join(rows)).splitlines()
    # IEEE in every precision mode: the numpy reference rounds matmul operands only (precision.py)
    dot = gen.t["matmul"].DOT_FLOAT
    text = gen.t["matmul"].MATMUL.render(
        decorator="{decorator}", name=k.name, params="{params}", header=gen.header(k),
        M=kern.dim(M), N=kern.dim(Fg), K=kern.dim(K),
        top="\n".join("    " + x for x in top),
        a_base=a_base, b_base=b_base, acc_dtype=acc_dtype, descriptors="",
        load_a=indent(load_a, 2), load_b=indent(load_b, 2), dot=dot,
        **colsums,
        epilogue="\n".join("    " + x for x in group_lines + defs.get("epilogue", []) + body.sections["body"]))
    grid = [("matmul", M, Fg, groups)]
    info = {"M": M, "N": Fg, "K": K, "batch": groups, "dtype": dt, "colsums": len(k.colsums), "precision": "fp32",
            "tma": (None, None), "conv": True}
    return text, grid, info


def _based(ptr: str, view) -> str:
    """The pointer at a view's offset (integer terms summed)."""
    if not view.offset:
        return ptr
    if all(isinstance(t, int) for t in view.offset):
        return f"{ptr} + {sum(view.offset)}" if sum(view.offset) else ptr
    return f"{ptr} + {view.offset_expr()}"


def _times(tile: str, stride: str) -> str:
    """An indexed tile times a stride, with no parentheses around the tile."""
    return "0" if stride == "0" else tile if stride == "1" else f"{tile} * {paren(stride)}"
