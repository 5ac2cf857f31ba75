"""Golden tests: every malformed spec in tests/invalid/ gives exactly its recorded
diagnostics (tests/invalid/NAME.expected), and every error code is covered and documented."""
from __future__ import annotations

import re

import pytest

from archdsl import compile_file, render_all
from archdsl.diagnostics import CODES

from conftest import ROOT, check_golden

INVALID = sorted((ROOT / "tests" / "invalid").glob("*.arch"))
WARNED = sorted((ROOT / "tests" / "warnings").glob("*.arch"))  # specs that check, warned


def rendered(path) -> str:
    result = compile_file(path.relative_to(ROOT))
    return render_all(result.diagnostics) + "\n"


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_spec_diagnostics(path, in_root):
    text = rendered(path)
    assert text.startswith("error["), "a malformed spec must produce an error"
    check_golden(path.with_suffix(".expected"), text)


@pytest.mark.parametrize("path", WARNED, ids=[p.stem for p in WARNED])
def test_warning_spec_diagnostics(path, in_root):
    """A spec with only warnings checks (exit 0) and shows exactly its recorded warnings."""
    assert compile_file(path.relative_to(ROOT)).ok
    text = rendered(path)
    assert text.startswith("warning["), "a warned spec must produce a warning"
    check_golden(path.with_suffix(".expected"), text)


def test_at_least_thirty_malformed_specs():
    assert len(INVALID) >= 30


def test_every_code_has_a_golden_test(in_root):
    seen = set()
    for path in INVALID + WARNED:
        seen.update(re.findall(r"^(?:error|warning)\[([EW]\d{4})\]",
                               path.with_suffix(".expected").read_text()
                               if path.with_suffix(".expected").exists() else "", re.M))
    missing = sorted(set(CODES) - seen)
    assert not missing, f"codes without a golden test in tests/invalid/: {missing}"


def test_every_code_is_documented():
    docs = (ROOT / "docs" / "errors.md").read_text()
    documented = set(re.findall(r"^## ([EW]\d{4})", docs, re.M))
    assert documented == set(CODES), (sorted(set(CODES) - documented),
                                      sorted(documented - set(CODES)))


def test_residual_without_projection_shows_the_fix(in_root):
    text = rendered(ROOT / "tests" / "invalid" / "residual_missing_projection.arch")
    assert "error[E0301]" in text
    assert "= help: add a projection: `skip { conv(256, 1, bias = false); batchnorm }`" in text


def test_long_source_lines_are_shown_as_a_window():
    from archdsl import compile_source
    line = "    let w = " + " + ".join(["1"] * 80) + " + nope"
    text = render_all(compile_source("network t {\n    input x: 3\n" + line + "\n}").diagnostics)
    source_line, caret_line = text.splitlines()[3:5]
    assert len(source_line) < 130 and source_line.endswith("+ nope") and "…" in source_line
    assert caret_line.index("^") == source_line.index("nope")
