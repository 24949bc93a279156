"""The benchmark cases: nnc's `.nn` source text, the data, the initial weights, and a
framework-neutral description of the network that every peer (bench/peers.py) builds from.

Every implementation of a case starts from the same initial weights (generated here from a
seed, in nnc's layout: a dense kernel is [in, out], a conv kernel [kh, kw, C, filters]) and
gets the same data.

    A  train step, MLP 784-512-512-10 (relu), batch 256, SGD lr 0.01, softmax cross-entropy
       on sparse integer labels, float32
    B  the same step for an MLP 4-16-3, batch 16 (overhead-bound)
    C  inference (softmax probabilities) of model A, batch 1024
    D  y = swish(leaky_relu(1.5*x + 0.25)) on 16M float32s, where
       leaky_relu(z) = z if z > 0 else 0.1*z and swish(u) = u*sigmoid(u) = u / (1 + exp(-u))
    E  train step of a CNN on the 8x8 digits: conv2d 3x3 (16 filters, same padding, relu)
       -> maxpool 2 -> dense 10, batch 128, SGD lr 0.01, softmax cross-entropy
       (needs conv2d/maxpool2d in nncompiler.library.LAYERS; skipped otherwise)
    F  train step of a CNN on 32x32x3 images: conv3x3x32 same+relu -> maxpool2 ->
       conv3x3x64 same+relu -> maxpool2 -> dense 10, batch 64, SGD lr 0.01
    G  train step of an LSTM (16 units, 8 features) + dense 1, mse, Adam, batch 32, at
       T = 10, 50 and 200 (keys G10, G50, G200; `--cases G` runs all three)
Torch eager is the reference of F and G (Problem.reference); F has a hand-written numpy row too.

`--quick` shrinks every case to tiny sizes (for the smoke test): the point there is that
the harness runs and the numbers agree, not the timings.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

LR = 0.01
ACT_A, ACT_B, LEAKY_SLOPE = 1.5, 0.25, 0.1
FORMULA_D = ("y = swish(leaky_relu(1.5*x + 0.25)), leaky_relu(z) = z if z > 0 else 0.1*z, "
             "swish(u) = u*sigmoid(u) = u / (1 + exp(-u))")

# Why case E's update check is looser (3e-2 instead of 2e-3): measured on the full case, the
# conv outputs of one pooling window were 0.7984687 and 0.7984687 in im2col order (numpy, nnc)
# but 0.79846865 and 0.7984687 in direct-convolution order (torch, jax, tf): the first maximal
# tap differs, that window's gradient reaches another pixel, and c1.kernel's update moves by
# 0.8% of its largest entry (0.2% in norm). A wrong gradient moves it by far more.
MAXPOOL_NOTE = ("update check within 3e-2: max pooling's argmax can flip on near-ties that different "
                "summation orders round differently")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS_CSV = os.path.join(ROOT, "examples", "data", "digits.csv")


# ---- the networks, as peers see them ----------------------------------------------------------

@dataclass(frozen=True)
class MLP:
    """Dense layers sizes[0] -> sizes[1] -> ... -> sizes[-1], relu between, logits at the end.
    nnc names the layers h1, h2, ..., out (parameters `h1.kernel` [in, out], `h1.bias`)."""
    sizes: tuple[int, ...]

    @property
    def layers(self) -> list[str]:
        return [f"h{i + 1}" for i in range(len(self.sizes) - 2)] + ["out"]


@dataclass(frozen=True)
class CNN:
    """x [B, H, W, C] -> conv2d(filters, k x k, same padding, stride 1) + bias -> relu
    -> maxpool pool x pool (stride pool) -> flatten (NHWC order) -> dense(classes).
    nnc parameters: c1.kernel [k, k, C, filters], c1.bias, out.kernel [H/p*W/p*filters, classes], out.bias."""
    image: tuple[int, int, int]
    filters: int
    kernel: int
    pool: int
    classes: int

    @property
    def pooled(self) -> tuple[int, int, int]:
        h, w, _ = self.image
        return h // self.pool, w // self.pool, self.filters


@dataclass(frozen=True)
class DeepCNN:
    """x [B, H, W, C] -> for each f in `filters`: conv2d(f, 3x3, same) + bias -> relu -> maxpool 2
    -> flatten (NHWC order) -> dense(classes). nnc parameters: c1.kernel [3, 3, C, f1], c1.bias,
    c2.kernel, c2.bias, ..., out.kernel [H/2^n * W/2^n * f_n, classes], out.bias."""
    image: tuple[int, int, int]
    filters: tuple[int, ...]
    classes: int
    kernel: int = 3
    pool: int = 2

    @property
    def pooled(self) -> tuple[int, int, int]:
        h, w, _ = self.image
        k = self.pool ** len(self.filters)
        return h // k, w // k, self.filters[-1]


@dataclass(frozen=True)
class LSTMNet:
    """x [B, T, F] -> lstm(units) (last state; Keras gate order i, f, c, o, sigmoid gates)
    -> dense(1); mse. nnc parameters: h.kernel [F, 4U], h.recurrent_kernel [U, 4U], h.bias [4U],
    out.kernel [U, 1], out.bias [1]."""
    steps: int
    features: int
    units: int


@dataclass(frozen=True)
class Elementwise:
    """y = swish(leaky_relu(a*x + b, slope)) on n float32s."""
    n: int
    a: float = ACT_A
    b: float = ACT_B
    slope: float = LEAKY_SLOPE


@dataclass
class Problem:
    """One case at concrete sizes: what every implementation is given."""
    key: str
    title: str
    kind: str                      # "train" (one optimizer step), "predict" (forward) or "elementwise"
    net: object                    # MLP, CNN or Elementwise
    source: str                    # the .nn program nnc compiles
    feeds: dict                    # numpy arrays: x (and y for training)
    params: dict = field(default_factory=dict)   # nnc name -> initial value (nnc's layout)
    lr: float = LR
    update_rtol: float = 2e-3      # first-step check: max |update - hand numpy's| / max |hand numpy's update|
    target_s: float = 1.5          # timed seconds per implementation (repetitions adapt to it)
    min_reps: int = 10
    max_reps: int = 1000
    warmup: int = 3
    note: str = ""
    reference: str = "numpy"       # the implementation every other one is checked against


# ---- the .nn sources ------------------------------------------------------------------------

MLP_A_NN = """\
model MLP_A {{
    input  x: f32[B, {d_in}]
    target y: i32[B]
    h1  = dense(x, {d_h}, activation=relu)
    h2  = dense(h1, {d_h}, activation=relu)
    out = dense(h2, {d_out}, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer sgd(lr={lr})
}}
"""

MLP_B_NN = """\
model MLP_B {{
    input  x: f32[B, {d_in}]
    target y: i32[B]
    h1  = dense(x, {d_h}, activation=relu)
    out = dense(h1, {d_out}, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer sgd(lr={lr})
}}
"""

SWISH_NN = """\
graph SwishLeaky {{
    input x: f32[{n}]
    output swish(leaky_relu(x * {a} + {b}, alpha={slope}))
}}
"""

CNN_NN = """\
model DigitsCNN {{
    input  x: f32[B, {h}, {w}, {c}]
    target y: i32[B]
    c1  = conv2d(x, {filters}, kernel={k}, padding=same, activation=relu)
    p1  = maxpool2d(c1, {pool})
    f   = flatten(p1)
    out = dense(f, {classes}, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer sgd(lr={lr})
}}
"""


DEEP_CNN_NN = """\
model DeepCNN {{
    input  x: f32[B, {h}, {w}, {c}]
    target y: i32[B]
{convs}
    f   = flatten(p{n})
    out = dense(f, {classes}, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer sgd(lr={lr})
}}
"""

LSTM_NN = """\
model LSTMRegressor {{
    input  x: f32[B, {steps}, {features}]
    target y: f32[B, 1]
    h   = lstm(x, {units})
    out = dense(h, 1)
    output out
    loss mse(out, y)
    optimizer adam(lr={lr}, epsilon={eps})
}}
"""
ADAM_LR, ADAM_EPS = 0.001, 1e-8   # torch's eps: every peer uses the same Adam


def _deep_cnn_source(net: DeepCNN, lr: float) -> str:
    convs, prev = [], "x"
    for i, f in enumerate(net.filters, 1):
        convs.append(f"    c{i}  = conv2d({prev}, {f}, kernel={net.kernel}, padding=same, activation=relu)")
        convs.append(f"    p{i}  = maxpool2d(c{i}, {net.pool})")
        prev = f"p{i}"
    h, w, c = net.image
    return DEEP_CNN_NN.format(h=h, w=w, c=c, convs="\n".join(convs), n=len(net.filters),
                              classes=net.classes, lr=lr)


# ---- initial weights and data -------------------------------------------------------------------

def _glorot(rng, shape, fan_in, fan_out) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def _bias(rng, n) -> np.ndarray:
    # non-zero so that the bias paths are checked too
    return rng.uniform(-0.1, 0.1, size=(n,)).astype(np.float32)


def mlp_params(net: MLP, rng) -> dict:
    params = {}
    for name, d_in, d_out in zip(net.layers, net.sizes[:-1], net.sizes[1:]):
        params[f"{name}.kernel"] = _glorot(rng, (d_in, d_out), d_in, d_out)
        params[f"{name}.bias"] = _bias(rng, d_out)
    return params


def cnn_params(net: CNN, rng) -> dict:
    k, c, f = net.kernel, net.image[2], net.filters
    ph, pw, pc = net.pooled
    flat = ph * pw * pc
    return {"c1.kernel": _glorot(rng, (k, k, c, f), k * k * c, k * k * f),
            "c1.bias": _bias(rng, f),
            "out.kernel": _glorot(rng, (flat, net.classes), flat, net.classes),
            "out.bias": _bias(rng, net.classes)}


def deep_cnn_params(net: DeepCNN, rng) -> dict:
    params, c, k = {}, net.image[2], net.kernel
    for i, f in enumerate(net.filters, 1):
        params[f"c{i}.kernel"] = _glorot(rng, (k, k, c, f), k * k * c, k * k * f)
        params[f"c{i}.bias"] = _bias(rng, f)
        c = f
    ph, pw, pc = net.pooled
    flat = ph * pw * pc
    params["out.kernel"] = _glorot(rng, (flat, net.classes), flat, net.classes)
    params["out.bias"] = _bias(rng, net.classes)
    return params


def lstm_params(net: LSTMNet, rng) -> dict:
    f, u = net.features, net.units
    return {"h.kernel": _glorot(rng, (f, 4 * u), f, 4 * u),
            "h.recurrent_kernel": _glorot(rng, (u, 4 * u), u, 4 * u),
            "h.bias": _bias(rng, 4 * u),
            "out.kernel": _glorot(rng, (u, 1), u, 1),
            "out.bias": _bias(rng, 1)}


def load_digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n rows of examples/data/digits.csv: images [n, 8, 8, 1] scaled to [0, 1], labels."""
    data = np.loadtxt(DIGITS_CSV, delimiter=",", skiprows=1, max_rows=n, dtype=np.float32)
    x = (data[:, :64] / np.float32(16.0)).reshape(n, 8, 8, 1)
    return np.ascontiguousarray(x), data[:, 64].astype(np.int32)


def has_conv_layers() -> str | None:
    """None when nnc has conv2d and maxpool2d; otherwise why case E is skipped."""
    try:
        from nncompiler.library import LAYERS
    except Exception as e:          # pragma: no cover - nncompiler itself broken
        return f"cannot import nncompiler.library: {e}"
    missing = [n for n in ("conv2d", "maxpool2d") if n not in LAYERS]
    return f"nncompiler.library.LAYERS has no {', '.join(missing)}" if missing else None


# ---- the cases ------------------------------------------------------------------------------------

CASE_KEYS = ("A", "B", "C", "D", "E", "F", "G10", "G50", "G200")
CASE_GROUPS = {"G": ("G10", "G50", "G200")}     # `--cases G` runs every sequence length


def make_case(key: str, quick: bool = False, seed: int = 0) -> Problem:
    rng = np.random.default_rng([seed, *map(ord, key)])
    if key in ("A", "C"):
        d_in, d_h, d_out = (32, 16, 10) if quick else (784, 512, 10)
        net = MLP((d_in, d_h, d_h, d_out))
        source = MLP_A_NN.format(d_in=d_in, d_h=d_h, d_out=d_out, lr=LR)
        params = mlp_params(net, np.random.default_rng([seed, ord("A")]))   # C is model A
        if key == "A":
            batch = 8 if quick else 256
            x = rng.random((batch, d_in), dtype=np.float32)
            y = rng.integers(0, d_out, size=batch).astype(np.int32)
            return Problem("A", f"train step, MLP {d_in}-{d_h}-{d_h}-{d_out}, batch {batch}, SGD",
                           "train", net, source, {"x": x, "y": y}, params,
                           target_s=2.0, min_reps=10, max_reps=300, warmup=3)
        batch = 16 if quick else 1024
        x = rng.random((batch, d_in), dtype=np.float32)
        return Problem("C", f"inference, MLP {d_in}-{d_h}-{d_h}-{d_out} (model A), batch {batch}",
                       "predict", net, source, {"x": x}, params,
                       target_s=1.5, min_reps=10, max_reps=300, warmup=3)
    if key == "B":
        net = MLP((4, 16, 3))
        batch = 16
        x = rng.standard_normal((batch, 4), dtype=np.float32)
        y = rng.integers(0, 3, size=batch).astype(np.int32)
        return Problem("B", f"train step, MLP 4-16-3, batch {batch}, SGD (overhead-bound)",
                       "train", net, MLP_B_NN.format(d_in=4, d_h=16, d_out=3, lr=LR),
                       {"x": x, "y": y}, mlp_params(net, rng),
                       target_s=1.0, min_reps=50, max_reps=5000, warmup=20)
    if key == "D":
        n = 4096 if quick else 16 * 1024 * 1024
        net = Elementwise(n)
        x = (2.0 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)
        src = SWISH_NN.format(n=n, a=net.a, b=net.b, slope=net.slope)
        return Problem("D", f"swish(leaky_relu(1.5x+0.25)), {n} float32s", "elementwise", net, src,
                       {"x": x}, target_s=2.0, min_reps=5, max_reps=200, warmup=2, note=FORMULA_D)
    if key == "E":
        net = CNN(image=(8, 8, 1), filters=16, kernel=3, pool=2, classes=10)
        batch = 8 if quick else 128
        x, y = load_digits(batch)
        h, w, c = net.image
        src = CNN_NN.format(h=h, w=w, c=c, filters=net.filters, k=net.kernel, pool=net.pool,
                            classes=net.classes, lr=LR)
        return Problem("E", f"train step, CNN conv3x3x16-maxpool2-dense10 on 8x8 digits, batch {batch}, SGD",
                       "train", net, src, {"x": x, "y": y}, cnn_params(net, rng),
                       target_s=1.5, min_reps=20, max_reps=2000, warmup=5, update_rtol=3e-2,
                       note=MAXPOOL_NOTE)
    if key == "F":
        net = DeepCNN(image=(8, 8, 3) if quick else (32, 32, 3), filters=(4, 8) if quick else (32, 64),
                      classes=10)
        batch = 4 if quick else 64
        x = rng.random((batch,) + net.image, dtype=np.float32)
        y = rng.integers(0, net.classes, size=batch).astype(np.int32)
        return Problem("F", f"train step, CNN conv3x3x{net.filters[0]}-pool2-conv3x3x{net.filters[1]}-pool2-dense10 "
                       f"on {'x'.join(map(str, net.image))} images, batch {batch}, SGD",
                       "train", net, _deep_cnn_source(net, LR), {"x": x, "y": y}, deep_cnn_params(net, rng),
                       target_s=2.0, min_reps=5, max_reps=500, warmup=2, update_rtol=3e-2,
                       note=MAXPOOL_NOTE, reference="torch")
    if key in CASE_GROUPS["G"]:
        steps = int(key[1:])
        net = LSTMNet(steps=max(1, steps // 10) if quick else steps, features=8, units=16)
        batch = 4 if quick else 32
        x = rng.standard_normal((batch, net.steps, net.features), dtype=np.float32)
        y = rng.standard_normal((batch, 1), dtype=np.float32)
        src = LSTM_NN.format(steps=net.steps, features=net.features, units=net.units, lr=ADAM_LR, eps=ADAM_EPS)
        # Adam's first step is lr * g / (|g| + eps) per entry: entries with tiny gradients are
        # sensitive to the last bits of g, hence the looser update check
        return Problem(key, f"train step, LSTM {net.units} units, T={net.steps}, +dense 1, mse, Adam, batch {batch}",
                       "train", net, src, {"x": x, "y": y}, lstm_params(net, rng), lr=ADAM_LR,
                       target_s=1.5, min_reps=5, max_reps=1000, warmup=2, update_rtol=2e-2,
                       reference="torch")
    raise KeyError(f"unknown case '{key}' (known: {', '.join(CASE_KEYS)})")
