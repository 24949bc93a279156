"""Check a parsed `.nn` block and lower it to the forward IR graph.

Checking and lowering are one walk: names resolve against the block's
bindings, calls against the library tables (whose Python signatures define
arity, keywords and argument kinds), and shapes and dtypes are inferred by the
IR builder as each node is emitted. Every failure becomes a positioned
diagnostic; nothing downstream of this file sees a layer, only primitives.

Literals are weakly typed, as in numpy and JAX: `2 * x` takes x's dtype, and a
binding of a literal (`slope = 0.64`) is a constant, never a parameter.
"""
from __future__ import annotations

import inspect

import numpy as np

from ..errors import CompileError, Loc, ShapeError, did_you_mean, error
from ..ir.graph import Builder
from ..ir.shapes import DTYPES, FLOAT_DTYPES, TensorType, fmt_shape
from ..library import ACTIVATIONS, INITIALIZERS, LAYERS, LOSSES, METRICS, OPTIMIZERS, REGULARIZERS
from ..library.context import BlockState, LayerContext, ParamDecl, Spec, Value
from ..library.primitive_ops import literal_constant, literal_dtype
from ..library.tensor_elementwise import matmul_any
from ..library.tensor_ops import TENSOR_OPS
from ..passes.unroll import UNROLL_MAX_LENGTH, unroll
from ..program import LayerInfo, LoweredModel, TrainConfig
from ..ir.limits import MAX_DIM, check_type
from . import ast
from .checks import batch_broadcast, elementwise_call, unbound_symbols
from .convert import convert_argument, to_spec
from .indexing import lower_index
from .literals import Literal

BINARY_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow",
              "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}


def _function_tables():
    # lookup order: layers own parameters, then activations, tensor ops and losses
    return (("layer", LAYERS), ("activation", ACTIVATIONS), ("op", TENSOR_OPS), ("loss", LOSSES))


def all_function_names() -> set[str]:
    names = set()
    for _, table in _function_tables():
        names |= set(table)
    return names


def _ann(p: inspect.Parameter) -> str:
    a = p.annotation
    return a if isinstance(a, str) else getattr(a, "__name__", str(a))


class BlockLowerer:
    def __init__(self, block: ast.ModelBlock, train: TrainConfig | None, file: str, seed: int,
                 training: bool = True):
        self.block = block
        self.training = training
        self.state = BlockState()
        self.file = file
        self.train = train
        self.seed = seed
        self.b = Builder(block.name)
        self.env: dict[str, Value | Literal] = {}
        self.defined_at: dict[str, Loc] = {}
        self.params: dict[str, ParamDecl] = {}
        self.param_ids: dict[str, int] = {}
        self.penalties: list[int] = []
        self.layer_counts: dict[str, int] = {}
        self.inputs: dict[str, TensorType] = {}
        self.targets: dict[str, TensorType] = {}
        self.outputs: list[tuple[str, int]] = []
        self.loss: tuple[int, str | None, Value | None, Value | None] | None = None
        self.optimizer: tuple[Spec, Loc] | None = None
        self.metrics: list[tuple[str, Loc]] = []
        self._last_loss_args: tuple[Value, Value] | None = None
        self.layers: list[LayerInfo] = []

    # -- helpers ----------------------------------------------------------------
    def context(self, prefix: str, loc: Loc) -> LayerContext:
        return LayerContext(self.b, prefix, self.params, loc, self.seed, self.training, self.state)

    def define(self, name: str, loc: Loc, value) -> None:
        if name in self.defined_at:
            where = self.defined_at[name]
            raise error(loc, f"'{name}' is already defined (at line {where.line})")
        self.defined_at[name] = loc
        self.env[name] = value

    def materialize(self, v, dtype: str = None) -> Value:
        """Give a literal a dtype (the other operand's, or f32/i32 by its own kind)."""
        if isinstance(v, Value):
            return v
        arr = literal_array(v)
        try:
            with self.b.at(v.loc):
                return Value(literal_constant(self.b, arr, dtype or literal_dtype(arr)))
        except ShapeError as err:
            raise error(v.loc, str(err)) from None

    def unify(self, *vals) -> list[Value]:
        """Literals take the dtype of the tensors beside them (a bool condition doesn't count)."""
        dtypes = [self.b.dtype(v.id) for v in vals if isinstance(v, Value)]
        dtype = next((d for d in dtypes if d != "bool"), dtypes[0] if dtypes else None)
        return [self.materialize(v, dtype) for v in vals]

    # -- statements ---------------------------------------------------------------
    def lower(self) -> LoweredModel:
        for stmt in self.block.stmts:
            getattr(self, "stmt_" + type(stmt).__name__)(stmt)
        return self.finish()

    def check_type(self, t: ast.TypeExpr, allow_symbols: bool = True) -> TensorType:
        if t.dtype not in DTYPES:
            raise error(t.dtype_loc, f"unknown dtype '{t.dtype}'{did_you_mean(t.dtype, DTYPES)} "
                        f"(dtypes: {', '.join(DTYPES)})")
        for d, loc in zip(t.dims, t.dim_locs):
            if isinstance(d, int) and d <= 0:
                raise error(loc, f"dimension must be positive, got {d}")
            if isinstance(d, str) and not allow_symbols:
                raise error(loc, f"a parameter's shape must be static, got symbolic dimension '{d}'")
            if isinstance(d, int) and d > MAX_DIM:
                raise error(loc, f"dimension {d} is too large (the limit is 2^31 - 1 = {MAX_DIM})")
        ty = TensorType(t.dtype, t.dims)
        try:
            check_type(ty)
        except ShapeError as err:
            raise error(t.dtype_loc, str(err)) from None
        return ty

    def stmt_InputDecl(self, s: ast.InputDecl) -> None:
        ty = self.check_type(s.type)
        with self.b.at(s.name_loc):
            arg = self.b.argument(s.name, s.role, ty)
        self.define(s.name, s.name_loc, Value(arg))
        (self.inputs if s.role == "input" else self.targets)[s.name] = ty

    def stmt_ParamDecl(self, s: ast.ParamDecl) -> None:
        ty = self.check_type(s.type, allow_symbols=False)
        init = self.param_init(s, ty)
        if s.name in self.params:
            raise error(s.name_loc, f"'{s.name}' is already defined")
        ctx = self.context("", s.name_loc)
        with self.b.at(s.name_loc):
            pid = ctx.param(s.name, ty.shape, init, dtype=ty.dtype)
        self.param_ids[s.name] = pid
        self.define(s.name, s.name_loc, Value(pid))

    def param_init(self, s: ast.ParamDecl, ty: TensorType):
        if s.init is None:
            return Spec("glorot_uniform") if len(ty.shape) >= 2 else 0.0
        if isinstance(s.init, ast.Call) and s.init.func in INITIALIZERS:
            return self.spec(s.init, INITIALIZERS, skip=3)
        v = self.expr(s.init)
        if not isinstance(v, Literal):
            raise error(ast.start_loc(s.init), "a parameter's initial value must be a literal "
                        f"or an initializer call ({', '.join(sorted(INITIALIZERS))})")
        arr = np.asarray(v.value, dtype=np.float64)
        if arr.shape and arr.shape != tuple(ty.shape):
            raise error(v.loc, f"initial value has shape {fmt_shape(arr.shape)}, "
                        f"but '{s.name}' is declared {fmt_shape(ty.shape)}")
        return float(arr) if not arr.shape else tuple(map(tuple, arr)) if arr.ndim == 2 else tuple(arr.tolist())

    def stmt_Binding(self, s: ast.Binding) -> None:
        if s.name in self.defined_at:   # before a layer call declares '<name>.kernel' a second time
            raise error(s.loc, f"'{s.name}' is already defined (at line {self.defined_at[s.name].line})")
        taken = sorted(p for p in [*self.params, *self.state.buffers] if p.startswith(s.name + "."))
        if taken and isinstance(s.value, ast.Call):
            raise error(s.loc, f"'{s.name}' is already the name of an unnamed layer's parameters "
                        f"({', '.join(taken)}); pick another name")
        if isinstance(s.value, ast.Call):
            value = self.call(s.value, prefix=s.name)
        else:
            value = self.expr(s.value)
        self.define(s.name, s.loc, value)

    def stmt_Output(self, s: ast.Output) -> None:
        for i, (name, e) in enumerate(s.items):
            if name is None:  # name an output after its variable or function, as a user would
                name = e.id if isinstance(e, ast.Name) else e.func if isinstance(e, ast.Call) else ""
                if not name or any(n == name for n, _ in self.outputs):
                    name = f"output{len(self.outputs)}"
            if any(n == name for n, _ in self.outputs):
                raise error(ast.start_loc(e), f"output '{name}' is listed twice")
            v = self.materialize(self.expr(e))
            self.outputs.append((name, v.id))

    def stmt_Loss(self, s: ast.Loss) -> None:
        if self.block.kind == "graph":
            raise error(s.loc, "a graph block has no loss; use a model block to train")
        if self.loss is not None:
            raise error(s.loc, "the model already has a loss")
        self._last_loss_args = None
        v = self.materialize(self.expr(s.expr))
        ty = self.b.type_of(v.id)
        if ty.shape != ():
            raise error(ast.start_loc(s.expr), f"the loss must be a scalar, got {ty}; "
                        "reduce it with mean(...) or sum(...)")
        if ty.dtype not in FLOAT_DTYPES:
            raise error(ast.start_loc(s.expr), f"the loss must be a float, got {ty}")
        kind = s.expr.func if isinstance(s.expr, ast.Call) and s.expr.func in LOSSES else None
        pred, target = self._last_loss_args if kind else (None, None)
        self.loss = (v.id, kind, pred, target)

    def stmt_OptimizerStmt(self, s: ast.OptimizerStmt) -> None:
        if self.block.kind == "graph":
            raise error(s.loc, "a graph block has no optimizer; use a model block to train")
        if self.optimizer is not None:
            raise error(s.loc, "the model already has an optimizer")
        call = s.call
        if call.func not in OPTIMIZERS:
            raise error(call.func_loc, f"unknown optimizer '{call.func}'{did_you_mean(call.func, OPTIMIZERS)} "
                        f"(optimizers: {', '.join(sorted(OPTIMIZERS))})")
        opt = OPTIMIZERS[call.func]
        names = list(opt.defaults)
        kwargs = {}
        if len(call.args) > 1:
            raise error(ast.start_loc(call.args[1]), f"{call.func}() takes the learning rate as its only "
                        "positional argument; name the others (e.g. momentum=0.9)")
        items = [("lr", a) for a in call.args] + [(k.name, k.value) for k in call.kwargs]
        for key, e in items:
            canon = opt.aliases.get(key, key)
            if canon not in opt.defaults:
                raise error(ast.start_loc(e) if key == "lr" else _kw_loc(call, key),
                            f"{call.func}() has no keyword '{key}'{did_you_mean(key, names + list(opt.aliases))}")
            if canon in kwargs:
                raise error(_kw_loc(call, key), f"{call.func}() got '{key}' twice")
            flag = self.expr(e)   # a switch such as sgd(nesterov=true) is a hyper-parameter of 1 or 0
            kwargs[canon] = (float(flag.value) if isinstance(flag, Literal) and isinstance(flag.value, bool)
                             else self.number(e, f"{call.func}() argument '{key}'"))
        self.optimizer = (Spec(call.func, tuple(kwargs.items())), call.loc)

    def stmt_MetricsStmt(self, s: ast.MetricsStmt) -> None:
        self.metrics.extend(zip(s.names, s.name_locs))

    # -- the end of the block -------------------------------------------------------
    def finish(self) -> LoweredModel:
        blk = self.block
        if not self.outputs:
            raise error(blk.name_loc, f"{blk.kind} '{blk.name}' has no 'output' statement")
        outputs = list(self.outputs)
        loss_kind = None
        if blk.kind == "model":
            if self.loss is None:
                raise error(blk.name_loc, f"model '{blk.name}' has no 'loss' statement")
            if self.optimizer is None:
                raise error(blk.name_loc, f"model '{blk.name}' has no 'optimizer' statement "
                            f"(e.g. optimizer sgd(lr=0.01))")
            loss_id, loss_kind, pred, target = self.loss
            with self.b.at(blk.name_loc):
                for p in self.penalties:
                    loss_id = self.b.add(loss_id, p)
            outputs.append(("loss", loss_id))
            outputs += self.metric_outputs(loss_kind, pred, target)
        outputs += [(f"update.{name}", i) for name, i in self.state.updates.items()]
        spec, loc = self.optimizer if self.optimizer else (None, None)
        return LoweredModel(blk.name, blk.kind, self.b.build(outputs), self.params,
                            [n for n, _ in self.outputs], self.inputs, self.targets, loss_kind,
                            spec, loc, self.train, self.file, buffers=self.state.buffers,
                            layers=self.layers)

    def metric_outputs(self, loss_kind, pred, target) -> list[tuple[str, int]]:
        """`metric.<name>` outputs (and `.num`/`.den` for ratio metrics, `.tp`/`.fp`/`.tn`/`.fn`
        vectors for curve metrics, summed over an epoch).

        A metric compares the loss call's prediction and target, or, when the loss is
        an expression, the model's only output and only target."""
        from ..library.metrics import Curve, Ratio, ratio_value
        wanted = list(self.metrics)
        if self.train:    # a TrainConfig built in Python has no metric positions: point at the block
            locs = list(self.train.metric_locs)
            locs += [self.train.loc] * (len(self.train.metrics) - len(locs))
            wanted += list(zip(self.train.metrics, locs))
        out = []
        for name, loc in wanted:
            if name == "loss" or any(n == f"metric.{name}" for n, _ in out):
                continue
            if name not in METRICS:
                raise error(loc, f"unknown metric '{name}'{did_you_mean(name, METRICS)} "
                            f"(metrics: {', '.join(sorted(METRICS))})")
            if pred is None:
                if len(self.outputs) != 1 or len(self.targets) != 1:
                    raise error(loc, f"metric '{name}' compares a prediction with a target: make the loss a "
                                f"call of a loss function ({', '.join(sorted(LOSSES))}), or give the model "
                                "one output and one target")
                pred = Value(self.outputs[0][1])
                target = self.env[next(iter(self.targets))]
            ctx = self.context("", loc)
            try:
                with self.b.at(loc):
                    mid = METRICS[name](ctx, pred, target, loss_kind)
                    if isinstance(mid, Ratio):
                        out += [(f"metric.{name}", ratio_value(self.b, mid)),
                                (f"metric.{name}.num", mid.num), (f"metric.{name}.den", mid.den)]
                        continue
                    if isinstance(mid, Curve):   # per-threshold count vectors, summed over an epoch
                        out += [(f"metric.{name}", mid.value)] + [
                            (f"metric.{name}.{part}", getattr(mid, part)) for part in ("tp", "fp", "tn", "fn")]
                        continue
            except ShapeError as err:
                raise error(loc, f"metric '{name}' does not fit this model: {err}") from None
            out.append((f"metric.{name}", mid.id if isinstance(mid, Value) else mid))
        return out

    # -- expressions ----------------------------------------------------------------
    def expr(self, e: ast.Expr):
        method = getattr(self, "expr_" + type(e).__name__, None)
        if method is None:
            raise error(ast.start_loc(e), f"{type(e).__name__.lower()} is not allowed here")
        return method(e)

    def expr_Number(self, e: ast.Number):
        return Literal(e.value, e.loc)

    def expr_Bool(self, e: ast.Bool):
        return Literal(e.value, e.loc)

    def expr_String(self, e: ast.String):
        raise error(e.loc, "a string is not a tensor")

    def expr_ListLit(self, e: ast.ListLit):
        items = [self.expr(i) for i in e.items]
        if all(isinstance(i, Literal) for i in items):
            return Literal(tuple(i.value for i in items), e.loc)
        vals = self.unify(*items)
        shapes = {self.b.shape(v.id) for v in vals}
        if len(shapes) != 1:
            raise error(e.loc, "list elements have different shapes: "
                        + ", ".join(fmt_shape(s) for s in sorted(shapes, key=str)))
        with self.b.at(e.loc):
            rows = [self.b.reshape(v.id, shape=(1,) + tuple(self.b.shape(v.id))) for v in vals]
            return Value(self.b.concat(*rows, axis=0))

    def expr_Name(self, e: ast.Name):
        if e.id in self.env:
            return self.env[e.id]
        size = self.symbolic_size(e)
        if size is not None:
            return size
        if e.id in all_function_names():
            raise error(e.loc, f"'{e.id}' is a function; call it, e.g. {e.id}(...)")
        raise error(e.loc, f"unknown name '{e.id}'{did_you_mean(e.id, list(self.env) + list(self.params))}")

    def symbolic_size(self, e: ast.Name) -> Value | None:
        """A size declared in an input's type (`B` of `x: f32[B, 4]`) as an f32 scalar, read from
        the data at run time: the course's 1/(2n) is `1 / (2 * B)`."""
        for name, ty in {**self.inputs, **self.targets}.items():
            if e.id in ty.shape:
                with self.b.at(e.loc):
                    return Value(self.b.size(self.env[name].id, axes=(ty.shape.index(e.id),), dtype="f32"))
        return None

    def expr_Attribute(self, e: ast.Attribute):
        parts = [e.attr]
        node = e.value
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            raise error(e.loc, "only parameters can be accessed with '.', e.g. h.kernel")
        name = ".".join([node.id] + parts[::-1])
        if name not in self.params:
            raise error(e.loc, f"unknown parameter '{name}'{did_you_mean(name, self.params)}")
        return Value(self.b.argument(name, "param", self.params[name].type)
                     if name not in self.param_ids else self.param_ids[name])

    def expr_UnaryOp(self, e: ast.UnaryOp):
        v = self.expr(e.operand)
        if e.op == "+":
            return v
        if isinstance(v, Literal):
            return Literal((-np.asarray(v.value)).tolist(), e.loc)
        with self.b.at(e.loc):
            return Value(self.b.neg(v.id))

    def expr_BinOp(self, e: ast.BinOp):
        left, right = self.expr(e.left), self.expr(e.right)
        if isinstance(left, Literal) and isinstance(right, Literal) and e.op != "@":
            return self.fold_literals(e, left, right)
        if e.op == "**":  # a power's exponent is float even when written as an int
            left, right = self.unify(left, right) if isinstance(left, Value) else self.unify(right, left)[::-1]
        else:
            left, right = self.unify(left, right)
        lt, rt = self.b.type_of(left.id), self.b.type_of(right.id)
        if lt.dtype != rt.dtype:
            raise error(e.loc, f"dtype mismatch: '{e.op}' between {lt} and {rt}; "
                        f"convert one side with cast(..., {lt.dtype})")
        if e.op != "@" and (err := batch_broadcast(e.loc, e.op, lt, rt)) is not None:
            raise err
        try:
            with self.b.at(e.loc):
                if e.op == "@":
                    return Value(matmul_any(self.b, left.id, right.id))
                return Value(self.b.emit(BINARY_OPS[e.op], (left.id, right.id)))
        except ShapeError as err:
            raise error(e.loc, f"shape mismatch in '{e.op}': {err}") from None

    def fold_literals(self, e: ast.BinOp, left: Literal, right: Literal) -> Literal:
        ops = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "**": np.power,
               "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
               "==": np.equal, "!=": np.not_equal}
        try:
            with np.errstate(all="raise"):
                a = np.asarray(left.value, dtype=np.float64 if e.op in "/**" else None)
                return Literal(ops[e.op](a, np.asarray(right.value)).tolist(), e.loc)
        except (ValueError, FloatingPointError) as err:
            raise error(e.loc, f"cannot evaluate constant '{e.op}': {err}") from None

    def expr_Index(self, e: ast.Index):
        v = self.materialize(self.expr(e.value))
        return Value(lower_index(self, v.id, e))

    def expr_Call(self, e: ast.Call):
        return self.call(e, prefix=None)

    # -- calls into the library -------------------------------------------------------
    def lookup(self, name: str, loc: Loc):
        for kind, table in _function_tables():
            if name in table:
                return kind, table[name]
        if name in OPTIMIZERS:
            raise error(loc, f"'{name}' is an optimizer; use it in an 'optimizer' statement")
        if name in INITIALIZERS:
            raise error(loc, f"'{name}' is an initializer; use it as a param's initial value or a layer keyword")
        raise error(loc, f"unknown function '{name}'{did_you_mean(name, all_function_names())}")

    def call(self, e: ast.Call, prefix: str | None):
        kind, fn = self.lookup(e.func, e.func_loc)
        bound = self.bind_arguments(e, fn)
        if kind in ("layer", "activation") and prefix is None:
            count = self.layer_counts.get(e.func, 0) + 1
            # skip names a binding already took (`dense_1 = dense(x, 3)` owns dense_1.kernel)
            while f"{e.func}_{count}" in self.defined_at or any(
                    p.startswith(f"{e.func}_{count}.") for p in self.params):
                count += 1
            self.layer_counts[e.func] = count
            prefix = f"{e.func}_{count}"
        types = [self.b.type_of(v.id) for v in _flat(bound.values()) if isinstance(v, Value)]
        if (err := elementwise_call(e.func_loc, e.func, types)) is not None:
            raise err
        ctx = self.context(prefix or "", e.func_loc)
        args, kwargs = _positional(fn, bound)
        try:
            with self.b.at(e.func_loc):
                result = fn(ctx, *args, **kwargs)
        except ShapeError as err:
            raise error(e.func_loc, f"{e.func}: {err}") from None
        self.penalties.extend(ctx.penalties)
        self.param_ids.update(ctx.param_ids)
        if kind == "layer" or ctx.param_ids:
            self.layers.append(_layer_info(prefix or "", e.func, self.b.type_of(
                result.id if isinstance(result, Value) else result), bound))
        if kind == "loss":
            self._last_loss_args = (bound.get("pred"), bound.get("target"))
        return result if isinstance(result, Value) else Value(result)

    def bind_arguments(self, e: ast.Call, fn) -> dict:
        """{parameter: converted argument}; a `*more` parameter gets the list of the extra
        positional tensors (an empty list when there are none)."""
        params = list(inspect.signature(fn).parameters.values())[1:]   # skip ctx
        var = next((p for p in params if p.kind is p.VAR_POSITIONAL), None)
        params = [p for p in params if p is not var]
        names = [p.name for p in params]
        positional = [p for p in params if p.kind is not p.KEYWORD_ONLY]
        given: dict[str, ast.Expr] = {}
        if len(e.args) > len(positional) and var is None:
            raise error(ast.start_loc(e.args[len(positional)]),
                        f"{e.func}() takes {len(positional)} argument{'s' if len(positional) != 1 else ''} "
                        f"({', '.join(names)}), got {len(e.args)}")
        for p, a in zip(positional, e.args):
            given[p.name] = a
        extra = list(e.args[len(positional):])
        for kw in e.kwargs:
            if kw.name not in names:
                raise error(kw.loc, f"{e.func}() has no keyword '{kw.name}'{did_you_mean(kw.name, names)}")
            if kw.name in given:
                raise error(kw.loc, f"{e.func}() got '{kw.name}' twice")
            given[kw.name] = kw.value
        missing = [p.name for p in params if p.default is inspect.Parameter.empty and p.name not in given]
        if missing:
            raise error(e.func_loc, f"{e.func}() is missing argument{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(repr(m) for m in missing)}")
        out, tensors = {}, []
        for p in params:
            if p.name not in given:
                continue
            ann = _ann(p)
            if ann == "Indices":
                v = self.expr(given[p.name])
                out[p.name] = self.materialize(v, "i32" if isinstance(v, Literal) and not v.is_float else None)
            elif ann == "Tensor":
                out[p.name] = self.expr(given[p.name])
                tensors.append(p.name)
            elif ann == "Array":
                v = self.expr(given[p.name])
                out[p.name] = v if isinstance(v, Value) else literal_array(v)
            else:
                out[p.name] = self.convert(ann, given[p.name], f"{e.func}() argument '{p.name}'")
        values = [out[t] for t in tensors] + [self.expr(a) for a in extra]
        unified = self.unify(*values)
        for name, v in zip(tensors, unified):
            out[name] = v
        if var is not None:
            out[var.name] = unified[len(tensors):]
        return out

    def convert(self, ann: str, e: ast.Expr, what: str):
        return convert_argument(self, ann, e, what)

    def number(self, e: ast.Expr, what: str) -> float:
        v = self.expr(e)
        if not isinstance(v, Literal) or np.asarray(v.value).shape or isinstance(v.value, bool):
            raise error(ast.start_loc(e), f"{what} must be a number")
        return float(v.value)

    def spec(self, e: ast.Expr, table: dict, skip: int) -> Spec:
        return to_spec(self, e, table, skip)


def _flat(values):
    """The bound arguments with a `*more` list spread out."""
    for v in values:
        yield from (v if isinstance(v, list) else (v,))


def _positional(fn, bound: dict) -> tuple[list, dict]:
    """(args, kwargs) to call fn with: a `*more` list goes positionally, after the parameters before it."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    var = next((p for p in params if p.kind is p.VAR_POSITIONAL), None)
    if var is None:
        return [], bound
    before = params[:params.index(var)]
    args = [bound[p.name] for p in before] + list(bound[var.name])
    return args, {k: v for k, v in bound.items() if k != var.name and k not in {p.name for p in before}}


def literal_array(v: Literal) -> np.ndarray:
    arr = np.asarray(v.value)
    if arr.dtype == object:
        raise error(v.loc, "list literal is ragged: every row must have the same length")
    return arr


def _spec_text(spec) -> str:
    if isinstance(spec, str):
        return spec
    args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in spec.kwargs)
    return f"{spec.name}({args})"


def _layer_info(prefix: str, func: str, output: TensorType, bound: dict) -> LayerInfo:
    regs = tuple(f"{k.removesuffix('_regularizer')}: {_spec_text(v)}" for k, v in bound.items()
                 if k.endswith("_regularizer") and v is not None)
    return LayerInfo(prefix, func, output, regs)


def _kw_loc(call: ast.Call, name: str) -> Loc:
    for kw in call.kwargs:
        if kw.name == name:
            return kw.loc
    return call.loc


def lower_block(block: ast.ModelBlock, train: TrainConfig | None, file: str) -> LoweredModel:
    """Lower a block twice: in training mode (dropout active, batch statistics, buffer
    updates) and in inference mode (what predict and evaluate run), as Keras does."""
    seed = train.seed if train else 0
    model = BlockLowerer(block, train, file, seed, training=True).lower()
    unbound_symbols(model.forward, [*model.inputs.values(), *model.targets.values()])
    model.inference = BlockLowerer(block, train, file, seed, training=False).lower().forward
    # short loops run faster unrolled: the compiler decides by length, before autodiff
    model.forward = unroll(model.forward, UNROLL_MAX_LENGTH)[0]
    model.inference = unroll(model.inference, UNROLL_MAX_LENGTH)[0]
    return model


__all__ = ["lower_block", "BlockLowerer", "Literal", "CompileError", "REGULARIZERS"]
