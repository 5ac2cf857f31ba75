"""The documentation stays true: every `arch` example that defines a network compiles, and
the language reference lists every layer of the op table."""
from __future__ import annotations

import re

import pytest

from archdsl import compile_source
from archdsl.ops import OPS

from conftest import ROOT

DOCUMENTS = ("docs/language.md", "README.md")
FENCE = re.compile(r"^```arch[ \t]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
RELATIVE_IMPORT = re.compile(r'^\s*import\s+"', re.MULTILINE)


def arch_blocks():
    for document in DOCUMENTS:
        text = (ROOT / document).read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            yield pytest.param(match.group(1), id=f"{document}:{line}")


@pytest.mark.parametrize("block", list(arch_blocks()))
def test_arch_examples_compile(block):
    if "network" not in block:
        pytest.skip("no network in this example")
    if RELATIVE_IMPORT.search(block):
        pytest.skip("imports a file relative to the example")
    result = compile_source(block)
    assert result.ok, "\n".join(f"{d.code}: {d.message}" for d in result.diagnostics)


def test_documents_have_arch_examples():
    assert len(list(arch_blocks())) >= 10


@pytest.mark.parametrize("name", [name for name in OPS if name != "input"])
def test_every_op_is_in_the_language_reference(name):
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    assert f"`{name}`" in text, f"docs/language.md does not mention `{name}`"
