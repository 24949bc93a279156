"""Regularisers: `fn(b, w, /, <keywords>) -> int`, a scalar penalty added to the loss.

`b` and `w` are positional-only (the compiler supplies them); the keywords are
what a `.nn` call sets: `l2(0.01)` or `l1_l2(l1=0.001, l2=0.01)`. Defaults are
Keras's (0.01). The penalty is l1 * sum|w| + l2 * sum w^2, summed (not averaged)
over the weights as in Keras.
"""

from ..ir.graph import Builder
from .spec import Spec, named_spec


def _penalty(b: Builder, w: int, l1: float, l2: float) -> int:
    axes = tuple(range(len(b.shape(w))))
    terms = []
    if l1:
        terms.append(b.mul(b.scalar(l1, b.dtype(w)), b.sum(b.abs(w), axes=axes)))
    if l2:
        terms.append(b.mul(b.scalar(l2, b.dtype(w)), b.sum(b.mul(w, w), axes=axes)))
    if not terms:  # l1 = l2 = 0: still a (zero) scalar so callers can add it
        return b.scalar(0.0, b.dtype(w))
    return terms[0] if len(terms) == 1 else b.add(terms[0], terms[1])


def l1(b: Builder, w: int, /, l1: float = 0.01) -> int:
    return _penalty(b, w, l1, 0.0)


def l2(b: Builder, w: int, /, l2: float = 0.01) -> int:
    return _penalty(b, w, 0.0, l2)


def l1_l2(b: Builder, w: int, /, l1: float = 0.01, l2: float = 0.01) -> int:
    return _penalty(b, w, l1, l2)


REGULARIZERS = {"l1": l1, "l2": l2, "l1_l2": l1_l2}


def as_spec(reg) -> Spec | None:
    """None, a bare name or a Spec -> Spec (or None); checks the name exists."""
    return None if reg is None else named_spec(reg, REGULARIZERS, "regularizer")


def apply_regularizer(b: Builder, spec: Spec | str, w: int) -> int:
    spec = as_spec(spec)
    return REGULARIZERS[spec.name](b, w, **spec.kw)
