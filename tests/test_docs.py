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


LAYER_TABLE = re.compile(r"(<!-- layer table: generated [^\n]*-->\n)(.*?)(<!-- end of layer table -->)",
                         re.DOTALL)


def test_layer_table_is_generated_from_the_op_table():
    """The table in docs/language.md is `layer_table()`: an op added to OPS, or an argument,
    default, bound, shape rule or lowering changed there, changes the docs (re-record with
    ARCHDSL_UPDATE_GOLDEN=1)."""
    from conftest import check_golden
    from archdsl.ops import layer_table
    path = ROOT / "docs" / "language.md"
    text = path.read_text(encoding="utf-8")
    assert LAYER_TABLE.search(text), "docs/language.md lost its generated layer table markers"
    check_golden(path, LAYER_TABLE.sub(lambda m: m.group(1) + layer_table() + m.group(3), text))


@pytest.mark.parametrize("name", [name for name in OPS if name != "input"])
def test_every_op_has_a_row_with_its_arguments(name):
    from archdsl.ops import layer_table
    row = next(line for line in layer_table().splitlines() if line.startswith(f"| `{name}` |"))
    for arg in OPS[name].args:
        assert f"`{arg.name}` {arg.kind}" in row
    assert OPS[name].lowers, f"{name} has no `lowers` text for the layer table"


# ---- docs/errors.md: examples regenerated from tests/invalid -------------------------------

FENCED = re.compile(r"^```(\w+)\n(.*?)^```\n", re.DOTALL | re.MULTILINE)
EXAMPLE = re.compile(r"From `(tests/(?:invalid|warnings)/\w+\.arch)`:\n\n$")
MENTION = re.compile(r"`(tests/(?:invalid|warnings)/\w+\.arch)`")
SHOWN = re.compile(r"^ *--> (tests/(?:invalid|warnings)/\w+\.arch):", re.MULTILINE)


def regenerated_errors_md(text: str) -> str:
    """docs/errors.md with every example spec and every diagnostic output taken afresh from
    tests/invalid (specs and their recorded .expected output)."""
    def block(match):
        lang, body = match.group(1), match.group(2)
        before = text[:match.start()]
        example = EXAMPLE.search(before.rsplit("```\n", 1)[-1])  # the paragraph just before
        if lang == "arch" and example:
            body = (ROOT / example.group(1)).read_bytes().decode(errors="replace")
        section = FENCED.sub("", before.rsplit("\n## ", 1)[-1])  # its prose only
        shown = MENTION.findall(section) or SHOWN.findall(body)
        if lang == "text" and SHOWN.search(body) and shown:
            body = (ROOT / shown[-1]).with_suffix(".expected").read_text()
        return f"```{lang}\n{body.rstrip()}\n```\n"
    return FENCED.sub(block, text)


@pytest.mark.parametrize("document", ["docs/errors.md", "README.md"])
def test_error_examples_are_the_test_specs_and_their_output(document):
    from conftest import check_golden
    path = ROOT / document
    check_golden(path, regenerated_errors_md(path.read_text()))


def test_error_headings_use_the_registered_titles():
    from archdsl.diagnostics import CODES
    headings = dict(re.findall(r"^## ([EW]\d{4}): (.*)$", (ROOT / "docs" / "errors.md").read_text(),
                               re.M))
    assert headings == CODES


# Arguments for the ops whose arguments are required, to build each one's module.
SAMPLE_ARGS = {"conv": {"channels": 4, "kernel": 3}, "maxpool": {"kernel": 2},
               "avgpool": {"kernel": 2}, "adaptive_avgpool": {"height": 2},
               "linear": {"features": 4}, "groupnorm": {"groups": 2},
               "conv_transpose": {"channels": 4, "kernel": 2}, "channel_shuffle": {"groups": 2},
               "channel_linear": {"features": 4},
               "stochastic_depth": {"p": 0.1}, "pad_channels": {"channels": 12},
               "attention": {"heads": 2}, "window_attention": {"heads": 2, "window": 3},
               "embedding": {"num": 10, "dim": 4}, "pad": {"before": 2, "after": 0},
               "buffer": {"shape": (49, 49), "init": "relative_position_index", "height": 7,
                          "width": 7},
               "parameter": {"shape": (1, 8)}}
# Inputs for the ops that take other than a C x H x W map.
SAMPLE_SHAPES = {"linear": ((8,), "C"), "attention": ((5, 8), "LC"),
                 "window_attention": ((6, 6, 8), "HWC"), "patch_merging": ((6, 6, 8), "HWC")}


@pytest.mark.parametrize("name", [name for name, op in OPS.items() if op.module is not None])
def test_the_table_names_the_module_each_op_lowers_to(name):
    """The `lowers` column is true: the torch class it names is the one the op builds."""
    pytest.importorskip("torch")
    from archdsl.ops import Args, Derived, REQUIRED
    op = OPS[name]
    given = SAMPLE_ARGS.get(name, {})
    values = {}
    for arg in op.args:
        default = values[arg.default.source] if isinstance(arg.default, Derived) else arg.default
        values[arg.name] = given.get(arg.name, default)
        assert values[arg.name] is not REQUIRED, f"give {name}'s {arg.name} in SAMPLE_ARGS"
    from archdsl.ops.shapes import Shape
    shape = Shape(*SAMPLE_SHAPES.get(name, ((8, 6, 6), "CHW")))
    module = op.module(Args(tuple(values.items())), (shape,))
    import torch
    if isinstance(module, torch.nn.Parameter):
        assert "a parameter" in op.lowers
    elif isinstance(module, torch.Tensor):
        assert "a buffer" in op.lowers
    else:
        ours = not type(module).__module__.startswith("torch.")
        assert f"{'' if ours else 'nn.'}{type(module).__name__}(" in op.lowers
    has_state = any(True for _ in module.parameters()) if isinstance(module, torch.nn.Module) \
        else True
    assert (op.init is not None) == has_state, "an op with parameters declares its init"


COST_TABLE = re.compile(r"(<!-- (\w+) table: generated [^\n]*-->\n)(.*?)(<!-- end of \2 table -->)",
                        re.DOTALL)


def test_cost_tables_are_generated_from_the_op_table():
    """docs/stats.md's MACs, other-ops and parameter tables are `cost_table(kind)`: every
    op's counts are described in its entry (re-record with ARCHDSL_UPDATE_GOLDEN=1)."""
    from conftest import check_golden
    from archdsl.ops import cost_table
    path = ROOT / "docs" / "stats.md"
    text = path.read_text(encoding="utf-8")
    assert len(COST_TABLE.findall(text)) == 4, "docs/stats.md lost its cost table markers"
    check_golden(path, COST_TABLE.sub(lambda m: m.group(1) + cost_table(m.group(2))
                                      + m.group(4), text))
    for kind in ("other", "kept"):
        table = cost_table(kind)
        assert all(f"`{name}`" in table for name in OPS), f"an op is missing from {kind}"




def test_every_error_example_shows_its_output():
    """An example whose `text` block is empty is never filled by the regeneration above
    (it fills blocks that already name their spec): each shows a diagnostic."""
    text = (ROOT / "docs" / "errors.md").read_text()
    for match in FENCED.finditer(text):
        if match.group(1) == "text" and text[:match.start()].endswith("reports:\n\n"):
            assert re.search(r"^(error|warning)\[", match.group(2), re.MULTILINE), \
                text[:match.start()].rsplit("\n## ", 1)[-1].splitlines()[0]
