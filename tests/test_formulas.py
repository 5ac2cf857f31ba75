"""`stats --formula`: costs as polynomials in the input sizes declared as symbols, solved
exactly from the network checked at several sizes, and refused where no polynomial fits."""
from __future__ import annotations

from fractions import Fraction

from archdsl import compile_source
from archdsl.backends.report_stats import report_stats
from archdsl.cli import main
from archdsl.formulas import cost_formulas

from conftest import ROOT

LLAMA = ROOT / "tests" / "data" / "tiny_llama.arch"


def formulas_of(text: str, **settings):
    graph = compile_source(text, settings=settings).graph

    def compile_at(sizes):
        other = compile_source(text, settings=settings | sizes)
        return other.graph if other.ok else None
    return graph, compile_at, cost_formulas(graph, compile_at)


def test_a_decoders_costs_are_quadratic_in_its_length_at_every_length():
    graph, compile_at, formulas = formulas_of(LLAMA.read_text())
    assert formulas.symbols == ("L",) and formulas.costs is not None
    for length in (5, 12, 31):  # not multiples of the step the formula was solved at
        totals = report_stats(compile_at({"L": length})).totals
        assert formulas.costs["MACs"].at((length,)) == totals.macs
        assert formulas.costs["activation bytes"].at((length,)) == totals.activation_bytes
        assert formulas.costs["parameters"].at((length,)) == totals.params
    # the L² term is attention's two products: layers x heads x 2 x head dim
    squares = {powers: c for c, powers in formulas.costs["MACs"].terms}
    assert squares[(2,)] == Fraction(2 * 4 * 2 * 16)


IMAGE = """network r {{
    input image: 3 x H x W
    conv(8, 3, stride = {stride}, pad = 1)
    relu
    global_avgpool
    flatten
    linear(10)
}}"""


def test_an_image_network_has_costs_in_height_and_width_where_the_stride_divides():
    _, compile_at, formulas = formulas_of(IMAGE.format(stride=2), H=224, W=160)
    assert formulas.costs is not None and formulas.step == 32
    for h, w in ((64, 96), (224, 160)):
        totals = report_stats(compile_at({"H": h, "W": w})).totals
        assert formulas.costs["MACs"].at((h, w)) == totals.macs
    # 8 outputs of 27 MACs at each of (H/2)·(W/2) positions, and the classifier's 8·10
    assert formulas.costs["MACs"].show(("H", "W")) == "54·H·W + 80"


def test_costs_that_are_no_polynomial_are_refused_with_the_reason():
    _, _, formulas = formulas_of(IMAGE.format(stride=3), H=224, W=160)
    assert formulas.costs is None and "not a polynomial" in formulas.reason


def test_the_command_prints_formulas_or_says_why_there_are_none(capsys):
    assert main(["stats", str(LLAMA), "--formula"]) == 0
    out = capsys.readouterr().out
    assert "tiny_llama: costs in L" in out and "MACs              256·L² + " in out
    assert main(["stats", str(ROOT / "specs" / "resnet18.arch"), "--formula"]) == 0
    assert "no input size is a symbol" in capsys.readouterr().out
