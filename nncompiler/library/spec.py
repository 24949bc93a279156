"""`Spec`: a library function named in a model with its keyword arguments (l2(0.01),
normal(stddev=0.1)). In its own module so that the layer context and the tables
(regularizers, initializers) import it without importing each other."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    """A named library function with keyword arguments, e.g. l2(0.01) or normal(stddev=0.1)."""

    name: str
    kwargs: tuple[tuple[str, object], ...] = ()

    @property
    def kw(self) -> dict:
        return dict(self.kwargs)
