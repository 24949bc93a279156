"""Tensor types with symbolic dimensions.

A dimension is an `int` or a symbolic product written as a string: "B", "4*B",
"B*T". Products stay exact (a monomial: an integer coefficient times symbols),
so reshaping [B, 2, 2] to [B, 4] or flattening [B, 8, 8] to [64*B] is checked
statically even with an unknown batch size.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..errors import ShapeError

Dim = int | str

DTYPES = ("f32", "f64", "i32", "i64", "bool")
FLOAT_DTYPES = ("f32", "f64")
NUMPY_DTYPE = {"f32": "float32", "f64": "float64", "i32": "int32", "i64": "int64", "bool": "bool"}

_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


@dataclass(frozen=True)
class Monomial:
    """A dimension read as an exact monomial: an integer coefficient times symbols
    (sorted, with repeats): 16 -> (16, ()), "4*B" -> (4, ("B",)), "B*T*B" -> (1, ("B", "B", "T")).

    The one reader of dimension strings: the front end, the passes, every backend's
    plan and runtime, the size limits and the data checks parse through it."""
    coef: int
    syms: tuple[str, ...] = ()

    @staticmethod
    def parse(d: Dim) -> "Monomial":
        """ShapeError unless `d` is an int or a product of integers and identifiers."""
        return _parse(d) if isinstance(d, str) else Monomial(int(d))

    @property
    def is_static(self) -> bool:
        return not self.syms or self.coef == 0

    def evaluate(self, bindings, default: int | None = None) -> int:
        """The size with every symbol bound; an unbound symbol counts as `default`
        (a KeyError naming it when there is no default)."""
        out = self.coef
        for s in self.syms:
            v = bindings.get(s, default)
            if v is None:
                raise KeyError(s)
            out *= int(v)
        return out

    def bind(self, bindings) -> Dim:
        """The dimension with the bound symbols substituted (the others stay symbols)."""
        coef, rest = self.coef, []
        for s in self.syms:
            if s in bindings:
                coef *= int(bindings[s])
            else:
                rest.append(s)
        return _make(coef, tuple(rest))

    @property
    def symbol(self) -> str | None:
        """The symbol when the dimension is one bare symbol ("B"), else None: the axes an
        argument's array binds a size from."""
        return self.syms[0] if self.coef == 1 and len(self.syms) == 1 else None

    @property
    def dim(self) -> Dim:
        """The canonical IR form: an int, or "4*B" with the symbols sorted."""
        return _make(self.coef, self.syms)

    def __str__(self) -> str:
        return str(self.dim)


@functools.lru_cache(maxsize=4096)  # the builder checks every node it emits: parse each text once
def _parse(d: str) -> Monomial:
    coef, syms = 1, []
    for part in d.split("*"):
        part = part.strip()
        if part.isdigit():
            coef *= int(part)
        elif _SYMBOL.fullmatch(part):
            syms.append(part)
        else:
            raise ShapeError(f"bad dimension '{d}'")
    return Monomial(coef, tuple(sorted(syms)))


def _monomial(d: Dim) -> tuple[int, tuple[str, ...]]:
    m = Monomial.parse(d)
    return m.coef, m.syms


def eval_dim(d: Dim, bindings, default: int | None = None) -> int:
    """A dimension's size with its symbols bound (see Monomial.evaluate)."""
    return d if type(d) is int else Monomial.parse(d).evaluate(bindings, default)


def eval_shape(shape, bindings, default: int | None = None) -> tuple[int, ...]:
    return tuple(eval_dim(d, bindings, default) for d in shape)


def _make(coef: int, syms: tuple[str, ...]) -> Dim:
    if not syms or coef == 0:
        return coef
    body = "*".join(sorted(syms))
    return body if coef == 1 else f"{coef}*{body}"


def canon_dim(d: Dim) -> Dim:
    return _make(*_monomial(d))


def dim_mul(a: Dim, b: Dim) -> Dim:
    ca, sa = _monomial(a)
    cb, sb = _monomial(b)
    return _make(ca * cb, sa + sb)


def dim_add(a: Dim, b: Dim) -> Dim:
    """a + b; symbolic only when both are multiples of the same symbols (B + 2*B = 3*B)."""
    ca, sa = _monomial(a)
    cb, sb = _monomial(b)
    if ca == 0:
        return _make(cb, sb)
    if cb == 0:
        return _make(ca, sa)
    if sa != sb:
        raise ShapeError(f"cannot add dimensions {a} and {b}")
    return _make(ca + cb, sa)


def dim_div(a: Dim, b: Dim) -> Dim | None:
    """a / b when it is exact, else None."""
    ca, sa = _monomial(a)
    cb, sb = _monomial(b)
    if cb == 0 or ca % cb:
        return None
    rest = list(sa)
    for s in sb:
        if s not in rest:
            return None
        rest.remove(s)
    return _make(ca // cb, tuple(rest))


def numel(shape) -> Dim:
    n: Dim = 1
    for d in shape:
        n = dim_mul(n, d)
    return n


def is_static(shape) -> bool:
    return all(isinstance(d, int) for d in shape)


def symbols(shape) -> list[str]:
    out: list[str] = []
    for d in shape:
        for s in _monomial(d)[1]:
            if s not in out:
                out.append(s)
    return out


def broadcast_shapes(a, b) -> tuple[Dim, ...]:
    """numpy's rule: align on the right, equal dims or one of them 1."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        da = a[-i] if i <= len(a) else 1
        db = b[-i] if i <= len(b) else 1
        if da == db or db == 1:
            out.append(da)
        elif da == 1:
            out.append(db)
        else:
            raise ShapeError(f"shapes {fmt_shape(a)} and {fmt_shape(b)} cannot be broadcast together")
    return tuple(reversed(out))


def fmt_shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass(frozen=True)
class TensorType:
    dtype: str
    shape: tuple[Dim, ...]

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ShapeError(f"unknown dtype '{self.dtype}'")
        object.__setattr__(self, "shape", tuple(canon_dim(d) for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"


def parse_type(text: str) -> TensorType:
    m = re.fullmatch(r"\s*(\w+)\[(.*)\]\s*", text)
    if not m:
        raise ShapeError(f"bad type '{text}'")
    dims = [p.strip() for p in m.group(2).split(",") if p.strip()]
    return TensorType(m.group(1), tuple(int(d) if d.lstrip("-").isdigit() else d for d in dims))
