"""Fuzzing the front end: random text and mutated specs give diagnostics, never an
exception. Each diagnostic must also render, as text and as JSON."""
from __future__ import annotations

import json

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archdsl import Limits, compile_source, render_all

from conftest import SPECS

SPEC_TEXTS = [p.read_text() for p in SPECS if "152" not in p.name and "101" not in p.name]
TOKENS = ["{", "}", "(", ")", ",", ";", "\n", ":", "=", "==", "?", ".", "x", "-", "*", "/", "//",
          "0", "1", "-3", "2.5", "1e9", "99999", "true", "false", "in", "in.channels", "repeat",
          "residual", "skip", "when", "concat", "add", "aux", "let", "input", "output", "from",
          "if", "else", "block", "network", "import", '"x.arch"', "std.nope", "relu", "conv",
          "linear", "flatten", "maxpool(3)", "same", "groups = 3", "#", '"', "\\\n", "\t", "é"]
LIMITS = Limits(max_nodes=20_000)
FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))


def survives(text: str) -> None:
    result = compile_source(text, "fuzz.arch", limits=LIMITS)
    rendered = render_all(result.diagnostics)
    json.loads(render_all(result.diagnostics, "json"))
    if not result.ok:
        assert rendered.startswith("error[E")


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text):
    survives(text)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join))
def test_random_token_soup(text):
    survives(text)


@st.composite
def mutated_spec(draw):
    text = draw(st.sampled_from(SPEC_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 40)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        token = draw(st.sampled_from(TOKENS))
        text = {"delete": text[:i] + text[j:],
                "insert": text[:i] + token + text[i:],
                "replace": text[:i] + token + text[j:],
                "duplicate": text[:j] + text[i:j] + text[j:]}[kind]
    return text


@pytest.mark.slow
@FUZZ
@given(mutated_spec())
def test_mutated_specs(text):
    survives(text)
