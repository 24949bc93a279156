"""Size limits: shapes that cannot be represented, and how many bytes a tensor takes.

* **Representable shapes.** A dimension must be below 2^31 (index arithmetic in
  int32 -- `iota`, `argmax`, `one_hot`, gather indices -- must not wrap) and a
  tensor's element count below 2^63 (numpy's shape products are int64). The IR
  builder calls `check_type` on every node it emits, so a shape computed by
  broadcasting, reshaping or flattening is checked where it is made, and the
  front end reports it at the `.nn` position that made it.

* **Memory.** The memory available is `NNC_MEMORY_LIMIT` if set (bytes, or with
  a unit: `512M`, `2G`, `1.5GiB`), else MemAvailable from /proc/meminfo, else
  the free physical pages from `os.sysconf`; when none can be read, nothing is
  refused. The checks that use it live with what they check: the model's
  state at compile time (frontend/memory.py), one training step's arrays at fit
  time (train/memory.py).
"""
from __future__ import annotations

import math
import os
import re

from ..errors import NNCError, ShapeError
from .shapes import Monomial

MAX_DIM = 2**31 - 1          # int32 index arithmetic
MAX_ELEMENTS = 2**63 - 1     # numpy's int64 shape products
ITEMSIZE = {"f32": 4, "f64": 8, "i32": 4, "i64": 8, "bool": 1}
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20,
          "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}


def check_type(ty) -> None:
    """ShapeError unless every dimension is below 2^31 and the static element count below 2^63."""
    static = 1
    for d in ty.shape:
        coef = d if type(d) is int else Monomial.parse(d).coef   # (called for every node the builder emits)
        if coef > MAX_DIM:
            text = str(d)
            if len(text) > 24:
                text = f"{text[:12]}...{text[-6:]} ({len(text)} {'digits' if text.isdigit() else 'characters'})"
            raise ShapeError(f"dimension {text} is too large (the limit is 2^31 - 1 = {MAX_DIM}, so that "
                             "index arithmetic cannot overflow)")
        static *= coef
    if static > MAX_ELEMENTS:
        raise ShapeError(f"a tensor of shape [{', '.join(str(d) for d in ty.shape)}] has about "
                         f"2^{static.bit_length() - 1} elements, more than 2^63 - 1")


def elements(shape, bindings: dict | None = None) -> int:
    """The element count of `shape` with symbols bound (unbound ones count as 1: a lower bound)."""
    bindings = bindings or {}
    return math.prod(Monomial.parse(d).evaluate(bindings, default=1) for d in shape)


def nbytes(ty, bindings: dict | None = None) -> int:
    return elements(ty.shape, bindings) * ITEMSIZE.get(ty.dtype, 8)


def fmt_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'; huge sizes stay readable ('8.0e+12 TiB')."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            if unit == "bytes":
                return f"{int(n)} bytes"
            return f"{n:.1f} {unit}" if n < 1e6 else f"{n:.1e} {unit}"
        n /= 1024
    return f"{n} TiB"  # pragma: no cover


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise NNCError(f"NNC_MEMORY_LIMIT: expected a size such as 4G, 512M or 1000000000, got '{text}'")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def available_memory() -> int | None:
    """Bytes of memory a model may use (see the module docstring), or None if unknown."""
    limit = os.environ.get("NNC_MEMORY_LIMIT")
    if limit:
        return parse_size(limit)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
