"""Input sizes as symbols: `input ids: L <= 128 as token_ids` is checked at the bound (or
at `--set L=...`), and again at half of it, so that `check` says where the built module is
fixed to one size (W0300) or where the network does not hold at another (W0301); a
network without such warnings runs at any size its bounds allow."""
from __future__ import annotations

import pytest

from archdsl import compile_source, ir
from archdsl.passes.count_costs import total

from conftest import ROOT

torch = pytest.importorskip("torch")
from archdsl.backends.lower_fx import lower_fx  # noqa: E402

DECODER = (ROOT / "tests" / "data" / "tiny_llama.arch").read_text()  # L <= 32, heads by -1


def compiled(text: str, **settings):
    result = compile_source(text, settings=settings)
    assert result.ok, [d.message for d in result.diagnostics]
    return result


def test_a_decoder_with_a_symbolic_length_runs_at_any_length_as_checked():
    full = compiled(DECODER)
    assert [d.code for d in full.diagnostics] == []  # nothing is fixed to L = 32
    assert ir.network(full.graph).sizes == {"L": (32, 32)}
    assert ir.shape(full.graph, "lm_head") == (32, 256)
    short = compiled(DECODER, L=5)
    assert ir.shape(short.graph, "lm_head") == (5, 256)
    module = lower_fx(full.graph).double().eval()
    ids = torch.randint(0, 256, (2, 32))
    with torch.no_grad():
        long_out, short_out = module(ids), module(ids[:, :5])  # one module, two lengths
    assert short_out.shape == (2, 5, 256)
    # causal: the first five positions see only the first five tokens
    assert torch.allclose(long_out[:, :5], short_out, rtol=1e-12, atol=1e-12)


def test_costs_follow_the_size_chosen():
    long, short = compiled(DECODER), compiled(DECODER, L=8)
    assert total(short.graph).params == total(long.graph).params
    assert total(long.graph).macs > 4 * total(short.graph).macs - 1  # linear in L at least


def test_a_reshape_that_writes_the_length_is_W0300_at_its_line():
    text = DECODER.replace("reshape(-1, heads, c // heads)", "reshape(in.length, heads, c // heads)", 1)
    result = compiled(text)
    assert {d.code for d in result.diagnostics} == {"W0300"}  # one per layer, at that line
    assert all(d.severity == "warning" and d.primary.span.line == 10 for d in result.diagnostics)
    assert "reshape 16x4x16" in result.diagnostics[0].message


def test_a_network_that_holds_at_one_size_only_is_W0301():
    text = """network patches {
        input image: 3 x S <= 64 x S
        param pos: 16 x 8 = zeros
        conv(8, 16, stride = 16)
        flatten(1, 2)
        t: transpose(0, 1)
        add(t, pos)
    }"""
    (warning,) = compiled(text).diagnostics
    assert warning.code == "W0301" and "S = 32" in warning.message


@pytest.mark.parametrize("text, settings, code", [
    ("network t { input x: 3 x H x W; conv(4, 3) }", {}, "E0203"),
    ("network t { input x: L <= 8 as token_ids; embedding(9, 4) }", {"L": 9}, "E0206"),
    ("network t { input x: L <= 8 as token_ids; embedding(9, 4) }", {"L": 0}, "E0206"),
])
def test_a_size_without_a_value_or_past_its_bound_is_an_error(text, settings, code):
    assert [d.code for d in compile_source(text, settings=settings).diagnostics] == [code]


def test_set_names_the_sizes_it_takes():
    from archdsl.errors import UsageError
    with pytest.raises(UsageError, match="parameters and sizes: L"):
        compile_source("network t { input x: L <= 8 as token_ids; embedding(9, 4) }",
                       settings={"M": 3})
