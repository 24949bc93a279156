"""ONNX's recurrent layers (RNN, GRU, LSTM), unrolled over a static number of time steps.

The IR has no loop primitive yet (a `scan` is planned), so each time step is emitted
explicitly: the input projection of all steps is one matmul up front, then per step
one matmul with the recurrent weights and the gate arithmetic. Gate orders follow the
spec (LSTM i, o, f, c; GRU z, r, h), as do the default activations and
`linear_before_reset`. Bidirectional runs both directions and stacks them.
"""
from __future__ import annotations

ACTS = ("Sigmoid", "Tanh", "Relu")


def _act(cx, name: str):
    b = cx.b
    if name == "Sigmoid":
        return b.sigmoid
    if name == "Tanh":
        return b.tanh
    if name == "Relu":
        return lambda v: b.maximum(v, b.scalar(0.0, b.dtype(v)))
    raise cx.fail(f"activation '{name}' is not supported (supported: {', '.join(ACTS)})")


def _cols(b, z, k: int, hidden: int):
    """Gate k's columns [.., k*H:(k+1)*H] of a [B, G*H] value."""
    return b.slice(z, start=(0, k * hidden), stop=(None, (k + 1) * hidden), step=(1, 1))


def _dir(b, v, d: int):
    """Direction d of a [num_dir, ...] weight, as [...]."""
    s = tuple(b.shape(v))
    part = b.slice(v, start=(d,) + (0,) * (len(s) - 1), stop=(d + 1,) + tuple(s[1:]), step=(1,) * len(s))
    return b.reshape(part, shape=tuple(s[1:]))


def recurrent(kind: str):
    gates, default_acts = {"RNN": (1, ["Tanh"]), "GRU": (3, ["Sigmoid", "Tanh"]),
                           "LSTM": (4, ["Sigmoid", "Tanh", "Tanh"])}[kind]

    def lower(cx):
        b = cx.b
        hidden = cx.attr("hidden_size")
        direction = cx.attr("direction", "forward")
        layout = cx.attr("layout", 0)
        clip = cx.attr("clip")
        acts = cx.attr("activations")
        if cx.attr("activation_alpha") is not None or cx.attr("activation_beta") is not None:
            raise cx.fail("activation_alpha/activation_beta are not supported")
        lbr = cx.attr("linear_before_reset", 0) if kind == "GRU" else 0
        if kind == "LSTM" and cx.attr("input_forget", 0):
            raise cx.fail("input_forget=1 is not supported")
        if cx.has(4):
            raise cx.fail("sequence_lens is not supported (every sequence must use all time steps)")
        if kind == "LSTM" and cx.has(7):
            raise cx.fail("peephole weights (input P) are not supported")
        dirs = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}.get(direction)
        if dirs is None:
            raise cx.fail(f"direction='{direction}' is not supported")
        n_act = len(default_acts)
        acts = list(acts) if acts else default_acts * len(dirs)
        x = cx.x(0)
        if layout:
            x = b.transpose(x, perm=(1, 0, 2))
        steps, batch, _ = b.shape(x)
        if not isinstance(steps, int):
            raise cx.fail(f"the sequence length must be static to unroll, got {steps}")
        dt = b.dtype(x)
        ys, hs, cs = [], [], []
        for d, reverse in enumerate(dirs):
            f = [_act(cx, a) for a in acts[d * n_act:(d + 1) * n_act]]
            w, r = _dir(b, cx.x(1), d), _dir(b, cx.x(2), d)
            xw = b.matmul(x, b.transpose(w, perm=(1, 0)))                     # [S, B, G*H]
            rt = b.transpose(r, perm=(1, 0))                                  # [H, G*H]
            wb = rb = None
            if cx.has(3):
                bias = _dir(b, cx.x(3), d)
                wb = b.slice(bias, start=(0,), stop=(gates * hidden,), step=(1,))
                rb = b.slice(bias, start=(gates * hidden,), stop=(2 * gates * hidden,), step=(1,))
                xw = b.add(xw, wb)
            zero = b.broadcast_to(b.scalar(0.0, dt), shape=(batch, hidden))
            h = _dir(b, cx.x(5), d) if cx.has(5) else zero
            c = _dir(b, cx.x(6), d) if kind == "LSTM" and cx.has(6) else zero
            outs = [None] * steps
            order = range(steps - 1, -1, -1) if reverse else range(steps)
            for t in order:
                xt = b.reshape(b.slice(xw, start=(t, 0, 0), stop=(t + 1, None, gates * hidden), step=(1, 1, 1)),
                               shape=(batch, gates * hidden))
                hr = b.matmul(h, rt)
                if rb is not None:
                    hr = b.add(hr, rb)
                h, c = _step(cx, kind, f, xt, hr, h, c, hidden, clip, lbr, rt, rb)
                outs[t] = b.reshape(h, shape=(1, 1, batch, hidden))
            ys.append(b.concat(*outs, axis=0) if steps > 1 else outs[0])      # [S, 1, B, H]
            hs.append(b.reshape(h, shape=(1, batch, hidden)))
            cs.append(b.reshape(c, shape=(1, batch, hidden)))
        y = b.concat(*ys, axis=1) if len(ys) > 1 else ys[0]
        yh = b.concat(*hs, axis=0) if len(hs) > 1 else hs[0]
        yc = b.concat(*cs, axis=0) if len(cs) > 1 else cs[0]
        if layout:
            y = b.transpose(y, perm=(2, 0, 1, 3))
            yh, yc = (b.transpose(v, perm=(1, 0, 2)) for v in (yh, yc))
        return [y, yh, yc] if kind == "LSTM" else [y, yh]
    return lower


def _step(cx, kind, f, xt, hr, h, c, hidden, clip, lbr, rt, rb):
    b = cx.b
    dt = b.dtype(xt)

    def pre(v):
        if clip is None:
            return v
        return b.minimum(b.maximum(v, b.scalar(-clip, dt)), b.scalar(clip, dt))

    if kind == "RNN":
        return f[0](pre(b.add(xt, hr))), c
    if kind == "LSTM":
        z = b.add(xt, hr)
        i, o, fg, cc = (_cols(b, z, k, hidden) for k in range(4))
        i, o, fg, cc = f[0](pre(i)), f[0](pre(o)), f[0](pre(fg)), f[1](pre(cc))
        c = b.add(b.mul(fg, c), b.mul(i, cc))
        return b.mul(o, f[2](c)), c
    # GRU
    zt = f[0](pre(b.add(_cols(b, xt, 0, hidden), _cols(b, hr, 0, hidden))))
    rt_ = f[0](pre(b.add(_cols(b, xt, 1, hidden), _cols(b, hr, 1, hidden))))
    if lbr:
        cand = b.add(_cols(b, xt, 2, hidden), b.mul(rt_, _cols(b, hr, 2, hidden)))
    else:
        rh = b.slice(rt, start=(0, 2 * hidden), stop=(hidden, 3 * hidden), step=(1, 1))
        hh = b.matmul(b.mul(rt_, h), rh)
        if rb is not None:
            hh = b.add(hh, b.slice(rb, start=(2 * hidden,), stop=(3 * hidden,), step=(1,)))
        cand = b.add(_cols(b, xt, 2, hidden), hh)
    ht = f[1](pre(cand))
    one = b.scalar(1.0, dt)
    return b.add(b.mul(b.sub(one, zt), ht), b.mul(zt, h)), c


OPS = {"RNN": recurrent("RNN"), "GRU": recurrent("GRU"), "LSTM": recurrent("LSTM")}
