"""Syntax colours: the Pygments lexer (archdsl.tools.highlight) and the TextMate grammar of
the VS Code extension (editors/vscode) both cover every shipped spec, and both know every
layer of the op table."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from archdsl.ops import OPS

from conftest import ROOT, SPECS, UPDATE

try:
    import pygments
    from pygments.token import Error, Name, Punctuation

    from archdsl.tools.highlight import ArchLexer
except ImportError:  # the TextMate tests below need no Pygments
    pygments = None

needs_pygments = pytest.mark.skipif(pygments is None, reason="needs pygments")

SHIPPED = SPECS + sorted((ROOT / "archdsl" / "stdlib").glob("*.arch"))
EXTENSION = ROOT / "editors" / "vscode"
GRAMMAR = EXTENSION / "syntaxes" / "arch.tmLanguage.json"
LAYERS = [name for name in OPS if name != "input"]


# ---- Pygments --------------------------------------------------------------------------


@needs_pygments
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_pygments_lexes_every_shipped_spec_without_errors(path):
    text = path.read_text()
    tokens = list(ArchLexer().get_tokens(text))
    assert [(t, v) for t, v in tokens if t in Error] == []
    assert "".join(v for _, v in tokens) == text if text.endswith("\n") else text + "\n"


@needs_pygments
def test_pygments_tells_labels_layers_and_blocks_apart():
    text = ('import std.resnet\nnetwork t {\n    input x: 3 x 8 x 8\n    c1: conv(8, 3)\n'
            '    "b{i}": bottleneck(2, stride = i == 0 ? 2 : 1)  # a block\n}\n')
    kinds = {}
    for kind, value in ArchLexer().get_tokens(text):
        kinds.setdefault(value, kind)  # the first of each
    assert kinds["c1"] is Name.Label and kinds['"b{i}"'] is Name.Label
    assert kinds["conv"] is Name.Builtin and kinds["bottleneck"] is Name.Function
    assert kinds["t"] is Name.Function and kinds["x"] is Name.Variable
    assert kinds["1"] is not Name.Label and kinds[":"] is Punctuation  # `? 2 : 1`: no label
    assert any(t in Error for t, _ in ArchLexer().get_tokens("network t { @ }"))


@needs_pygments
def test_pygments_finds_the_lexer_by_name():
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
    try:
        found = get_lexer_by_name("arch")
    except pygments.util.ClassNotFound:
        pytest.fail("no `arch` lexer: the pygments.lexers entry point is missing; "
                    "reinstall archdsl (pip install -e .)")
    assert type(found).__name__ == "ArchLexer"
    assert type(get_lexer_for_filename("resnet50.arch")).__name__ == "ArchLexer"


# ---- TextMate ----------------------------------------------------------------------------


class TextMate:
    """The part of TextMate's tokeniser the grammar uses: `match` with `captures`,
    `begin`/`end` regions with inner `patterns`, and `include` of the repository. Lines
    are tokenised one at a time (regions may span them), and at each position the
    earliest match wins, the region's end first on a tie, then the patterns in order."""

    def __init__(self, grammar: dict):
        self.repository = grammar["repository"]
        self.root = self.flatten(grammar["patterns"])

    def flatten(self, patterns) -> list[dict]:
        rules = []
        for pattern in patterns:
            if "include" in pattern:
                pattern = self.repository[pattern["include"].lstrip("#")]
            if "match" in pattern or "begin" in pattern:
                rules.append(pattern)
            else:
                rules.extend(self.flatten(pattern["patterns"]))
        return rules

    def tokenise(self, text: str) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
        """([(scope, text)], [(line number, text no rule matched)]); raises if a region
        is still open at the end."""
        scoped, unmatched, regions = [], [], []
        for number, line in enumerate(text.split("\n"), 1):
            at = 0
            while at < len(line):
                rules = self.flatten(regions[-1].get("patterns", [])) if regions else self.root
                candidates = [(regions[-1]["end"], "end")] if regions else []
                candidates += [(r.get("match") or r["begin"], r) for r in rules]
                best = None
                for pattern, rule in candidates:
                    found = re.compile(pattern).search(line, at)
                    if found and found.end() > found.start() and \
                            (best is None or found.start() < best[0].start()):
                        best = (found, rule)
                gap = line[at:best[0].start()] if best else line[at:]
                if gap.strip():
                    if regions:
                        scoped.append((regions[-1]["name"], gap))
                    else:
                        unmatched.append((number, gap.strip()))
                if best is None:
                    break
                found, rule = best
                if rule == "end":
                    scoped.append((regions.pop()["name"], found.group()))
                elif "begin" in rule:
                    regions.append(rule)
                    scoped.append((rule["name"], found.group()))
                else:
                    scoped.extend(self.captured(rule, found))
                at = found.end()
        if regions:
            raise AssertionError(f"region {regions[-1]['name']} is never closed")
        return scoped, unmatched

    @staticmethod
    def captured(rule: dict, found: re.Match) -> list[tuple[str, str]]:
        if "captures" not in rule:
            return [(rule["name"], found.group())]
        return [(capture["name"], found.group(int(group)))
                for group, capture in rule["captures"].items() if found.group(int(group))]


@pytest.fixture(scope="module")
def textmate() -> TextMate:
    return TextMate(json.loads(GRAMMAR.read_text()))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_textmate_grammar_covers_every_shipped_spec(textmate, path):
    _, unmatched = textmate.tokenise(path.read_text())
    assert unmatched == []


def test_the_textmate_grammar_scopes_what_matters(textmate):
    scoped, unmatched = textmate.tokenise(
        '# head\nblock b(w) {\n    "layer{i + 1}": conv(w, 3)  # c\n    relu\n}\n'
        'network n {\n    input x: 3 x 8 x 8\n    r: repeat 2 { b(4) }\n}\n')
    scopes = {}
    for scope, text in scoped:
        scopes.setdefault(text, scope)  # the first of each
    assert unmatched == []
    assert scopes["# head"].startswith("comment.") and scopes["b"] == "entity.name.function.arch"
    assert scopes['"layer{i + 1}"'] == "entity.name.tag.label.arch"
    assert scopes["conv"] == scopes["relu"] == "support.function.layer.arch"
    assert scopes["repeat"] == "keyword.control.arch" and scopes["r"] == "entity.name.tag.label.arch"
    assert textmate.tokenise("network n { @ }")[1] == [(1, "@")]
    with pytest.raises(AssertionError, match="never closed"):
        textmate.tokenise('network n { "open: relu }\n')


def test_the_textmate_grammar_knows_every_layer():
    grammar = json.loads(GRAMMAR.read_text())
    listed = re.fullmatch(r"\\b\((.*)\)\\b", grammar["repository"]["layer"]["match"]).group(1)
    if UPDATE:  # the op table changed: ARCHDSL_UPDATE_GOLDEN=1 rewrites the list
        grammar["repository"]["layer"]["match"] = "\\b(" + "|".join(LAYERS) + ")\\b"
        GRAMMAR.write_text(json.dumps(grammar, indent=2) + "\n")
        return
    assert listed.split("|") == LAYERS, \
        "the grammar's layers differ from the op table; re-record with ARCHDSL_UPDATE_GOLDEN=1"


def test_the_extension_is_wired_together():
    package = json.loads((EXTENSION / "package.json").read_text())
    (language,) = package["contributes"]["languages"]
    (grammar,) = package["contributes"]["grammars"]
    assert language["extensions"] == [".arch"] and grammar["language"] == language["id"]
    assert (EXTENSION / grammar["path"]).resolve() == GRAMMAR
    assert json.loads((EXTENSION / language["configuration"]).read_text())["comments"] == \
        {"lineComment": "#"}
    assert json.loads(GRAMMAR.read_text())["scopeName"] == grammar["scopeName"]
    client = (EXTENSION / package["main"]).read_text()
    assert '"archdsl", "lsp"' in client and "vscode-languageclient/node" in client
    if shutil.which("node"):
        subprocess.run(["node", "--check", str(EXTENSION / package["main"])], check=True)


def test_every_keyword_list_follows_the_grammar():
    """The lexers and the editor's completion take the language's words from the
    grammar; the VS Code grammar, a static file, lists the same control keywords."""
    import json
    import re
    from archdsl.lang.parse import keywords
    from archdsl.tools import editor, highlight
    groups = (highlight.KEYWORDS, highlight.DECLARATIONS, highlight.OPERATOR_WORDS,
              highlight.CONSTANTS, highlight.OTHERS)
    assert sorted(w for group in groups for w in group) == sorted(keywords())
    assert set(editor.KEYWORDS) == keywords() - {"std", "x"}
    vscode = json.loads((ROOT / "editors" / "vscode" / "syntaxes" / "arch.tmLanguage.json")
                        .read_text())
    control = next(p["match"] for p in vscode["repository"]["keyword"]["patterns"]
                   if p["name"] == "keyword.control.arch")
    assert set(re.search(r"\((.*)\)", control).group(1).split("|")) == set(highlight.KEYWORDS)
