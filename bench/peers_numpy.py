"""Hand-written numpy: the reference every other implementation is checked against (the
elementwise case, the MLP's train and predict, the one-convolution CNN's train step; case F's CNN is numpy_cnn in peers_deep)."""
from __future__ import annotations

import numpy as np

from .cases import CNN, MLP, DeepCNN, Elementwise, Problem
from .peers_base import Impl, Runner, Unsupported


def _softmax_xent_grad(logits: np.ndarray, y: np.ndarray, rows: np.ndarray) -> tuple[np.floating, np.ndarray]:
    """Mean sparse softmax cross-entropy of logits [B, K] and its gradient (logits is overwritten)."""
    e = logits
    e -= e.max(axis=1, keepdims=True)
    picked = e[rows, y]
    np.exp(e, out=e)
    s = e.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(s[:, 0]) - picked)
    e /= s
    e[rows, y] -= np.float32(1.0)
    e *= np.float32(1.0 / len(y))
    return loss, e


class NumpyPeer(Impl):
    """Hand-written numpy: the reference every other implementation is checked against."""
    name = "numpy"

    def versions(self) -> dict:
        return {"numpy": np.__version__}

    def setup(self, p: Problem) -> Runner:
        if isinstance(p.net, Elementwise):
            return self._elementwise(p)
        if isinstance(p.net, MLP):
            return self._mlp_train(p) if p.kind == "train" else self._mlp_predict(p)
        if isinstance(p.net, CNN):
            return self._cnn_train(p)
        if isinstance(p.net, DeepCNN) and p.kind == "train":
            from .peers_deep import numpy_cnn
            try:
                step, params = numpy_cnn(p)
            except ValueError as e:
                raise Unsupported(str(e)) from None
            return Runner(step, params)
        raise Unsupported(f"no hand-written numpy version of {type(p.net).__name__} "
                          f"(the case's reference is {p.reference})")

    @staticmethod
    def _elementwise(p: Problem) -> Runner:
        net, x = p.net, p.feeds["x"]
        a, b, slope, one = (np.float32(v) for v in (net.a, net.b, net.slope, 1.0))
        buf, out = np.empty_like(x), np.empty_like(x)

        def f():
            np.multiply(x, a, out=buf)
            np.add(buf, b, out=buf)                      # z = a*x + b
            np.multiply(buf, slope, out=out)
            np.maximum(buf, out, out=buf)                # u = leaky_relu(z) = max(z, slope*z), slope < 1
            np.negative(buf, out=out)
            with np.errstate(over="ignore"):
                np.exp(out, out=out)
            np.add(out, one, out=out)
            np.divide(buf, out, out=out)                 # u * sigmoid(u) = u / (1 + e^-u)
            return out
        return Runner(f)

    @staticmethod
    def _mlp_predict(p: Problem) -> Runner:
        names = p.net.layers
        Ws = [p.params[f"{n}.kernel"] for n in names]
        bs = [p.params[f"{n}.bias"] for n in names]
        x = p.feeds["x"]

        def f():
            h = x
            for i, (W, b) in enumerate(zip(Ws, bs)):
                z = h @ W
                z += b
                if i < len(Ws) - 1:
                    np.maximum(z, 0, out=z)
                h = z
            h -= h.max(axis=1, keepdims=True)
            np.exp(h, out=h)
            h /= h.sum(axis=1, keepdims=True)
            return h
        return Runner(f)

    @staticmethod
    def _mlp_train(p: Problem) -> Runner:
        names = p.net.layers
        Ws = [p.params[f"{n}.kernel"].copy() for n in names]
        bs = [p.params[f"{n}.bias"].copy() for n in names]
        x, y = p.feeds["x"], p.feeds["y"]
        rows = np.arange(len(y))
        lr = np.float32(p.lr)
        L = len(Ws)

        def step():
            acts = [x]                                   # acts[i] is layer i's input
            for i in range(L):
                z = acts[i] @ Ws[i]
                z += bs[i]
                if i < L - 1:
                    np.maximum(z, 0, out=z)              # relu
                acts.append(z)
            loss, g = _softmax_xent_grad(acts.pop(), y, rows)
            for i in reversed(range(L)):
                a = acts[i]
                dW = a.T @ g
                db = g.sum(axis=0)
                if i > 0:
                    g = g @ Ws[i].T
                    g *= a > 0                           # relu' (a = relu(z) > 0 iff z > 0)
                dW *= lr
                Ws[i] -= dW
                db *= lr
                bs[i] -= db
            return float(loss)

        def params():
            out = {}
            for n, W, b in zip(names, Ws, bs):
                out[f"{n}.kernel"], out[f"{n}.bias"] = W.copy(), b.copy()
            return out
        return Runner(step, params)

    @staticmethod
    def _cnn_train(p: Problem) -> Runner:
        net = p.net
        H, W_, C = net.image
        k, q, F = net.kernel, net.pool, net.filters
        if k % 2 != 1:
            raise Unsupported("the numpy CNN pads symmetrically: odd kernels only")
        Ho, Wo = H // q, W_ // q
        x, y = p.feeds["x"], p.feeds["y"]
        B = len(y)
        rows = np.arange(B)
        lr = np.float32(p.lr)
        K = p.params["c1.kernel"].copy()
        cb = p.params["c1.bias"].copy()
        Wd = p.params["out.kernel"].copy()
        wb = p.params["out.bias"].copy()
        pad = k // 2
        xp = np.zeros((B, H + 2 * pad, W_ + 2 * pad, C), np.float32)
        cols = np.empty((B, H, W_, k * k * C), np.float32)
        taps = [(i, j) for i in range(k) for j in range(k)]

        def step():
            # conv as im2col (taps tap-major, channels minor, like the kernel's [k, k, C, F])
            xp[:, pad:pad + H, pad:pad + W_, :] = x
            for t, (i, j) in enumerate(taps):
                cols[..., t * C:(t + 1) * C] = xp[:, i:i + H, j:j + W_, :]
            cols2 = cols.reshape(B * H * W_, k * k * C)
            a = cols2 @ K.reshape(k * k * C, F)
            a += cb
            np.maximum(a, 0, out=a)                      # relu, [B*H*W, F]
            # max pool: the first maximal tap of each window in raster order
            win = (a.reshape(B, Ho, q, Wo, q, F).transpose(0, 1, 3, 5, 2, 4)
                   .reshape(B, Ho, Wo, F, q * q))
            idx = win.argmax(axis=-1)[..., None]
            flat = np.take_along_axis(win, idx, axis=-1).reshape(B, Ho * Wo * F)
            loss, g = _softmax_xent_grad(flat @ Wd + wb, y, rows)
            dWd = flat.T @ g
            dwb = g.sum(axis=0)
            gp = (g @ Wd.T).reshape(B, Ho, Wo, F, 1)
            dwin = np.zeros_like(win)
            np.put_along_axis(dwin, idx, gp, axis=-1)
            da = (dwin.reshape(B, Ho, Wo, F, q, q).transpose(0, 1, 4, 2, 5, 3)
                  .reshape(B * H * W_, F))
            da *= a > 0                                  # relu'
            dK = (cols2.T @ da).reshape(k, k, C, F)
            dcb = da.sum(axis=0)
            for param, grad in ((K, dK), (cb, dcb), (Wd, dWd), (wb, dwb)):
                grad *= lr
                param -= grad
            return float(loss)

        def params():
            return {"c1.kernel": K.copy(), "c1.bias": cb.copy(), "out.kernel": Wd.copy(), "out.bias": wb.copy()}
        return Runner(step, params)
