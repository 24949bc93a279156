"""From a lowered model to the graphs a runtime executes.

The front end produces a `LoweredModel`: one forward graph whose outputs are
the user's outputs, `loss` and any metrics, plus the parameter declarations and
the optimizer. This module derives every graph the runtime needs from it,
each optimised by the pass pipeline:

    init        no arguments -> the initial value of every parameter and buffer
    predict     inputs, params -> the user's outputs
    evaluate    inputs, targets, params -> loss and metrics
    gradients   inputs, targets, params -> loss and grad.<param>   (autodiff)
    train_step  ... + optimizer state and lr -> loss, metrics, new.<param>, new.<state>

Optimizer state is graph arguments with role `state` (`opt.m.h.kernel`, `opt.step`)
and the learning rate an argument with role `hyper` (`opt.lr`), so the runtime
owns all state and a schedule can change lr without recompiling.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .autodiff import grad
from .errors import Loc
from .ir.graph import Builder, Graph
from .ir.shapes import TensorType
from .library.context import ParamDecl, Spec


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _nonneg(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


_MODES = (lambda v: v in ("auto", "min", "max"), "auto, min or max")
_MONITOR = (lambda v: isinstance(v, str), "a name such as val_loss")
# What a train block's callback statements accept: option -> (Keras's default, check, what it wants).
# The defaults are those of train/callbacks.py's EarlyStopping and ReduceLROnPlateau.
CALLBACK_OPTIONS = {
    "early_stopping": {
        "monitor": ("val_loss", *_MONITOR), "patience": (5, _count, "a non-negative integer"),
        "min_delta": (0.0, _nonneg, "a non-negative number"),
        "restore_best_weights": (False, lambda v: isinstance(v, bool), "true or false"), "mode": ("auto", *_MODES)},
    "reduce_lr_on_plateau": {
        "monitor": ("val_loss", *_MONITOR),
        "factor": (0.1, lambda v: _nonneg(v) and 0 < v < 1, "a number between 0 and 1"),
        "patience": (10, _count, "a non-negative integer"), "min_delta": (1e-4, _nonneg, "a non-negative number"),
        "cooldown": (0, _count, "a non-negative integer"), "min_lr": (0.0, _nonneg, "a non-negative number"),
        "mode": ("auto", *_MODES)},
}


@dataclass
class TrainConfig:
    """A `train` block (all optional; the CLI and fit() override)."""

    data_path: str | None = None
    data_options: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)      # inline data: name -> np.ndarray
    epochs: int = 1
    batch: int | str | None = 32                     # "all" = full-batch gradient descent
    validate: float = 0.0
    metrics: list[str] = field(default_factory=list)
    metric_locs: list = field(default_factory=list)  # where each metric is named (for errors)
    callbacks: list = field(default_factory=list)    # (early_stopping | reduce_lr_on_plateau, options)
    seed: int = 0
    shuffle: bool = True
    lr: float | None = None
    preprocessing: dict = field(default_factory=dict)   # standardize=true: the training data's mean, std
    precision: str | None = None                     # fp32 | tf32 | bf16 (precision.py); None = fp32
    base_dir: str = "."
    loc: Loc | None = None


@dataclass(frozen=True)
class LayerInfo:
    """One layer call, for `summary`: its name (the parameters' prefix), the library function,
    the type of its output (with symbolic sizes such as B), and its regularisers as written."""

    name: str
    layer: str
    output: TensorType
    regularizers: tuple[str, ...] = ()


@dataclass
class LoweredModel:
    name: str
    kind: str                                   # "model" or "graph"
    forward: Graph                              # outputs: user outputs, then "loss" and "metric.<name>"
    params: dict[str, ParamDecl]
    output_names: list[str]
    inputs: dict[str, TensorType]
    targets: dict[str, TensorType]
    loss_kind: str | None = None                # the loss function's name, e.g. "mse" (picks metric variants)
    optimizer: Spec | None = None
    optimizer_loc: Loc | None = None
    train: TrainConfig | None = None
    file: str = "<string>"
    sources: dict[str, str] = field(default_factory=dict)
    buffers: dict[str, ParamDecl] = field(default_factory=dict)   # non-trainable state (moving averages)
    inference: Graph | None = None              # the forward graph in inference mode (no dropout, ...)
    layers: list = field(default_factory=list)  # LayerInfo per layer call, in program order (summary)
    # names a user may give for an argument whose IR name differs: an imported ONNX model's
    # input `input` is the argument `input_` (a .nn keyword), and forward(input=...) still works
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def metric_names(self) -> list[str]:
        # a ratio or curve metric's parts are for summing over an epoch, not for showing
        from .library.metrics import PARTS
        return [n[len("metric."):] for n, _ in self.forward.outputs
                if n.startswith("metric.") and not n.endswith(PARTS)]


def select_outputs(g: Graph, names: list[str], graph_name: str) -> Graph:
    """A graph computing only `names`, whose signature keeps just the arguments those need
    (so `predict` takes no target, for instance)."""
    keep = [(n, i) for n, i in g.outputs if n in names]
    live, stack = set(), [i for _, i in keep]
    while stack:
        i = stack.pop()
        if i not in live:
            live.add(i)
            stack.extend(g[i].inputs)
    nodes = tuple(n for n in g.nodes if n.id in live)
    return Graph(graph_name, nodes, tuple(keep))


def build_init(model: LoweredModel) -> Graph:
    from .library.initializers import initial_value
    b = Builder("init")
    outs = {}
    for name, decl in {**model.params, **model.buffers}.items():
        with b.at(decl.loc):
            outs[name] = initial_value(decl, b)
    return b.build(outs)


def _trained(model: LoweredModel, name: str) -> tuple[Graph, list[str]]:
    """The training-mode forward graph (loss, metrics, `update.<buffer>`) and the parameters it
    uses, in declaration order (unused ones stay put)."""
    fwd = model.forward
    keep = ["loss"] + [n for n, _ in fwd.outputs if n.startswith(("metric.", "update."))]
    fwd = select_outputs(fwd, keep, name)
    return fwd, [p for p in model.params if any(a.attr["name"] == p for a in fwd.args)]


def build_grad_step(model: LoweredModel) -> Graph:
    """train_step's first half (data parallelism runs gradients -> all-reduce -> apply_update):
    loss, metrics, `update.<buffer>` and `grad.<param>`."""
    fwd, params = _trained(model, "grad_step")
    return grad(fwd, "loss", wrt=params, name="grad_step")


def build_apply_update(model: LoweredModel, optimizer_def, hyper: dict[str, float]) -> Graph:
    """train_step's second half: params, `grad.<param>` (role grad), optimizer state, lr ->
    `new.<param>`, `new.opt.<slot>.<param>`, `new.opt.step`."""
    fwd, params = _trained(model, "apply_update")
    b = Builder("apply_update")
    ids = {}
    for p in params:
        ty = fwd.arg(p).type
        with b.at(model.params[p].loc):
            ids[p] = (b.argument(p, "param", ty), b.argument(f"grad.{p}", "grad", ty))
    return b.build(_optimizer_update(b, model, optimizer_def, hyper, ids))


def build_train_step(model: LoweredModel, optimizer_def, hyper: dict[str, float]) -> Graph:
    """Forward + backward + the optimizer's update of every parameter, as one graph."""
    fwd, params = _trained(model, "train_step")
    g = grad(fwd, "loss", wrt=params, name="train_step")
    b = Builder("train_step", start_id=max(n.id for n in g.nodes) + 1)
    for n in g.nodes:
        b.add_node(n)
    outputs = [(n.replace("update.", "new.", 1), i) for n, i in g.outputs if not n.startswith("grad.")]
    grads = {n[len("grad."):]: i for n, i in g.outputs if n.startswith("grad.")}
    return b.build(outputs + _optimizer_update(b, model, optimizer_def, hyper,
                                               {p: (g.arg(p).id, grads[p]) for p in params}))


def _optimizer_update(b: Builder, model: LoweredModel, optimizer_def, hyper: dict[str, float],
                      params: dict[str, tuple[int, int]]) -> list[tuple[str, int]]:
    """The optimizer's update of each parameter (param -> (value node, gradient node)) and of the
    step count: the outputs `new.<param>`, `new.opt.<slot>.<param>`, `new.opt.step`."""
    outputs = []
    with b.at(model.optimizer_loc):
        lr = b.argument("opt.lr", "hyper", TensorType("f32", ()))
        hp = {"lr": lr}
        for key, value in hyper.items():
            if key != "lr":
                hp[key] = b.scalar(value)
        step = b.argument("opt.step", "state", TensorType("f32", ()))
        t = b.add(step, b.scalar(1.0))
        for p, (pid, gid) in params.items():
            slots = {s: b.argument(f"opt.{s}.{p}", "state", b.type_of(pid)) for s, _ in optimizer_def.slots}
            new_p, new_slots = optimizer_def.update(b, pid, gid, slots, hp, t)
            outputs.append((f"new.{p}", new_p))
            for s, sid in new_slots.items():
                outputs.append((f"new.opt.{s}.{p}", sid))
        outputs.append(("new.opt.step", t))
    return outputs


def optimizer_hyper(model: LoweredModel, optimizer_def) -> dict[str, float]:
    return optimizer_def.hyperparams(model.optimizer.kw if model.optimizer else {})


def initial_state(optimizer_def, hyper: dict[str, float], params: dict) -> dict:
    """Optimizer slots at their starting values (adagrad's from `initial_accumulator`)."""
    import numpy as np
    state = {"opt.step": np.float32(0.0)}
    starts = optimizer_def.slot_init(hyper)
    for p, value in params.items():
        for slot, init in starts.items():
            state[f"opt.{slot}.{p}"] = np.full(np.shape(value), init, dtype=np.float32)
    return state


WEIGHT = "sample_weight"     # the weighted train step's extra argument: one weight per row


def weighted_model(model: LoweredModel) -> LoweredModel:
    """The model with its loss weighted per row, as Keras weights it: the batch mean of the
    per-row losses, mean(l), becomes sum(w * l) / B (regularisation penalties unweighted).

    The loss functions end in that batch mean, `div(sum(E), size(E))` over every axis of
    E = the per-row (or per-element) losses [B, ...]; this finds it below the loss output
    (through the `add`s of the penalties) and multiplies E by the weights, reshaped to
    [B, 1, ...], before the sum. A loss written some other way is refused with a message."""
    from .errors import NNCError
    if WEIGHT in model.inputs or WEIGHT in model.targets:
        raise NNCError(f"model {model.name} has an input or target named '{WEIGHT}': rename it to train "
                       "with sample or class weights")
    g = model.forward
    found, stack, seen = [], [g.output("loss").id], set()
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        n = g[i]
        if n.op == "add":
            stack.extend(n.inputs)
        elif n.op == "div" and _batch_mean_sum(g, n) is not None:
            found.append(_batch_mean_sum(g, n))
    if len(found) != 1:
        raise NNCError(f"model {model.name}: sample or class weights need a loss that averages per-row "
                       f"losses over the batch (the library's losses do); this loss "
                       f"{'does not' if not found else 'does so more than once'}")
    total = found[0]
    rows = g[total.inputs[0]]

    def weigh(b: Builder, node, new_inputs):
        if node.id != total.id:
            return None
        with b.at(node.loc):
            w = b.argument(WEIGHT, "input", TensorType(rows.dtype, (rows.shape[0],)))
            if len(rows.shape) > 1:
                w = b.reshape(w, shape=(rows.shape[0],) + (1,) * (len(rows.shape) - 1))
            return b.copy(node, (b.mul(new_inputs[0], w),))
    from .ir.graph import rebuild
    forward, _ = rebuild(g, weigh, name=g.name)
    from dataclasses import replace
    return replace(model, forward=forward)


def _batch_mean_sum(g: Graph, div):
    """The `sum` node of `div(sum(E), size(E))` over every axis of a batched E, or None."""
    s, z = (g[i] for i in div.inputs)
    if s.op != "sum" or z.op != "size" or s.inputs[0] != z.inputs[0]:
        return None
    rows = g[s.inputs[0]]
    rank = len(rows.shape)
    if not rank or not isinstance(rows.shape[0], str):
        return None
    axes = sorted(a % rank for a in (s.attr.get("axes") or range(rank)))
    return s if axes == list(range(rank)) and not s.attr.get("keepdims") else None
