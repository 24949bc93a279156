"""Source locations and diagnostics shared by every stage.

A diagnostic is rendered the way C compilers do it:

    iris.nn:5:11: error: unknown layer 'dence'; did you mean 'dense'?
        h   = dence(x, 16, activation=relu)
              ^~~~~

Every error a user can cause is a `CompileError` (for programs) or a
`DataError` (for data files); the CLI prints them and exits 1, never a traceback.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Loc:
    """A position in a source file (1-based line and column), with an optional end."""

    file: str
    line: int
    col: int
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class Diagnostic:
    loc: Loc | None
    message: str
    severity: str = "error"
    notes: list[str] = field(default_factory=list)

    def render(self, sources: dict[str, str] | None = None) -> str:
        where = f"{self.loc}: " if self.loc else ""
        lines = [f"{where}{self.severity}: {self.message}"]
        text = (sources or {}).get(self.loc.file) if self.loc else None
        if text is not None:
            src_lines = text.splitlines()
            if 1 <= self.loc.line <= len(src_lines):
                line = src_lines[self.loc.line - 1].expandtabs(1)
                if len(line) > 200:  # keep huge one-line files readable
                    start = max(0, self.loc.col - 80)
                    line, shift = line[start:start + 160], start
                else:
                    shift = 0
                width = 1
                if self.loc.end_col and self.loc.end_col > self.loc.col:
                    width = self.loc.end_col - self.loc.col
                caret_col = max(0, self.loc.col - 1 - shift)
                lines.append("    " + line)
                lines.append("    " + " " * caret_col + "^" + "~" * (min(width, 80) - 1))
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)


class NNCError(Exception):
    """Base of every error meant for the user rather than for a traceback."""


class CompileError(NNCError):
    """One or more diagnostics about a program (a .nn file or IR text)."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic, sources: dict[str, str] | None = None):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = diagnostics
        self.sources = dict(sources or {})
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render(self.sources) for d in self.diagnostics)

    def __str__(self) -> str:
        return self.render()

    def with_sources(self, sources: dict[str, str]) -> "CompileError":
        merged = dict(sources)
        merged.update(self.sources)
        return CompileError(self.diagnostics, merged)


def error(loc: Loc | None, message: str, *notes: str) -> CompileError:
    return CompileError(Diagnostic(loc, message, notes=list(notes)))


class ShapeError(NNCError):
    """Raised by IR shape/dtype inference; the front end attaches a location."""


class DataError(NNCError):
    """Bad input data: names the file (or array), and the row and column where known."""


def did_you_mean(name: str, candidates) -> str:
    """' ; did you mean 'x'?' for the closest candidate, or ''."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
