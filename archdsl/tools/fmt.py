"""`archdsl fmt`: one canonical layout for .arch text.

The formatter keeps every token, every line break and every comment where the author put
them, and decides only the white space within and in front of lines:

* four spaces of indentation per open `{`; a line inside `(...)` lines up after the
  innermost open `(` (or, when the `(` ends its line, four spaces in from that line);
  a line after a `\\` keeps its extra indentation (at least four spaces);
* one space between tokens, none inside `()`, `[]`, around `.`, before `,` `;` `:` (but
  ` : ` in `a ? b : c`), none after a unary `-`; `{ relu }` and `{}`;
* labels aligned: in a run of statement lines, every action starts in one column, just
  after the longest `label:` (or `label as "caption":`), and unlabelled layers after the
  first label sit in that column too, under the labelled ones, as in the shipped specs.
  A blank line, a comment line, the end of a body, or a statement that opens a body over
  several lines (`features: {`, `residual {`) ends the run;
* extra spaces after `,` and `;` are kept: they line up the columns of a table;
* a comment at the end of a line keeps its column where the code leaves two spaces
  before it; at most one blank line in a row; one newline at the end of the file.

`format_source` checks that the formatted text parses to the same syntax tree as the
original: formatting never changes what a spec means.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..lang.parse import parse
from ..source import Source
from ..lang.syntax import dump

INDENT = 4
_TOKEN = re.compile(r"""
    (?P<space>[ \t\f\r]+)
  | (?P<continuation>\\[ \t\f\r]*\n)
  | (?P<newline>\n)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"[^"\n]*")
  | (?P<number>[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|//|[-+*/%<>=?:,;.(){}\[\]])
""", re.VERBOSE)

_VALUE_KEYWORDS = {"true", "false", "in"}
# after these words an expression starts: a `-` is unary and a `(` opens a group
_OPERATOR_WORDS = {"if", "else", "not", "and", "or", "when", "repeat", "x", "as", "let"}
# statements that are not layers: they keep the body's indentation inside a run
_NON_ACTIONS = {"let", "input", "param", "buffer", "output", "from", "declare", "tie", "push",
                "if", "def", "block", "network", "import"}


@dataclass
class _Line:
    tokens: list[tuple[str, str]]  # (kind, text), no white space, no comment
    gaps: list[int] = field(default_factory=list)  # spaces in front of each token, originally
    comment: str | None = None
    comment_column: int = 0  # where the comment started in the original line
    indent: int = 0  # the original indentation, in columns
    continues: bool = False  # ends with `\`
    # filled in by _classify:
    depth: int = 0  # braces open in front of the line's first token
    parens: list = field(default_factory=list)  # open `(`/`[` in front of the line
    continued: bool = False  # the line before ended with `\`
    label: str | None = None  # as printed: `conv1` or `layer1 as "conv2_x"`
    action_at: int = 2  # the token the action starts at, after the label and its `:`
    action: bool = False
    statement: bool = False  # the first line of a statement
    opens_body: bool = False  # ends with a `{ ... }` body open, outside parentheses
    column: int = 0  # where the action starts, relative to the indentation (alignment)

    @property
    def blank(self) -> bool:
        return not self.tokens and self.comment is None and not self.continues


def format_source(text: str, path: str = "<string>") -> str:
    """The canonical layout of .arch `text`. Raises SpecError (a syntax diagnostic) if it
    does not parse.

    >>> print(format_source("network t {\\n input x: 3 x 8 x 8\\n c:conv(8,3)  # a conv\\n relu\\n}"), end="")
    network t {
        input x: 3 x 8 x 8
        c: conv(8, 3)  # a conv
           relu
    }
    """
    before = parse(Source(path, text))
    lines = _split_lines(text)
    _classify(lines)
    _align(lines)
    formatted = _render(lines)
    after = parse(Source(path, formatted))
    if dump(after) != dump(before):  # a bug in the formatter, never the user's input
        raise RuntimeError(f"formatting {path} would change its meaning")
    return formatted


# ---- lines and tokens --------------------------------------------------------------------


def _split_lines(text: str) -> list[_Line]:
    lines, line, column = [], _Line([]), 0
    at, start, gap = 0, True, 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:  # parse() accepted the text, so this cannot happen
            raise RuntimeError(f"unexpected character {text[at]!r} at offset {at}")
        kind, value = match.lastgroup, match.group()
        if kind == "space":
            gap = len(value.expandtabs(INDENT))
            if start:
                line.indent = gap
        elif kind in ("newline", "continuation"):
            line.continues = kind == "continuation"
            lines.append(line)
            line, start, gap = _Line([]), True, 0
            at = match.end()
            column = 0
            continue
        elif kind == "comment":
            line.comment, line.comment_column = value.rstrip(), column
        else:
            line.tokens.append((kind, value))
            line.gaps.append(gap)
        if kind != "space":
            gap = 0
        start = False
        column += len(value.expandtabs(INDENT)) if kind == "space" else len(value)
        at = match.end()
    lines.append(line)
    return lines


def _classify(lines: list[_Line]) -> None:
    """Each line's nesting at its start, whether it starts a statement, and its label."""
    depth, parens, continued = 0, [], False
    for line in lines:
        line.continued, line.parens = continued, list(parens)
        closers = 0
        while closers < len(line.tokens) and line.tokens[closers][1] == "}":
            closers += 1
        line.depth = depth - closers
        tokens = line.tokens
        line.statement = bool(tokens) and not parens and not continued and closers == 0
        if line.statement:
            head = tokens[0][0] in ("name", "number", "string") and line.depth > 0
            if head and len(tokens) > 1 and tokens[1][1] == ":":
                line.label = tokens[0][1]
            elif head and len(tokens) > 3 and tokens[1][1] == "as" \
                    and tokens[2][0] == "string" and tokens[3][1] == ":":  # a caption
                line.label, line.action_at = f"{tokens[0][1]} as {tokens[2][1]}", 4
            line.action = line.label is not None or tokens[0][1] == "{" or (
                tokens[0][0] == "name" and tokens[0][1] not in _NON_ACTIONS)
        opened = depth
        for _, value in tokens:
            if value in "([":
                parens.append(value)
            elif value in ")]" and parens:
                parens.pop()
            elif value == "{":
                depth += 1
            elif value == "}":
                depth -= 1
        continued = line.continues
        line.opens_body = not parens and not continued and depth > opened - closers


def _align(lines: list[_Line]) -> None:
    """Put the actions of each run of statement lines in one column."""
    run: list[_Line] = []

    def close():
        width = max((len(line.label) + 2 for line in run if line.label is not None), default=0)
        labelled = False
        for line in run:
            labelled |= line.label is not None
            if line.action and labelled:  # unlabelled layers line up under a label above
                line.column = width
        run.clear()

    for line in lines:
        if line.statement and run and line.depth != run[0].depth:
            close()
        if line.statement and not line.opens_body:
            run.append(line)
        elif line.statement or line.blank or not line.tokens or line.tokens[0][1] == "}" \
                or line.opens_body:
            close()  # a blank line, a comment, the end of a body, a statement with a body
        if line.statement and line.opens_body and line.label is not None:
            line.column = len(line.label) + 2
    close()


# ---- rendering ---------------------------------------------------------------------------


def _render(lines: list[_Line]) -> str:
    out: list[str] = []
    state = _State()
    for line in lines:
        if line.blank:
            if out and out[-1] != "":
                out.append("")
            continue
        indent = _indent(line, state)
        if line.statement:
            indent += 0 if line.label is not None or not line.action else line.column
            state.statement_indent = (line.indent, indent)
            state.pending = [0]
        text = _join(line, indent, state)
        if line.comment is not None:
            if line.tokens:
                text += " " * max(2, line.comment_column - len(text)) + line.comment
            else:
                text = " " * indent + line.comment
        out.append(text.rstrip())
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n" if out else ""


@dataclass
class _State:
    """What rendering carries from token to token and line to line."""
    opened: list = field(default_factory=list)  # per open `(`: (column after it, ends its line, line indent)
    statement_indent: tuple[int, int] = (0, 0)  # original and new indentation of the statement
    pending: list = field(default_factory=lambda: [0])  # `?` waiting for their `:`, per `(` level
    previous: tuple | None = None  # the token before, across lines
    value_before: bool = False  # whether that token ends a value (so `-` is binary, `x` an operator)
    unary: bool = False  # whether that token is a unary `-`


def _indent(line: _Line, state: _State) -> int:
    if line.parens and state.opened:
        column, ends_line, line_indent = state.opened[-1]
        if line.tokens and line.tokens[0][1] in ")]":
            return line_indent
        return line_indent + INDENT if ends_line else column
    if line.continued:
        original, new = state.statement_indent
        return new + max(INDENT, line.indent - original)
    return INDENT * max(0, line.depth)


def _join(line: _Line, indent: int, state: _State) -> str:
    text = " " * indent
    for position, token in enumerate(line.tokens):
        value = token[1]
        if position == 0:
            space = ""
        elif position == line.action_at and line.label is not None:  # the action, in the
            # run's column
            space = " " * (line.column - len(line.label) - 1)
        elif state.previous[1] in ",;" and line.gaps[position] > 1:
            space = " " * line.gaps[position]  # padding that lines up a table's columns
        else:
            space = _space(token, state)
        if value == "?":
            state.pending[-1] += 1
        elif value == ":" and state.pending[-1]:
            state.pending[-1] -= 1
        text += space + value
        if value in "([":
            state.opened.append((len(text), position == len(line.tokens) - 1, indent))
            state.pending.append(0)
        elif value in ")]":
            if state.opened:
                state.opened.pop()
            if len(state.pending) > 1:
                state.pending.pop()
        elif value in "{};":
            state.pending[-1] = 0
        state.unary = value == "-" and not state.value_before
        state.value_before = _ends_value(token, state.value_before)
        state.previous = token
    if line.continues:
        text += " \\" if line.tokens else "\\"
    return text


def _ends_value(token, value_before: bool) -> bool:
    """Whether an operator after `token` is binary. `x` is one itself after a value
    (`3 x 224`), else a name."""
    kind, value = token
    if kind in ("number", "string"):
        return True
    if kind == "name":
        if value == "x":
            return not value_before
        return value not in _OPERATOR_WORDS
    return value in ")]"


def _space(token, state: _State) -> str:
    """The white space in front of `token`, which follows `state.previous` on one line."""
    value, before = token[1], state.previous[1]
    if value in (",", ";", ")", "]", ".") or before in ("(", "[", "."):
        return ""
    if value == ":":
        return " " if state.pending[-1] else ""
    if value == "(":
        return "" if state.previous[0] == "name" and state.value_before else " "
    if value == "[":
        return "" if state.value_before else " "
    if before == "{" and value == "}":
        return ""
    if state.unary:
        return ""
    return " "
