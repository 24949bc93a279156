"""Parse .nn source text into the syntax tree of `nncompiler.frontend.ast`.

    program = parse(source, "iris.nn")

Every problem with the text is raised as a `CompileError` carrying one
positioned diagnostic (and the source, so it renders with a caret); Lark's own
exceptions and terminal names never reach the user.

The work is split in three modules:
  * `grammar`: the Lark parser and its post-lexer, which makes newlines end
    statements only where a statement can end (see dsl/nn.lark);
  * `syntax_errors`: a Lark exception turned into a readable diagnostic;
  * `build`: Lark's parse tree turned into frozen AST nodes, reporting the errors
    LALR cannot express.
"""
from __future__ import annotations

from lark.exceptions import LarkError, UnexpectedInput

from nncompiler.errors import CompileError, Diagnostic, Loc
from nncompiler.frontend import ast
from nncompiler.frontend.build import MAX_NESTING, AstBuilder
from nncompiler.frontend.grammar import MAX_TOKENS, RESERVED_WORDS, TooManyTokens, lark_parser, token_loc
from nncompiler.frontend.syntax_errors import syntax_error

__all__ = ["parse", "MAX_NESTING", "MAX_TOKENS", "RESERVED_WORDS"]


def parse(source: str, filename: str) -> ast.Program:
    """Parse a whole .nn file; raise CompileError with a positioned diagnostic on bad syntax."""
    sources = {filename: source}
    try:
        try:
            tree = lark_parser().parse(source)
        except UnexpectedInput as e:
            raise syntax_error(e, source, filename) from None
        except TooManyTokens as e:
            loc = token_loc(e.token, filename)
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
        return AstBuilder(filename).program(tree)
    except CompileError as e:
        raise e.with_sources(sources) from None
    except RecursionError:
        # The builder limits nesting itself; this is the last line of defence.
        raise CompileError(
            Diagnostic(Loc(filename, 1, 1), f"program is nested too deeply (more than {MAX_NESTING} levels)"),
            sources,
        ) from None
