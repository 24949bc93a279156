"""Front end: .nn source text to a syntax tree (`parse`) and its node types (`ast`)."""
from nncompiler.frontend import ast
from nncompiler.frontend.parse import RESERVED_WORDS, parse

__all__ = ["ast", "parse", "RESERVED_WORDS"]
