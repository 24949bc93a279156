"""Fusion plan, convolutions: which `conv` nodes run as an implicit-GEMM kernel, and how that
kernel reads its input.

A convolution y[n, *o, f] = sum over taps t and channels c of xpad[n, *(o*s + t*d), c] * w[*t, c, f]
is a GEMM C[M, N] = A[M, K] @ B[K, N] with m = (n, *o), k = (*t, c) and the output channel f as
N: B is the kernel [*window, C, F] read through its strides, and A is never materialised (no
im2col buffer): the kernel computes the address of A[m, k] from the output pixel and the tap,
masked to zero in the padding (codegen_conv.py). A conv's group is therefore a "matmul" group
(plan_types.GEMM_OPS): it gets matmul's epilogue fusion (bias, activation, the optimizer update
of a kernel gradient), its tile table and its split-K for long reductions (the kernel gradient
contracts over batch x output pixels) without a line of its own.

The input gradient's kernel is the forward kernel flipped along its taps (a `gather` of a
constant descending range per axis) with its channels swapped: a strided view with negative
strides (`_kernel_view`), read in place like any other.

The input may be a `pad` of a buffer view: the input gradient's cotangent, dilated by the
stride and padded (autodiff/vjp.py `_transposed_window`). That pad folds into the kernel's
addressing as a per-axis offset and input dilation (`ConvInput`), so the dilated cotangent is
never written to memory either.

A grouped conv (groups > 1) is one GEMM per group, the group on the grid's batch axis: every
conv the IR allows runs as this kernel (`fallback_ops=("conv",)` still sends them to torch's, a
debugging aid). A mixin of `plan.Plan` (it reads `graph`, `cls`, `copies`
and fills `operand_views` and `conv_inputs`)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ...ir.shapes import canon_dim
from .index import View, contiguous_strides, view_through

@dataclass(frozen=True)
class ConvInput:
    """How the kernel reads a conv's input along each spatial axis a: the input position of
    output pixel o and tap t is p = o*stride + t*dilation - offset, which is element p // lhs
    of the buffer's axis when p >= 0, p % lhs == 0 and p // lhs < size, else a zero."""

    view: View                   # the buffer read: [N, *size, C] through its strides
    pad: int | None              # the folded `pad` node, if any
    offset: tuple                # per spatial axis: the conv's low padding + the folded pad's
    lhs: tuple                   # per spatial axis: input dilation (the folded pad's interior + 1)
    size: tuple                  # per spatial axis: the buffer's extent


def _foldable(pad_node) -> bool:
    """A pad of the spatial axes only, by non-negative amounts (a crop would have to shift
    the kept range, which the VJP does with a slice before the pad anyway)."""
    a = pad_node.attr
    lo, hi, interior = a["lo"], a["hi"], a["interior"]
    ends = (0, len(lo) - 1)
    return (all(lo[i] == 0 and hi[i] == 0 and interior[i] == 0 for i in ends)
            and all(v >= 0 for v in list(lo) + list(hi) + list(interior)))


class ConvPlan:
    def _conv_operands(self, n):
        """Operand views of a conv the kernel computes: the kernel's through `_buffer_operand`
        (a strided view, or materialised), the input's through a folded pad when it is one."""
        g = self.graph
        x = n.inputs[0]
        xn = g[x]
        sp = len(n.shape) - 2
        conv_lo = [p[0] for p in n.attr["padding"]]
        pad, lo, lhs = None, [0] * sp, [1] * sp
        if self.cls[x] == "move" and xn.op == "pad" and x not in self.copies and _foldable(xn):
            inner = self.view_of(xn.inputs[0])
            if inner is not None:
                pad = x
                self.operand_views[(n.id, 0)] = inner
                lo = list(xn.attr["lo"][1:sp + 1])
                lhs = [k + 1 for k in xn.attr["interior"][1:sp + 1]]
        if pad is None:
            self._buffer_operand(n.id, 0, x)
        wv = self._kernel_view(n.inputs[1])
        if wv is not None:
            self.operand_views[(n.id, 1)] = wv
        else:
            self._buffer_operand(n.id, 1, n.inputs[1])
        view = self.operand_views[(n.id, 0)]
        self.conv_inputs[n.id] = ConvInput(view, pad, tuple(c + p for c, p in zip(conv_lo, lo)), tuple(lhs),
                                           tuple(view.shape[1:sp + 1]))

    def colsum_operand(self, cv: int) -> int | None:
        """The buffer whose sum over all axes but the last is the column sum of this conv's B
        (the kernel operand, [*window, C, F] as [K, N]), or None. So it is when B is that buffer
        with its leading axes permuted: a kernel gradient's B is the cotangent g [N, *O, F]
        transposed to [*O, N, F], and sum(g, all but F) is the bias gradient, which then rides
        along with the kernel gradient (plan_fuse._fuse_colsums)."""
        v = self.operand_views[(cv, 1)]
        shape = self.graph[v.base].shape
        if self.graph[cv].attr["groups"] != 1 or v.offset or v.strides[-1] != 1 or canon_dim(v.shape[-1]) != canon_dim(shape[-1]):
            return None

        def runs(shape_, strides):
            return Counter((canon_dim(d), canon_dim(s)) for d, s in zip(shape_, strides) if d != 1)
        return v.base if runs(v.shape, v.strides) == runs(shape, contiguous_strides(shape)) else None

    def _kernel_view(self, nid: int) -> View | None:
        """A conv's kernel operand as a strided view of a buffer, through what `view_of` does not
        see: a flip (a gather of the constant descending range: a negative stride) and reshapes
        of a view that is not contiguous (the grouped input gradient's channel swap). None when it
        is none of these (materialise)."""
        v = self.view_of(nid)
        if v is not None or self.cls[nid] != "move" or nid in self.copies:
            return v
        n = self.graph[nid]
        src_shape = self.graph[n.inputs[0]].shape
        if n.op == "gather":
            axis = n.attr["axis"] % len(src_shape)
            k = src_shape[axis]
            inner = self._kernel_view(n.inputs[0])
            if inner is None or not isinstance(k, int) or not self._descending(n.inputs[1], k) \
                    or not isinstance(inner.strides[axis], int):
                return None
            st = inner.strides[axis]
            strides = inner.strides[:axis] + (-st,) + inner.strides[axis + 1:]
            return View(inner.base, n.shape, strides, inner.offset + ((k - 1) * st,))
        if n.op == "reshape":
            inner = self._kernel_view(n.inputs[0])
            return reshaped(inner, n.shape) if inner is not None else None
        if n.op in ("transpose", "slice", "broadcast_to"):
            inner = self._kernel_view(n.inputs[0])
            return view_through(n, inner) if inner is not None else None
        return None

    def _descending(self, nid: int, k: int) -> bool:
        """Whether node `nid` is the constant [k-1, ..., 1, 0] (the index of a flip)."""
        n = self.graph[nid]
        if n.op != "const" or tuple(n.shape) != (k,):
            return False
        return np.asarray(n.attr["value"]).ravel().tolist() == list(range(k - 1, -1, -1))


def reshaped(view: View, shape) -> View | None:
    """`view` reshaped to `shape` in place, or None where that needs a copy (numpy's rule): the
    axes fall into runs of equal size products, and the old axes of each run must be one run of
    memory; the new axes of the run then take strides from its innermost old stride."""
    if not all(isinstance(d, int) for d in tuple(view.shape) + tuple(shape)) \
            or not all(isinstance(st, int) for st in view.strides):
        return None
    old = [(d, st) for d, st in zip(view.shape, view.strides) if d != 1]
    new = [k for k, d in enumerate(shape) if d != 1]
    strides = [0] * len(shape)
    i = j = 0
    while i < len(old) and j < len(new):
        i2, j2, a, b = i + 1, j + 1, old[i][0], shape[new[j]]
        while a != b:
            if a < b:
                a, i2 = a * old[i2][0], i2 + 1
            else:
                b, j2 = b * shape[new[j2]], j2 + 1
        if any(old[x][1] != old[x + 1][1] * old[x + 1][0] for x in range(i, i2 - 1)):
            return None
        st = old[i2 - 1][1]
        for k in reversed(new[j:j2]):
            strides[k] = st
            st *= shape[k]
        i, j = i2, j2
    return View(view.base, tuple(shape), tuple(strides), view.offset)
