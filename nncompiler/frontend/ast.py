"""Syntax tree of a .nn program, as produced by `nncompiler.frontend.parse`.

The tree is purely syntactic: names are not resolved, dtypes and function
names are not validated and shapes are not known.  Every node is a frozen
dataclass whose last field is `loc`, the position of the construct's first
character (1-based line and column, `end_col` set when the construct ends on
the same line).  The one deliberate exception is `BinOp`, whose `loc` is its
operator: shape errors read best with the caret under the `@` or `+`.  Use
`start_loc()` to get the first character of any expression.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterator, Union

from nncompiler.errors import Loc


class Node:
    """Base of every syntax node (for isinstance checks and `walk`)."""

    __slots__ = ()


# --------------------------------------------------------------------------- expressions


class Expr(Node):
    __slots__ = ()


@dataclass(frozen=True)
class Name(Expr):
    id: str
    loc: Loc


@dataclass(frozen=True)
class Attribute(Expr):
    """`value.attr`, e.g. `h.kernel` to refer to a layer's parameter."""

    value: Expr
    attr: str
    loc: Loc


@dataclass(frozen=True)
class Number(Expr):
    value: int | float
    is_int: bool
    loc: Loc


@dataclass(frozen=True)
class String(Expr):
    value: str  # escapes already decoded
    loc: Loc


@dataclass(frozen=True)
class Bool(Expr):
    value: bool
    loc: Loc


@dataclass(frozen=True)
class ListLit(Expr):
    items: tuple[Expr, ...]
    loc: Loc


@dataclass(frozen=True)
class BinOp(Expr):
    """`left op right`; op is one of + - * / @ ** < <= > >= == !=.

    `loc` is the operator's position (see the module docstring)."""

    op: str
    left: Expr
    right: Expr
    loc: Loc


@dataclass(frozen=True)
class UnaryOp(Expr):
    op: str  # '-' or '+'
    operand: Expr
    loc: Loc


@dataclass(frozen=True)
class Keyword(Node):
    """`name=value`: a keyword argument, a data option or an inline data array."""

    name: str
    value: Expr
    loc: Loc


@dataclass(frozen=True)
class Call(Expr):
    """`func(args..., name=value...)`; only plain names can be called.

    `func_loc` spans the function name, `loc` the whole call."""

    func: str
    func_loc: Loc
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    loc: Loc


@dataclass(frozen=True)
class SliceItem(Node):
    """`start:stop:step` inside an index; absent parts are None."""

    start: Expr | None
    stop: Expr | None
    step: Expr | None
    loc: Loc


@dataclass(frozen=True)
class EllipsisItem(Node):
    loc: Loc


IndexItem = Union[Expr, SliceItem, EllipsisItem]


@dataclass(frozen=True)
class Index(Expr):
    """`value[items]`."""

    value: Expr
    items: tuple[IndexItem, ...]
    loc: Loc


# --------------------------------------------------------------------------- model / graph statements


@dataclass(frozen=True)
class TypeExpr(Node):
    """`f32[B, 4]`: dims are ints or symbol names; `f32[]` and `f32` are scalars."""

    dtype: str
    dtype_loc: Loc
    dims: tuple[int | str, ...]
    dim_locs: tuple[Loc, ...]
    loc: Loc


@dataclass(frozen=True)
class InputDecl(Node):
    """`input x: f32[N]` (role "input") or `target y: i32[B]` (role "target")."""

    role: str
    name: str
    name_loc: Loc
    type: TypeExpr
    loc: Loc


@dataclass(frozen=True)
class ParamDecl(Node):
    """`param w: f32[4, 3] = glorot_uniform()`; init is None when omitted."""

    name: str
    name_loc: Loc
    type: TypeExpr
    init: Expr | None
    loc: Loc


@dataclass(frozen=True)
class Binding(Node):
    """`name = value`; loc is the name's position."""

    name: str
    value: Expr
    loc: Loc


@dataclass(frozen=True)
class Output(Node):
    """`output a, probs = softmax(z)`: items are (name or None, expr) pairs."""

    items: tuple[tuple[str | None, Expr], ...]
    loc: Loc


@dataclass(frozen=True)
class Loss(Node):
    expr: Expr
    loc: Loc


@dataclass(frozen=True)
class OptimizerStmt(Node):
    """`optimizer adam(lr=0.01)`; a bare `optimizer sgd` becomes a Call with no arguments."""

    call: Call
    loc: Loc


@dataclass(frozen=True)
class MetricsStmt(Node):
    names: tuple[str, ...]
    name_locs: tuple[Loc, ...]
    loc: Loc


ModelStmt = Union[InputDecl, ParamDecl, Binding, Output, Loss, OptimizerStmt, MetricsStmt]


# --------------------------------------------------------------------------- train statements


@dataclass(frozen=True)
class DataStmt(Node):
    """Where training data comes from.

    `data "iris.csv" (label="species")`: path set, options holds the keywords;
    `data x=[...], y="y.npy"`: path None, arrays holds one Keyword per array."""

    path: str | None
    path_loc: Loc | None
    options: tuple[Keyword, ...]
    arrays: tuple[Keyword, ...]
    loc: Loc


@dataclass(frozen=True)
class Setting(Node):
    """`epochs 100`, `batch 16` / `batch all`, `validate 0.2`, `seed 0`,
    `shuffle true`, `lr 0.01`, `precision bf16`.

    value: an int for epochs / batch / seed (the parser rejects non-integer
    literals there), the string "all" for `batch all`, a float for validate and
    lr, a bool for shuffle, a name for precision.  Range checks are left to the checker."""

    key: str
    value: int | float | bool | str
    value_loc: Loc
    loc: Loc


@dataclass(frozen=True)
class CallbackStmt(Node):
    """`early_stopping patience=5, min_delta=0.001` or `reduce_lr_on_plateau factor=0.5`:
    a training callback with its keywords (checked against the callback's signature later)."""

    kind: str
    options: tuple[Keyword, ...]
    loc: Loc


TrainStmt = Union[DataStmt, Setting, MetricsStmt, CallbackStmt]


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class ModelBlock(Node):
    """`model NAME { ... }` (kind "model") or `graph NAME { ... }` (kind "graph")."""

    kind: str
    name: str
    name_loc: Loc
    stmts: tuple[ModelStmt, ...]
    loc: Loc


@dataclass(frozen=True)
class TrainBlock(Node):
    name: str
    name_loc: Loc
    stmts: tuple[TrainStmt, ...]
    loc: Loc


@dataclass(frozen=True)
class Program(Node):
    blocks: tuple[ModelBlock | TrainBlock, ...]
    loc: Loc


# --------------------------------------------------------------------------- helpers


def start_loc(node: Node) -> Loc:
    """Position of the first character of `node` (BinOp's own loc is its operator)."""
    while isinstance(node, BinOp):
        node = node.left
    return node.loc


def children(node: Node) -> Iterator[Node]:
    """The direct child nodes of `node`, in source order."""
    for f in fields(node):
        yield from _nodes_in(getattr(node, f.name))


def _nodes_in(value) -> Iterator[Node]:
    if isinstance(value, Node):
        yield value
    elif isinstance(value, tuple):
        for item in value:
            yield from _nodes_in(item)


def walk(node: Node) -> Iterator[Node]:
    """`node` and all its descendants, pre-order (iterative: safe on deep trees)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(children(current))))
