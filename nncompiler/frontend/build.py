"""Lark's parse tree to the frozen nodes of `nncompiler.frontend.ast`, with the errors an
LALR grammar cannot express (reserved names, bad numbers, duplicate keywords, chained
comparisons, nesting deeper than MAX_NESTING)."""
from __future__ import annotations

import gc
import re

from lark import Token, Tree

from nncompiler.errors import CompileError, Diagnostic, Loc
from nncompiler.frontend import ast
from nncompiler.frontend.grammar import LITERAL_WORDS, token_loc

# Deeper expressions are rejected: later stages walk the tree recursively, and
# Python's own parser draws the line at a similar depth.
MAX_NESTING = 200

_NUMBER_RE = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
_INT_SETTINGS = {"epochs", "batch", "seed"}
# The pieces of a NUMBER_ARRAY token that matter: brackets, signed numbers and
# newlines (commas and blanks are skipped by finditer).
_ARRAY_PIECE = re.compile(r"(?P<open>\[)|(?P<close>\])|(?P<num>[+-]?[0-9.][0-9.eE+-]*)|(?P<nl>\n)")
_INF = float("inf")


class AstBuilder:
    """Turns Lark's tree into AST nodes, recursively but with a depth limit."""

    def __init__(self, filename: str):
        self.file = filename

    # ---------------------------------------------------------------- locations and errors

    def tok_loc(self, tok: Token) -> Loc:
        return token_loc(tok, self.file)

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
        if tok.value in LITERAL_WORDS:
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
