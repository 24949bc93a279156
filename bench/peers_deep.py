"""Cases F (a two-convolution CNN) and G (an LSTM regressor) for the torch and jax peers.

Each builder takes a Problem and returns the framework's model with the problem's initial
weights, plus a function giving the current weights back in nnc's names and layout (the
first-step check compares them). Layout conversions:
  * conv kernels: nnc [kh, kw, C, F] = jax HWIO; torch [F, C, kh, kw];
  * the dense layer after `flatten`: nnc flattens (h, w, c), torch (c, h, w);
  * LSTM: nnc (Keras) kernel [F, 4U] with gates i, f, c, o = torch's i, f, g, o, so torch's
    weight_ih is the kernel transposed; torch's second bias (bias_hh) is held at zero and
    frozen, so that bias_ih is nnc's one bias and gets the same Adam update.
The jax versions are flax-free: `lax.conv_general_dilated`, `lax.reduce_window`, `lax.scan`.
`numpy_cnn` is the hand-written numpy DeepCNN step: what numpy itself can do (im2col + sgemm).
"""
from __future__ import annotations

import numpy as np

from .cases import DeepCNN, LSTMNet, Problem


def _flat_perm(net: DeepCNN, W: np.ndarray, to_torch: bool) -> np.ndarray:
    ph, pw, pc = net.pooled
    flat = ph * pw * pc
    if to_torch:   # rows (h, w, c) -> (c, h, w)
        return W.reshape(ph, pw, pc, -1).transpose(2, 0, 1, 3).reshape(flat, -1)
    return W.reshape(pc, ph, pw, -1).transpose(1, 2, 0, 3).reshape(flat, -1)


def numpy_cnn(p: Problem):
    """(step, params) of a hand-written numpy DeepCNN training step, written as a careful numpy
    programmer would: each conv is an im2col (one copy of a strided view of the zero-padded
    input) and one sgemm; its kernel gradient is one sgemm with the same columns, its input
    gradient one sgemm into columns folded back by k*k strided adds; max pooling is a running
    max over the q*q tap views, its gradient to the first maximal tap (torch's tie rule)."""
    from numpy.lib.stride_tricks import sliding_window_view
    from .peers_numpy import _softmax_xent_grad
    net = p.net
    k, q, pad = net.kernel, net.pool, net.kernel // 2
    if k % 2 != 1:
        raise ValueError("the numpy CNN pads symmetrically: odd kernels only")
    params = {name: a.copy() for name, a in p.params.items()}
    x, y = p.feeds["x"], p.feeds["y"]
    rows = np.arange(len(y))
    lr = np.float32(p.lr)
    layers = [f"c{i}" for i in range(1, len(net.filters) + 1)]

    def padded(a):
        b, h, w, c = a.shape
        out = np.zeros((b, h + 2 * pad, w + 2 * pad, c), a.dtype)
        out[:, pad:pad + h, pad:pad + w] = a
        return out

    def im2col(a):                      # [B, H, W, C] -> [B*H*W, k*k*C], taps major, channels minor
        v = sliding_window_view(padded(a), (k, k), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
        return np.ascontiguousarray(v).reshape(-1, k * k * a.shape[-1])

    def col2im(cols, shape):            # the transpose of im2col: k*k strided adds
        b, h, w, c = shape
        cols = cols.reshape(b, h, w, k, k, c)
        out = np.zeros((b, h + 2 * pad, w + 2 * pad, c), cols.dtype)
        for i in range(k):
            for j in range(k):
                out[:, i:i + h, j:j + w] += cols[:, :, :, i, j]
        return out[:, pad:pad + h, pad:pad + w]

    def step():
        a, saved = x, []
        for name in layers:
            b, h, w, _ = a.shape
            kern = params[f"{name}.kernel"]
            cols = im2col(a)
            z = cols @ kern.reshape(-1, kern.shape[-1])
            z += params[f"{name}.bias"]
            np.maximum(z, 0, out=z)                         # relu
            z = z.reshape(b, h, w, -1)
            taps = [z[:, i::q, j::q] for i in range(q) for j in range(q)]
            pooled = taps[0].copy()
            for t in taps[1:]:
                np.maximum(pooled, t, out=pooled)
            saved.append((a.shape, cols, z, taps, pooled))
            a = pooled
        flat = a.reshape(len(y), -1)
        loss, g = _softmax_xent_grad(flat @ params["out.kernel"] + params["out.bias"], y, rows)
        grads = {"out.kernel": flat.T @ g, "out.bias": g.sum(axis=0)}
        g = (g @ params["out.kernel"].T).reshape(a.shape)
        for name, (shape, cols, z, taps, pooled) in zip(reversed(layers), reversed(saved)):
            dz = np.empty_like(z)
            taken = np.zeros(pooled.shape, bool)
            for t, dt in zip(taps, [dz[:, i::q, j::q] for i in range(q) for j in range(q)]):
                first = (t == pooled) & ~taken             # the first maximal tap of each window
                taken |= first
                np.multiply(g, first, out=dt)
            dz *= z > 0                                     # relu'
            dz = dz.reshape(-1, z.shape[-1])
            kern = params[f"{name}.kernel"]
            grads[f"{name}.kernel"] = (cols.T @ dz).reshape(kern.shape)
            grads[f"{name}.bias"] = dz.sum(axis=0)
            if name != layers[0]:
                g = col2im(dz @ kern.reshape(-1, kern.shape[-1]).T, shape)
        for name, grad in grads.items():
            grad *= lr
            params[name] -= grad
        return float(loss)

    return step, lambda: {name: a.copy() for name, a in params.items()}


def torch_model(p: Problem):
    """(module, to_nnc) for a DeepCNN (input NCHW) or an LSTMNet (input [B, T, F])."""
    import torch
    from torch import nn
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    net = p.net
    if isinstance(net, DeepCNN):
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                chans = (net.image[2],) + tuple(net.filters)
                self.convs = nn.ModuleList(nn.Conv2d(a, b, net.kernel, padding=net.kernel // 2)
                                           for a, b in zip(chans[:-1], chans[1:]))
                ph, pw, pc = net.pooled
                self.fc = nn.Linear(ph * pw * pc, net.classes)

            def forward(self, x):
                for conv in self.convs:
                    x = torch.nn.functional.max_pool2d(torch.relu(conv(x)), net.pool)
                return self.fc(x.flatten(1))

        model = Net()
        with torch.no_grad():
            for i, conv in enumerate(model.convs, 1):
                conv.weight.copy_(t(p.params[f"c{i}.kernel"].transpose(3, 2, 0, 1)))
                conv.bias.copy_(t(p.params[f"c{i}.bias"]))
            model.fc.weight.copy_(t(_flat_perm(net, p.params["out.kernel"], True).T))
            model.fc.bias.copy_(t(p.params["out.bias"]))

        def to_nnc():
            out = {}
            for i, conv in enumerate(model.convs, 1):
                out[f"c{i}.kernel"] = conv.weight.detach().numpy().transpose(2, 3, 1, 0).copy()
                out[f"c{i}.bias"] = conv.bias.detach().numpy().copy()
            out["out.kernel"] = _flat_perm(net, model.fc.weight.detach().numpy().T, False).copy()
            out["out.bias"] = model.fc.bias.detach().numpy().copy()
            return out
        return model, to_nnc

    assert isinstance(net, LSTMNet), net

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(net.features, net.units, batch_first=True)
            self.fc = nn.Linear(net.units, 1)

        def forward(self, x):
            return self.fc(self.lstm(x)[0][:, -1])

    model = Net()
    with torch.no_grad():
        model.lstm.weight_ih_l0.copy_(t(p.params["h.kernel"].T))
        model.lstm.weight_hh_l0.copy_(t(p.params["h.recurrent_kernel"].T))
        model.lstm.bias_ih_l0.copy_(t(p.params["h.bias"]))
        model.lstm.bias_hh_l0.zero_()
        model.fc.weight.copy_(t(p.params["out.kernel"].T))
        model.fc.bias.copy_(t(p.params["out.bias"]))
    model.lstm.bias_hh_l0.requires_grad_(False)

    def to_nnc():
        lstm = model.lstm
        return {"h.kernel": lstm.weight_ih_l0.detach().numpy().T.copy(),
                "h.recurrent_kernel": lstm.weight_hh_l0.detach().numpy().T.copy(),
                "h.bias": (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy().copy(),
                "out.kernel": model.fc.weight.detach().numpy().T.copy(),
                "out.bias": model.fc.bias.detach().numpy().copy()}
    return model, to_nnc


def jax_model(p: Problem, put):
    """(params, forward(params, x), to_nnc(params)) for a DeepCNN (NHWC) or an LSTMNet."""
    import jax
    import jax.numpy as jnp
    from jax import lax
    net = p.net
    names = sorted(p.params)
    params = {k: put(p.params[k]) for k in names}
    to_nnc = lambda params: {k: np.array(v) for k, v in params.items()}  # noqa: E731
    if isinstance(net, DeepCNN):
        q = net.pool

        def forward(params, x):
            for i in range(1, len(net.filters) + 1):
                z = lax.conv_general_dilated(x, params[f"c{i}.kernel"], (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
                a = jax.nn.relu(z + params[f"c{i}.bias"])
                x = lax.reduce_window(a, -jnp.inf, lax.max, (1, q, q, 1), (1, q, q, 1), "VALID")
            return x.reshape(x.shape[0], -1) @ params["out.kernel"] + params["out.bias"]
        return params, forward, to_nnc

    assert isinstance(net, LSTMNet), net
    u = net.units

    def forward(params, x):
        xw = jnp.swapaxes(x @ params["h.kernel"] + params["h.bias"], 0, 1)   # [T, B, 4U]
        R = params["h.recurrent_kernel"]

        def cell(carry, xw_t):
            h, c = carry
            z = xw_t + h @ R
            i, f = jax.nn.sigmoid(z[:, :u]), jax.nn.sigmoid(z[:, u:2 * u])
            g, o = jnp.tanh(z[:, 2 * u:3 * u]), jax.nn.sigmoid(z[:, 3 * u:])
            c = f * c + i * g
            return (o * jnp.tanh(c), c), None
        zeros = jnp.zeros((x.shape[0], u), x.dtype)
        (h, _), _ = lax.scan(cell, (zeros, zeros), xw)
        return h @ params["out.kernel"] + params["out.bias"]
    return params, forward, to_nnc
