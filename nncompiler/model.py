"""The embedding API's `Model`: a thin facade over compiled graphs, a `State` and a backend.

The runtime's `State` (runtime.py) owns parameters, buffers, optimizer slots, the
hyper-parameters, the step and the random key, each array with its declared dtype and
kept on the backend's device between steps; generated code is pure (arrays in, arrays
out). Only what a user asks for (`m.params`, outputs, the loss) is copied back as numpy.
Graphs are derived, optimised and compiled on first use, so
`nnc.compile(...).forward(x=...)` never pays for the backward pass.
"""
from __future__ import annotations

import numpy as np

from .errors import DataError, did_you_mean
from .ir.graph import Graph
from .ir.shapes import NUMPY_DTYPE
from .program import (LoweredModel, build_apply_update, build_grad_step, build_init, build_train_step,
                      initial_state, optimizer_hyper, select_outputs)
from .runtime import State
from .train.steps import host_value     # a float, or a vector for a curve metric's parts


def _optimize(graph: Graph) -> Graph:
    from .passes.pipeline import optimize
    return optimize(graph)[0]


def _declared(lowered: LoweredModel, optimizer) -> tuple[dict[str, str], dict[str, np.dtype]]:
    """Every state entry's kind and dtype, from the IR types: a parameter's or buffer's declared
    type; an optimizer slot has its parameter's dtype (the update graph types it so) and the
    step count is f32 (as `program._optimizer_update` declares it)."""
    kinds, dtypes = {}, {}
    for kind, decls in (("param", lowered.params), ("buffer", lowered.buffers)):
        for name, decl in decls.items():
            kinds[name], dtypes[name] = kind, _NP_DTYPES[decl.type.dtype]
    if optimizer is not None:
        kinds["opt.step"], dtypes["opt.step"] = "opt", _NP_DTYPES["f32"]
        for p, decl in lowered.params.items():
            for slot, _ in optimizer.slots:
                kinds[f"opt.{slot}.{p}"], dtypes[f"opt.{slot}.{p}"] = "opt", _NP_DTYPES[decl.type.dtype]
    return kinds, dtypes


class Model:
    def __init__(self, lowered: LoweredModel, backend: str = "numpy", graphs: dict[str, Graph] | None = None,
                 precision: str | None = None):
        """`graphs`: optimised graphs by kind, used as they are (an .nnx file's predict and
        evaluate graphs: the file holds them, not the source they were derived from).
        `precision`: fp32, tf32 or bf16 (precision.py); default the train block's, else fp32."""
        from .backends import get_backend, resolve_auto
        self.lowered = lowered
        if backend == "auto":  # decided per model: see backends.resolve_auto
            backend = resolve_auto(lowered)
        self.backend_name = backend
        # the argument wins over the train block's `precision` statement; fp32 without either
        if precision is None and lowered.train is not None:
            precision = lowered.train.precision
        self._backend = get_backend(backend, precision)
        self._graphs: dict[str, Graph] = dict(graphs or {})
        self._compiled: dict[str, object] = {}
        self._plans: dict[tuple, tuple] = {}
        self._bound: dict[tuple, tuple] = {}      # (kind, roles) -> (FeedCheck, State.bind's call)
        self._optimizer = None
        hyper: dict[str, float] = {}
        if lowered.optimizer is not None:
            from .library.optimizers import OPTIMIZERS
            self._optimizer = OPTIMIZERS[lowered.optimizer.name]
            hyper = optimizer_hyper(lowered, self._optimizer)
        kinds, dtypes = _declared(lowered, self._optimizer)
        self._state = State(self._backend, kinds, dtypes, hyper,
                            seed=lowered.train.seed if lowered.train else 0)
        if lowered.params or lowered.buffers:
            # initial values always come from the numpy backend, whatever this model's backend,
            # so every backend starts from the same numbers (and no backend compiles a graph
            # that runs once)
            from .backends.numpy import Backend as Numpy
            numpy = Numpy()
            init = numpy.run(numpy.compile(build_init(lowered)), {})
            self._state.assign({name: init[name] for name in [*lowered.params, *lowered.buffers]})
        self.reset_optimizer()

    # -- state ------------------------------------------------------------------
    @property
    def state(self) -> State:
        """The runtime state (parameters, buffers, optimizer slots, hyper-parameters, step)."""
        return self._state

    @property
    def precision(self) -> str:
        """The matmul precision this model's code was generated for: fp32, tf32 or bf16."""
        return self._backend.precision

    @property
    def backend(self):
        """The backend object (`nncompiler.backends.base.Backend`) running this model."""
        return self._backend

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Trainable parameters by name, as numpy arrays of their declared dtypes."""
        return self._state.numpy(self.lowered.params)

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        """Non-trainable state (batchnorm's moving statistics) by name."""
        return self._state.numpy(self.lowered.buffers)

    @property
    def opt_state(self) -> dict[str, np.ndarray]:
        """Optimizer slots and step count by name (`opt.m.h.kernel`, `opt.step`)."""
        return self._state.numpy(self._state.names("opt"))

    def set_params(self, values: dict) -> None:
        """Replace parameters (or buffers) by name; shapes must match, values take the declared dtype."""
        known = {**self.lowered.params, **self.lowered.buffers}
        for name, value in values.items():
            if name not in known:
                raise KeyError(f"unknown parameter '{name}'{did_you_mean(name, known)}")
            arr = np.asarray(value)
            want = tuple(known[name].type.shape)    # static: an initialiser needs it
            if arr.shape != want:
                raise ValueError(f"parameter '{name}' has shape {list(want)}, got {list(arr.shape)}")
        self._state.assign(values)

    def set_opt_state(self, values: dict) -> None:
        """Replace optimizer slots (or `opt.step`) by name; values take the declared dtype."""
        self._state.assign(values)

    @property
    def hyper(self) -> dict[str, float]:
        """The optimizer's hyper-parameters (a copy; set the learning rate through `lr`)."""
        return self._state.hyper

    @property
    def lr(self) -> float:
        return self._state.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._state.lr = value

    @property
    def steps_taken(self) -> int:
        """Optimizer steps taken; it advances the random stream of dropout and friends."""
        return self._state.step

    @steps_taken.setter
    def steps_taken(self, value: int) -> None:
        self._state.step = int(value)

    def rng_key(self):
        """The random key the next step's graphs take (`rng.key`)."""
        return self._state.rng_key()

    def reset_optimizer(self) -> None:
        self._state.drop("opt")
        if self._optimizer:
            self._state.assign(initial_state(self._optimizer, self._state.hyper, self.params))

    # -- graphs -------------------------------------------------------------------
    def unoptimized_graph(self, kind: str) -> Graph:
        """The graph of one kind before optimisation: predict, evaluate, gradients or train_step
        (or train_step's two halves for data parallelism: grad_step and apply_update)."""
        m = self.lowered
        fwd, inference = m.forward, m.inference or m.forward
        if kind == "predict":
            return select_outputs(inference, m.output_names, "predict")
        if kind == "evaluate":
            # with the ratio and curve metrics' parts: data-parallel evaluation sums those over ranks
            return select_outputs(inference, ["loss"] + [n for n, _ in inference.outputs if n.startswith("metric.")],
                                  "evaluate")
        if kind == "gradients":
            from .autodiff import grad
            g = select_outputs(fwd, ["loss"], "gradients")
            used = [p for p in m.params if any(a.attr["name"] == p for a in g.args)]
            return grad(g, "loss", wrt=used, name="gradients")
        if kind == "train_step_weighted":    # the loss weighted per row (fit's sample_weight)
            from .program import weighted_model
            if self._optimizer is None:
                raise ValueError(f"model {m.name} has no optimizer")
            return build_train_step(weighted_model(m), self._optimizer, self._state.hyper)
        if kind in ("train_step", "apply_update"):
            if self._optimizer is None:
                raise ValueError(f"model {m.name} has no optimizer")
            build = build_train_step if kind == "train_step" else build_apply_update
            return build(m, self._optimizer, self._state.hyper)
        if kind == "grad_step":   # data parallelism: grad_step -> all-reduce -> apply_update
            return build_grad_step(m)
        raise KeyError(kind)

    def graph(self, kind: str) -> Graph:
        """The optimised graph of one kind (derived and optimised once, then cached)."""
        if kind not in self._graphs:
            self._graphs[kind] = _optimize(self.unoptimized_graph(kind))
        return self._graphs[kind]

    def compiled(self, kind: str):
        if kind not in self._compiled:
            g = self.graph(kind)
            self._compiled[kind] = self._backend.compile(g, donate=_donation(g))
        return self._compiled[kind]

    def _plan(self, kind: str, roles) -> tuple:
        """What a graph takes, worked out once: (state names, feed declarations, needs rng, needs lr)."""
        key = (kind, roles)
        if key not in self._plans:
            g = self.graph(kind)
            state = [a.attr["name"] for a in g.args if a.attr["name"] in self._state]
            feeds = {a.attr["name"]: a.type for a in g.args_with_role(*roles)}
            self._plans[key] = (state, feeds, bool(g.args_with_role("rng")), bool(g.args_with_role("hyper")))
        return self._plans[key]

    def arguments(self, kind: str, feeds: dict, roles=("input",)) -> dict:
        """Everything the graph of one kind takes, on the device: the state it names, the step's
        random key, the lr, and `feeds` (the arguments of `roles`) checked against their types."""
        state, wanted, rng, hyper = self._plan(kind, roles)
        st = self._state
        args = {name: st[name] for name in state}
        if rng:
            args["rng.key"] = st.rng_key()
        if hyper:
            args["opt.lr"] = st.lr_arg()
        # a backend with host_feeds uploads batches itself (triton: pinned, into a CUDA graph's inputs)
        to_device = (lambda a: a) if self._backend.host_feeds else self._backend.to_device
        for name, arr in self.check_feeds(feeds, wanted).items():
            args[name] = to_device(arr)
        return args

    def _bind(self, kind: str, roles) -> tuple:
        """The compiled graph of one kind bound to the state (`State.bind`) with its feed check:
        what a training step runs, the calling convention worked out once."""
        key = (kind, roles)
        if key not in self._bound:
            g, compiled = self.graph(kind), self.compiled(kind)
            _, wanted, rng, hyper = self._plan(kind, roles)
            names = tuple(a.attr["name"] for a in g.args)
            call = self._state.bind(self._backend.positional(compiled, names), names, [n for n, _ in g.outputs],
                                    rng=rng, lr=hyper)
            to_device = None if self._backend.host_feeds else self._backend.to_device
            self._bound[key] = (FeedCheck(self, wanted, to_device), call)
        return self._bound[key]

    def run_graph(self, graph: Graph, **feeds) -> dict:
        """Run any graph over this model's arguments (e.g. `m.lowered.forward`, the training-mode
        forward pass with its `update.<buffer>` outputs) with the current state; numpy outputs."""
        key = ("graph", id(graph))
        if key not in self._compiled:
            self._compiled[key] = (graph, self._backend.compile(graph))
        _, fn = self._compiled[key]
        st = self._state
        args = {a.attr["name"]: st[a.attr["name"]] for a in graph.args if a.attr["name"] in st}
        if graph.args_with_role("rng"):
            args["rng.key"] = st.rng_key()
        if graph.args_with_role("hyper"):
            args["opt.lr"] = st.lr_arg()
        wanted = {a.attr["name"]: a.type for a in graph.args_with_role("input", "target")}
        args.update(self.check_feeds(feeds, wanted))
        return {k: np.asarray(self._backend.to_numpy(v)) for k, v in self._backend.run(fn, args).items()}

    def run(self, kind: str, feeds: dict, roles=("input",), args: dict | None = None) -> dict:
        """Run the compiled graph of one kind on `feeds` and the current state; device outputs.
        `args`, from `arguments`, replaces the arguments it would work out (data-parallel
        training changes the random key per rank)."""
        if args is None:
            args = self.arguments(kind, feeds, roles)
        return self._backend.run(self.compiled(kind), args)

    def check_dataset(self, data: dict) -> dict:
        """A whole data set, checked once: names, dtypes, shapes and finite values (DataError otherwise)."""
        from .train.data import check_against
        declared = {**self.lowered.inputs, **self.lowered.targets}
        out, bindings = {}, {}
        for name, value in data.items():
            if name not in declared:
                raise DataError(f"model {self.lowered.name} has no input or target '{name}'"
                                f"{did_you_mean(name, declared)}")
            ty = declared[name]
            shape = tuple(ty.shape)
            if shape and isinstance(shape[0], str):   # rows are batched: check a row's shape, any count
                bindings.pop(shape[0], None)
            try:
                out[name] = check_against(name, value, ty.dtype, shape, bindings)
            except DataError as e:    # Keras's input_shape is per sample: say how to declare the batch
                from .train.dataset import batch_hint
                hint = batch_hint(name, np.asarray(value), ty, self.lowered)
                if not hint:
                    raise
                raise DataError(f"{e}{hint}") from None
        return out

    def check_feeds(self, feeds: dict, wanted: dict) -> dict:
        """Match keyword arrays to the graph's data arguments: names, dtypes, shapes.

        The common case (arrays of the declared dtype and shape) costs a few attribute
        reads; anything else goes through the data module's checker, which converts
        what it safely can and explains what it cannot. Values are not scanned here
        (fit() checks its whole data set for NaN/Inf once)."""
        if feeds.keys() != wanted.keys():
            declared = {**self.lowered.inputs, **self.lowered.targets}
            for name in feeds:
                if name not in declared:
                    raise DataError(f"model {self.lowered.name} has no input or target '{name}'"
                                    f"{did_you_mean(name, declared)}")
            for name, ty in wanted.items():
                if name not in feeds:
                    raise DataError(f"missing data for '{name}' (declared {ty})")
        out, bindings = {}, {}
        for name, ty in wanted.items():
            arr = feeds[name]
            if not (isinstance(arr, np.ndarray) and arr.dtype == _NP_DTYPES[ty.dtype]
                    and _shape_ok(arr.shape, ty.shape, bindings)):
                from .train.data import check_against
                arr = check_against(name, arr, ty.dtype, ty.shape, bindings)
            out[name] = arr
        return out

    # -- the API ----------------------------------------------------------------
    def forward(self, x=None, **inputs):
        """Outputs for inputs given by name (`m.forward(x=X)`), or positionally for a model
        with one input (`m.predict(X)`, as Keras); one output alone, several as a tuple."""
        from .train.keras_api import collect
        inputs = collect(self, x, None, inputs, "predict")
        from .train.memcheck import check_forward
        check_forward(self, inputs)     # a clear ResourceError, not a MemoryError halfway through
        out = self.run("predict", inputs)
        values = tuple(self._backend.to_numpy(out[n]) for n in self.lowered.output_names)
        return values[0] if len(values) == 1 else values

    __call__ = forward

    def predict(self, x=None, batch_size=None, verbose=0, **inputs):
        """Keras's predict: `m.predict(X)` or by input name; `batch_size` rows per pass (all at once
        by default); `verbose` is accepted for Keras scripts and prints nothing."""
        from .train.keras_api import check_count, collect
        inputs = collect(self, x, None, inputs, "predict")
        if batch_size is None:
            return self.forward(**inputs)
        from .train.steps import count_rows, is_batched
        check_count(batch_size, "batch_size", 1)
        n = count_rows(inputs)
        if not is_batched(self) or n <= batch_size:
            return self.forward(**inputs)
        parts = [self.forward(**{k: np.asarray(v)[i:i + batch_size] for k, v in inputs.items()})
                 for i in range(0, n, batch_size)]
        if isinstance(parts[0], tuple):
            return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))
        return np.concatenate(parts)

    def loss_and_grads(self, **data) -> tuple[float, dict[str, np.ndarray]]:
        out = self.run("gradients", data, roles=("input", "target"))
        grads = {name: (self._backend.to_numpy(out[f"grad.{name}"]) if f"grad.{name}" in out
                        else np.zeros_like(value))              # a parameter the loss does not use
                 for name, value in self.params.items()}
        return float(self._backend.to_numpy(out["loss"])), grads

    def evaluate(self, x=None, y=None, verbose=0, **data) -> dict[str, float]:
        """Loss and metrics over the data: `m.evaluate(X, Y)` or by name; a dict (`loss`, each
        metric), which is Keras's `return_dict=True`."""
        from .train.keras_api import collect
        from .train.steps import evaluate
        return evaluate(self, collect(self, x, y, data, "evaluate"))

    def fit(self, x=None, y=None, batch_size: int | str | None = 32, epochs: int = 1, verbose="auto",
            callbacks=None, validation_split: float = 0.0, validation_data=None, shuffle: bool = True,
            class_weight=None, sample_weight=None, initial_epoch: int = 0, *, seed: int = 0, callback=None,
            lr_schedule=None, early_stopping=None, logdir=None, checkpoint=None, save_every=None, resume=None,
            nan_check=True, **data):
        """Train, in Keras's argument order (`m.fit(X, Y, epochs=5, validation_data=(Xv, Yv))`) or with
        arrays by input and target name (`m.fit(x=X, y=Y)`); returns a `History` (a dict of lists
        that is also `history.history`). See nncompiler.train.loop.fit for the other options."""
        from .train import keras_api as k
        from .train.loop import fit
        epochs = k.check_count(epochs, "epochs")
        initial_epoch = k.check_count(initial_epoch, "initial_epoch")
        chain = k.check_callbacks(callbacks)
        printer = k.reporter_for(verbose)
        if printer is not None:
            chain = chain + [printer]
        data = self.check_dataset(k.collect(self, x, y, data))
        weights = k.row_weights(self, data, class_weight, sample_weight)
        validation_data = k.validation(self, validation_data)
        if validation_data is not None:
            validation_data = self.check_dataset(validation_data)
        history = fit(self, data, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                      validation_split=validation_split, validation_data=validation_data,
                      seed=seed, callback=callback, callbacks=chain, lr_schedule=lr_schedule,
                      early_stopping=early_stopping, logdir=logdir, checkpoint=checkpoint,
                      save_every=save_every, resume=resume, nan_check=nan_check, initial_epoch=initial_epoch,
                      sample_weight=weights)
        return k.History(history, first_epoch=initial_epoch,
                         params={"epochs": epochs, "batch_size": batch_size, "verbose": verbose})

    def save(self, path, *, train: bool = True) -> None:
        """To a path ending .nnx: the whole model (graphs, weights, signature, train settings), which
        `nnc.load(path)` and `nnc predict` run with no .nn file (`train=False` leaves out what
        fine-tuning needs). Otherwise: parameters, buffers, optimizer state, steps taken and lr in a
        checkpoint (.npz), each array in its declared dtype, read back with `nnc.load_weights`."""
        from .train.nnx import is_nnx, save_nnx
        if is_nnx(path):
            save_nnx(self, path, train=train)
            return
        from .train.checkpoint import save_checkpoint
        save_checkpoint(self, path)

    def step(self, sample_weight=None, **batch) -> dict[str, float]:
        """One optimizer step on one batch; returns the batch's loss and metrics. `sample_weight`
        (one number per row) weights each row's loss as Keras does: sum(w * loss) / rows.

        The values are Python floats, so on a GPU backend this waits for the step to finish
        (one sync per call); `step_on_device` returns them as device arrays without waiting,
        and `fit` reads them once per log interval."""
        out = self._step(sample_weight, batch)
        to_numpy = self._backend.to_numpy
        return {k: host_value(to_numpy(v)) for k, v in out.items()}

    def step_on_device(self, sample_weight=None, **batch) -> dict:
        """`step`, with the loss and metrics as device arrays, without waiting for them (on a
        GPU they are valid for one more step: sum them on the device, read once per log)."""
        return self._step(sample_weight, batch)

    def _step(self, sample_weight, batch: dict) -> dict:
        if self.lowered.aliases:
            from .train.keras_api import by_argument_name
            batch = by_argument_name(self.lowered, batch)
        if sample_weight is None:
            check, call = self._bind("train_step", ("input", "target"))
        else:
            from .program import WEIGHT
            check, call = self._bind("train_step_weighted", ("input", "target"))
            batch[WEIGHT] = sample_weight
        out = call(check(batch))    # keeps the new parameters and optimizer state; returns the rest
        self._state.step += 1
        return out

    def summary(self) -> str:
        from .report import summary
        return summary(self)


_NP_DTYPES = {k: np.dtype(v) for k, v in NUMPY_DTYPE.items()}


class FeedCheck:
    """A graph's data arguments checked against their declared types, cheaply when batches repeat.

    A batch that passes `Model.check_feeds` untouched (numpy arrays of the declared dtypes, shapes
    matching the declaration) has its shapes remembered; the next batch of the same names, array
    type, dtypes and shapes is accepted after a few identity and tuple comparisons. Anything else
    goes through `check_feeds` every time, which converts what it safely can and explains what it
    cannot. `to_device` (None: keep host arrays) moves the checked arrays to the backend."""

    def __init__(self, model: Model, wanted: dict, to_device=None):
        self.model, self.wanted, self.to_device = model, wanted, to_device
        self.names = tuple(wanted)
        self.dtypes = tuple(_NP_DTYPES[ty.dtype] for ty in wanted.values())
        self.shapes = None       # the shapes of the last batch accepted as it was

    def __call__(self, feeds: dict) -> dict:
        if self.shapes is not None and len(feeds) == len(self.names) and self._same(feeds):
            checked = feeds
        else:
            checked = self.model.check_feeds(feeds, self.wanted)
            if all(checked[n] is feeds.get(n) for n in self.names):   # nothing was converted
                self.shapes = tuple(feeds[n].shape for n in self.names)
        if self.to_device is None:
            return checked
        return {k: self.to_device(v) for k, v in checked.items()}

    def _same(self, feeds: dict) -> bool:
        shapes, dtypes, ndarray = self.shapes, self.dtypes, np.ndarray
        for i, name in enumerate(self.names):
            a = feeds.get(name)
            # `is`: the builtin dtypes are singletons (a byte-swapped one takes the full check)
            if type(a) is not ndarray or a.dtype is not dtypes[i] or a.shape != shapes[i]:
                return False
        return True


def _donation(g: Graph) -> tuple[str, ...]:
    """State the step may overwrite in place: arguments it returns a `new.` value for. The runtime
    owns these arrays (users get copies), so a backend that supports donation can reuse them."""
    outs = {name for name, _ in g.outputs}
    return tuple(a.attr["name"] for a in g.args_with_role("param", "state", "buffer")
                 if f"new.{a.attr['name']}" in outs)


def _shape_ok(actual, declared, bindings: dict) -> bool:
    """Whether `actual` matches `declared` exactly, binding plain symbols (B) as it goes."""
    if len(actual) != len(declared):
        return False
    for n, d in zip(actual, declared):
        if isinstance(d, int):
            if n != d:
                return False
        elif bindings.setdefault(d, n) != n or "*" in d:
            return False
    return True
