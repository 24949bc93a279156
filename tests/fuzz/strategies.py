"""Hypothesis strategies for the front-end fuzzer: random valid `.nn` programs and mutations.

`programs()` draws a `FuzzProgram`: a model (or graph) block built from the
grammar's pieces -- input and target declarations with a symbolic batch `B`,
parameters, dense/activation layer stacks, elementwise expressions that
broadcast inputs of different shapes against each other, reductions, indexing,
a loss, an optimizer and sometimes a train block. Every program is valid by
construction: the generator tracks each value's shape and only combines values
whose shapes broadcast.

The same program is rendered twice, with every float declared `f32` and with
every float declared `f64` (the library builds f64 graphs from the same code),
so gradients can be checked against tight float64 central differences.
`smooth=True` keeps to operations that are differentiable everywhere
(no relu, abs, max, where, dropout), so central differences are meaningful.

`mutants()` draws a program and damages it (deleted tokens, swapped names,
wrong shapes, huge numbers, unicode, NUL bytes, truncation, ...).
"""
from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import threading
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

B = "B"
ROWS = 5                       # the batch size the fuzz data uses

# Operations differentiable everywhere, as (template, arity); `{0}` is the operand.
SMOOTH_UNARY = [
    "tanh({0})", "sigmoid({0})", "softplus({0})", "exp(tanh({0}))", "log(1 + {0} * {0})",
    "sqrt(1 + square({0}))", "square({0})", "-{0}", "({0}) ** 2", "gelu({0})", "swish({0})",
    "softmax({0})", "log_softmax({0})", "0.5 * {0}", "{0} / 3",
]
KINKED_UNARY = [
    "relu({0})", "abs({0})", "leaky_relu({0}, alpha=0.2)", "elu({0})", "step({0})", "sign({0})",
    "clip({0}, -1, 1)", "dropout({0}, 0.25)", "stop_gradient({0})", "prelu({0})",
]
SMOOTH_ACTIVATIONS = ["linear", "tanh", "sigmoid", "softplus", "swish", "gelu", "softmax"]
KINKED_ACTIVATIONS = ["relu", "leaky_relu", "elu", "step"]
OPTIMIZERS = ["sgd(lr=0.05)", "sgd(lr=0.01, momentum=0.9)", "adam(lr=0.001)", "adam()",
              "rmsprop(lr=0.001)", "adagrad(lr=0.1)", "sgd"]


def broadcast(a: tuple, b: tuple) -> tuple:
    """numpy's broadcasting over our shapes (dims are ints or 'B'); ValueError if they clash."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ValueError(f"{a} and {b} do not broadcast")
    return tuple(reversed(out))


def _is_literal(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9.e+-]+", text))


def fmt_type(dtype: str, shape: tuple) -> str:
    return f"{dtype}[{', '.join(str(d) for d in shape)}]"


@dataclass
class FuzzProgram:
    """A generated program: its source with `§` standing for the float dtype, and what it takes."""

    template: str
    kind: str                                  # "model" or "graph"
    feeds: dict = field(default_factory=dict)  # name -> (dtype or "§", shape, what) for data
    smooth: bool = False
    loss: str | None = None
    F: int = 2
    K: int = 2

    def source(self, dtype: str = "f32") -> str:
        return self.template.replace("§", dtype)

    def data(self, seed: int = 0, rows: int = ROWS, float_dtype=np.float32) -> dict:
        """Arrays for every input and target (B = rows), typed as declared."""
        rng = np.random.default_rng(seed)
        out = {}
        for name, (dtype, shape, what) in self.feeds.items():
            dims = tuple(rows if d == B else d for d in shape)
            if what == "labels":
                out[name] = rng.integers(0, self.K, size=dims).astype(np.int32)
            elif what == "onehot":
                out[name] = np.eye(self.K)[rng.integers(0, self.K, size=dims[:-1])].astype(float_dtype)
            elif what == "binary":
                out[name] = rng.integers(0, 2, size=dims).astype(float_dtype)
            elif what == "counts":
                out[name] = rng.integers(0, 4, size=dims).astype(float_dtype)
            else:
                out[name] = rng.normal(0.0, 1.0, size=dims).astype(float_dtype)
        return out


class _Gen:
    """One program under construction (draws through hypothesis' `draw`)."""

    def __init__(self, draw, smooth: bool):
        self.draw, self.smooth = draw, smooth
        self.F = draw(st.integers(1, 4))
        self.pool: list[tuple[str, tuple]] = []       # (name, shape) of values usable as operands
        self.square_params: list[str] = []            # [F, F] params, for `@`
        self.lines: list[str] = []
        self.feeds: dict = {}
        self.count = 0

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def choice(self, items):
        return self.draw(st.sampled_from(items))

    # -- expressions ------------------------------------------------------------------
    def leaf(self, literal_ok: bool = True) -> tuple[str, tuple]:
        if literal_ok and self.draw(st.integers(0, 9)) == 0:
            lit = self.choice(["0.5", "2", "1e-3", "3.0", ".25", "1.5e+1", "0"])
            return lit, ()
        return self.choice(self.pool)

    def expr(self, depth: int, literal_ok: bool = False) -> tuple[str, tuple]:
        """(text, shape); compound operands are parenthesised.

        Literals (weakly typed) appear only as one side of a binary operator: a
        function of a bare literal is a strongly typed f32/i32 constant, which would
        not mix with an f64 program."""
        if depth <= 0:
            return self.leaf(literal_ok)
        kind = self.draw(st.integers(0, 9))
        if kind <= 2:
            return self.leaf(literal_ok)
        if kind <= 4:                                     # unary
            a, s = self.expr(depth - 1)
            ops = SMOOTH_UNARY + ([] if self.smooth else KINKED_UNARY)
            op = self.choice(ops)
            if op.startswith(("softmax", "log_softmax", "prelu")) and not s:
                op = "tanh({0})"
            return op.format(f"({a})"), s
        if kind <= 7:                                     # binary, broadcasting
            a, sa = self.expr(depth - 1)
            b, sb = self.expr(depth - 1, literal_ok=True)
            if self.draw(st.booleans()):
                (a, sa), (b, sb) = (b, sb), (a, sa)
            shape = broadcast(sa, sb)
            op = self.choice(["+", "-", "*", "/", "max2", "min2", "where"] if not self.smooth
                             else ["+", "-", "*", "/"])
            if op == "/":
                if _is_literal(b):        # a literal denominator: never 0
                    return f"({a}) / {b if float(b) != 0 else '4'}", shape
                return f"({a}) / (2 + tanh({b}))", shape
            if op == "max2":
                return f"maximum({a}, {b})", shape
            if op == "min2":
                return f"minimum({a}, {b})", shape
            if op == "where":
                return f"where(({a}) > ({b}), {a}, 0.5 * ({b}))", shape
            return f"({a}) {op} ({b})", shape
        if kind == 8:                                     # reductions
            a, s = self.expr(depth - 1)
            if not s:
                return a, s
            fn = self.choice(["sum", "mean", "logsumexp", "var"] + ([] if self.smooth else ["max", "min", "std"]))
            if self.draw(st.booleans()):
                return f"{fn}({a})", ()
            return f"{fn}({a}, axis=-1, keepdims=true)", s[:-1] + (1,)
        # structure: matmul with a square param, or a slice
        a, s = self.expr(depth - 1)
        if s and s[-1] == self.F and self.square_params and self.draw(st.booleans()):
            return f"({a}) @ {self.choice(self.square_params)}", s
        if len(s) == 2 and self.draw(st.booleans()):
            return f"({a})[:, :1]", (s[0], 1)
        if s and s[-1] != 1 and self.draw(st.booleans()):
            return f"({a})[..., 0:1]", s[:-1] + (1,)
        return a, s

    # -- declarations -----------------------------------------------------------------
    def declare_inputs(self) -> None:
        F = self.F
        self.lines.append(f"input x0: {fmt_type('§', (B, F))}")
        self.pool.append(("x0", (B, F)))
        self.feeds["x0"] = ("§", (B, F), "normal")
        for i in range(1, self.draw(st.integers(1, 3))):
            shape = self.choice([(B, F), (B, 1), (F,), (1, F), ()])
            name = f"x{i}"
            self.lines.append(f"input {name}: {fmt_type('§', shape)}")
            self.pool.append((name, shape))
            self.feeds[name] = ("§", shape, "normal")

    def declare_params(self) -> None:
        F = self.F
        for i in range(self.draw(st.integers(0, 3))):
            shape = self.choice([(F,), (1, F), (), (F, F)])
            init = self.choice(["", " = normal(stddev=0.5)", " = uniform(low=-1, high=1)",
                                " = constant(value=0.3)", " = ones()", " = glorot_uniform()", " = 0.25"])
            if init == " = 0.25" and shape:
                init = ""
            if not init and len(shape) < 2:
                init = " = normal(mean=0.1, stddev=0.5)"      # avoid all-zero starts (ties in max)
            name = f"w{i}"
            self.lines.append(f"param {name}: {fmt_type('§', shape)}{init}")
            if shape == (F, F):       # [F, F] does not broadcast against [B, F]: only used by `@`
                self.square_params.append(name)
            else:
                self.pool.append((name, shape))

    def bind(self, n: int) -> list[tuple[str, tuple]]:
        made = []
        for _ in range(n):
            if self.draw(st.integers(0, 3)) == 0:      # a dense layer bound to a name
                src, s = self.choice(self.pool)
                if not s:
                    src, s = "x0", (B, self.F)
                acts = SMOOTH_ACTIVATIONS + ([] if self.smooth else KINKED_ACTIVATIONS)
                act = self.choice(acts)
                extra = self.choice(["", ", kernel_regularizer=l2(0.01)", ", use_bias=false",
                                     ", kernel_initializer=he_normal()", ", bias_initializer=ones"])
                name = self.fresh("h")
                text = f"dense({src}, {self.F}, activation={act}{extra})"
                shape = s[:-1] + (self.F,)
            else:
                text, shape = self.expr(self.draw(st.integers(1, 3)))
                name = self.fresh("v")
            self.lines.append(f"{name} = {text}")
            self.pool.append((name, shape))
            made.append((name, shape))
        return made


@st.composite
def programs(draw, smooth: bool = False, allow_graph: bool = True) -> FuzzProgram:
    """A random valid program (see the module docstring)."""
    g = _Gen(draw, smooth)
    kind = "graph" if allow_graph and draw(st.integers(0, 5)) == 0 else "model"
    g.declare_inputs()
    g.declare_params()
    made = g.bind(draw(st.integers(1, 5)))
    last, shape = made[-1]
    F = g.F
    if kind == "graph":
        outs = [last] + ([made[0][0]] if len(made) > 1 and draw(st.booleans()) else [])
        g.lines.append("output " + ", ".join(outs))
        body = "\n".join("    " + line for line in g.lines)
        return FuzzProgram(f"graph G {{\n{body}\n}}\n", "graph", g.feeds, smooth, None, F, F)

    # a [B, F] value for the head: anything broadcast against x0 is [B, F]
    g.lines.append(f"z = ({last}) + x0" if shape != (B, F) else f"z = {last}")
    loss = draw(st.sampled_from(["mse", "mae", "binary_crossentropy", "categorical_crossentropy",
                                 "sparse_categorical_crossentropy", "poisson", "custom"]
                                if not smooth else
                                ["mse", "binary_crossentropy", "categorical_crossentropy",
                                 "sparse_categorical_crossentropy", "poisson", "custom"]))
    K = draw(st.integers(1, 4)) if loss != "sparse_categorical_crossentropy" else draw(st.integers(2, 4))
    head_act = {"binary_crossentropy": "sigmoid", "categorical_crossentropy": "softmax",
                "sparse_categorical_crossentropy": "softmax", "poisson": "softplus"}.get(loss)
    if head_act is None:
        head_act = draw(st.sampled_from(["linear", "tanh"] + ([] if smooth else ["relu"])))
    g.lines.append(f"out = dense(z, {K}, activation={head_act})")
    target_what = {"binary_crossentropy": "binary", "categorical_crossentropy": "onehot",
                   "sparse_categorical_crossentropy": "labels", "poisson": "counts"}.get(loss, "normal")
    tshape = (B,) if loss == "sparse_categorical_crossentropy" else (B, K)
    tdtype = "i32" if loss == "sparse_categorical_crossentropy" else "§"
    g.lines.insert(1, f"target y: {fmt_type(tdtype, tshape)}")
    g.feeds["y"] = (tdtype, tshape, target_what)
    outputs = ["out"]
    if draw(st.booleans()):
        outputs.append(f"scaled = 2 * {last}")
    g.lines.append("output " + ", ".join(outputs))
    if loss == "custom":
        reg = " + 0.01 * sum(w0 * w0)" if any(n == "w0" for n, _ in g.pool) else ""
        g.lines.append(f"loss mean((out - y) ** 2){reg}")
    else:
        g.lines.append(f"loss {loss}(out, y)")
    g.lines.append(f"optimizer {draw(st.sampled_from(OPTIMIZERS))}")
    metrics = {"binary_crossentropy": "accuracy", "categorical_crossentropy": "accuracy",
               "sparse_categorical_crossentropy": "accuracy", "mse": "mae", "mae": "mse"}.get(loss)
    body = "\n".join("    " + line for line in g.lines)
    text = f"model M {{\n{body}\n}}\n"
    if draw(st.booleans()):
        settings = [f"epochs {draw(st.integers(1, 3))}",
                    f"batch {draw(st.sampled_from(['all', '1', '4', '32']))}",
                    f"seed {draw(st.integers(0, 2**32 - 1))}"]
        if draw(st.booleans()):
            settings.append(f"validate {draw(st.sampled_from(['0.2', '0', '0.5']))}")
        if draw(st.booleans()):
            settings.append(f"shuffle {draw(st.sampled_from(['true', 'false']))}")
        if draw(st.booleans()):
            settings.append("lr 0.01")
        if metrics and draw(st.booleans()):
            settings.append(f"metrics {metrics}")
        if draw(st.booleans()):
            settings.append('data "train.csv" (label="y")')
        settings = draw(st.permutations(settings))
        text += "train M {\n" + "\n".join("    " + s for s in settings) + "\n}\n"
    return FuzzProgram(text, "model", g.feeds, smooth, loss, F, K)


# --------------------------------------------------------------------------- mutations

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+|\*\*|<=|>=|==|!=|\S")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMBER = re.compile(r"(?<![A-Za-z_0-9.])\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")
HUGE = ["1e400", "99999999999", "2147483648", "2147483647", "4294967296", "9223372036854775808",
        "1" + "0" * 400, "1e38", "3.5e38", "1e-400", "0", "00", "0.0", "65536", "100000000",
        "1e309", "123456789012345678901234567890"]
ODD = ["\x00", "\u00e9", "\u200b", "\ufeff", "\u202e", "\U0001f600", "\ud800", "\u0301", "\r",
       "\t", "\x0b", "\x0c", "\u2028", "\u00a0", "\x1b[31m", "\\", "\"", "'", "#", "{", "}", "[", "]",
       "(", ")", ",", "=", ":", "...", "@", "**"]


def _mutate(draw, text: str) -> tuple[str, str]:
    """One damage of `text`; returns (new text, what was done)."""
    how = draw(st.sampled_from(["delete_token", "swap_names", "wrong_shape", "huge_number",
                                "insert_odd", "truncate", "duplicate_line", "delete_line",
                                "swap_tokens", "replace_token"]))
    tokens = list(TOKEN.finditer(text))
    if how == "delete_token" and tokens:
        t = draw(st.sampled_from(tokens))
        return text[:t.start()] + text[t.end():], how
    if how == "replace_token" and tokens:
        t = draw(st.sampled_from(tokens))
        other = draw(st.sampled_from(tokens)).group()
        return text[:t.start()] + other + text[t.end():], how
    if how == "swap_tokens" and len(tokens) > 1:
        i = draw(st.integers(0, len(tokens) - 2))
        a, b = tokens[i], tokens[i + 1]
        return text[:a.start()] + b.group() + text[a.end():b.start()] + a.group() + text[b.end():], how
    if how == "swap_names":
        names = sorted({m.group() for m in NAME.finditer(text)})
        if len(names) > 1:
            a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
            return NAME.sub(lambda m: b if m.group() == a else a if m.group() == b else m.group(), text), how
    if how == "wrong_shape":
        decls = list(re.finditer(r"(f32|f64|i32|§)\[([^\]]*)\]", text))
        if decls:
            d = draw(st.sampled_from(decls))
            shape = draw(st.sampled_from(["B, 7", "B", "", "7, B", "B, B", "B, 0", "B, -1", "3, 4, 5",
                                          "B, 2147483648", "2147483647, 2147483647, 2147483647",
                                          "B, 99999999999999999999", "B,", "B, x", "B, 1.5"]))
            return text[:d.start(2)] + shape + text[d.end(2):], how
    if how == "huge_number":
        nums = list(NUMBER.finditer(text))
        if nums:
            n = draw(st.sampled_from(nums))
            return text[:n.start()] + draw(st.sampled_from(HUGE)) + text[n.end():], how
    if how == "truncate":
        cut = draw(st.integers(0, len(text)))
        return text[:cut], how
    lines = text.split("\n")
    if how == "duplicate_line":
        i = draw(st.integers(0, len(lines) - 1))
        return "\n".join(lines[:i + 1] + lines[i:]), how
    if how == "delete_line":
        i = draw(st.integers(0, len(lines) - 1))
        return "\n".join(lines[:i] + lines[i + 1:]), how
    pos = draw(st.integers(0, len(text)))
    return text[:pos] + draw(st.sampled_from(ODD)) + text[pos:], "insert_odd"


EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "examples")
EXAMPLES = [open(os.path.join(EXAMPLES_DIR, f), encoding="utf-8").read()
            for f in sorted(os.listdir(EXAMPLES_DIR)) if f.endswith(".nn")]


@st.composite
def mutants(draw) -> tuple[str, list[str]]:
    """(damaged source, the mutations applied): 1-3 mutations of a random valid program, or
    (one time in four) of one of the examples (conv, rnn, embedding, batchnorm, train blocks)."""
    if EXAMPLES and draw(st.integers(0, 3)) == 0:
        text = draw(st.sampled_from(EXAMPLES))
    else:
        text = draw(programs()).source(draw(st.sampled_from(["f32", "f64"])))
    done = []
    for _ in range(draw(st.integers(1, 3))):
        text, how = _mutate(draw, text)
        done.append(how)
    return text, done


# --------------------------------------------------------------------------- harness

class Hang(BaseException):
    """A fuzz case ran past its time limit (a BaseException, so no `except Exception` eats it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Interrupt the block with `Hang` after `seconds` (SIGALRM; main thread, Unix)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# property name -> Counter of outcomes; tests/fuzz/conftest.py prints it at the end of the run
STATS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


def record(prop: str, outcome: str) -> None:
    STATS[prop]["cases"] += 1
    STATS[prop][outcome] += 1
