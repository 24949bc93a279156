"""Turn a Lark syntax exception into one readable, positioned diagnostic: what was found,
what would have fitted (grouped into phrases, never Lark's terminal names), and which
bracket or block is still open."""
from __future__ import annotations

from lark import Token
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from nncompiler.errors import CompileError, Diagnostic, Loc
from nncompiler.frontend.grammar import (BLOCK_KEYWORDS, LITERAL_WORDS, MODEL_KEYWORDS, TRAIN_KEYWORDS,
                                         lark_parser, token_loc)

_LOOKALIKES = {
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": "*", "\u00b7": "*", "\u2219": "*",
    "\u00f7": "/", "\u2264": "<=", "\u2265": ">=", "\u2260": "!=", "\u2026": "...",
    "\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u00a0": "a space",
    "\uff08": "(", "\uff09": ")", "\uff0c": ",", "\uff1a": ":", "\uff1d": "=",
}

_TERMINAL_PHRASES = {
    "$END": "end of file",
    "_NL": "end of line",
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "NUMBER_ARRAY": "a list of numbers",
}
_EXPRESSION_STARTS = {"NAME", "NUMBER", "NUMBER_ARRAY", "STRING", "TRUE", "FALSE", "(", "[", "-", "+"}
_OPERATORS = {"+", "-", "*", "/", "@", "**", "<", "<=", ">", ">=", "==", "!=", "(", "[", "."}
_STATEMENT_KEYWORDS = {w.upper() for w in MODEL_KEYWORDS + TRAIN_KEYWORDS}
_HINTED_KEYWORDS = {w.upper() for w in MODEL_KEYWORDS + LITERAL_WORDS}
_MAX_LISTED = 6


def syntax_error(e: UnexpectedInput, source: str, filename: str) -> CompileError:
    if isinstance(e, UnexpectedCharacters):
        diag = _bad_character(e, source, filename)
    elif isinstance(e, UnexpectedToken):
        diag = _bad_token(e, source, filename)
    else:  # UnexpectedEOF: only Earley raises it, but be safe
        line, col = _end_position(source)
        diag = Diagnostic(Loc(filename, line, col), "unexpected end of file")
    return CompileError(diag)


def _bad_character(e: UnexpectedCharacters, source: str, filename: str) -> Diagnostic:
    ch = e.char
    line_end = source.find("\n", e.pos_in_stream)
    line_end = len(source) if line_end < 0 else line_end
    if ch in "\"'":
        end_col = e.column + (line_end - e.pos_in_stream)
        return Diagnostic(Loc(filename, e.line, e.column, end_col), "unterminated string (strings end on the same line)")
    shown = ch if ch.isprintable() and not ch.isspace() else repr(ch)[1:-1]
    message = f"unexpected character '{shown}'"
    if not ch.isascii():
        message += f" (U+{ord(ch):04X})"
        if ch in _LOOKALIKES:
            message += f"; did you mean {_quote_or_phrase(_LOOKALIKES[ch])}?"
    return Diagnostic(Loc(filename, e.line, e.column, e.column + 1), message)


def _quote_or_phrase(text: str) -> str:
    return text if " " in text else f"'{text}'"


def _bad_token(e: UnexpectedToken, source: str, filename: str) -> Diagnostic:
    tok = e.token
    state = e.interactive_parser.parser_state if e.interactive_parser else e.state
    stack = list(getattr(state, "value_stack", []) or [])
    expected = _accepted_terminals(e)
    notes = []

    if tok.type == "$END":
        line, col = _end_position(source)
        loc = Loc(filename, line, col)
        # A missing '}' is by far the likeliest cause; the statements that
        # could also come first are not worth listing.
        phrases = ["'}'"] if "}" in {_terminal_key(t) for t in expected} else _expected_phrases(expected)
        message = "unexpected end of file" + (f": expected {_join(phrases)}" if phrases else "")
        opener = _innermost_opener(stack)
        if opener is not None:
            notes.append(f"{_describe_opener(opener, stack)} at {opener.line}:{opener.column} is not closed")
        return Diagnostic(loc, message, notes=notes)

    previous = stack[-1] if stack else None
    if tok.value == "=" and isinstance(previous, Token) and previous.type in _HINTED_KEYWORDS:
        loc = token_loc(previous, filename)
        return Diagnostic(loc, f"'{previous.value}' is a reserved word and cannot be used as a name here")

    header = _block_header_inside_block(tok, previous, stack, source)
    if header is not None:
        opener = _innermost_opener(stack)
        notes.append(f"{_describe_opener(opener, stack)} at {opener.line}:{opener.column} is not closed")
        return Diagnostic(token_loc(header, filename), f"expected '}}' before '{header.value}'", notes=notes)

    loc = token_loc(tok, filename)
    found = _describe_token(tok)
    phrases = _expected_phrases(expected)
    message = f"expected {_join(phrases)}, found {found}" if phrases else f"unexpected {found}"
    opener = _innermost_opener(stack)
    if opener is not None and opener.value != "{" and opener.line < tok.line:
        notes.append(f"'{opener.value}' at {opener.line}:{opener.column} is not closed")
    return Diagnostic(loc, message, notes=notes)


def _block_header_inside_block(tok: Token, previous, stack, source: str) -> Token | None:
    """The `model`/`graph`/`train` word that starts a new block while one is still open, if any.

    Inside a model block `train T {` lexes as a binding's NAME and fails at `T`;
    inside a train block `model M {` fails at `model` itself."""
    opener = _innermost_opener(stack)
    if opener is None or opener.value != "{":
        return None
    for candidate in (tok, previous):
        if (
            isinstance(candidate, Token)
            and candidate.value in BLOCK_KEYWORDS
            and candidate.start_pos is not None
            and source[source.rfind("\n", 0, candidate.start_pos) + 1 : candidate.start_pos].strip() == ""
        ):
            return candidate
    return None


def _accepted_terminals(e: UnexpectedToken) -> set[str]:
    """The terminals the parser would really have taken at the error.

    e.expected can be too wide: LALR state merging and the contextual lexer's
    fallback both add terminals that would fail a step later."""
    if e.interactive_parser is not None:
        try:
            return set(e.interactive_parser.accepts())
        except LarkError:
            pass
    return set(e.expected or ())


def _terminal_key(name: str) -> str:
    """A terminal's identity for grouping: its literal text, or its name for regexes."""
    if name in _TERMINAL_PHRASES or name in {"TRUE", "FALSE"} or name in _STATEMENT_KEYWORDS:
        return name
    try:
        pattern = lark_parser().get_terminal(name).pattern
    except KeyError:
        return name
    return pattern.value if pattern.type == "str" else name


def _phrase(key: str) -> str:
    if key in _TERMINAL_PHRASES:
        return _TERMINAL_PHRASES[key]
    if key.isupper() and key.isalpha():  # a keyword terminal such as LOSS
        return f"'{key.lower()}'"
    if key.startswith("__") or key.isupper():  # never show Lark's internal names
        return "a token"
    return f"'{key}'"


def _expected_phrases(expected: set[str]) -> list[str]:
    """Readable, grouped descriptions of the expected terminals, or [] if too many to help."""
    keys = {_terminal_key(t) for t in expected}
    phrases: list[str] = []
    if {"model", "graph", "train"} <= keys:
        # Between blocks: a newline or end of file is never the fix worth suggesting.
        keys -= {"model", "graph", "train", "_NL", "$END"}
        phrases.append("a block ('model', 'graph' or 'train')")
    if len(keys & _STATEMENT_KEYWORDS) >= 3:  # a NAME here starts a binding
        phrases.append("a statement")
        keys -= _STATEMENT_KEYWORDS | {"NAME"}
    if {"NAME", "NUMBER", "("} <= keys:
        phrases.append("an expression")
        keys -= _EXPRESSION_STARTS
    if "NAME" not in keys and len(keys & _OPERATORS) >= 3:
        keys -= _OPERATORS
        if not keys:  # only an operator fits: say so, otherwise the rest is the useful part
            phrases.append("an operator")
    if len(keys) > 1:
        keys.discard("$END")
    phrases += sorted((_phrase(k) for k in keys), key=_phrase_rank)
    return phrases if 0 < len(phrases) <= _MAX_LISTED else []


def _phrase_rank(phrase: str) -> tuple[int, str]:
    order = {"end of line": 2, "end of file": 3}
    return (order.get(phrase, 1 if phrase.startswith("'") else 0), phrase)


def _join(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " or " + phrases[-1]


def _describe_token(tok: Token) -> str:
    if tok.type in ("_NL", "$END", "NUMBER_ARRAY"):
        return _TERMINAL_PHRASES[tok.type]
    text = str(tok.value)
    if len(text) > 30:
        text = text[:27] + "..."
    return text if tok.type == "STRING" else f"'{text}'"


def _innermost_opener(stack) -> Token | None:
    """The last bracket or brace still open on the parser's stack (completed pairs are reduced away)."""
    for item in reversed(stack):
        if isinstance(item, Token) and item.type != "STRING" and item.value in ("(", "[", "{"):
            return item
    return None


def _describe_opener(opener: Token, stack) -> str:
    if opener.value != "{":
        return f"'{opener.value}'"
    # The block header is `kind NAME {`: find the name just before the brace.
    index = max(i for i, item in enumerate(stack) if item is opener)
    names = [item for item in stack[:index] if isinstance(item, Token) and item.type == "NAME"]
    return f"the '{{' of block '{names[-1].value}'" if names else "'{'"


def _end_position(source: str) -> tuple[int, int]:
    """Line and column just after the last non-blank character (where a missing '}' belongs)."""
    text = source.rstrip()
    if not text:
        return 1, 1
    line = text.count("\n") + 1
    col = len(text) - (text.rfind("\n") + 1) + 1
    return line, col
