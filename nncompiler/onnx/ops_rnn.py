"""ONNX's recurrent layers (RNN, GRU, LSTM), each direction one `scan` over the static sequence length.

The input projection of all steps is one matmul up front ([S, B, F] @ W^T + Wb); then
one `scan` per direction (library/recurrent.py's `recurrent_scan`, the loop the .nn
language's rnn/lstm/gru layers build too) runs a step: the recurrent matmul
h @ R^T + Rb, and the gate arithmetic. So the graph's size does not depend on the
sequence length, autodiff gives backpropagation through time as a reverse scan, and
`reverse` is the scan's own direction (its stacked outputs stay at their time index, as
ONNX's Y does). The gate arithmetic is ONNX's, not the library's Keras cells: gate orders
follow the spec (LSTM i, o, f, c; GRU z, r, h), as do the default activations, `clip`
(on every gate's pre-activation) and `linear_before_reset` (0, ONNX's default, multiplies
the reset gate into h before its matmul, a form Keras's gru does not have).
Bidirectional runs both directions and stacks them.
"""
from __future__ import annotations

from ..library.recurrent import recurrent_scan
from .importer import ir_name

ACTS = ("Sigmoid", "Tanh", "Relu")
_GATES = {"RNN": (1, ["Tanh"]), "GRU": (3, ["Sigmoid", "Tanh"]), "LSTM": (4, ["Sigmoid", "Tanh", "Tanh"])}


def _act(b, name: str):
    """Activation `name` (one of ACTS, checked by the caller) emitting into builder b."""
    if name == "Sigmoid":
        return b.sigmoid
    if name == "Tanh":
        return b.tanh
    return lambda v: b.maximum(v, b.scalar(0.0, b.dtype(v)))


def _cols(b, z, k: int, hidden: int):
    """Gate k's columns [.., k*H:(k+1)*H] of a [B, G*H] value."""
    return b.slice(z, start=(0, k * hidden), stop=(None, (k + 1) * hidden), step=(1, 1))


def _dir(b, v, d: int):
    """Direction d of a [num_dir, ...] weight or initial state, as [...] (the batch of a state
    may be symbolic: the rest of each axis is a stop of None, which the import builder writes
    as the size where it is static)."""
    s = tuple(b.shape(v))
    part = b.slice(v, start=(d,) + (0,) * (len(s) - 1), stop=(d + 1,) + (None,) * (len(s) - 1), step=(1,) * len(s))
    return b.reshape(part, shape=tuple(s[1:]))


def _activations(cx, kind: str, n_dirs: int) -> list[list[str]]:
    """The activation names per direction (the attribute lists them direction after direction)."""
    default = _GATES[kind][1]
    acts = cx.attr("activations")
    acts = list(acts) if acts else default * n_dirs
    if len(acts) != len(default) * n_dirs:
        raise cx.fail(f"activations lists {len(acts)} functions; {kind} with {n_dirs} direction(s) "
                      f"needs {len(default) * n_dirs} ({len(default)} per direction)")
    for a in acts:
        if a not in ACTS:
            raise cx.fail(f"activation '{a}' is not supported (supported: {', '.join(ACTS)})")
    return [acts[d * len(default):(d + 1) * len(default)] for d in range(n_dirs)]


def recurrent(kind: str):
    gates = _GATES[kind][0]

    def lower(cx):
        b = cx.b
        hidden = cx.attr("hidden_size")
        direction = cx.attr("direction", "forward")
        layout = cx.attr("layout", 0)
        clip = cx.attr("clip")
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
        acts = _activations(cx, kind, len(dirs))
        x = cx.x(0)
        # layout 1 is batch first: x [B, S, F] and the states [B, num_dir, H]; compute in layout 0
        slots = (5, 6) if kind == "LSTM" else (5,)        # initial_h (and LSTM's initial_c)
        initial = {k: cx.x(k) for k in slots if cx.has(k)}
        if layout:
            x = b.transpose(x, perm=(1, 0, 2))
            initial = {k: b.transpose(v, perm=(1, 0, 2)) for k, v in initial.items()}
        steps, batch, _ = b.shape(x)
        if not isinstance(steps, int):
            raise cx.fail(f"the sequence length must be static (the scan runs a fixed number of steps), got {steps}")
        dt = b.dtype(x)
        # the body's name, as `--emit ir` shows it: the node's, or the op's and a count
        base = ir_name(cx.node.name) if cx.node.name else f"{kind.lower()}{sum(n.op == 'scan' for n in b.nodes)}"
        # a state without an initial value starts at zero
        zero = b.broadcast_to(b.scalar(0.0, dt), shape=(batch, hidden)) if len(initial) < len(slots) else None
        ys, finals = [], []
        for d, reverse in enumerate(dirs):
            w, r = _dir(b, cx.x(1), d), _dir(b, cx.x(2), d)
            xw = b.matmul(x, b.transpose(w, perm=(1, 0)))                     # [S, B, G*H]
            rt = b.transpose(r, perm=(1, 0))                                  # [H, G*H]
            rb = None
            if cx.has(3):
                bias = _dir(b, cx.x(3), d)
                wb = b.slice(bias, start=(0,), stop=(gates * hidden,), step=(1,))
                rb = b.slice(bias, start=(gates * hidden,), stop=(2 * gates * hidden,), step=(1,))
                xw = b.add(xw, wb)
            init = [_dir(b, initial[k], d) if k in initial else zero for k in slots]

            def step(body, xt, hr, state, rt_, rb_, names=acts[d]):
                f = [_act(body, a) for a in names]
                return _step(body, kind, f, xt, hr, state, hidden, clip, lbr, rt_, rb_)

            out = recurrent_scan(b, f"{base}_{'reverse' if reverse else 'forward'}", xw, init, rt, rb, step,
                                 axis=0, reverse=reverse)
            ys.append(b.reshape(out[len(slots)], shape=(steps, 1, batch, hidden)))   # [S, 1, B, H]
            finals.append([b.reshape(v, shape=(1, batch, hidden)) for v in out[:len(slots)]])
        y = b.concat(*ys, axis=1) if len(ys) > 1 else ys[0]
        # the final states, directions stacked: Y_h, and for LSTM Y_c
        states = [b.concat(*vs, axis=0) if len(vs) > 1 else vs[0] for vs in zip(*finals)]
        if layout:
            y = b.transpose(y, perm=(2, 0, 1, 3))
            states = [b.transpose(v, perm=(1, 0, 2)) for v in states]
        return [y, *states]
    return lower


def _step(b, kind, f, xt, hr, state, hidden, clip, lbr, rt, rb):
    """One time step in the scan's body builder b: (h, new states) from the step's input
    projection xt [B, G*H], hr = h @ R^T (+ Rb) and the states (h, and LSTM's c)."""
    dt = b.dtype(xt)

    def pre(v):
        if clip is None:
            return v
        return b.minimum(b.maximum(v, b.scalar(-clip, dt)), b.scalar(clip, dt))

    if kind == "RNN":
        h = f[0](pre(b.add(xt, hr)))
        return h, (h,)
    if kind == "LSTM":
        z = b.add(xt, hr)
        i, o, fg, cc = (_cols(b, z, k, hidden) for k in range(4))
        i, o, fg, cc = f[0](pre(i)), f[0](pre(o)), f[0](pre(fg)), f[1](pre(cc))
        c = b.add(b.mul(fg, state[1]), b.mul(i, cc))
        h = b.mul(o, f[2](c))
        return h, (h, c)
    # GRU
    h = state[0]
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
    h = b.add(b.mul(b.sub(one, zt), ht), b.mul(zt, h))
    return h, (h,)


OPS = {"RNN": recurrent("RNN"), "GRU": recurrent("GRU"), "LSTM": recurrent("LSTM")}
