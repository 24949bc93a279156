"""Constants in the .nn source: `Literal` (a number, bool or list not yet given a dtype)
and the readers that demand one (an integer stride, a float rate, a boolean flag).

Shared by the lowerer, the argument converters and the indexing rules, so that none of
them imports another for these.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import Loc, error
from . import ast


@dataclass(frozen=True)
class Literal:
    """A number, bool or (nested) list literal not yet given a dtype."""

    value: object
    loc: Loc

    @property
    def is_float(self) -> bool:
        return np.asarray(self.value).dtype.kind == "f"


def _literal(lowerer, e: ast.Expr, what: str):
    v = lowerer.expr(e)
    if not isinstance(v, Literal):
        raise error(ast.start_loc(e), f"{what} must be a constant, not a tensor expression")
    return v.value


def _int(lowerer, e, what):
    v = _literal(lowerer, e, what)
    if isinstance(v, bool) or not isinstance(v, int):
        raise error(ast.start_loc(e), f"{what} must be an integer, got {v!r}")
    return v


def _float(lowerer, e, what):
    v = _literal(lowerer, e, what)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise error(ast.start_loc(e), f"{what} must be a number, got {v!r}")
    return float(v)


def _bool(lowerer, e, what):
    v = _literal(lowerer, e, what)
    if not isinstance(v, bool):
        raise error(ast.start_loc(e), f"{what} must be true or false, got {v!r}")
    return v
