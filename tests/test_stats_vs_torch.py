"""Differential test: archdsl's parameter and MAC counts for random small architectures
equal what torch's own modules hold and what torch's FlopCounterMode counts."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from archdsl import compile_source
from archdsl.passes.count_costs import total

from archgen import architectures

torch = __import__("pytest").importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(architectures())
def test_params_and_macs_equal_torch(arch):
    result = compile_source(arch.text)
    assert result.ok, (arch.text, [d.message for d in result.diagnostics])
    counted = total(result.graph)
    module = arch.module().eval()
    assert counted.params == sum(p.numel() for p in module.parameters()), arch.text
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.zeros(1, *arch.shape))
    assert counted.macs == counter.get_total_flops() // 2, arch.text


def test_attention_counts_what_docs_stats_says_torchs_cpu_counter_leaves_out():
    from archdsl.backends.lower_fx import lower_fx
    length, width = 16, 32
    graph = compile_source(f"network t {{ input x: {length} x {width} as tokens; "
                           "attention(4) }").graph
    projections, matrix = 4 * length * width ** 2, 2 * length ** 2 * width
    assert total(graph).macs == projections + matrix
    module = lower_fx(graph)
    counted = {}
    for mode in ("train", "eval"):
        module.train(mode == "train")
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            module(torch.randn(1, length, width))
        counted[mode] = counter.get_total_flops() // 2
    assert counted == {"train": projections, "eval": 0}  # the figures docs/stats.md quotes
