"""The one way text from a user reaches generated source.

Generated Python, Triton and MLIR carry the `.nn` file name and positions in
comments and `loc(...)` attributes, so a reader can map code back to the model.
A file name is data an attacker may choose: Python ends a line at `\\r` (and
`linecache` at `\\u2028`), so `m\\r__import__("os").system("id")\\r#.nn` pasted
into a comment would become a statement. Every piece of user text therefore goes
through `quote`: only printable characters survive, everything else (control
characters, line and paragraph separators, bidi overrides) becomes an escape, and
the result is a double-quoted literal that is valid in Python and in MLIR.
Identifiers are mangled elsewhere (`\\W` -> `_`); this module is for everything else.
"""
from __future__ import annotations

import re

# Long names are shortened: a comment is for a reader, and a 100 kB file name
# would bloat every line of the generated source.
LIMIT = 200


def _escape_char(ch: str, dialect: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch == '"':
        return '\\"'
    if ch.isprintable():
        return ch
    if dialect == "mlir":  # MLIR strings know only \\, \", \n, \t and two-hex-digit bytes
        return "".join(f"\\{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def quote(text, dialect: str = "python", limit: int = LIMIT) -> str:
    """`text` as a one-line double-quoted string literal of printable characters only.
    `dialect` is "python" (\\xNN / \\uNNNN escapes) or "mlir" (\\NN byte escapes)."""
    if dialect not in ("python", "mlir"):
        raise ValueError(f"unknown dialect {dialect!r}")
    text = str(text)
    if len(text) > limit:
        text = text[: limit // 2] + "..." + text[-(limit // 2):]
    return '"' + "".join(_escape_char(ch, dialect) for ch in text) + '"'


# A file name of these characters reads as itself in a Python comment; anything else is quoted.
_PLAIN = re.compile(r"[\w./@+<>-]{1,200}", re.ASCII)


def loc_text(loc, dialect: str = "python") -> str:
    """A source position as `file:line:col`; "" for none. In Python comments a plain name
    (letters, digits, `_./@+<>-`, as in `<string>`) stays bare for the reader and any other
    is quoted; MLIR's `loc(...)` always takes a string literal. Line and column are forced
    to integers."""
    if loc is None:
        return ""
    name = loc.file if dialect == "python" and _PLAIN.fullmatch(str(loc.file)) else quote(loc.file, dialect)
    return f"{name}:{int(loc.line)}:{int(loc.col)}"
