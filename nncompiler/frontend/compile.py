"""The front end's entry point: .nn text -> checked, lowered models (one per model/graph block)."""
from __future__ import annotations

import os

import numpy as np

from ..errors import CompileError, did_you_mean, error
from ..precision import PRECISIONS
from ..program import CALLBACK_OPTIONS, LoweredModel, TrainConfig
from .memory import check_model
from . import ast
from .checks import warn_zero_gradient
from .lower import lower_block
from .parse import parse

SETTING_RULES = {
    "epochs": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive integer"),
    "batch": (lambda v: v == "all" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
              "a positive integer or 'all'"),
    "validate": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1,
                 "a fraction in [0, 1)"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32,
             "an integer in [0, 2^32)"),
    "shuffle": (lambda v: isinstance(v, bool), "true or false"),
    "lr": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "a positive number"),
    "precision": (lambda v: v in PRECISIONS, " or ".join([", ".join(PRECISIONS[:-1]), PRECISIONS[-1]])),
}


def _literal_array(kw: ast.Keyword) -> np.ndarray | str:
    """An inline data array (`x=[0.5, 2.3]`) or a path (`x="x.npy"`)."""
    def value(e):
        if isinstance(e, ast.Number):
            return e.value
        if isinstance(e, ast.UnaryOp) and e.op in "+-" and isinstance(e.operand, ast.Number):
            return -e.operand.value if e.op == "-" else e.operand.value
        if isinstance(e, ast.ListLit):
            return [value(i) for i in e.items]
        raise error(ast.start_loc(e), f"data for '{kw.name}' must be a list of numbers or a file path")
    if isinstance(kw.value, ast.String):
        return kw.value.value
    arr = np.asarray(value(kw.value))
    if arr.dtype == object:
        raise error(kw.value.loc, f"data for '{kw.name}' is ragged: every row must have the same length")
    return arr


def _option_value(e: ast.Expr):
    """A callback option: a number, true/false, or a name or string (monitor=val_loss)."""
    if isinstance(e, (ast.Number, ast.Bool, ast.String)):
        return e.value
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.UnaryOp) and isinstance(e.operand, ast.Number):
        return -e.operand.value if e.op == "-" else e.operand.value
    raise error(ast.start_loc(e), "expected a number, true/false or a name")


def _callback_options(s: ast.CallbackStmt) -> dict:
    """The statement's keywords, checked against program.CALLBACK_OPTIONS (the callbacks'
    signatures, which tests/train/test_keras_callbacks.py holds the table to)."""
    table = CALLBACK_OPTIONS[s.kind]
    options = {}
    for kw in s.options:
        if kw.name not in table:
            raise error(kw.loc, f"{s.kind} has no option '{kw.name}'{did_you_mean(kw.name, list(table))} "
                        f"(options: {', '.join(table)})")
        _, ok, want = table[kw.name]
        value = _option_value(kw.value)
        if not ok(value):
            raise error(ast.start_loc(kw.value), f"{s.kind} option '{kw.name}' must be {want}, got {value!r}")
        options[kw.name] = value
    return options


DATA_OPTIONS = ("label", "columns", "drop", "one_hot", "scale", "standardize")


def _constant(e: ast.Expr) -> float:
    """A number written as a constant expression: `0.5`, `-1`, `1/16`, `2 * 0.5`."""
    if isinstance(e, ast.Number):
        return e.value
    if isinstance(e, ast.UnaryOp):
        v = _constant(e.operand)
        return -v if e.op == "-" else v
    if isinstance(e, ast.BinOp) and e.op in "+-*/":
        a, b = _constant(e.left), _constant(e.right)
        if e.op == "/" and b == 0:
            raise error(e.loc, "division by zero")
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[e.op]
    raise error(ast.start_loc(e), "expected a number (such as 0.5 or 1/16)")


def _data_options(s: ast.DataStmt) -> dict:
    """A data line's options, checked here so a mistake points at the option (train/csvopts.py
    applies them)."""
    options = {}
    for opt in s.options:
        name, v = opt.name, opt.value
        if name not in DATA_OPTIONS:
            raise error(opt.loc, f"unknown data option '{name}'{did_you_mean(name, list(DATA_OPTIONS))} "
                        f"(options: {', '.join(DATA_OPTIONS)})")
        if name in options:
            raise error(opt.loc, f"data option '{name}' is given twice")
        strings = isinstance(v, ast.ListLit) and all(isinstance(i, ast.String) for i in v.items)
        if name in ("label", "drop"):
            if isinstance(v, ast.String):
                options[name] = v.value
            elif strings and v.items:
                options[name] = [i.value for i in v.items]
            else:
                raise error(ast.start_loc(v), f"{name} must be a column name in quotes, or a list of them")
        elif name == "columns":
            if not (strings and v.items):
                raise error(ast.start_loc(v), "columns must be a list of column names in quotes, "
                            "e.g. [\"a\", \"b\"]")
            options[name] = [i.value for i in v.items]
        elif name in ("one_hot", "standardize"):
            if not isinstance(v, ast.Bool):
                raise error(ast.start_loc(v), f"{name} must be true or false")
            options[name] = v.value
        else:   # scale
            value = _constant(v)
            if value == 0 or value != value or value in (float("inf"), float("-inf")):
                raise error(ast.start_loc(v), f"scale must be a non-zero finite number, got {value!r}")
            options[name] = float(value)
    for key in ("columns", "drop"):
        names = options.get(key)
        names = [names] if isinstance(names, str) else names or []
        dup = [c for c in names if names.count(c) > 1]
        if dup:
            raise error(s.loc, f"{key} names column {dup[0]!r} twice")
    return options


def lower_train(block: ast.TrainBlock, file: str) -> TrainConfig:
    cfg = TrainConfig(base_dir=os.path.dirname(os.path.abspath(file)) if not file.startswith("<") else ".",
                      loc=block.name_loc)
    seen = {}
    for s in block.stmts:
        key = ("data" if isinstance(s, ast.DataStmt) else "metrics" if isinstance(s, ast.MetricsStmt)
               else s.kind if isinstance(s, ast.CallbackStmt) else s.key)
        if key in seen:
            raise error(s.loc, f"'{key}' is set twice in train block '{block.name}' (first at line {seen[key]})")
        seen[key] = s.loc.line
        if isinstance(s, ast.DataStmt):
            cfg.data_path = s.path
            cfg.data_options = _data_options(s)
            cfg.arrays = {kw.name: _literal_array(kw) for kw in s.arrays}
        elif isinstance(s, ast.CallbackStmt):
            cfg.callbacks.append((s.kind, _callback_options(s)))
        elif isinstance(s, ast.MetricsStmt):
            cfg.metrics = list(s.names)
            cfg.metric_locs = list(s.name_locs)
        else:
            ok, want = SETTING_RULES[s.key]
            if not ok(s.value):
                hint = did_you_mean(s.value, PRECISIONS) if s.key == "precision" else ""
                raise error(s.value_loc, f"'{s.key}' must be {want}, got {s.value!r}{hint}")
            setattr(cfg, "validate" if s.key == "validate" else s.key, s.value)
    return cfg


def compile_source(text: str, file: str = "<string>", seed: int | None = None) -> list[LoweredModel]:
    """All model and graph blocks of a program, checked and lowered, in file order."""
    try:
        program = parse(text, file)
        models = [b for b in program.blocks if isinstance(b, ast.ModelBlock)]
        trains = [b for b in program.blocks if isinstance(b, ast.TrainBlock)]
        if not models:
            raise error(program.loc, "no model or graph block in this file")
        names = {}
        for m in models:
            if m.name in names:
                raise error(m.name_loc, f"block '{m.name}' is defined twice (first at line {names[m.name]})")
            names[m.name] = m.loc.line
        configs = {}
        for t in trains:
            if t.name not in names:
                raise error(t.name_loc, f"train block for unknown model '{t.name}'{did_you_mean(t.name, names)}")
            target = next(m for m in models if m.name == t.name)
            if target.kind != "model":
                raise error(t.name_loc, f"'{t.name}' is a graph block; only model blocks can be trained")
            if t.name in configs:
                raise error(t.name_loc, f"model '{t.name}' has two train blocks")
            configs[t.name] = lower_train(t, file)
        if seed is not None:
            for m in models:
                if m.kind == "model":
                    configs.setdefault(m.name, TrainConfig(loc=m.name_loc)).seed = seed
        lowered = [lower_block(m, configs.get(m.name), file) for m in models]
        for m in lowered:          # refuse what cannot fit in memory before Model allocates it
            check_model(m)
    except CompileError as e:
        raise e.with_sources({file: text}) from None
    for m in lowered:
        m.sources = {file: text}
        if m.kind == "model":
            warn_zero_gradient(m.forward, m.sources)
    return lowered
