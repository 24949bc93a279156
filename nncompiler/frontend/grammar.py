"""The .nn grammar as a Lark LALR parser, with the keyword lists the grammar and its
diagnostics share, the post-lexer that decides which newlines end a statement (see
dsl/nn.lark), and the location of a token."""
from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark, Token

from nncompiler.errors import Loc

# Lark's pure-Python LALR parser takes roughly 50 microseconds a token, so a
# runaway file is cut off with a diagnostic instead of parsing for minutes.
# Inline numeric arrays are one token each (see NUMBER_ARRAY in nn.lark), so
# the limit only bites on programs far beyond anything written by hand.
MAX_TOKENS = 100_000

# Words that are keywords somewhere (see dsl/reference.md for where exactly).
BLOCK_KEYWORDS = ("model", "graph", "train")
MODEL_KEYWORDS = ("input", "target", "param", "output", "loss", "optimizer", "metrics")
TRAIN_KEYWORDS = ("data", "epochs", "batch", "validate", "metrics", "seed", "shuffle", "lr", "early_stopping",
                  "reduce_lr_on_plateau", "precision")
RESERVED_WORDS = tuple(dict.fromkeys(BLOCK_KEYWORDS + MODEL_KEYWORDS + TRAIN_KEYWORDS + ("all", "true", "false")))

# Words that can never name anything: they are literals wherever an
# expression is allowed, so a binding called `true` could never be read.
LITERAL_WORDS = ("true", "false")


def _grammar_text() -> str:
    """nn.lark from the installed package data, else from the source tree."""
    try:
        from importlib.resources import files

        return (files("nncompiler.dsl") / "nn.lark").read_text(encoding="utf-8")
    except (ImportError, ModuleNotFoundError, FileNotFoundError, OSError, TypeError):
        return (Path(__file__).resolve().parents[2] / "dsl" / "nn.lark").read_text(encoding="utf-8")


# Token values after which a newline cannot end a statement, so it is dropped:
# the expression or list obviously continues on the next line.  `=` and `:`
# are deliberately absent: `h =` followed by a newline is far more often an
# unfinished line than a wrapped one, and gets a clearer error that way.
_CONTINUES_LINE = frozenset("{ ( [ , + - * / @ ** < <= > >= == !=".split())
_OPENERS = frozenset("([")
_CLOSERS = frozenset(")]")


class TooManyTokens(Exception):
    def __init__(self, token: Token):
        super().__init__(token)
        self.token = token


class _Newlines:
    """Post-lexer: keep only the newlines that can end a statement.

    Dropped: newlines inside ( ) or [ ], newlines after a token that cannot
    end a statement (`_CONTINUES_LINE`), leading newlines and repeats.  Braces
    reset the bracket depth so an unclosed `(` cannot swallow a whole block.
    It also enforces MAX_TOKENS.
    """

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        previous = None
        count = 0
        for tok in stream:
            if tok.type == "_NL":
                if depth or previous is None or previous.type == "_NL" or _continues(previous):
                    continue
            elif tok.type != "STRING":
                if tok.value in _OPENERS:
                    depth += 1
                elif tok.value in _CLOSERS:
                    depth = max(0, depth - 1)
                elif tok.value in ("{", "}"):
                    depth = 0
            count += 1
            if count > MAX_TOKENS:
                raise TooManyTokens(tok)
            previous = tok
            yield tok


def _continues(tok: Token) -> bool:
    return tok.type != "STRING" and tok.value in _CONTINUES_LINE


@functools.lru_cache(maxsize=None)
def lark_parser() -> Lark:
    return Lark(
        _grammar_text(),
        parser="lalr",
        lexer="contextual",
        postlex=_Newlines(),
        propagate_positions=True,
        maybe_placeholders=False,
    )


def token_loc(tok: Token, filename: str) -> Loc:
    if tok.type == "NUMBER_ARRAY":  # may span many lines: point at its '['
        return Loc(filename, tok.line, tok.column, tok.column + 1)
    end_col = tok.end_column if tok.end_line == tok.line and tok.type != "_NL" else None
    return Loc(filename, tok.line, tok.column, end_col)
