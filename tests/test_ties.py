"""`tie`: one learned tensor under two names (a language model's head tied to its
embedding), in the state_dict under both keys as transformers keeps them, counted once by
check and stats, one Parameter in the built and the exported module; ties that join no two
tensors of one shape are E0314."""
from __future__ import annotations

import pytest

from archdsl import compile_source
from archdsl.backends.report_stats import report_stats
from archdsl.passes.count_costs import total

torch = pytest.importorskip("torch")
from archdsl.backends.lower_fx import lower_fx  # noqa: E402

TIED = """network t {
    input ids: 8 as token_ids
    model: {
        embed_tokens: embedding(100, 16)
        norm:         layernorm
    }
    lm_head: linear(100, bias = false)
    tie lm_head.weight = model.embed_tokens.weight
}"""


def codes(text: str) -> list[str]:
    return [d.code for d in compile_source(text).diagnostics]


def test_a_tied_head_is_the_embedding_under_both_keys_and_counted_once():
    graph = compile_source(TIED).graph
    module = lower_fx(graph)
    assert list(module.state_dict()) == ["model.embed_tokens.weight", "model.norm.weight",
                                         "model.norm.bias", "lm_head.weight"]
    assert module.lm_head.weight is module.model.embed_tokens.weight
    counted = sum(p.numel() for p in module.parameters())  # torch lists a shared one once
    assert total(graph).params == counted == 100 * 16 + 2 * 16
    report = report_stats(graph)
    assert report.ties == ("lm_head.weight = model.embed_tokens.weight",)
    assert next(r for r in report.rows if r.name == "lm_head").params == 0
    # a training step moves the one tensor: head and embedding stay equal
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    module(torch.randint(0, 100, (2, 8))).sum().backward()
    optimizer.step()
    assert torch.equal(module.lm_head.weight, module.model.embed_tokens.weight)


def test_a_tie_in_a_block_names_tensors_of_its_own_scope_and_params_tie_too():
    graph = compile_source("""
    block pair() {
        param a: 4 x 8 = normal(std = 0.1)
        param b: 4 x 8 = zeros
        tie b = a
        sum_ab: add(a, b)
                einsum("ij,lj->li", sum_ab, in)
    }
    network t {
        input x: 5 x 8 as tokens
        p: pair()
    }""").graph
    module = lower_fx(graph).double()
    assert module.p.b is module.p.a and total(graph).params == 32
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    weights = 2 * module.p.a.reshape(4, 8)
    torch.testing.assert_close(module(x), x @ weights.mT)


@pytest.mark.parametrize("tie, message", [
    ("tie lm_head.weight = model.nope.weight", "no layer or param is named `model.nope.weight`"),
    ("tie lm_head.bias = model.embed_tokens.weight", "has no tensor `bias`"),
    ("tie lm_head.weight = model.norm.weight", "holds no tensor a tie can join"),
    ("tie lm_head.weight = head2.weight", "it is 100x16, the source 50x16"),
    ("tie lm_head.weight = lm_head.weight", "it is the source"),
])
def test_ties_that_join_no_two_tensors_of_one_shape_are_E0314(tie, message):
    text = TIED.replace("tie lm_head.weight = model.embed_tokens.weight", tie).replace(
        "lm_head: linear(100, bias = false)", "lm_head: linear(100, bias = false)\n"
        "    output logits\n    from model\n    head2: linear(50, bias = false)\n    output second")
    diagnostics = compile_source(text).diagnostics
    assert [d.code for d in diagnostics] == ["E0314"]
    assert message in diagnostics[0].message


def test_a_tensor_is_tied_once_and_never_to_a_tied_one():
    two_heads = TIED.replace("lm_head: linear(100, bias = false)",
                             "lm_head: linear(100, bias = false)\n    output logits\n"
                             "    from model\n    head2: linear(100, bias = false)\n    output second")
    assert codes(two_heads) == []
    for second, message in (("tie head2.weight = lm_head.weight", "tie to that"),
                            ("tie lm_head.weight = head2.weight", "tied already")):
        text = two_heads.replace("tie lm_head.weight = model.embed_tokens.weight",
                                 "tie lm_head.weight = model.embed_tokens.weight\n    " + second)
        diagnostics = compile_source(text).diagnostics
        assert [d.code for d in diagnostics] == ["E0314"] and message in diagnostics[0].message


def test_the_exported_module_ties_its_tensors_too(tmp_path):
    from archdsl.cli import main
    spec = tmp_path / "tied.arch"
    spec.write_text(TIED)
    assert main(["export", str(spec), "-o", str(tmp_path / "out")]) == 0
    namespace: dict = {}
    exec((tmp_path / "out" / "t.py").read_text(), namespace)  # noqa: S102 (our own output)
    net = namespace["T"]() if "T" in namespace else next(
        v for k, v in namespace.items() if isinstance(v, type) and issubclass(v, torch.nn.Module)
        and v is not torch.nn.Module and v.__module__ is None or k == "T")()
    assert net.lm_head.weight is net.model.embed_tokens.weight
    net.load_state_dict(torch.load(tmp_path / "out" / "weights.pt"))
