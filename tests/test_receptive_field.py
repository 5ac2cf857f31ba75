"""Receptive fields (archdsl.passes.receptive_field) against brute force: the input pixels
that can reach one output unit are found by putting NaN in each pixel in turn and
watching which outputs become NaN, over hypothesis-generated conv and pool networks."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from archdsl import ir  # noqa: E402
from archdsl import compile_file, compile_source
from archdsl.passes.receptive_field import receptive_fields, show_field

from conftest import ROOT

torch = pytest.importorskip("torch")
from archdsl import lower  # noqa: E402


@st.composite
def window_networks(draw) -> str:
    side = draw(st.integers(20, 32))
    lines = [f"input x: 1 x {side} x {side}"]
    for _ in range(draw(st.integers(1, 4))):
        k = draw(st.integers(1, 5))
        stride = draw(st.integers(1, 3))
        kind = draw(st.sampled_from(["conv", "conv", "maxpool", "avgpool"]))
        if kind == "conv":
            dilation = draw(st.integers(1, 2))
            lines.append(f"conv(1, {k}, stride = {stride}, pad = {draw(st.integers(0, k))}, "
                         f"dilation = {dilation}, bias = false)")
        else:
            lines.append(f"{kind}({k}, stride = {stride}, pad = {draw(st.integers(0, k // 2))})")
        lines.append(draw(st.sampled_from(["relu", "identity", "batchnorm"])))
    return "network generated {\n    " + "\n    ".join(lines) + "\n}\n"


def reach(model, side: int, unit: tuple[int, int]) -> set[tuple[int, int]]:
    """The input pixels that make output `unit` NaN when they are NaN."""
    x = torch.zeros(side * side, 1, side, side, dtype=torch.float64)
    pixels = [(i, j) for i in range(side) for j in range(side)]
    for b, (i, j) in enumerate(pixels):
        x[b, 0, i, j] = float("nan")
    with torch.no_grad():
        out = model(x)[:, 0, unit[0], unit[1]]
    return {p for p, bad in zip(pixels, torch.isnan(out).tolist()) if bad}


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(window_networks())
def test_receptive_field_is_what_reaches_an_output(text):
    result = compile_source(text)
    assume(result.ok)
    graph = result.graph
    out = ir.network(graph).outputs[0].node
    field = receptive_fields(graph)[out]
    model = lower(graph).double().eval()
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.ones_(module.weight)
    side = graph.nodes["x"]["shape"][1]
    height, width = graph.nodes[out]["shape"][1:]
    centre = (height // 2, width // 2)
    hit = reach(model, side, centre)
    for axis, unit, coords in (("H", centre[0], [p[0] for p in hit]),
                               ("W", centre[1], [p[1] for p in hit])):
        r = field[axis]
        low = r.offset + unit * r.jump
        high = low + r.size - 1
        if low >= 0 and high <= side - 1:  # inside the image: exactly the box predicted
            assert (min(coords), max(coords)) == (low, high), (text, axis, show_field(field))
        else:  # partly padding: what is reached lies inside the predicted box
            assert all(low <= c <= high for c in coords), (text, axis, show_field(field))


@pytest.mark.parametrize("spec,layer,expected", [
    ("alexnet", "features.12", "195/32"),   # Araujo et al. 2019, Table 1: 195
    ("vgg16", "features.30", "212/32"),     # 212
    ("resnet50", "layer4.2.conv3", "427/32"),  # 427 (torchvision's V1.5 stride)
    ("vit_b_16", "conv_proj", "16/16"),      # a token is its patch
    ("vit_b_16", "heads.head", "224/16"),   # attention sees every patch
    ("r3d_18", "stem.0", "3x7x7/1x2x2"),
    ("m5", "conv1.0", "80/4"),
])
def test_receptive_fields_of_shipped_specs(spec, layer, expected):
    graph = compile_file(ROOT / "specs" / f"{spec}.arch").graph
    assert show_field(receptive_fields(graph)[layer]) == expected
