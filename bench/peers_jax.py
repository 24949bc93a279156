"""The jax peer: jax.jit of the whole step (loss, gradients and the optimizer update)."""
from __future__ import annotations

import numpy as np

from .cases import MLP, DeepCNN, Elementwise, LSTMNet, Problem
from .peers_base import Impl, Runner, apply_limits


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
        apply_limits()
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
