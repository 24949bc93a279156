"""The embedding API's `Model`: compiled graphs plus the state the runtime owns.

The runtime owns parameters, optimizer state and the learning rate; generated
code is pure (arrays in, arrays out). Graphs are derived, optimised and
compiled on first use, so `nnc.compile(...).forward(x=...)` never pays for
the backward pass.
"""
from __future__ import annotations

import numpy as np

from .errors import DataError, did_you_mean
from .ir.graph import Graph
from .ir.shapes import NUMPY_DTYPE, TensorType
from .program import (LoweredModel, build_init, build_train_step, initial_state, optimizer_hyper,
                      select_outputs)


def _optimize(graph: Graph) -> Graph:
    from .passes.pipeline import optimize
    return optimize(graph)[0]


class Model:
    def __init__(self, lowered: LoweredModel, backend: str = "numpy"):
        from .backends import get_backend
        self.lowered = lowered
        self.backend_name = backend
        self._backend = get_backend(backend)
        self._graphs: dict[str, Graph] = {}
        self._compiled: dict[str, object] = {}
        self._optimizer = None
        self._hyper: dict[str, float] = {}
        if lowered.optimizer is not None:
            from .library.optimizers import OPTIMIZERS
            self._optimizer = OPTIMIZERS[lowered.optimizer.name]
            self._hyper = optimizer_hyper(lowered, self._optimizer)
        has_state = lowered.params or lowered.buffers
        init = self._backend.compile(build_init(lowered))({}) if has_state else {}
        self._params = {k: np.asarray(init[k], dtype=np.float32) for k in lowered.params}
        self.buffers = {k: np.asarray(init[k], dtype=np.float32) for k in lowered.buffers}
        self.steps_taken = 0      # advances the random stream of dropout and friends
        self.reset_optimizer()

    # -- state ------------------------------------------------------------------
    @property
    def params(self) -> dict[str, np.ndarray]:
        return self._params

    def set_params(self, values: dict) -> None:
        for name, value in values.items():
            if name not in self._params:
                raise KeyError(f"unknown parameter '{name}'{did_you_mean(name, self._params)}")
            arr = np.asarray(value)
            if arr.shape != self._params[name].shape:
                raise ValueError(f"parameter '{name}' has shape {list(self._params[name].shape)}, "
                                 f"got {list(arr.shape)}")
            self._params[name] = arr.astype(np.float32)

    @property
    def lr(self) -> float:
        return float(self._hyper.get("lr", 0.0))

    @lr.setter
    def lr(self, value: float) -> None:
        self._hyper["lr"] = float(value)

    def reset_optimizer(self) -> None:
        self.opt_state = initial_state(self.lowered, self._optimizer, self._params) if self._optimizer else {}

    # -- graphs -------------------------------------------------------------------
    def unoptimized_graph(self, kind: str) -> Graph:
        """The graph of one kind before optimisation: predict, evaluate, gradients or train_step."""
        m = self.lowered
        fwd, inference = m.forward, m.inference or m.forward
        if kind == "predict":
            return select_outputs(inference, m.output_names, "predict")
        if kind == "evaluate":
            return select_outputs(inference, ["loss"] + [f"metric.{n}" for n in m.metric_names], "evaluate")
        if kind == "gradients":
            from .autodiff import grad
            g = select_outputs(fwd, ["loss"], "gradients")
            used = [p for p in m.params if any(a.attr["name"] == p for a in g.args)]
            return grad(g, "loss", wrt=used, name="gradients")
        if kind == "train_step":
            if self._optimizer is None:
                raise ValueError(f"model {m.name} has no optimizer")
            return build_train_step(m, self._optimizer, self._hyper)
        raise KeyError(kind)

    def graph(self, kind: str) -> Graph:
        """The optimised graph of one kind (derived and optimised once, then cached)."""
        if kind not in self._graphs:
            self._graphs[kind] = _optimize(self.unoptimized_graph(kind))
        return self._graphs[kind]

    def compiled(self, kind: str):
        if kind not in self._compiled:
            self._compiled[kind] = self._backend.compile(self.graph(kind))
        return self._compiled[kind]

    def _state_args(self, g: Graph) -> dict:
        """Everything a graph takes besides data: parameters, buffers, the step's random key."""
        args = dict(self._params)
        args.update(self.buffers)
        if g.args_with_role("rng"):
            seed = self.lowered.train.seed if self.lowered.train else 0
            args["rng.key"] = np.int32((seed * 1000003 + self.steps_taken) & 0x7FFFFFFF)
        return args

    def _run(self, kind: str, feeds: dict, roles=("input",)) -> dict:
        g = self.graph(kind)
        args = self._state_args(g)
        args.update(self.check_feeds(feeds, g, roles))
        return self.compiled(kind)(args)

    def check_feeds(self, feeds: dict, g: Graph, roles) -> dict:
        """Match keyword arrays to the graph's input/target arguments: names, dtypes, shapes."""
        from .train.data import check_against
        declared = {**self.lowered.inputs, **self.lowered.targets}
        wanted = {a.attr["name"]: a.type for a in g.args_with_role(*roles)}
        for name in feeds:
            if name not in declared:
                raise DataError(f"model {self.lowered.name} has no input or target '{name}'"
                                f"{did_you_mean(name, declared)}")
        out, bindings = {}, {}
        for name, ty in wanted.items():
            if name not in feeds:
                raise DataError(f"missing data for '{name}' (declared {ty})")
            out[name] = check_against(name, feeds[name], ty.dtype, ty.shape, bindings)
        return out

    # -- the API ----------------------------------------------------------------
    def forward(self, **inputs):
        out = self._run("predict", inputs)
        values = tuple(np.asarray(out[n]) for n in self.lowered.output_names)
        return values[0] if len(values) == 1 else values

    __call__ = forward
    predict = forward

    def loss_and_grads(self, **data) -> tuple[float, dict[str, np.ndarray]]:
        out = self._run("gradients", data, roles=("input", "target"))
        grads = {name: np.asarray(out.get(f"grad.{name}", np.zeros_like(value)))  # unused params: zero
                 for name, value in self._params.items()}
        return float(out["loss"]), grads

    def evaluate(self, **data) -> dict[str, float]:
        from .train.loop import evaluate
        return evaluate(self, data)

    def fit(self, epochs: int = 1, batch_size: int | str | None = 32, shuffle: bool = True,
            validation_split: float = 0.0, validation_data: dict | None = None, seed: int = 0,
            callback=None, **data) -> dict[str, list[float]]:
        from .train.loop import fit
        return fit(self, data, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                   validation_split=validation_split, validation_data=validation_data,
                   seed=seed, callback=callback)

    def step(self, **batch) -> dict[str, float]:
        """One optimizer step on one batch; returns the batch's loss and metrics."""
        g = self.graph("train_step")
        args = self._state_args(g)
        args.update(self.opt_state)
        args["opt.lr"] = np.float32(self._hyper["lr"])
        args.update(self.check_feeds(batch, g, ("input", "target")))
        out = self.compiled("train_step")(args)
        for name in self._params:
            if f"new.{name}" in out:     # a parameter the loss does not use keeps its value
                self._params[name] = out[f"new.{name}"]
        for name in self.opt_state:
            if f"new.{name}" in out:
                self.opt_state[name] = out[f"new.{name}"]
        for name in self.buffers:
            if f"new.{name}" in out:
                self.buffers[name] = out[f"new.{name}"]
        self.steps_taken += 1
        return {k: float(v) for k, v in out.items() if not k.startswith("new.")}

    def summary(self) -> str:
        from .report import summary
        return summary(self)


def numpy_dtype(ty: TensorType):
    return np.dtype(NUMPY_DTYPE[ty.dtype])
