"""The TensorFlow peers: a tf.function training step, and a keras.Sequential model."""
from __future__ import annotations

import os
import sys

import numpy as np

from .cases import MLP, DeepCNN, Elementwise, LSTMNet, Problem
from .peers_base import Impl, Runner, Unsupported, apply_limits, thread_limit


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")      # logging only
    fresh = "tensorflow" not in sys.modules
    import tensorflow as tf
    if fresh and thread_limit() is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(thread_limit())
            tf.config.threading.set_inter_op_parallelism_threads(thread_limit())
        except RuntimeError:                                # already initialised
            pass
        apply_limits()
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
