"""The implementations a case runs on: nnc's CPU backends and the peers.

Each implementation turns a `Problem` (bench/cases.py) into a `Runner`: `call()` is the
timed unit, and the contract is the same for everyone and mirrors nnc's API:

  * train:       one optimizer step on the batch; returns the batch's loss (computed before
                 the update) as a Python float, as `m.step(x=, y=)["loss"]` does;
  * predict:     the softmax probabilities as a host numpy array, as `m.forward(x=)`;
  * elementwise: y as a host numpy array.

Inputs are converted to each framework's array type once, outside the timed call (torch
tensors, jax device arrays, tf tensors); nnc's numpy backend takes numpy arrays, which are
its device arrays. `params()` returns a training runner's current parameters in nnc's
names and layout, for the first-step check. Frameworks are imported lazily: a peer that
is not installed is skipped with a note.
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .cases import CNN, MLP, DeepCNN, Elementwise, LSTMNet, Problem


THREADS: int | None = None          # --threads N: every library limited to N threads (None: their defaults)
_limits = None


def configure_threads(n: int | None) -> None:
    """Limit every library to n threads (call before the frameworks are imported): the
    environment variables that OpenMP/OpenBLAS/MKL read when they load, threadpoolctl for the
    libraries already loaded (numpy's OpenBLAS), XLA's flags for jax (single-threaded only),
    and torch/TensorFlow's own settings when they are set up."""
    global THREADS, _limits
    THREADS = n
    if n is None:
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if n == 1 and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
    _apply_limits()


def _apply_limits() -> None:
    """threadpoolctl's limit, on every library loaded so far (called again after each import)."""
    global _limits
    if THREADS is None:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    _limits = threadpool_limits(limits=THREADS)


class Unsupported(Exception):
    """This implementation does not run this case (the reason is the message)."""


@dataclass
class Runner:
    call: Callable[[], object]
    params: Callable[[], dict] | None = None
    info: str = ""
    graph_nodes: int | None = None      # nnc: nodes of the optimised graph the call runs


def _version(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except Exception:
        return None


class Impl:
    name = ""
    is_nnc = False

    def unavailable(self) -> str | None:
        """None when this implementation can run here, else why not."""
        return None

    def versions(self) -> dict:
        return {}

    def setup(self, p: Problem) -> Runner:
        raise NotImplementedError


# ---- nnc ----------------------------------------------------------------------------------------

class NNC(Impl):
    """nncompiler through its public API: compile(source, backend=...), set_params, step / forward."""
    is_nnc = True

    def __init__(self, backend: str):
        self.backend = backend
        self.name = f"nnc:{backend}"

    def unavailable(self) -> str | None:
        try:
            module = importlib.import_module(f"nncompiler.backends.{self.backend}")
        except ImportError as e:
            return f"nncompiler.backends.{self.backend} does not import: {e}"
        if not hasattr(module, "Backend"):
            return f"nncompiler.backends.{self.backend} has no Backend yet"
        if self.backend == "mlir":
            for mod in ("iree.compiler", "iree.runtime"):
                try:
                    importlib.import_module(mod)
                except ImportError as e:
                    return f"{mod} does not import: {e}"
        return None

    def versions(self) -> dict:
        out = {"nncompiler": _version("nncompiler")}
        if self.backend == "mlir":
            for dist in ("iree-base-compiler", "iree-base-runtime"):
                try:
                    from importlib.metadata import version
                    out[dist] = version(dist)
                except Exception:
                    pass
        return out

    def setup(self, p: Problem) -> Runner:
        import nncompiler as nnc
        m = nnc.compile(p.source, backend=self.backend)
        _apply_limits()
        if p.params:
            m.set_params(p.params)
        feeds = dict(p.feeds)
        if p.kind == "train":
            return Runner(lambda: m.step(**feeds)["loss"], lambda: m.params,
                          graph_nodes=len(m.graph("train_step").nodes))
        x = feeds["x"]
        return Runner(lambda: m.forward(x=x), graph_nodes=len(m.graph("predict").nodes))


# ---- hand-written numpy (the reference) -----------------------------------------------------------

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


# ---- torch (eager and torch.compile) --------------------------------------------------------------

class TorchPeer(Impl):
    name = "torch"
    compiled = False

    def unavailable(self) -> str | None:
        try:
            import torch  # noqa: F401
        except ImportError as e:
            return f"torch is not installed ({e})"
        return None

    def versions(self) -> dict:
        import torch
        return {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}

    def _maybe_compile(self, fn):
        if not self.compiled:
            return fn
        import torch
        return torch.compile(fn, dynamic=False)

    def setup(self, p: Problem) -> Runner:
        import torch
        import torch.nn.functional as Fn
        if THREADS is not None:
            torch.set_num_threads(THREADS)
            _apply_limits()
        if isinstance(p.net, Elementwise):
            net = p.net
            x = torch.from_numpy(p.feeds["x"])

            def f(x):
                return Fn.silu(Fn.leaky_relu(x * net.a + net.b, net.slope))
            f = self._maybe_compile(f)

            def call():
                with torch.no_grad():
                    return f(x).numpy()
            return Runner(call)

        if isinstance(p.net, (DeepCNN, LSTMNet)):
            from .peers_deep import torch_model
            model, to_nnc = torch_model(p)
        else:
            model, to_nnc = self._build(p)
        x = torch.from_numpy(p.feeds["x"])
        if isinstance(p.net, (CNN, DeepCNN)):
            x = x.permute(0, 3, 1, 2).contiguous()        # torch's layout, NCHW (once, untimed)
        if p.kind == "predict":
            fwd = self._maybe_compile(lambda x: Fn.softmax(model(x), dim=-1))

            def predict():
                with torch.no_grad():
                    return fwd(x).numpy()
            return Runner(predict)
        params = [w for w in model.parameters() if w.requires_grad]
        if isinstance(p.net, LSTMNet):          # regression: mse, Adam with nnc's hyper-parameters
            from .cases import ADAM_EPS
            y = torch.from_numpy(p.feeds["y"])
            loss_fn = self._maybe_compile(lambda x, y: Fn.mse_loss(model(x), y))
            opt = torch.optim.Adam(params, lr=p.lr, eps=ADAM_EPS)
        else:
            y = torch.from_numpy(p.feeds["y"].astype(np.int64))
            loss_fn = self._maybe_compile(lambda x, y: Fn.cross_entropy(model(x), y))
            opt = torch.optim.SGD(params, lr=p.lr)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(x, y)
            loss.backward()
            opt.step()
            return loss.item()
        return Runner(step, to_nnc)

    @staticmethod
    def _build(p: Problem):
        """The torch module with the problem's weights, and a function giving them back in nnc's layout."""
        import torch
        from torch import nn
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        if isinstance(p.net, MLP):
            linears, mods = [], []
            for i, name in enumerate(p.net.layers):
                W = p.params[f"{name}.kernel"]
                lin = nn.Linear(*W.shape)
                with torch.no_grad():
                    lin.weight.copy_(t(W.T))
                    lin.bias.copy_(t(p.params[f"{name}.bias"]))
                linears.append((name, lin))
                mods.append(lin)
                if i < len(p.net.layers) - 1:
                    mods.append(nn.ReLU())
            model = nn.Sequential(*mods)

            def to_nnc():
                out = {}
                for name, lin in linears:
                    out[f"{name}.kernel"] = lin.weight.detach().numpy().T.copy()
                    out[f"{name}.bias"] = lin.bias.detach().numpy().copy()
                return out
            return model, to_nnc
        net = p.net
        ph, pw, pc = net.pooled
        flat = ph * pw * pc

        class CNNModule(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(net.image[2], net.filters, net.kernel, padding=net.kernel // 2)
                self.fc = nn.Linear(flat, net.classes)

            def forward(self, x):                    # x [B, C, H, W]
                h = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), net.pool)
                return self.fc(h.flatten(1))         # flattened (c, h, w)

        model = CNNModule()
        with torch.no_grad():
            model.conv.weight.copy_(t(p.params["c1.kernel"].transpose(3, 2, 0, 1)))
            model.conv.bias.copy_(t(p.params["c1.bias"]))
            # nnc flattens (h, w, c), torch (c, h, w): permute the dense kernel's rows
            Wd = p.params["out.kernel"].reshape(ph, pw, pc, -1).transpose(2, 0, 1, 3).reshape(flat, -1)
            model.fc.weight.copy_(t(Wd.T))
            model.fc.bias.copy_(t(p.params["out.bias"]))

        def to_nnc():
            Wt = model.fc.weight.detach().numpy().T
            return {"c1.kernel": model.conv.weight.detach().numpy().transpose(2, 3, 1, 0).copy(),
                    "c1.bias": model.conv.bias.detach().numpy().copy(),
                    "out.kernel": Wt.reshape(pc, ph, pw, -1).transpose(1, 2, 0, 3).reshape(flat, -1).copy(),
                    "out.bias": model.fc.bias.detach().numpy().copy()}
        return model, to_nnc


class TorchCompilePeer(TorchPeer):
    """torch.compile (inductor) of the loss (forward + backward through AOTAutograd) or of the
    forward; the SGD update runs eagerly."""
    name = "torch.compile"
    compiled = True


# ---- jax ------------------------------------------------------------------------------------------

class JaxPeer(Impl):
    """jax.jit of the whole step (loss, gradients and the SGD update, parameters donated)."""
    name = "jax.jit"

    def unavailable(self) -> str | None:
        try:
            import jax  # noqa: F401
        except ImportError as e:
            return f"jax is not installed ({e})"
        return None

    def versions(self) -> dict:
        import jax
        import jaxlib
        return {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
                "jax_devices": [str(d) for d in jax.devices()]}

    def setup(self, p: Problem) -> Runner:
        import jax
        import jax.numpy as jnp
        from jax import lax
        _apply_limits()
        cpu = jax.devices("cpu")[0]
        put = lambda a: jax.device_put(a, cpu)  # noqa: E731
        x = put(p.feeds["x"])
        if isinstance(p.net, Elementwise):
            net = p.net
            f = jax.jit(lambda x: jax.nn.silu(jax.nn.leaky_relu(x * net.a + net.b, net.slope)))
            return Runner(lambda: np.asarray(f(x)))

        if isinstance(p.net, (DeepCNN, LSTMNet)):
            from .peers_deep import jax_model
            params, logits_fn, to_nnc = jax_model(p, put)
        elif isinstance(p.net, MLP):
            names = p.net.layers
            params = [(put(p.params[f"{n}.kernel"]), put(p.params[f"{n}.bias"])) for n in names]

            def logits_fn(params, x):
                for i, (W, b) in enumerate(params):
                    x = x @ W + b
                    if i < len(params) - 1:
                        x = jax.nn.relu(x)
                return x

            def to_nnc(params):
                out = {}
                for n, (W, b) in zip(names, params):
                    out[f"{n}.kernel"], out[f"{n}.bias"] = np.array(W), np.array(b)
                return out
        else:
            net = p.net
            params = [put(p.params[k]) for k in ("c1.kernel", "c1.bias", "out.kernel", "out.bias")]
            q = net.pool

            def logits_fn(params, x):
                K, cb, W, wb = params
                z = lax.conv_general_dilated(x, K, (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC")) + cb
                a = jax.nn.relu(z)
                pooled = lax.reduce_window(a, -jnp.inf, lax.max, (1, q, q, 1), (1, q, q, 1), "VALID")
                return pooled.reshape(pooled.shape[0], -1) @ W + wb

            def to_nnc(params):
                return dict(zip(("c1.kernel", "c1.bias", "out.kernel", "out.bias"),
                                (np.array(v) for v in params)))

        if p.kind == "predict":
            fwd = jax.jit(lambda params, x: jax.nn.softmax(logits_fn(params, x), axis=-1))
            return Runner(lambda: np.asarray(fwd(params, x)))

        y = put(p.feeds["y"])
        lr = np.float32(p.lr)
        if isinstance(p.net, LSTMNet):
            return self._adam_mse(p, jax, jnp, params, logits_fn, to_nnc, x, y)

        def loss_fn(params, x, y):
            logp = jax.nn.log_softmax(logits_fn(params, x), axis=-1)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        def step_fn(params, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            return jax.tree_util.tree_map(lambda w, g: w - lr * g, params, grads), loss
        step_jit = jax.jit(step_fn, donate_argnums=0)
        state = {"params": params}

        def step():
            state["params"], loss = step_jit(state["params"], x, y)
            return float(loss)
        return Runner(step, lambda: to_nnc(state["params"]))


    @staticmethod
    def _adam_mse(p: Problem, jax, jnp, params, forward, to_nnc, x, y) -> Runner:
        """mse + Adam (nnc's and torch's formula: eps added to sqrt(v_hat)), all in one jit."""
        from .cases import ADAM_EPS
        lr, b1, b2, eps = np.float32(p.lr), np.float32(0.9), np.float32(0.999), np.float32(ADAM_EPS)

        def loss_fn(params, x, y):
            return jnp.mean((forward(params, x) - y) ** 2)

        def step_fn(state, x, y):
            params, m, v, t = state
            loss, g = jax.value_and_grad(loss_fn)(params, x, y)
            t = t + 1
            tm = jax.tree_util.tree_map
            m = tm(lambda m, g: b1 * m + (1 - b1) * g, m, g)
            v = tm(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
            new = tm(lambda w, m, v: w - lr * (m / (1 - b1 ** t)) / (jnp.sqrt(v / (1 - b2 ** t)) + eps),
                     params, m, v)
            return (new, m, v, t), loss
        step_jit = jax.jit(step_fn, donate_argnums=0)
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        state = {"s": (params, zeros, jax.tree_util.tree_map(jnp.zeros_like, params), jnp.float32(0))}

        def step():
            state["s"], loss = step_jit(state["s"], x, y)
            return float(loss)
        return Runner(step, lambda: to_nnc(state["s"][0]))


# ---- TensorFlow and Keras ---------------------------------------------------------------------------

def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")      # logging only
    fresh = "tensorflow" not in sys.modules
    import tensorflow as tf
    if fresh and THREADS is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(THREADS)
            tf.config.threading.set_inter_op_parallelism_threads(THREADS)
        except RuntimeError:                                # already initialised
            pass
        _apply_limits()
    return tf


class TFPeer(Impl):
    """A tf.function step: GradientTape over tf.Variables, assign_sub updates (graph mode, no XLA)."""
    name = "tf.function"

    def unavailable(self) -> str | None:
        try:
            _import_tf()
        except ImportError as e:
            return f"tensorflow is not installed ({e})"
        return None

    def versions(self) -> dict:
        tf = _import_tf()
        return {"tensorflow": tf.__version__,
                "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}

    def setup(self, p: Problem) -> Runner:
        if isinstance(p.net, (DeepCNN, LSTMNet)):
            raise Unsupported(f"no TensorFlow version of {type(p.net).__name__} in the bench")
        tf = _import_tf()
        with tf.device("/CPU:0"):
            return self._setup(tf, p)

    @staticmethod
    def _setup(tf, p: Problem) -> Runner:
        x = tf.constant(p.feeds["x"])
        if isinstance(p.net, Elementwise):
            net = p.net
            f = tf.function(lambda x: tf.nn.silu(tf.nn.leaky_relu(x * net.a + net.b, alpha=net.slope)))
            return Runner(lambda: f(x).numpy())
        if isinstance(p.net, MLP):
            names = [f"{n}.{w}" for n in p.net.layers for w in ("kernel", "bias")]
            vs = [tf.Variable(p.params[k]) for k in names]

            def logits_fn(x):
                for i in range(0, len(vs), 2):
                    x = tf.matmul(x, vs[i]) + vs[i + 1]
                    if i < len(vs) - 2:
                        x = tf.nn.relu(x)
                return x
        else:
            net = p.net
            names = ["c1.kernel", "c1.bias", "out.kernel", "out.bias"]
            vs = [tf.Variable(p.params[k]) for k in names]

            def logits_fn(x):
                a = tf.nn.relu(tf.nn.conv2d(x, vs[0], strides=1, padding="SAME") + vs[1])
                pooled = tf.nn.max_pool2d(a, net.pool, net.pool, "VALID")
                return tf.matmul(tf.reshape(pooled, (tf.shape(pooled)[0], -1)), vs[2]) + vs[3]

        if p.kind == "predict":
            fwd = tf.function(lambda x: tf.nn.softmax(logits_fn(x), axis=-1))
            return Runner(lambda: fwd(x).numpy())
        y = tf.constant(p.feeds["y"])
        lr = tf.constant(p.lr, tf.float32)

        @tf.function
        def step_fn(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits_fn(x)))
            for v, g in zip(vs, tape.gradient(loss, vs)):
                v.assign_sub(lr * g)
            return loss
        return Runner(lambda: float(step_fn(x, y).numpy()),
                      lambda: {k: v.numpy().copy() for k, v in zip(names, vs)})


class KerasPeer(TFPeer):
    """A keras.Sequential model: train_on_batch / predict_on_batch (Keras's own compile settings)."""
    name = "keras"

    def unavailable(self) -> str | None:
        try:
            _import_tf()
            import keras  # noqa: F401
        except ImportError as e:
            return f"keras/tensorflow is not installed ({e})"
        return None

    def versions(self) -> dict:
        import keras
        return {"keras": keras.__version__, "keras_backend": keras.backend.backend()}

    def setup(self, p: Problem) -> Runner:
        if isinstance(p.net, (DeepCNN, LSTMNet)):
            raise Unsupported(f"no Keras version of {type(p.net).__name__} in the bench")
        tf = _import_tf()
        import keras
        from keras import layers
        if isinstance(p.net, Elementwise):
            raise Unsupported("not a model (tf.function covers it)")
        final = "softmax" if p.kind == "predict" else None
        if isinstance(p.net, MLP):
            names = [f"{n}.{w}" for n in p.net.layers for w in ("kernel", "bias")]
            mods = [keras.Input((p.net.sizes[0],))]
            mods += [layers.Dense(n, activation="relu") for n in p.net.sizes[1:-1]]
            mods.append(layers.Dense(p.net.sizes[-1], activation=final))
        else:
            net = p.net
            names = ["c1.kernel", "c1.bias", "out.kernel", "out.bias"]
            mods = [keras.Input(net.image),
                    layers.Conv2D(net.filters, net.kernel, padding="same", activation="relu"),
                    layers.MaxPooling2D(net.pool), layers.Flatten(),
                    layers.Dense(net.classes, activation=final)]
        with tf.device("/CPU:0"):
            model = keras.Sequential(mods)
            model.set_weights([p.params[k] for k in names])
            x = tf.constant(p.feeds["x"])
            if p.kind == "predict":
                return Runner(lambda: np.asarray(model.predict_on_batch(x)))
            y = tf.constant(p.feeds["y"])
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=p.lr),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

        def step():
            with tf.device("/CPU:0"):
                return float(model.train_on_batch(x, y))
        return Runner(step, lambda: dict(zip(names, model.get_weights())),
                      info=f"jit_compile={getattr(model, 'jit_compile', '?')}")


def all_impls() -> list[Impl]:
    """In the order they run within a case: the reference first, nnc next, then the peers."""
    return [NumpyPeer(), NNC("numpy"), NNC("mlir"), TorchPeer(), TorchCompilePeer(), JaxPeer(),
            TFPeer(), KerasPeer()]
