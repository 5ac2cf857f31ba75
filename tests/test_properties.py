"""Properties over random specs (tests/specgen.py): a spec that check accepts lowers and
runs; what stats reports (parameters, buffers, MACs) is what the lowered module holds and
what torch counts; output shapes are the IR's in eval and in training mode."""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, event, given, settings

from archdsl import ir  # noqa: E402
from archdsl import compile_source
from archdsl.passes.count_costs import total

from specgen import channels_first_specs, sequence_specs, specs

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from archdsl import lower  # noqa: E402

SEEN = Counter()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(specs())
def test_check_accepts_implies_lowers_runs_and_counts_agree(text):
    check_against_torch(text)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(sequence_specs() | channels_first_specs())
def test_sequences_signals_and_volumes_agree_with_torch(text):
    """The same properties on token sequences (attention, class tokens, position
    embeddings, 1-D convs over tokens), 1-D signals and 3-D volumes."""
    check_against_torch(text)


def check_against_torch(text: str) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    result = compile_source(text)
    codes = {d.code for d in result.diagnostics}
    event("accepted" if result.ok else "rejected")
    if not result.ok:  # the generator writes valid .arch; only sizes may not fit
        assert all(code.startswith("E03") for code in codes), (text, codes)
        return
    graph = result.graph
    model = lower(graph)
    assert sum(p.numel() for p in model.parameters()) == total(graph).params, text
    assert sum(b.numel() for b in model.buffers()) == total(graph).buffers, text
    inputs = [torch.randn(2, *graph.nodes[n]["shape"]) for n in ir.network(graph).inputs]
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):  # attention as FlopCounterMode counts it
        out = model(*inputs).detach()
    main = next(o for o in ir.network(graph).outputs if not o.train_only)
    assert tuple(out.shape) == (2, *graph.nodes[main.node]["shape"]), text
    assert counter.get_total_flops() // 2 == 2 * total(graph, train=False).macs, text
    model.train()
    outputs = model(*inputs)
    named = outputs if isinstance(outputs, dict) else {main.name: outputs}
    for output in ir.network(graph).outputs:
        assert tuple(named[output.name].shape) == (2, *graph.nodes[output.node]["shape"]), text
