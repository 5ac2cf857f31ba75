"""Every name `check` accepts lowers: labels and inputs that are Python keywords, builtins
or torch attribute names either build, with the state_dict keys written in the spec, or
are refused by check with E0219. Labels never name a layer and a scope at once."""
from __future__ import annotations

import builtins
import keyword

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archdsl.lang.parse import keywords  # noqa: E402
from archdsl import compile_source
from archdsl.lang.names import RESERVED, is_reserved

torch = pytest.importorskip("torch")
from torch import fx, nn  # noqa: E402

from archdsl import lower  # noqa: E402
from archdsl.backends.lower_fx import AuxiliaryNetwork  # noqa: E402

# Words of the .arch language itself are not identifiers there; they give syntax errors.
ARCH_WORDS = keywords()
TORCH_NAMES = sorted(set(dir(nn.Module())) | set(dir(fx.GraphModule(nn.Module(), fx.Graph()))))
IDENTIFIERS = st.one_of(
    st.sampled_from(sorted(keyword.kwlist)), st.sampled_from(sorted(dir(builtins))),
    st.sampled_from(TORCH_NAMES), st.sampled_from(["self", "torch", "operator", "fx_pytree",
                                                   "getattr", "x", "out", "fc", "add", "cat"]),
    st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True),
).filter(lambda name: name not in ARCH_WORDS)


def _empty_graph_module():
    graph = fx.Graph()
    graph.output(None)
    return fx.GraphModule(nn.Module(), graph)


def test_reserved_names_cover_every_public_torch_attribute():
    aux = compile_source("network t { input x: 3; aux { linear(2) }; linear(2) }").graph
    roots = [nn.Module(), _empty_graph_module(), lower(aux)]
    assert isinstance(roots[-1], AuxiliaryNetwork)
    public = {name for root in roots for name in dir(root) if not name.startswith("_")}
    assert public <= RESERVED, sorted(public - RESERVED)


@pytest.mark.parametrize("name", ["forward", "training", "to", "_private", "code", "train_module"])
def test_reserved_labels_are_refused_with_e0219(name):
    result = compile_source(f"network t {{ input x: 3 x 8 x 8; {name}: conv(4, 3) }}")
    assert [d.code for d in result.diagnostics] == ["E0219"]
    assert "rename it" in result.diagnostics[0].help


def test_a_name_is_a_layer_or_a_scope_never_both():
    for body in ("s: conv(4, 3); s: { weight: conv(4, 3) }",
                 "s: { weight: conv(4, 3) }; s: conv(4, 3)"):
        result = compile_source(f"network t {{ input x: 3 x 8 x 8; {body} }}")
        assert [d.code for d in result.diagnostics] == ["E0209"]
        assert "names both a layer and a group" in result.diagnostics[0].message


def spec(label, inner, input_name, network, aux, branch):
    return f"""
block blk(c) {{ {inner}: conv(c, 1) }}
network {network} {{
    input {input_name}: 3 x 8 x 8
    {label}: conv(4, 3, pad = 1)
    {aux}: aux {{ global_avgpool; flatten; linear(2) }}
    mix: concat {{ {branch}: conv(2, 1); other: {{ {inner}: conv(2, 1) }} }}
    stage: blk(4)
    global_avgpool; flatten; {label}_fc: linear(3)
}}"""


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(IDENTIFIERS, IDENTIFIERS, IDENTIFIERS, IDENTIFIERS, IDENTIFIERS, IDENTIFIERS)
def test_check_accepts_implies_build_works(label, inner, input_name, network, aux, branch):
    text = spec(label, inner, input_name, network, aux, branch)
    result = compile_source(text)
    if not result.ok:
        codes = {d.code for d in result.diagnostics}
        assert codes <= {"E0219", "E0209", "E0100", "E0208", "E0216"}, (text, codes)
        if "E0219" in codes:
            assert any(is_reserved(n) for n in (label, inner, aux, branch, f"{label}_fc"))
        return
    graph = result.graph
    model = lower(graph)
    expected = {f"{name}.{p}" for name in graph if graph.nodes[name]["node"].op in ("conv", "linear")
                for p in ("weight", "bias")}
    assert set(model.state_dict()) == expected
    model.train()
    outputs = model(torch.randn(2, 3, 8, 8))
    assert outputs["out"].shape == (2, 3) and outputs[aux].shape == (2, 2)
    model.eval()
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 3)


POST_NORM = """
block post_norm(heads) {
    declare norm1, attn, norm2, mlp
    residual {
        attn:  attention(heads)
        norm1: layernorm
    }
    residual {
        mlp:   { 0: linear(32); 1: gelu; 2: linear(16) }
        norm2: layernorm
    }
}
network t {
    input x: 8 x 16 as tokens
    b: post_norm(4)
    aux { head: linear(3) }
}
"""


@pytest.mark.parametrize("aux", [False, True])
def test_declare_orders_the_state_dict_and_the_export_follows(aux):
    pytest.importorskip("torch")
    from archdsl.backends.lower_fx import lower_fx
    from archdsl.runtime.export import standalone
    from archdsl.backends.export_pytorch import export_pytorch
    text = POST_NORM if aux else POST_NORM.replace("    aux { head: linear(3) }\n", "")
    result = compile_source(text)
    assert result.ok, [d.message for d in result.diagnostics]
    keys = list(lower_fx(result.graph).state_dict())
    owners = list(dict.fromkeys(k.rsplit(".", 1)[0].split(".")[1] for k in keys
                                if k.startswith("b.")))
    assert owners == ["norm1", "attn", "norm2", "mlp"]  # not the order they run in
    assert list(standalone(export_pytorch(result.graph)).state_dict()) == keys


def test_a_declared_label_must_be_defined_in_its_scope():
    text = """network t {
        input x: 8 x 16 as tokens
        declare norm
        g: { norm: layernorm }
    }"""
    assert [d.code for d in compile_source(text).diagnostics] == ["E0222"]


def test_a_declare_deep_inside_keeps_earlier_layers_first():
    from archdsl.backends.lower_fx import lower_fx
    text = """
block b(c) {
    declare proj, layers
    residual {
        layers: { conv(c, 3, pad = 1); relu }
    } skip proj { conv(c, 1) }
}
network t {
    input x: 4 x 8 x 8
    stem: conv(4, 1)
    blocks: { 0: b(4) }
}"""
    keys = list(lower_fx(compile_source(text).graph).state_dict())
    assert keys == ["stem.weight", "stem.bias", "blocks.0.proj.0.weight", "blocks.0.proj.0.bias",
                    "blocks.0.layers.0.weight", "blocks.0.layers.0.bias"]


def test_declare_orders_parameters_and_buffers_among_themselves():
    """A bias read before its weight, in two groups of one label: `declare weight, bias`
    lists the weight first; parameters still come before layers, as torch lists a
    module's state, and the export keeps the order."""
    pytest.importorskip("torch")
    from archdsl.backends.export_pytorch import export_pytorch
    from archdsl.backends.lower_fx import lower_fx
    from archdsl.runtime.export import standalone
    text = """network t {
    input x: 6 x 8 as tokens
    "qkv": { declare proj, weight, bias }
    "qkv": {
        param bias: 8
        from bias
    }
    b: identity
    from x
    "qkv": {
        param weight: 8 x 8 as signal
        proj: linear(8)
        matmul(weight)
        add(b)
    }
}"""
    result = compile_source(text)
    assert result.ok, [d.message for d in result.diagnostics]
    keys = list(lower_fx(result.graph).state_dict())
    assert keys == ["qkv.weight", "qkv.bias", "qkv.proj.weight", "qkv.proj.bias"]
    assert list(standalone(export_pytorch(result.graph)).state_dict()) == keys
