"""`archdsl fmt`: the canonical layout, its properties over generated and mutated specs
(idempotent, same IR, independent of the original spacing), and the command line."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archdsl import compile_source, dump
from archdsl.cli import main
from archdsl.diagnostics import SpecError
from archdsl.tools.fmt import format_source

from conftest import ROOT, SPECS
from specgen import channels_first_specs, sequence_specs, specs

SHIPPED = SPECS + sorted((ROOT / "archdsl" / "stdlib").glob("*.arch"))


def ir_of(text: str) -> list[str]:
    """Every network's IR without source locations (formatting moves columns, and lines
    where it drops repeated blank lines)."""
    result = compile_source(text, "spec.arch")
    return [re.sub(r"  # .*", "", dump(g)) for g in result.graphs.values()] \
        + [f"{d.code} {d.message}" for d in result.diagnostics]


# ---- the layout ----------------------------------------------------------------------------


def test_labels_align_and_unlabelled_layers_sit_under_them():
    text = ("network t {\ninput x: 3 x 8 x 8\nconv1:conv(8,3,pad=1)\n  bn:batchnorm\n"
            "relu\n\nfc_head :  conv(2, 1)\n}\n")
    assert format_source(text) == (
        "network t {\n"
        "    input x: 3 x 8 x 8\n"
        "    conv1: conv(8, 3, pad = 1)\n"
        "    bn:    batchnorm\n"
        "           relu\n"
        "\n"
        "    fc_head: conv(2, 1)\n"
        "}\n")


def test_bodies_wrapped_arguments_and_comments():
    text = ('# about\nblock b(w,s=1){\n residual{conv(w,3,stride=s);relu}skip when s!=1{conv(w,1)}\n'
            '  c: conv(w,\n (1, 3),   # kernel\n pad=(0,1))\n}\n')
    assert format_source(text) == (
        "# about\n"
        "block b(w, s = 1) {\n"
        "    residual { conv(w, 3, stride = s); relu } skip when s != 1 { conv(w, 1) }\n"
        "    c: conv(w,\n"
        "            (1, 3),  # kernel\n"
        "            pad = (0, 1))\n"
        "}\n")


def test_operators_unary_minus_ternary_and_dims():
    text = ("def f(a,b)=a*-b+max(a,b)>=2?1:-a\n"
            "network t(n=2){\ninput x:3 x(2*n)x 8\nmean(-1)\n}\n")
    assert format_source(text) == (
        "def f(a, b) = a * -b + max(a, b) >= 2 ? 1 : -a\n"
        "network t(n = 2) {\n"
        "    input x: 3 x (2 * n) x 8\n"
        "    mean(-1)\n"
        "}\n")


def test_trailing_comments_keep_their_column_where_there_is_room():
    text = "network t {\n    input x: 3 x 8 x 8\n    relu          # one\n    c: sigmoid  # two\n}\n"
    assert format_source(text).splitlines()[2:4] == ["    relu          # one",
                                                     "    c: sigmoid  # two"]


def test_a_labelled_body_stands_alone_and_blank_lines_collapse():
    text = "\n\nnetwork t {\n    input x: 3 x 8 x 8\n    a: relu\n    features: {\n" \
           "        relu\n    }\n\n\n\n    b: relu\n}\n\n\n"
    assert format_source(text) == ("network t {\n    input x: 3 x 8 x 8\n    a: relu\n"
                                   "    features: {\n        relu\n    }\n\n    b: relu\n}\n")


def test_continued_lines_keep_their_extra_indentation():
    text = "def f(a) = \\\n  a + 1\nnetwork t {\n    input x: 3 x 8 x 8\n    relu\n\\\n}\n"
    formatted = format_source(text)
    assert formatted == ("def f(a) = \\\n    a + 1\nnetwork t {\n    input x: 3 x 8 x 8\n"
                         "    relu\n    \\\n        }\n")
    assert format_source(formatted) == formatted


def test_syntax_errors_are_diagnostics():
    with pytest.raises(SpecError) as error:
        format_source("network t {\n conv(3,\n}\n", "bad.arch")
    assert error.value.diagnostic.code == "E0100"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_specs_are_in_the_canonical_layout(path):
    text = path.read_text()
    assert format_source(text) == text, \
        f"{path.relative_to(ROOT)} is not formatted: run `archdsl fmt {path.relative_to(ROOT)}`"


def test_the_documented_layout_is_the_formatters():
    text = (ROOT / "docs" / "editors.md").read_text()
    blocks = re.findall(r"^```arch\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    assert blocks and all(format_source(block) == block for block in blocks)


# ---- properties ----------------------------------------------------------------------------

_TOKENS = re.compile(r'\\[ \t]*\n|\n|[ \t]+|#[^\n]*|"[^"\n]*"'
                     r'|[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+'
                     r'|[A-Za-z_0-9.]+|==|!=|<=|>=|//|.')
_TIGHT = set("(),;[]{}")


@st.composite
def respaced(draw, text: str, comments: bool = True) -> str:
    """`text` with its white space redrawn: no space or one between tokens where that
    does not merge them, other indentation; with `comments`, also several spaces (which
    the formatter keeps after `,` and `;`, for tables), blank lines (which end a run of
    aligned labels) and comments at the ends of lines."""
    pieces = [p for p in _TOKENS.findall(text) if not p.isspace() or p == "\n" or "\\" in p]
    out, line_start, previous, depth = [], True, "", 0
    for piece in pieces:
        if piece == "\n" or piece.startswith("\\"):
            if comments and piece == "\n" and draw(st.integers(0, 5)) == 0:
                out.append("  # note")
            out.append(piece)
            if comments and piece == "\n" and depth == 0 and draw(st.integers(0, 6)) == 0:
                out.append("\n")
            line_start = True
            continue
        if line_start:
            out.append(" " * draw(st.integers(0, 9)))
        elif previous in _TIGHT or piece in _TIGHT:
            out.append(" " * draw(st.sampled_from([0, 1, 3] if comments else [0, 1])))
        else:
            out.append(" " * draw(st.sampled_from([1, 2] if comments else [1])))
        depth += piece.count("(") - piece.count(")") if len(piece) == 1 else 0
        out.append(piece)
        previous, line_start = piece, False
    return "".join(out)


ANY_SPEC = specs() | sequence_specs() | channels_first_specs()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(ANY_SPEC)
def test_formatting_generated_specs_is_idempotent_and_keeps_the_ir(text):
    formatted = format_source(text)
    assert format_source(formatted) == formatted
    assert ir_of(formatted) == ir_of(text)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_the_layout_does_not_depend_on_the_original_spacing(data):
    """Specs without comments, respaced at random, format to the same text."""
    text = data.draw(ANY_SPEC)
    mutated = data.draw(respaced(text, comments=False))
    assert re.sub(r"\n\n+", "\n", format_source(mutated)) == \
        re.sub(r"\n\n+", "\n", format_source(text))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_mutated_shipped_specs_format_idempotently_to_the_same_ir(data):
    path = data.draw(st.sampled_from([p for p in SHIPPED if p.stat().st_size < 6000]))
    mutated = data.draw(respaced(path.read_text()))
    formatted = format_source(mutated)
    assert format_source(formatted) == formatted
    assert ir_of(formatted) == ir_of(mutated)


# ---- the command line ------------------------------------------------------------------------


def test_fmt_rewrites_in_place_and_check_lists_what_would_change(tmp_path, capsys):
    messy, tidy = tmp_path / "messy.arch", tmp_path / "tidy.arch"
    messy.write_text("network t {\ninput x: 3 x 8 x 8\n  relu\n}\n")
    tidy.write_text(format_source(messy.read_text()))
    assert main(["fmt", "--check", str(messy), str(tidy)]) == 1
    err = capsys.readouterr().err
    assert f"would reformat {messy}" in err and str(tidy) not in err
    assert messy.read_text() == "network t {\ninput x: 3 x 8 x 8\n  relu\n}\n"
    assert main(["fmt", str(messy), str(tidy)]) == 0
    assert messy.read_text() == tidy.read_text()
    assert main(["fmt", "--check", str(messy), str(tidy)]) == 0


def test_fmt_leaves_a_file_with_a_syntax_error_alone(tmp_path, capsys):
    bad = tmp_path / "bad.arch"
    bad.write_text("network t {\n conv(3,\n}\n")
    assert main(["fmt", str(bad)]) == 1
    assert "error[E0100]" in capsys.readouterr().err
    assert bad.read_text() == "network t {\n conv(3,\n}\n"


def test_fmt_to_standard_output_and_usage_errors(tmp_path, capsys):
    spec = tmp_path / "spec.arch"
    spec.write_text("network t{input x: 3 x 8 x 8;relu}")
    assert main(["fmt", "-o", "-", str(spec)]) == 0
    assert capsys.readouterr().out == "network t { input x: 3 x 8 x 8; relu }\n"
    assert spec.read_text() == "network t{input x: 3 x 8 x 8;relu}"
    assert main(["fmt", "-o", "-", str(spec), str(spec)]) == 2
    assert main(["fmt", str(tmp_path / "missing.arch")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_declare_formats_wherever_its_names_stand():
    from archdsl.tools.fmt import format_source
    text = "   network t {\n       input x: 4 x 8 as tokens\n       declare b,a\n" \
           "       a: linear(3)\n       b: linear(4)\n   }\n"
    assert "    declare b, a\n" in format_source(text)
