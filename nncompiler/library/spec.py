"""`Spec`: a library function named in a model with its keyword arguments (l2(0.01),
normal(stddev=0.1)). In its own module so that the layer context and the tables
(regularizers, initializers) import it without importing each other."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import did_you_mean


@dataclass(frozen=True)
class Spec:
    """A named library function with keyword arguments, e.g. l2(0.01) or normal(stddev=0.1)."""

    name: str
    kwargs: tuple[tuple[str, object], ...] = ()

    @property
    def kw(self) -> dict:
        return dict(self.kwargs)


def named_spec(value, table: dict, kind: str) -> Spec:
    """A bare name or a Spec -> Spec, with the name checked against `table` (the initializers
    or the regularizers; `kind` names which in the errors)."""
    spec = Spec(value) if isinstance(value, str) else value
    if not isinstance(spec, Spec):
        raise TypeError(f"{kind}: expected a name or Spec, got {value!r}")
    if spec.name not in table:
        raise ValueError(f"unknown {kind} '{spec.name}'{did_you_mean(spec.name, table)}")
    return spec
