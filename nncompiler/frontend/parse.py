"""Parse .nn source text into the syntax tree of `nncompiler.frontend.ast`.

    program = parse(source, "iris.nn")

Every problem with the text is raised as a `CompileError` carrying one
positioned diagnostic (and the source, so it renders with a caret); Lark's own
exceptions and terminal names never reach the user.

The work is split in three:
  * `_Newlines`, a post-lexer that makes newlines end statements only where a
    statement can end (see dsl/nn.lark);
  * `_syntax_error`, which turns a Lark exception into a readable diagnostic;
  * `_Builder`, which turns Lark's parse tree into frozen AST nodes and reports
    the errors LALR cannot express.
"""
from __future__ import annotations

import functools
import gc
import re
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from nncompiler.errors import CompileError, Diagnostic, Loc
from nncompiler.frontend import ast

__all__ = ["parse", "MAX_NESTING", "MAX_TOKENS", "RESERVED_WORDS"]

# Deeper expressions are rejected: later stages walk the tree recursively, and
# Python's own parser draws the line at a similar depth.
MAX_NESTING = 200

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
_LITERAL_WORDS = ("true", "false")


# --------------------------------------------------------------------------- public entry point


def parse(source: str, filename: str) -> ast.Program:
    """Parse a whole .nn file; raise CompileError with a positioned diagnostic on bad syntax."""
    sources = {filename: source}
    try:
        try:
            tree = _parser().parse(source)
        except UnexpectedInput as e:
            raise _syntax_error(e, source, filename) from None
        except _TooManyTokens as e:
            loc = _token_loc(e.token, filename)
            raise CompileError(
                Diagnostic(
                    loc,
                    f"program is too large (more than {MAX_TOKENS} tokens)",
                    notes=['keep large data in a .csv or .npy file and load it with data "FILE"'],
                ),
                sources,
            ) from None
        except LarkError as e:  # anything else Lark may raise: still no traceback
            raise CompileError(Diagnostic(Loc(filename, 1, 1), f"cannot parse: {e}"), sources) from None
        return _Builder(filename).program(tree)
    except CompileError as e:
        raise e.with_sources(sources) from None
    except RecursionError:
        # The builder limits nesting itself; this is the last line of defence.
        raise CompileError(
            Diagnostic(Loc(filename, 1, 1), f"program is nested too deeply (more than {MAX_NESTING} levels)"),
            sources,
        ) from None


# --------------------------------------------------------------------------- the Lark parser


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


class _TooManyTokens(Exception):
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
                raise _TooManyTokens(tok)
            previous = tok
            yield tok


def _continues(tok: Token) -> bool:
    return tok.type != "STRING" and tok.value in _CONTINUES_LINE


@functools.lru_cache(maxsize=None)
def _parser() -> Lark:
    return Lark(
        _grammar_text(),
        parser="lalr",
        lexer="contextual",
        postlex=_Newlines(),
        propagate_positions=True,
        maybe_placeholders=False,
    )


# --------------------------------------------------------------------------- syntax errors

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
_HINTED_KEYWORDS = {w.upper() for w in MODEL_KEYWORDS + _LITERAL_WORDS}
_MAX_LISTED = 6


def _syntax_error(e: UnexpectedInput, source: str, filename: str) -> CompileError:
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
        loc = _token_loc(previous, filename)
        return Diagnostic(loc, f"'{previous.value}' is a reserved word and cannot be used as a name here")

    header = _block_header_inside_block(tok, previous, stack, source)
    if header is not None:
        opener = _innermost_opener(stack)
        notes.append(f"{_describe_opener(opener, stack)} at {opener.line}:{opener.column} is not closed")
        return Diagnostic(_token_loc(header, filename), f"expected '}}' before '{header.value}'", notes=notes)

    loc = _token_loc(tok, filename)
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
        pattern = _parser().get_terminal(name).pattern
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


def _token_loc(tok: Token, filename: str) -> Loc:
    if tok.type == "NUMBER_ARRAY":  # may span many lines: point at its '['
        return Loc(filename, tok.line, tok.column, tok.column + 1)
    end_col = tok.end_column if tok.end_line == tok.line and tok.type != "_NL" else None
    return Loc(filename, tok.line, tok.column, end_col)


def _end_position(source: str) -> tuple[int, int]:
    """Line and column just after the last non-blank character (where a missing '}' belongs)."""
    text = source.rstrip()
    if not text:
        return 1, 1
    line = text.count("\n") + 1
    col = len(text) - (text.rfind("\n") + 1) + 1
    return line, col


# --------------------------------------------------------------------------- parse tree -> AST

_NUMBER_RE = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
_INT_SETTINGS = {"epochs", "batch", "seed"}
# The pieces of a NUMBER_ARRAY token that matter: brackets, signed numbers and
# newlines (commas and blanks are skipped by finditer).
_ARRAY_PIECE = re.compile(r"(?P<open>\[)|(?P<close>\])|(?P<num>[+-]?[0-9.][0-9.eE+-]*)|(?P<nl>\n)")
_INF = float("inf")


class _Builder:
    """Turns Lark's tree into AST nodes, recursively but with a depth limit."""

    def __init__(self, filename: str):
        self.file = filename

    # ---------------------------------------------------------------- locations and errors

    def tok_loc(self, tok: Token) -> Loc:
        return _token_loc(tok, self.file)

    def tree_loc(self, tree: Tree) -> Loc:
        m = tree.meta
        if getattr(m, "empty", True):
            return Loc(self.file, 1, 1)
        end_col = m.end_column if m.end_line == m.line else None
        return Loc(self.file, m.line, m.column, end_col)

    def loc(self, item) -> Loc:
        return self.tok_loc(item) if isinstance(item, Token) else self.tree_loc(item)

    def error(self, loc: Loc, message: str) -> CompileError:
        return CompileError(Diagnostic(loc, message))

    def check_name(self, tok: Token) -> str:
        if tok.value in _LITERAL_WORDS:
            raise self.error(self.tok_loc(tok), f"'{tok.value}' is a reserved word and cannot be used as a name")
        return str(tok.value)

    # ---------------------------------------------------------------- blocks

    def program(self, tree: Tree) -> ast.Program:
        blocks = []
        for child in tree.children:
            if child.data == "train_block":
                blocks.append(self.train_block(child))
            else:
                blocks.append(self.model_block(child))
        return ast.Program(tuple(blocks), Loc(self.file, 1, 1))

    def model_block(self, tree: Tree) -> ast.ModelBlock:
        name, *stmts = tree.children
        kind = "graph" if tree.data == "graph_block" else "model"
        return ast.ModelBlock(
            kind, str(name.value), self.tok_loc(name), tuple(self.model_stmt(s) for s in stmts), self.tree_loc(tree)
        )

    def train_block(self, tree: Tree) -> ast.TrainBlock:
        name, *stmts = tree.children
        return ast.TrainBlock(str(name.value), self.tok_loc(name), tuple(self.train_stmt(s) for s in stmts), self.tree_loc(tree))

    # ---------------------------------------------------------------- model / graph statements

    def model_stmt(self, tree: Tree):
        return getattr(self, "stmt_" + tree.data)(tree, self.tree_loc(tree))

    def stmt_input_decl(self, tree: Tree, loc: Loc) -> ast.InputDecl:
        role, name, type_tree = tree.children
        return ast.InputDecl(str(role.value), self.check_name(name), self.tok_loc(name), self.type_expr(type_tree), loc)

    def stmt_param_decl(self, tree: Tree, loc: Loc) -> ast.ParamDecl:
        _, name, type_tree, *init = tree.children
        value = self.expr(init[0], 0) if init else None
        return ast.ParamDecl(self.check_name(name), self.tok_loc(name), self.type_expr(type_tree), value, loc)

    def stmt_binding(self, tree: Tree, loc: Loc) -> ast.Binding:
        name, value = tree.children
        return ast.Binding(self.check_name(name), self.expr(value, 0), loc)

    def stmt_output_stmt(self, tree: Tree, loc: Loc) -> ast.Output:
        items = []
        for item in tree.children[1:]:
            if item.data == "named_output":
                name, value = item.children
                items.append((self.check_name(name), self.expr(value, 0)))
            else:
                items.append((None, self.expr(item.children[0], 0)))
        return ast.Output(tuple(items), loc)

    def stmt_loss_stmt(self, tree: Tree, loc: Loc) -> ast.Loss:
        return ast.Loss(self.expr(tree.children[1], 0), loc)

    def stmt_optimizer_stmt(self, tree: Tree, loc: Loc) -> ast.OptimizerStmt:
        value = self.expr(tree.children[1], 0)
        if isinstance(value, ast.Name):  # `optimizer sgd` means sgd() with its defaults
            value = ast.Call(value.id, value.loc, (), (), value.loc)
        if not isinstance(value, ast.Call):
            raise self.error(ast.start_loc(value), "expected an optimizer call such as adam(lr=0.01)")
        return ast.OptimizerStmt(value, loc)

    def stmt_metrics_stmt(self, tree: Tree, loc: Loc) -> ast.MetricsStmt:
        names = tree.children[1:]
        return ast.MetricsStmt(tuple(str(n.value) for n in names), tuple(self.tok_loc(n) for n in names), loc)

    def type_expr(self, tree: Tree) -> ast.TypeExpr:
        dtype, *dim_trees = tree.children
        dims, dim_locs = [], []
        for dim in dim_trees:
            tok = dim.children[0]
            if tok.type == "NUMBER":
                if not re.fullmatch(r"\d+", tok.value):
                    raise self.error(self.tok_loc(tok), f"a dimension must be a non-negative integer or a name, not '{tok.value}'")
                dims.append(int(tok.value))
            else:
                dims.append(str(tok.value))
            dim_locs.append(self.tok_loc(tok))
        return ast.TypeExpr(str(dtype.value), self.tok_loc(dtype), tuple(dims), tuple(dim_locs), self.tree_loc(tree))

    # ---------------------------------------------------------------- train statements

    def train_stmt(self, tree: Tree):
        loc = self.tree_loc(tree)
        if tree.data == "metrics_stmt":
            return self.stmt_metrics_stmt(tree, loc)
        if tree.data == "setting":
            return self.setting(tree, loc)
        if tree.data == "callback_stmt":
            kind, *options = tree.children
            return ast.CallbackStmt(str(kind.value), self.keywords(options, "option"), loc)
        if tree.data == "data_file":
            _, path, *options = tree.children
            return ast.DataStmt(self.string_value(path), self.tok_loc(path), self.keywords(options, "option"), (), loc)
        _, *arrays = tree.children  # data_inline
        return ast.DataStmt(None, None, (), self.keywords(arrays, "array"), loc)

    def setting(self, tree: Tree, loc: Loc) -> ast.Setting:
        key_tok, value_tok = tree.children
        key, value_loc = str(key_tok.value), self.tok_loc(value_tok)
        if value_tok.type == "ALL":
            value = "all"
        elif value_tok.type in ("TRUE", "FALSE"):
            value = value_tok.type == "TRUE"
        elif value_tok.type == "NAME":      # `precision bf16`: the checker knows the names
            value = str(value_tok.value)
        else:
            number = self.number(value_tok)
            if key in _INT_SETTINGS and not number.is_int:
                raise self.error(value_loc, f"'{key}' expects a whole number, not '{value_tok.value}'")
            value = number.value if key in _INT_SETTINGS else float(number.value)
        return ast.Setting(key, value, value_loc, loc)

    def keywords(self, trees, what: str) -> tuple[ast.Keyword, ...]:
        result, seen = [], set()
        for tree in trees:
            kw = self.keyword(tree, 0)
            if kw.name in seen:
                raise self.error(kw.loc, f"duplicate {what} '{kw.name}'")
            seen.add(kw.name)
            result.append(kw)
        return tuple(result)

    def keyword(self, tree: Tree, depth: int) -> ast.Keyword:
        name, value = tree.children
        return ast.Keyword(self.check_name(name), self.expr(value, depth + 1), self.tok_loc(name))

    # ---------------------------------------------------------------- expressions

    def expr(self, tree, depth: int) -> ast.Expr:
        if depth > MAX_NESTING:
            raise self.error(self.loc(tree), f"expression is nested too deeply (more than {MAX_NESTING} levels)")
        return getattr(self, "expr_" + tree.data)(tree, depth + 1)

    def expr_name(self, tree: Tree, depth: int) -> ast.Name:
        tok = tree.children[0]
        return ast.Name(str(tok.value), self.tok_loc(tok))

    def expr_number(self, tree: Tree, depth: int) -> ast.Number:
        return self.number(tree.children[0])

    def number(self, tok: Token) -> ast.Number:
        return self.number_at(str(tok.value), self.tok_loc(tok))

    def number_at(self, text: str, loc: Loc) -> ast.Number:
        if not _NUMBER_RE.match(text):
            raise self.error(loc, f"invalid number '{text}'")
        is_int = text.isdigit()
        try:
            value = int(text) if is_int else float(text)
        except ValueError:  # more digits than int() accepts
            raise self.error(loc, f"number '{text[:20]}...' is too long") from None
        if value == _INF:
            raise self.error(loc, f"number '{text}' is too large")
        if is_int and value > 2**63 - 1:   # no integer dtype holds it, and float() of it may overflow
            shown = f"'{text}'" if len(text) <= 24 else f"'{text[:12]}...{text[-6:]}' ({len(text)} digits)"
            raise self.error(loc, f"integer {shown} is too large (integers must be below 2^63; "
                             "a float is written with a point or an exponent, e.g. 1e20)")
        return ast.Number(value, is_int, loc)

    def expr_number_array(self, tree: Tree, depth: int) -> ast.ListLit:
        """Expand a NUMBER_ARRAY token into the nodes the general list rule would build.

        Written for speed, as it may see millions of numbers: the lexer has
        already checked the syntax, so this only tracks positions and converts,
        with the garbage collector paused (nothing here forms a cycle)."""
        tok = tree.children[0]
        file, base = self.file, tok.start_pos
        line, line_start = tok.line, tok.start_pos - (tok.column - 1)
        stack: list[tuple[int, int, list]] = []  # (line, col, items) of each open '['
        items: list = []
        Number, UnaryOp, ListLit = ast.Number, ast.UnaryOp, ast.ListLit
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for m in _ARRAY_PIECE.finditer(str(tok.value)):
                kind = m.lastgroup
                if kind == "nl":
                    line += 1
                    line_start = base + m.end()
                    continue
                col = base + m.start() - line_start + 1
                if kind == "num":
                    text = m.group()
                    sign = text[0] in "+-"
                    digits = text[1:] if sign else text
                    loc = Loc(file, line, col + sign, col + len(text))
                    # The lexer checked the syntax; only the rare huge number
                    # goes through number_at, for its error message.
                    if digits.isdigit():
                        node = Number(int(digits), True, loc) if len(digits) < 100 else self.number_at(digits, loc)
                    else:
                        value = float(digits)
                        node = Number(value, False, loc) if value != _INF else self.number_at(digits, loc)
                    if sign:
                        node = UnaryOp(text[0], node, Loc(file, line, col, col + 1))
                    items.append(node)
                elif kind == "open":
                    stack.append((line, col, items))
                    items = []
                else:  # close
                    start_line, start_col, outer = stack.pop()
                    end_col = col + 1 if start_line == line else None
                    node = ListLit(tuple(items), Loc(file, start_line, start_col, end_col))
                    items = outer
                    items.append(node)
        finally:
            if gc_was_enabled:
                gc.enable()
        return items[0]

    def expr_string(self, tree: Tree, depth: int) -> ast.String:
        tok = tree.children[0]
        return ast.String(self.string_value(tok), self.tok_loc(tok))

    def string_value(self, tok: Token) -> str:
        # Unknown escapes are kept as written so Windows paths like "C:\data" work.
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), tok.value[1:-1])

    def expr_true(self, tree: Tree, depth: int) -> ast.Bool:
        return ast.Bool(True, self.tok_loc(tree.children[0]))

    def expr_false(self, tree: Tree, depth: int) -> ast.Bool:
        return ast.Bool(False, self.tok_loc(tree.children[0]))

    def expr_list(self, tree: Tree, depth: int) -> ast.ListLit:
        return ast.ListLit(tuple(self.expr(c, depth) for c in tree.children), self.tree_loc(tree))

    def expr_binop(self, tree: Tree, depth: int) -> ast.BinOp:
        left, op, right = tree.children
        return ast.BinOp(str(op.value), self.expr(left, depth), self.expr(right, depth), self.tok_loc(op))

    def expr_compare(self, tree: Tree, depth: int) -> ast.BinOp:
        left, op, right, *rest = tree.children
        if rest:
            raise self.error(
                self.tok_loc(rest[0]), "comparisons cannot be chained; combine them explicitly or add parentheses"
            )
        return ast.BinOp(str(op.value), self.expr(left, depth), self.expr(right, depth), self.tok_loc(op))

    def expr_unary(self, tree: Tree, depth: int) -> ast.UnaryOp:
        op, operand = tree.children
        return ast.UnaryOp(str(op.value), self.expr(operand, depth), self.tok_loc(op))

    def expr_attribute(self, tree: Tree, depth: int) -> ast.Attribute:
        value, attr = tree.children
        return ast.Attribute(self.expr(value, depth), str(attr.value), self.tree_loc(tree))

    def expr_call(self, tree: Tree, depth: int) -> ast.Call:
        callee, *rest = tree.children
        if callee.data != "name":
            self.expr(callee, depth)  # its own errors (`9dense(` is an invalid number) come first
            what = "an attribute" if callee.data == "attribute" else "this expression"
            raise self.error(self.loc(callee), f"cannot call {what}: only functions and layers can be called, by name")
        func_tok = callee.children[0]
        args, kwargs, seen = [], [], set()
        for arg in rest[0].children if rest else ():
            if isinstance(arg, Tree) and arg.data == "keyword":
                kw = self.keyword(arg, depth)
                if kw.name in seen:
                    raise self.error(kw.loc, f"duplicate keyword argument '{kw.name}'")
                seen.add(kw.name)
                kwargs.append(kw)
            elif kwargs:
                raise self.error(self.loc(arg), "positional argument follows keyword argument")
            else:
                args.append(self.expr(arg, depth))
        return ast.Call(str(func_tok.value), self.tok_loc(func_tok), tuple(args), tuple(kwargs), self.tree_loc(tree))

    def expr_index(self, tree: Tree, depth: int) -> ast.Index:
        value, subscripts = tree.children
        items = tuple(self.subscript(s, depth) for s in subscripts.children)
        return ast.Index(self.expr(value, depth), items, self.tree_loc(tree))

    def subscript(self, tree: Tree, depth: int):
        if tree.data == "ellipsis":
            return ast.EllipsisItem(self.tree_loc(tree))
        if tree.data != "slice":
            return self.expr(tree, depth)
        # Children interleave optional expressions with the kept ':' tokens.
        parts: list[list] = [[]]
        for child in tree.children:
            if isinstance(child, Token) and child.value == ":":
                parts.append([])
            else:
                parts[-1].append(self.expr(child, depth))
        start, stop, step = (p[0] if p else None for p in parts + [[]] * (3 - len(parts)))
        return ast.SliceItem(start, stop, step, self.tree_loc(tree))
