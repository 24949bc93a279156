"""ONNX neural-network ops in ONNX's NCHW layout: Conv, pooling, normalisations.

Float Conv and undilated pools are nnc's NHWC window primitives (`conv`,
`reduce_window`) between transposes. What those do not cover (integer inputs,
dilated pools, ConvTranspose) gathers *taps*: for each kernel offset one strided
`slice` of the padded input, of shape [N, C, *out]; convolution stacks the taps on a
new axis after C and does one `matmul` with the kernel reshaped to [F, C*K]
(im2col); pooling reduces over the stacked taps.
Spatial and channel dims must be static (window arithmetic happens here); the
batch dim may be symbolic.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ..ir.primitives import norm_axes
from .importer import const_node


def _geometry(cx, spatial, kernel):
    """(pads_lo, pads_hi, strides, dilations, out sizes) per ONNX's auto_pad/pads/ceil_mode."""
    n = len(spatial)
    strides = list(cx.attr("strides", [1] * n))
    dil = list(cx.attr("dilations", [1] * n))
    pads = list(cx.attr("pads", [0] * (2 * n)))
    lo, hi = pads[:n], pads[n:]
    auto = cx.attr("auto_pad", "NOTSET")
    ceil = cx.attr("ceil_mode", 0)
    out = []
    for d in range(n):
        span = (kernel[d] - 1) * dil[d] + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-spatial[d] // strides[d])
            total = max((o - 1) * strides[d] + span - spatial[d], 0)
            small, big = total // 2, total - total // 2
            lo[d], hi[d] = (small, big) if auto == "SAME_UPPER" else (big, small)
        elif auto == "VALID":
            lo[d] = hi[d] = 0
        elif auto != "NOTSET":
            raise cx.fail(f"auto_pad='{auto}' is not supported")
        size = spatial[d] + lo[d] + hi[d] - span
        o = (-(-size // strides[d]) if ceil else size // strides[d]) + 1
        if ceil and (o - 1) * strides[d] >= spatial[d] + lo[d]:
            o -= 1                            # the last window must start inside the input or left padding
        need = (o - 1) * strides[d] + span - (spatial[d] + lo[d] + hi[d])
        if need > 0:
            hi[d] += need                     # ceil_mode's partial window: pad, excluded from counts below
        out.append(o)
    return lo, hi, strides, dil, out


def _taps(cx, x, kernel, lo, hi, strides, dil, out):
    b = cx.b
    rank = len(b.shape(x))
    xp = x
    if any(lo) or any(hi):
        xp = b.pad(x, lo=(0, 0, *lo), hi=(0, 0, *hi), interior=(0,) * rank)
    taps = []
    for offs in itertools.product(*[range(k) for k in kernel]):
        start = [0, 0] + [o * d for o, d in zip(offs, dil)]
        stop = [None, None] + [o * d + (n - 1) * s + 1 for o, d, n, s in zip(offs, dil, out, strides)]
        step = [1, 1] + list(strides)
        taps.append(b.slice(xp, start=tuple(start), stop=tuple(stop), step=tuple(step)))
    return taps


def _stack(b, taps):
    """[N, C, *out] taps -> [N, C, K, *out]."""
    shape = tuple(b.shape(taps[0]))
    parts = [b.reshape(t, shape=shape[:2] + (1,) + shape[2:]) for t in taps]
    return b.concat(*parts, axis=2) if len(parts) > 1 else parts[0]


def _spatial_input(cx, x):
    s = tuple(cx.b.shape(x))
    if len(s) < 3 or not all(isinstance(d, int) for d in s[1:]):
        raise cx.fail(f"expects [N, C, *spatial] with static C and spatial dims, got {list(s)}")
    return s


def conv(cx):
    b, x, w = cx.b, cx.x(0), cx.x(1)
    s = _spatial_input(cx, x)
    ws = tuple(b.shape(w))
    kernel = list(cx.attr("kernel_shape", ws[2:]))
    group = cx.attr("group", 1)
    lo, hi, strides, dil, out = _geometry(cx, s[2:], kernel)
    if ws[1] * group != s[1] or ws[0] % group:
        raise cx.fail(f"weights {list(ws)} do not fit input channels {s[1]} with group={group}")
    if b.dtype(x) in ("f32", "f64") and b.dtype(w) == b.dtype(x):
        return _conv_primitive(b, x, w, lo, hi, strides, dil, group, cx.x(2) if cx.has(2) else None)
    taps = _taps(cx, x, kernel, lo, hi, strides, dil, out)
    return _im2col(cx, taps, s, w, kernel, group, out, cx.x(2) if cx.has(2) else None)


def _conv_primitive(b, x, w, lo, hi, strides, dil, group, bias):
    """ONNX's NCHW Conv as nnc's NHWC `conv` primitive between transposes (weights
    [F, C/group, *k] -> [*k, C/group, F])."""
    n = len(lo)
    y = b.conv(b.transpose(x, perm=(0,) + tuple(range(2, n + 2)) + (1,)),
               b.transpose(w, perm=tuple(range(2, n + 2)) + (1, 0)),
               stride=tuple(strides), padding=tuple(zip(lo, hi)), dilation=tuple(dil), groups=group)
    y = b.transpose(y, perm=(0, n + 1) + tuple(range(1, n + 1)))
    if bias is not None:
        y = b.add(y, b.reshape(bias, shape=(b.shape(bias)[0],) + (1,) * n))
    return y


def _im2col(cx, taps, s, w, kernel, group, out, bias):
    """Taps [N, C, *out] and weights [F, C/group, *kernel] -> [N, F, *out] (+ bias)."""
    b = cx.b
    ws = tuple(b.shape(w))
    F, cg, K = ws[0], ws[1], math.prod(kernel)
    P = math.prod(out)
    cols = b.reshape(_stack(b, taps), shape=(s[0], s[1] * K, P))   # [N, C*K, P], channel-major
    fg = F // group
    results = []
    for g in range(group):
        wg = w if group == 1 else b.slice(w, start=(g * fg, 0) + (0,) * len(kernel),
                                          stop=((g + 1) * fg, cg) + tuple(kernel), step=(1,) * len(ws))
        xg = cols if group == 1 else b.slice(cols, start=(0, g * cg * K, 0), stop=(None, (g + 1) * cg * K, P),
                                             step=(1, 1, 1))
        results.append(b.matmul(b.reshape(wg, shape=(fg, cg * K)), xg))
    y = results[0] if group == 1 else b.concat(*results, axis=1)
    y = b.reshape(y, shape=(s[0], F, *out))
    if bias is not None:
        y = b.add(y, b.reshape(bias, shape=(F,) + (1,) * len(out)))
    return y


def conv_transpose(cx):
    """The convolution of the input spread out by the strides (interior padding) and padded by
    dilation*(k-1) - pads, with the kernel flipped and its in/out channels swapped per group."""
    b, x, w = cx.b, cx.x(0), cx.x(1)
    s = _spatial_input(cx, x)
    ws = tuple(b.shape(w))                         # [C, F/group, *k]
    n = len(s) - 2
    kernel = list(cx.attr("kernel_shape", ws[2:]))
    group = cx.attr("group", 1)
    strides = list(cx.attr("strides", [1] * n))
    dil = list(cx.attr("dilations", [1] * n))
    outpad = list(cx.attr("output_padding", [0] * n))
    pads = list(cx.attr("pads", [0] * (2 * n)))
    auto = cx.attr("auto_pad", "NOTSET")
    out_shape = cx.attr("output_shape")
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    full = [(i - 1) * st + sp + op for i, st, sp, op in zip(s[2:], strides, span, outpad)]
    if out_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        target = list(out_shape)[-n:] if out_shape is not None else [i * st for i, st in zip(s[2:], strides)]
        total = [f - t for f, t in zip(full, target)]
        half = [int(t / 2) for t in total]     # C's division (toward zero), as onnxruntime: a negative
        if auto == "SAME_LOWER":               # total (output_shape beyond the full size) grows the end
            pads = [t - h for t, h in zip(total, half)] + half
        else:
            pads = half + [t - h for t, h in zip(total, half)]
    elif auto not in ("NOTSET", "VALID"):
        raise cx.fail(f"auto_pad='{auto}' is not supported")
    lo = [sp - 1 - p for sp, p in zip(span, pads[:n])]
    hi = [sp - 1 - p + op for sp, p, op in zip(span, pads[n:], outpad)]
    xp = b.pad(x, lo=(0, 0) + tuple(max(v, 0) for v in lo), hi=(0, 0) + tuple(max(v, 0) for v in hi),
               interior=(0, 0) + tuple(st - 1 for st in strides))
    if min(lo + hi) < 0:                           # pads larger than the kernel crop the output
        ps = b.shape(xp)
        start = (0, 0) + tuple(max(-v, 0) for v in lo)
        stop = (None, ps[1]) + tuple(d - max(-v, 0) for d, v in zip(ps[2:], hi))
        xp = b.slice(xp, start=start, stop=stop, step=(1,) * (n + 2))
    cg, fg = ws[0] // group, ws[1]
    wt = []
    for g in range(group):
        part = w if group == 1 else b.slice(w, start=(g * cg,) + (0,) * (n + 1),
                                            stop=((g + 1) * cg,) + ws[1:], step=(1,) * (n + 2))
        part = b.transpose(part, perm=(1, 0) + tuple(range(2, n + 2)))          # [F/g, C/g, *k]
        for d, k in enumerate(kernel):                                          # flip each spatial axis
            part = b.gather(part, const_node(b, np.arange(k - 1, -1, -1, dtype=np.int64)), axis=2 + d)
        wt.append(part)
    wflip = wt[0] if group == 1 else b.concat(*wt, axis=0)                     # [F, C/g, *k]
    ps = tuple(b.shape(xp))
    out = [d - sp + 1 for d, sp in zip(ps[2:], span)]
    taps = _taps(cx, xp, kernel, [0] * n, [0] * n, [1] * n, dil, out)
    return _im2col(cx, taps, (s[0], s[1]) + tuple(ps[2:]), wflip, kernel, group, out,
                   cx.x(2) if cx.has(2) else None)


def pool(kind: str):
    def lower(cx):
        b, x = cx.b, cx.x(0)
        s = _spatial_input(cx, x)
        kernel = list(cx.attr("kernel_shape"))
        if kind == "max" and cx.attr("storage_order", 0):
            raise cx.fail("storage_order=1 is not supported")
        lo, hi, strides, dil, out = _geometry(cx, s[2:], kernel)
        padded = any(lo) or any(hi)
        if kind == "max" and len(cx.node.output) > 1 and cx.node.output[1]:
            raise cx.fail("MaxPool's Indices output is not supported")
        windowed = all(d == 1 for d in dil) and b.dtype(x) in ("f32", "f64")
        if windowed:       # one reduce_window on NHWC (padding is max's identity, -inf)
            n = len(kernel)
            r = b.reduce_window(b.transpose(x, perm=(0,) + tuple(range(2, n + 2)) + (1,)),
                                kind="max" if kind == "max" else "sum", window=tuple(kernel),
                                stride=tuple(strides), padding=tuple(zip(lo, hi)))
            r = b.transpose(r, perm=(0, n + 1) + tuple(range(1, n + 1)))
            if kind == "max":
                return r
            total = r
        else:
            stacked = _stack(b, _taps(cx, x, kernel, lo, hi, strides, dil, out))    # [N, C, K, *out]
        if kind == "max":
            if padded:                                    # padding never wins a max: mask it to -inf
                valid = _valid_mask(cx, s, kernel, lo, hi, strides, dil, out)
                ninf = b.div(b.scalar(-1.0, b.dtype(x)), b.scalar(0.0, b.dtype(x)))
                stacked = b.where(const_node(b, valid), stacked, ninf)
            return b.max(stacked, axes=(2,), keepdims=False)
        if not windowed:
            total = b.sum(stacked, axes=(2,), keepdims=False)
        include_pad = cx.attr("count_include_pad", 0)
        if padded and not include_pad:
            counts = _valid_mask(cx, s, kernel, lo, hi, strides, dil, out).sum(axis=0)
        else:
            counts = np.full(out, float(math.prod(kernel)))
            if padded:   # ceil_mode's extra padding is never counted, even with count_include_pad
                counts = _valid_mask(cx, s, kernel, lo, hi, strides, dil, out, explicit=True).sum(axis=0)
        from .importer import NP_DTYPES
        return b.div(total, const_node(b, counts.astype(NP_DTYPES[b.dtype(x)])))
    return lower


def _valid_mask(cx, s, kernel, lo, hi, strides, dil, out, explicit: bool = False):
    """[K, *out] booleans: which taps read a real input pixel (explicit: or declared padding)."""
    pads = list(cx.attr("pads", [0] * (2 * len(kernel))))
    n = len(kernel)
    masks = []
    for offs in itertools.product(*[range(k) for k in kernel]):
        m = np.ones(out, dtype=bool)
        for d in range(n):
            pos = offs[d] * dil[d] + np.arange(out[d]) * strides[d] - lo[d]
            if explicit:
                ok = (pos >= -pads[d]) & (pos < s[2 + d] + pads[n + d])
            else:
                ok = (pos >= 0) & (pos < s[2 + d])
            shape = [1] * n
            shape[d] = out[d]
            m = m & ok.reshape(shape)
        masks.append(m)
    return np.stack(masks)


def global_pool(kind: str):
    def lower(cx):
        b, x = cx.b, cx.x(0)
        axes = tuple(range(2, cx.rank(0)))
        if kind == "max":
            return b.max(x, axes=axes, keepdims=True)
        return b.div(b.sum(x, axes=axes, keepdims=True), b.size(x, axes=axes, dtype=b.dtype(x)))
    return lower


def _channel(b, v, rank):
    return b.reshape(v, shape=(b.shape(v)[0],) + (1,) * (rank - 2))


def batchnorm(cx):
    """Inference form: (x - running_mean) / sqrt(running_var + eps) * scale + bias."""
    if cx.attr("training_mode", 0):
        raise cx.fail("training_mode=1 is not supported (nnc imports the inference graph)")
    b, x = cx.b, cx.x(0)
    rank = cx.rank(0)
    scale, bias, mean, var = (_channel(b, cx.x(i), rank) for i in (1, 2, 3, 4))
    eps = b.scalar(cx.attr("epsilon", 1e-5), b.dtype(x))
    y = b.div(b.sub(x, mean), b.sqrt(b.add(var, eps)))
    return b.add(b.mul(y, scale), bias)


def _normalise(cx, x, axes, eps):
    b = cx.b
    n = b.size(x, axes=axes, dtype=b.dtype(x))
    mean = b.div(b.sum(x, axes=axes, keepdims=True), n)
    d = b.sub(x, mean)
    var = b.div(b.sum(b.mul(d, d), axes=axes, keepdims=True), n)
    inv = b.div(b.scalar(1.0, b.dtype(x)), b.sqrt(b.add(var, b.scalar(eps, b.dtype(x)))))
    return b.mul(d, inv), mean, inv


def instance_norm(cx):
    b, x = cx.b, cx.x(0)
    rank = cx.rank(0)
    y, _, _ = _normalise(cx, x, tuple(range(2, rank)), cx.attr("epsilon", 1e-5))
    return b.add(b.mul(y, _channel(b, cx.x(1), rank)), _channel(b, cx.x(2), rank))


def layer_norm(cx):
    b, x = cx.b, cx.x(0)
    rank = cx.rank(0)
    axis = norm_axes([cx.attr("axis", -1)], rank)[0]
    if cx.attr("stash_type", 1) != 1:
        raise cx.fail("stash_type other than float is not supported")
    y, mean, inv = _normalise(cx, x, tuple(range(axis, rank)), cx.attr("epsilon", 1e-5))
    y = b.mul(y, cx.x(1))
    if cx.has(2):
        y = b.add(y, cx.x(2))
    return [y, mean, inv]


def lp_norm(cx):
    b, x = cx.b, cx.x(0)
    axis = norm_axes([cx.attr("axis", -1)], cx.rank(0))[0]
    p = cx.attr("p", 2)
    if p == 1:
        n = b.sum(b.abs(x), axes=(axis,), keepdims=True)
    elif p == 2:
        n = b.sqrt(b.sum(b.mul(x, x), axes=(axis,), keepdims=True))
    else:
        raise cx.fail(f"p={p} is not supported (supported: 1, 2)")
    zero = b.scalar(0.0, b.dtype(x))
    return b.where(b.eq(n, zero), b.mul(x, zero), b.div(x, b.where(b.eq(n, zero), b.scalar(1.0, b.dtype(x)), n)))


OPS = {
    "Conv": conv, "ConvTranspose": conv_transpose, "MaxPool": pool("max"), "AveragePool": pool("avg"),
    "GlobalAveragePool": global_pool("avg"), "GlobalMaxPool": global_pool("max"),
    "BatchNormalization": batchnorm, "InstanceNormalization": instance_norm, "LayerNormalization": layer_norm,
    "LpNormalization": lp_norm,
}
