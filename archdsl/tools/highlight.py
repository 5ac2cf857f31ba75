"""A Pygments lexer for .arch files, so Sphinx, MkDocs and LaTeX's minted colour specs.

Installed with archdsl, it is found by name through the `pygments.lexers` entry point:
`pygmentize -l arch specs/resnet50.arch`, a ```` ```arch ```` fence in Markdown, or
`\\begin{minted}{arch}` in LaTeX. The layer names come from the op table, so a new layer
is coloured as a layer without an edit here.

    >>> from pygments.token import Name
    >>> [(t, v) for t, v in ArchLexer().get_tokens("fc: linear(10)") if t in Name][:2]
    [(Token.Name.Label, 'fc'), (Token.Name.Builtin, 'linear')]
"""
from __future__ import annotations

import re

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (Comment, Keyword, Name, Number, Operator, Punctuation, String,
                            Text, Whitespace)

from ..lang.parse import keywords
from ..ops import OPS

# The grammar's words, by the colour each gets; the rest are control keywords.
DECLARATIONS = ("block", "network", "def")
OPERATOR_WORDS = ("and", "or", "not")
CONSTANTS = ("true", "false")
OTHERS = ("in", "std", "x")  # `in` a pseudo-name; `std` a namespace; `x` joins sizes
KEYWORDS = tuple(sorted(keywords() - set(DECLARATIONS + OPERATOR_WORDS + CONSTANTS + OTHERS)))
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_LABEL = rf'({_NAME}|[0-9]+|"[^"\n]*")(\s*)(:)'


class ArchLexer(RegexLexer):
    """Lexer for archdsl's .arch architecture specs."""

    name = "archdsl"
    aliases = ["arch", "archdsl"]
    filenames = ["*.arch"]
    mimetypes = ["text/x-archdsl"]
    flags = re.MULTILINE

    tokens = {
        "root": [
            (rf"^(\s*){_LABEL}", bygroups(Whitespace, Name.Label, Whitespace, Punctuation)),
            (r"[ \t\f\r]+", Whitespace),
            (r"\n", Whitespace),
            (r"\\[ \t\f\r]*\n", Text),  # a line continued
            (r"#[^\n]*", Comment.Single),
            (rf"(?<=[{{;])(\s*){_LABEL}", bygroups(Whitespace, Name.Label, Whitespace,
                                                   Punctuation)),
            (rf"\b({'|'.join(DECLARATIONS)})(\s+)({_NAME})",
             bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (rf"\b(input|param)(\s+)({_NAME})", bygroups(Keyword, Whitespace, Name.Variable)),
            (r"\b(import)(\s+)(std)(\.)", bygroups(Keyword.Namespace, Whitespace, Name.Namespace,
                                                  Punctuation)),
            (words(KEYWORDS, suffix=r"\b"), Keyword),
            (words(OPERATOR_WORDS, suffix=r"\b"), Operator.Word),
            (words(CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (r"\bin\b", Name.Builtin.Pseudo),
            (words(tuple(name for name in OPS if name != "input"), prefix=r"\b", suffix=r"\b"),
             Name.Builtin),
            (rf"{_NAME}(?=\s*\()", Name.Function),
            (_NAME, Name),
            (r"[0-9]+\.[0-9]*([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|\.[0-9]+([eE][+-]?[0-9]+)?",
             Number.Float),
            (r"[0-9]+", Number.Integer),
            (r'"', String, "string"),
            (r"==|!=|<=|>=|//|[-+*/%<>=?]", Operator),
            (r"[(){}\[\],;.:]", Punctuation),
        ],
        "string": [
            (r"\{[^}\"\n]*\}", String.Interpol),  # a computed label: "layer{i + 1}"
            (r'[^"{\n]+', String),
            (r"\{", String),
            (r'"', String, "#pop"),
        ],
    }
