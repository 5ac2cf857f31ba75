"""Pass 1, parse: .arch text -> typed AST (archdsl.lang.syntax), or diagnostics.

The grammar lives in grammars/archdsl.lark. Parsing uses lark's LALR(1) parser with a
small post-lexer that merges runs of statement separators and ignores newlines inside
parentheses. The Transformer only builds nodes; all checking happens in later passes.
"""
from __future__ import annotations

import dataclasses

import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path

import lark
from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken, VisitError

from . import syntax as ast
from ..diagnostics import Diagnostic, Label, SpecError
from ..source import Source, Span

MAX_NESTING = 1000  # parentheses, braces and operators nested deeper than this are refused


def grammar_text() -> str:
    """The grammar, from the installed package or else from the source checkout."""
    try:
        return resources.files("archdsl.grammars").joinpath("archdsl.lark").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return (Path(__file__).resolve().parents[2] / "grammars" / "archdsl.lark").read_text()


class _Separators(lark.lark.PostLex):
    """Merge consecutive separators and drop those inside (...) so calls may wrap."""

    always_accept = ("_SEP",)

    def process(self, stream):
        depth, after_separator = 0, False
        for token in stream:
            if token.type == "_SEP":
                if depth == 0 and not after_separator:
                    after_separator = True
                    yield token
                continue
            if token.type == "LPAR":
                depth += 1
            elif token.type == "RPAR":
                depth = max(0, depth - 1)
            after_separator = False
            yield token


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    return lark.Lark(grammar_text(), parser="lalr", lexer="contextual", start=["start", "expr"],
                     cache=True,  # the grammar analysis, kept in a temporary file: 3x faster start
                     propagate_positions=True, postlex=_Separators(), maybe_placeholders=True)


@lru_cache(maxsize=1)
def keywords() -> frozenset[str]:
    """The words of the language, read from the grammar: the lexers, the editor's
    completion and the tests take them from here.

    >>> sorted(keywords())[:6]
    ['and', 'as', 'aux', 'block', 'buffer', 'declare']
    """
    return frozenset(t.pattern.value for t in _parser().terminals
                     if t.pattern.type == "str" and t.pattern.value.isalpha())


def parse(source: Source) -> ast.Module:
    """Parse one file. Raises SpecError with a syntax diagnostic on bad input.

    >>> module = parse(Source("t.arch", "network t { input x: 3 x 8 x 8; relu }"))
    >>> module.networks[0].name
    't'
    """
    parser = _parser()
    limit = sys.getrecursionlimit()
    try:
        tree = parser.parse(source.text, start="start")
        sys.setrecursionlimit(max(limit, 10_000))
        _check_limits(tree, source)
        return _ToAst(source).transform(tree)
    except UnexpectedCharacters as error:
        raise SpecError(_bad_character(source, error)) from None
    except UnexpectedEOF as error:
        raise SpecError(_unexpected_end(source, error.expected)) from None
    except UnexpectedToken as error:
        if error.token.type == "$END":
            raise SpecError(_unexpected_end(source, error.expected)) from None
        raise SpecError(_unexpected_token(source, error)) from None
    except VisitError as error:  # a bug in the Transformer, never the user's input
        raise error.orig_exc from None
    finally:
        sys.setrecursionlimit(limit)


def _check_limits(tree, source: Source) -> None:
    """Refuse input too deep to walk, and numbers too long to be sizes."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            span = Span(source, node.meta.start_pos, node.meta.end_pos)
            raise SpecError(Diagnostic(
                "E0103", f"nesting deeper than {MAX_NESTING} levels", Label(span, "too deep"),
                help="split the expression or body into named parts (`let`, blocks)"))
        for child in node.children:
            if isinstance(child, lark.Tree):
                stack.append((child, depth + 1))
            elif isinstance(child, Token) and child.type in ("INT", "FLOAT") and len(child) > 40:
                span = Span(source, child.start_pos, child.end_pos)
                raise SpecError(Diagnostic("E0212", "number too large", Label(span, f"{len(child)} digits"),
                                           help="sizes and settings are at most a few digits long"))


# ---- syntax errors -----------------------------------------------------------------

_READABLE = {"NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
             "_SEP": "a new line", "$END": "end of file", "COMPARE": "a comparison",
             "ADD_OP": "`+` or `-`", "MUL_OP": "`*`, `/`, `//` or `%`"}


def _readable(terminal: str) -> str:
    if terminal in _READABLE:
        return _READABLE[terminal]
    try:
        pattern = _parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return f"`{pattern.value}`" if pattern.type == "str" else terminal.lower()


def _expected(expected) -> str:
    names = sorted({_readable(t) for t in expected})
    if len(names) > 8:
        return ""
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _bad_character(source: Source, error: UnexpectedCharacters) -> Diagnostic:
    char = source.text[error.pos_in_stream]
    span = Span(source, error.pos_in_stream, error.pos_in_stream + 1)
    shown = repr(char)[1:-1] if not char.isprintable() else char
    help_text = None
    if char == '"':
        help_text = "strings end on the line they start: close it with `\"`"
    elif char in "[]":
        help_text = "write pairs with parentheses: `(3, 5)`"
    return Diagnostic("E0101", f"unexpected character `{shown}`", Label(span, "not valid here"),
                      help=help_text)


def _unexpected_end(source: Source, expected) -> Diagnostic:
    end = len(source.text.rstrip())
    span = Span(source, max(0, end - 1), max(1, end))
    wanted = _expected(expected)
    unclosed = [(c, at) for c, at in _open_brackets(source.text, len(source.text)) if c == "{"]
    secondary = tuple(Label(Span(source, at, at + 1), "this `{` is never closed")
                      for _, at in unclosed[-3:])
    return Diagnostic("E0102", "unexpected end of file",
                      Label(span, f"expected {wanted} after this" if wanted else "file ends here"),
                      secondary,
                      help="every `{` needs a matching `}`" if "RBRACE" in expected else None)


def _unexpected_token(source: Source, error: UnexpectedToken) -> Diagnostic:
    token = error.token
    span = Span(source, token.start_pos, max(token.end_pos, token.start_pos + 1))
    shown = "end of line" if token.type == "_SEP" else f"`{token.value}`"
    wanted = _expected(error.expected)
    label = f"expected {wanted}" if wanted else "not expected here"
    help_text = _syntax_help(token, error.expected)
    secondary = ()
    parens = [at for c, at in _open_brackets(source.text, token.start_pos) if c == "("]
    if parens and "\n" in source.text[parens[-1]:token.start_pos]:
        # newlines inside (...) are ignored, so a missing `)` shows up on a later line
        secondary = (Label(Span(source, parens[-1], parens[-1] + 1), "this `(` is not closed"),)
        help_text = "close the `(` with `)` before the line ends"
    elif token.type == "_SEP" and not help_text:
        help_text = "a statement or definition ends at the end of its line; to go on, end " \
                    "the line with `\\` or wrap the expression in parentheses"
    return Diagnostic("E0100", f"unexpected {shown}", Label(span, label), secondary,
                      help=help_text)


def _open_brackets(text: str, end: int) -> list[tuple[str, int]]:
    """The `{` and `(` still open at offset `end`, outermost first, skipping comments and
    strings."""
    stack: list[tuple[str, int]] = []
    closing = {"}": "{", ")": "("}
    i = 0
    while i < end:
        char = text[i]
        if char == "#":
            newline = text.find("\n", i)
            i = end if newline < 0 else newline
            continue
        if char == '"':
            close = text.find('"', i + 1)
            newline = text.find("\n", i + 1)
            i = end if close < 0 or (0 <= newline < close) else close + 1
            continue
        if char in "{(":
            stack.append((char, i))
        elif char in closing:
            while stack and stack[-1][0] != closing[char]:
                stack.pop()  # a `)` also closes a `{` left open inside its parentheses
            if stack:
                stack.pop()
        i += 1
    return stack


def _syntax_help(token: Token, expected) -> str | None:
    if token.type in ("INT", "NAME", "FLOAT") and "COMMA" in expected:
        return "separate arguments with `,`"
    if token.type == "EQUAL" and ("COMPARE" in expected or "LBRACE" in expected):
        return "compare with `==`; `=` names a keyword argument or a `let`"
    if token.type == "LBRACE" and "RBRACE" not in expected:
        return "a body `{ ... }` follows `repeat N`, `residual`, `skip`, `aux`, or a merge op"
    if token.type == "LSQB":  # `[` only indexes a tuple: `widths[i]`
        return "write pairs and tuples with parentheses: `(3, 5)`; `t[i]` reads an item"
    if token.type == "COLON" and "_SEP" in expected:
        return "labels name a single layer, block or group: `name: conv(64, 3)`"
    return None


# ---- tree -> AST ---------------------------------------------------------------------


def _present(items):
    return tuple(item for item in items if item is not None)


@v_args(meta=True)
class _ToAst(Transformer):
    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    def span(self, meta) -> Span:
        return Span(self.source, meta.start_pos, meta.end_pos)

    def token_span(self, token: Token) -> Span:
        return Span(self.source, token.start_pos, token.end_pos)

    # definitions
    def start(self, meta, children):
        return ast.Module(self.source, tuple(children))

    def import_file(self, meta, children):
        return ast.ImportFile(children[0][1:-1], self.span(meta))

    def import_std(self, meta, children):
        return ast.ImportStd(str(children[0]), self.span(meta))

    def _definition(self, cls, meta, children):
        name, *rest = children
        params = rest[0] if len(rest) == 2 else ()
        return cls(str(name), params, rest[-1], self.span(meta), self.token_span(name))

    def block_def(self, meta, children):
        captions = [c for c in children if isinstance(c, ast.Caption)]
        block = self._definition(ast.BlockDef, meta, [c for c in children
                                                      if not isinstance(c, ast.Caption)])
        return dataclasses.replace(block, caption=captions[0].text) if captions else block

    def caption(self, meta, children):
        token = children[0]
        return ast.Caption(str(token)[1:-1], self.template(token), self.token_span(token))

    def network_def(self, meta, children):
        captions = [c for c in children if isinstance(c, ast.Caption)]
        network = self._definition(ast.NetworkDef, meta, [c for c in children
                                                          if not isinstance(c, ast.Caption)])
        return dataclasses.replace(network, caption=captions[0]) if captions else network

    def func_def(self, meta, children):
        name, params, value = children
        return ast.FuncDef(str(name), params, value, self.span(meta), self.token_span(name))

    def params(self, meta, children):
        return _present(children)

    def param(self, meta, children):
        return ast.Param(str(children[0]), children[1], self.span(meta))

    def body(self, meta, children):
        return ast.Body(_present(children), self.span(meta))

    # statements
    def labelled(self, meta, children):
        label, *caption, action = children
        span = self.token_span(label)
        template = self.template(label) if label.type == "STRING" else None
        text = str(label)[1:-1] if template else str(label)
        return ast.Labelled(text, action, self.span(meta), span, template,
                            caption[0] if caption else None)

    def template(self, token: Token) -> ast.Template:
        """A computed label or a caption: the text between braces is parsed as an expression, in place
        (padded with spaces, so that its spans point into the file)."""
        parts, text, start = [], str(token), token.start_pos
        at = 1
        while at < len(text) - 1:
            opening = text.find("{", at)
            if opening < 0:
                opening = len(text) - 1
            if opening > at:
                parts.append(ast.Literal(text[at:opening], Span(self.source, start + at,
                                                                 start + opening)))
            if opening == len(text) - 1:
                break
            closing = text.find("}", opening)
            if closing < 0 or closing == opening + 1:
                raise SpecError(Diagnostic(
                    "E0100", "a computed label or caption needs an expression between `{` and `}`",
                    Label(Span(self.source, start + opening, start + len(text) - 1),
                          "unclosed or empty"),
                    help='write the expression between braces: `"layer{i + 1}": ...`'))
            padded = " " * (start + opening + 1) + text[opening + 1:closing]
            try:
                tree = _parser().parse(padded, start="expr")
            except (UnexpectedCharacters, UnexpectedToken, UnexpectedEOF) as error:
                raise SpecError(Diagnostic(
                    "E0100", "the expression of a computed label or caption does not parse",
                    Label(Span(self.source, start + opening + 1, start + closing),
                          "not an expression"),
                    help='labels compute from expressions: `"layer{i + 1}": ...`')) from error
            parts.append(_ToAst(self.source).transform(tree))
            at = closing + 1
        return ast.Template(tuple(parts), self.token_span(token))

    def call(self, meta, children):
        name = children[0]
        args = children[1] if len(children) > 1 else ()
        return ast.Call(str(name), args, self.span(meta), self.token_span(name))

    def args(self, meta, children):
        return _present(children)

    def keyword(self, meta, children):
        return ast.Keyword(str(children[0]), children[1], self.span(meta))

    def repeat(self, meta, children):
        count, index, body = children
        return ast.Repeat(count, None if index is None else str(index), body, self.span(meta))

    def residual(self, meta, children):
        when, body, *skip = children
        return ast.Residual(body, skip[0] if skip else None, self.span(meta), when)

    def skip(self, meta, children):
        label, when, body = children
        return ast.Skip(None if label is None else str(label), when, body, self.span(meta))

    def branches(self, meta, children):
        op, *branches = children
        return ast.Branches(str(op), _present(branches), self.span(meta), self.token_span(op))

    def branch(self, meta, children):
        label, body = children
        return ast.Branch(None if label is None else str(label), body, self.span(meta))

    def group(self, meta, children):
        return ast.Group(children[0], self.span(meta))

    def aux(self, meta, children):
        args = children[0] if len(children) > 1 else ()
        return ast.Aux(args, children[-1], self.span(meta))

    def if_stmt(self, meta, children):
        return ast.IfStmt(children[0], children[1], children[2], self.span(meta))

    def let(self, meta, children):
        return ast.Let(str(children[0]), children[1], self.span(meta))

    def input_decl(self, meta, children):
        name, dims, layout = children
        return ast.InputDecl(str(name), dims, self.span(meta), layout)

    def param_decl(self, meta, children):
        name, dims, layout, init = children
        return ast.ParamDecl(str(name), dims, layout, init, self.span(meta), self.token_span(name))

    def buffer_decl(self, meta, children):
        name, dims, layout, init = children
        return ast.BufferDecl(str(name), dims, layout, init, self.span(meta),
                              self.token_span(name))

    def dims(self, meta, children):
        return tuple(children)

    def layout(self, meta, children):
        return ast.Layout(str(children[0]), self.span(meta))

    def output(self, meta, children):
        return ast.Output(str(children[0]), self.span(meta))

    def declare(self, meta, children):
        return ast.Declare(tuple(map(str, children)), tuple(map(self.token_span, children)),
                           self.span(meta))

    def tie(self, meta, children):
        (target, target_span), (source, source_span) = children
        return ast.Tie(target, source, target_span, source_span, self.span(meta))

    def push(self, meta, children):
        return ast.Push(str(children[0]), self.token_span(children[0]), self.span(meta))

    def tensor_path(self, meta, children):
        return ".".join(map(str, children)), self.span(meta)

    def from_value(self, meta, children):
        return ast.FromValue(str(children[0]), self.span(meta))

    def from_input(self, meta, children):  # `from in`: back to the block's input
        return ast.FromValue("in", self.span(meta))

    # expressions
    def conditional(self, meta, children):
        return ast.Conditional(*children, self.span(meta))

    def or_op(self, meta, children):
        return ast.Binary("or", children[0], children[1], self.span(meta))

    def and_op(self, meta, children):
        return ast.Binary("and", children[0], children[1], self.span(meta))

    def not_op(self, meta, children):
        return ast.Unary("not", children[0], self.span(meta))

    def compare(self, meta, children):
        left, op, right = children
        return ast.Binary(str(op), left, right, self.span(meta))

    binary = compare

    def negate(self, meta, children):
        return ast.Unary("-", children[0], self.span(meta))

    def index(self, meta, children):
        return ast.Index(children[0], children[1], self.span(meta))

    def attribute(self, meta, children):
        return ast.Attribute(children[0], str(children[1]), self.span(meta))

    def int_literal(self, meta, children):
        return ast.Literal(int(children[0]), self.span(meta))

    def float_literal(self, meta, children):
        return ast.Literal(float(children[0]), self.span(meta))

    def true_literal(self, meta, children):
        return ast.Literal(True, self.span(meta))

    def false_literal(self, meta, children):
        return ast.Literal(False, self.span(meta))

    def string_literal(self, meta, children):
        return ast.Literal(str(children[0])[1:-1], self.span(meta))

    def name(self, meta, children):
        return ast.Name(str(children[0]), self.span(meta))

    def func_call(self, meta, children):
        name, args = children
        return ast.FuncCall(str(name), args, self.span(meta), self.token_span(name))

    def input_ref(self, meta, children):
        return ast.InputRef(self.span(meta))

    def tuple_literal(self, meta, children):
        return ast.TupleExpr(tuple(children), self.span(meta))
