"""The tensor algebra: element-wise ops broadcast over named axes and take numbers,
reductions keep or remove axes, matmul and einsum count MACs as torch's FlopCounterMode
does; every result is compared with torch computing the same thing by hand."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archdsl import compile_source, ir
from archdsl.passes.count_costs import total

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from archdsl.backends.lower_fx import lower_fx  # noqa: E402


def build(text: str):
    result = compile_source(text)
    assert result.ok, [d.message for d in result.diagnostics]
    return result.graph, lower_fx(result.graph).double().eval()


def codes(text: str) -> list[str]:
    return [d.code for d in compile_source(text).diagnostics]


def test_a_channel_vector_is_placed_on_the_channels_by_name():
    graph, module = build("""network t {
        input x: 4 x 3 x 5
        param gamma: 4 = normal(std = 1)
        a: mul(x, gamma)
        b: add(a, gamma)
    }""")
    assert module.gamma.shape == (4,)  # stored as declared, as timm and torch store a vector
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    gamma = module.gamma.view(1, 4, 1, 1)
    assert torch.equal(module(x), x * gamma + gamma)
    assert ir.shape(graph, "b") == (4, 3, 5)


def test_a_sum_into_its_first_operand_still_places_a_vector_by_name():
    """`out += b` (torchvision's residual add) only where b needs no axes added."""
    _, module = build("""network t {
        input x: 3 x 5 as signal
        s: add(x, x)
        param p: 3 = normal(std = 1)
        add(s, p)
    }""")
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    assert torch.equal(module(x), (x + x) + module.p.view(1, 3, 1))


def test_on_a_channels_last_map_the_vector_meets_the_last_axis():
    _, module = build("""network t {
        input x: 3 x 5 x 4 as channels_last
        param beta: 4 = normal(std = 1)
        add(x, beta)
    }""")
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    assert torch.equal(module(x), x + module.beta)


def test_sizes_of_one_broadcast_and_tokens_keep_their_leading_one():
    graph, module = build("""network t {
        input x: 6 x 8 as tokens
        param pos: 1 x 8 = normal(std = 1)
        add(x, pos)
    }""")
    assert module.pos.shape == (1, 1, 8)  # a token parameter, as torchvision's class token
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    assert torch.equal(module(x), x + module.pos)


@pytest.mark.parametrize("call, reference", [
    ("sub(1, x)", lambda x: 1 - x),
    ("sub(x, 1)", lambda x: x - 1),
    ("div(2)", lambda x: x / 2),
    ("div(2, x)", lambda x: 2 / x),
    ("pow(2)", lambda x: x ** 2),
    ("pow(2, x)", lambda x: 2 ** x),
    ("maximum(0)", torch.relu),
    ("minimum(x, 0.5)", lambda x: torch.clamp_max(x, 0.5)),
    ("add(x, x, x)", lambda x: x + x + x),
    ("mul(x)", lambda x: x * x),
])
def test_a_number_or_the_current_value_stands_for_an_operand(call, reference):
    _, module = build(f"network t {{ input x: 3 x 4 x 5\n    {call} }}")
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    assert torch.equal(module(x), reference(x))


@pytest.mark.parametrize("name", ["neg", "exp", "log", "sqrt", "rsqrt", "reciprocal", "square",
                                  "abs", "sin", "cos", "erf"])
def test_functions_of_one_value_are_torchs(name):
    graph, module = build(f"network t {{ input x: 3 x 4 as tokens\n    {name} }}")
    x = torch.rand(2, 3, 4, dtype=torch.float64) + 0.1
    assert torch.equal(module(x), getattr(torch, name)(x))
    assert total(graph).other_ops == 12


def test_grn_written_as_algebra_is_timms_global_response_norm():
    """ConvNeXt-V2's GRN on channels-last maps, as timm's GlobalResponseNorm computes it."""
    _, module = build("""network t {
        input x: 5 x 6 x 8 as channels_last
        param weight: 8 = normal(std = 1)
        param bias: 8 = normal(std = 1)
        g: norm(0, 1, keep = true)
        m: mean(-1, keep = true)
        d: add(1e-6)
        n: div(g, d)
        xn: mul(x, n)
        w: mul(xn, weight)
        add(x, bias, w)
    }""")
    x = torch.randn(2, 5, 6, 8, dtype=torch.float64)
    gx = x.norm(p=2, dim=(1, 2), keepdim=True)
    nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
    expected = x + torch.addcmul(module.bias.view(1, 1, 1, -1), module.weight.view(1, 1, 1, -1),
                                 x * nx)
    assert torch.allclose(module(x), expected, rtol=1e-12, atol=0)


def test_a_residual_never_broadcasts():
    text = """network t {
        input x: 8 x 6 x 6
        residual { global_avgpool }
    }"""
    assert codes(text) == ["E0301"]


@pytest.mark.parametrize("body, code", [
    ("a: conv(4, 1); b: conv(3, 1); add(a, b)", "E0300"),
    ("a: flatten(1, 2); param p: 6 x 4 as tokens; add(a, p)", "E0300"),
    ("param p: 5; add(x, p)", "E0300"),
    ("sub(x, 1, 2)", "E0203"),
    ("sub(x, x, x)", "E0203"),
    ("add(1)", ""),
    ('einsum("chw,chw", x, x)', "E0312"),
    ('einsum("ch,c->q", x, x)', "E0312"),
    ('einsum("chw,chw->hh", x, x)', "E0312"),
    ("matmul(x, x)", "E0300"),
    ("sum(0, 1, 2)", "E0310"),
    ("mean(1, 1)", "E0310"),
])
def test_wrong_operands_are_located_errors(body, code):
    found = codes(f"network t {{ input x: 4 x 3 x 5\n    {body} }}")
    assert found == ([code] if code else [])


EQUATIONS = st.sampled_from([
    ("lc,mc->lm", (6, 8), (5, 8)),      # attention scores
    ("lm,mc->lc", (6, 5), (5, 8)),      # attention times values
    ("hlc,hmc->hlm", (2, 6, 4), (2, 5, 4)),
    ("lc,lc->l", (6, 8), (6, 8)),       # a row-wise dot product
    ("lc,lc->lc", (6, 8), (6, 8)),      # element-wise: no MACs
    ("ij,jk->i", (3, 4), (4, 5)),       # k summed away first
    ("ij,k->ik", (3, 4), (5,)),         # an outer product: element-wise
])


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(EQUATIONS)
def test_einsum_equals_torch_and_counts_macs_as_flop_counter_mode(case):
    equation, a, b = case
    layouts = {1: "features", 2: "tokens", 3: "image"}
    graph, module = build(f"""network t {{
        input a: {' x '.join(map(str, a))} as {layouts[len(a)]}
        input b: {' x '.join(map(str, b))} as {layouts[len(b)]}
        einsum("{equation}", a, b)
    }}""")
    x, y = torch.randn(2, *a, dtype=torch.float64), torch.randn(2, *b, dtype=torch.float64)
    left, out = equation.split("->")
    first, second = left.split(",")
    expected = torch.einsum(f"Z{first},Z{second}->Z{out}", x, y)
    counter = FlopCounterMode(display=False)
    with counter:
        got = module(x[:1], y[:1])
    assert torch.equal(module(x, y), expected)
    assert got.shape[1:] == ir.shape(graph, list(graph.nodes)[-1])
    assert total(graph).macs == counter.get_total_flops() // 2


@pytest.mark.parametrize("a, b", [((6, 4), (4, 5)), ((2, 6, 4), (2, 4, 5)), ((2, 6, 4), (1, 4, 5))])
def test_matmul_equals_torch_and_counts_its_macs(a, b):
    layouts = {2: "tokens", 3: "image"}
    graph, module = build(f"""network t {{
        input a: {' x '.join(map(str, a))} as {layouts[len(a)]}
        input b: {' x '.join(map(str, b))} as {layouts[len(b)]}
        matmul(a, b)
    }}""")
    x, y = torch.randn(1, *a, dtype=torch.float64), torch.randn(1, *b, dtype=torch.float64)
    counter = FlopCounterMode(display=False)
    with counter:
        got = module(x, y)
    assert torch.equal(got, x @ y)
    assert total(graph).macs == counter.get_total_flops() // 2


def test_std_layers_rmsnorm_is_llamas_and_torchs():
    _, module = build("""import std.layers
    network t {
        input x: 6 x 16 as tokens
        norm: rmsnorm(1e-5)
    }""")
    assert [k for k, _ in module.state_dict().items()] == ["norm.weight"]
    with torch.no_grad():
        module.norm.weight.copy_(torch.randn(16, dtype=torch.float64))
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    wide = x.float()  # transformers' LlamaRMSNorm normalises in float32 at any precision
    llama = module.norm.weight * (wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + 1e-5)
                                  ).to(torch.float64)
    assert torch.equal(module(x), llama)
    fused = torch.nn.functional.rms_norm(wide, (16,), eps=1e-5).double() * module.norm.weight
    assert torch.equal(module(x), fused)
    assert "rms_norm" in module.code  # torch's fused kernel, not five element-wise ops


def test_std_layers_grn_serves_channels_first_and_channels_last_maps():
    _, module = build("""import std.layers
    network t {
        input x: 8 x 5 x 6
        first: grn()
        permute(1, 2, 0)
        last: grn()
        permute(2, 0, 1)
    }""")
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p))
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)

    def grn(x, weight, bias, spatial, channel, shape):
        gx = x.norm(p=2, dim=spatial, keepdim=True)
        nx = gx / (gx.mean(dim=channel, keepdim=True) + 1e-6)
        return x + torch.addcmul(bias.view(shape), weight.view(shape), x * nx)
    y = grn(x, module.first.weight, module.first.bias, (2, 3), 1, (1, -1, 1, 1))
    y = grn(y.permute(0, 2, 3, 1), module.last.weight, module.last.bias, (1, 2), -1,
            (1, 1, 1, -1)).permute(0, 3, 1, 2)
    assert torch.allclose(module(x), y, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("named, numbered", [
    ('mean("H", "W")', "mean(1, 2)"),
    ('softmax(axis = "width")', "softmax(axis = 2)"),
    ('transpose("C", "W")', "transpose(0, 2)"),
    ('norm("channels", keep = true)', "norm(0, keep = true)"),
])
def test_an_axis_may_be_named(named, numbered):
    text = "network t {{ input x: 4 x 3 x 5\n    {} }}"
    a, b = compile_source(text.format(named)), compile_source(text.format(numbered))
    assert a.ok and b.ok
    assert [n.args for n in ir.nodes(a.graph)] == [n.args for n in ir.nodes(b.graph)]


def test_an_axis_name_the_value_lacks_is_E0310_with_its_axes():
    result = compile_source('network t { input x: 6 x 8 as tokens\n    mean("H") }')
    (error,) = result.diagnostics
    assert error.code == "E0310" and '"L", "C"' in error.help


GPT_ATTENTION = """
block causal_self_attention(heads) {
    let c = in.channels
    let l = in.length
    q: linear(c)
       reshape(l, heads, c // heads)
    qh: transpose(0, 1)
    from in
    k: linear(c)
       reshape(l, heads, c // heads)
    kh: transpose(0, 1)
    from in
    v: linear(c)
       reshape(l, heads, c // heads)
    vh: transpose(0, 1)
    sdpa(qh, kh, vh, causal = true)
    transpose(0, 1)
    reshape(l, c)
    o: linear(c)
}
network t {
    input x: 6 x 16 as tokens
    attn: causal_self_attention(4)
}
"""


def test_attention_from_parts_is_causal_attention_and_counts_its_matrix_products():
    graph, module = build(GPT_ATTENTION)
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    a = module.attn

    def heads(t):
        return t.view(2, 6, 4, 4).transpose(1, 2)
    q, k, v = heads(a.q(x)), heads(a.k(x)), heads(a.v(x))
    scores = q @ k.transpose(-2, -1) / 2.0  # 1 / sqrt(4 features per head)
    scores = scores.masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(1), float("-inf"))
    expected = a.o((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 6, 16))
    assert torch.allclose(module(x), expected, rtol=1e-12, atol=1e-14)
    counter = FlopCounterMode(display=False)
    with counter, torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        module(x[:1])
    assert total(graph).macs == counter.get_total_flops() // 2


def test_the_attention_layer_is_the_block_of_parts_with_its_projections_packed():
    """docs/language.md: `attention(heads)` is the parts block (not causal) with q, k, v
    packed in one in-projection."""
    _, parts = build(GPT_ATTENTION.replace(", causal = true", ""))
    _, layer = build("network t {\n input x: 6 x 16 as tokens\n attn: attention(4)\n}")
    mha = layer.attn.attention if hasattr(layer.attn, "attention") else next(
        m for m in layer.modules() if isinstance(m, torch.nn.MultiheadAttention))
    with torch.no_grad():
        for i, name in enumerate("qkv"):
            getattr(parts.attn, name).weight.copy_(mha.in_proj_weight[16 * i:16 * (i + 1)])
            getattr(parts.attn, name).bias.copy_(mha.in_proj_bias[16 * i:16 * (i + 1)])
        parts.attn.o.weight.copy_(mha.out_proj.weight)
        parts.attn.o.bias.copy_(mha.out_proj.bias)
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    torch.testing.assert_close(parts(x), layer(x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("body, code", [
    ("a: reshape(3, 4, 5); sdpa(a, a, x)", "E0300"),
    ("a: reshape(60); sdpa(a, a, a)", "E0306"),
    ("sdpa(x, x)", "E0203"),
])
def test_sdpa_operands_that_do_not_fit_are_located_errors(body, code):
    assert codes(f"network t {{ input x: 4 x 3 x 5\n    {body} }}") == [code]


def transformers_rope(x, heads, inv_freq):
    """transformers' LlamaRotaryEmbedding and apply_rotary_pos_emb on L x C tokens split
    into heads: inv_freq and the angles in float32, cos and sin cast to x's precision."""
    b, length, c = x.shape
    q = x.view(b, length, heads, c // heads).transpose(1, 2)
    positions = torch.arange(length)[None, None, :].float()
    freqs = (inv_freq[None, :, None].float().expand(b, -1, 1) @ positions).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(x.dtype).unsqueeze(1), emb.sin().to(x.dtype).unsqueeze(1)
    half = q.shape[-1] // 2
    rotated = torch.cat((-q[..., half:], q[..., :half]), dim=-1)
    return (q * cos) + (rotated * sin)


def default_inv_freq(theta, dim):
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def llama3_inv_freq(theta, dim, factor, low, high, original):
    """transformers' _compute_llama3_parameters, in float32 as it runs."""
    import math
    inv_freq = default_inv_freq(theta, dim)
    low_wavelen, high_wavelen = original / low, original / high
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_freq_llama / factor + smooth * inv_freq_llama
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, inv_freq_llama)


@pytest.mark.parametrize("call, inv_freq", [
    ("rope(500000.0)", lambda: default_inv_freq(500000.0, 16)),
    ("rope_llama3(500000.0, factor = 32.0, low_freq_factor = 1.0, high_freq_factor = 4.0, "
     "original = 8)", lambda: llama3_inv_freq(500000.0, 16, 32.0, 1.0, 4.0, 8)),
])
def test_std_layers_rope_is_transformers_rotary_embedding_at_any_length(call, inv_freq):
    _, module = build(f"""import std.layers
    network t {{
        input x: 6 x 32 as tokens
        reshape(-1, 2, 16)                 # heads x d, any length
        transpose(0, 1)
        {call}
    }}""")
    for length in (6, 9):  # the module is built for 6 tokens and runs at 9 as well
        x = torch.randn(2, length, 32, dtype=torch.float64)
        assert torch.equal(module(x), transformers_rope(x, 2, inv_freq()))


def test_std_layers_swiglu_is_llamas_mlp_and_layer_scale_timms():
    _, module = build("""import std.layers
    network t {
        input x: 5 x 8 as tokens
        mlp: swiglu(12)
        ls: layer_scale(0.5)
    }""")
    assert list(module.state_dict()) == ["mlp.gate_proj.weight", "mlp.up_proj.weight",
                                         "mlp.down_proj.weight", "ls.gamma"]
    assert torch.equal(module.ls.gamma, torch.full((8,), 0.5, dtype=torch.float64))
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    m = module.mlp
    expected = m.down_proj(torch.nn.functional.silu(m.gate_proj(x)) * m.up_proj(x)) * 0.5
    assert torch.equal(module(x), expected)


def test_features_stay_last_through_a_reshape_of_tokens():
    """L x C tokens reshaped to L x heads x d keep d last, so layernorm normalises each
    head's features, as nn.LayerNorm(d) does; reshaped to H x W x C they are a
    channels-last map a permute turns into C x H x W for a conv."""
    graph, module = build("""network t {
        input x: 16 x 8 as tokens
        heads: reshape(-1, 2, 4)
        n: layernorm
        output normed
        from x
        reshape(4, 4, 8)
        permute(2, 0, 1)
        c: conv(3, 1)
        output map
    }""")
    assert ir.shape(graph, "heads").axes.endswith("C")
    with torch.no_grad():
        module.n.weight.normal_()
    x = torch.randn(2, 16, 8, dtype=torch.float64)
    out = module(x)
    want = torch.nn.functional.layer_norm(x.view(2, 16, 2, 4), (4,), module.n.weight,
                                          module.n.bias)
    assert torch.equal(out["normed"], want)
    assert torch.equal(out["map"], module.c(x.view(2, 4, 4, 8).permute(0, 3, 1, 2)))


def test_an_einsum_that_ends_with_the_features_keeps_them_last():
    graph, module = build("""network t {
        input x: 6 x 8 as tokens
        h: reshape(-1, 2, 4)                   # L x heads x d, features last
        s: einsum("lhd,mhd->hlm", h, h)        # scores: no features
        o: einsum("hlm,mhd->lhd", s, h)        # ends with d: features last again
        n: layernorm
    }""")
    assert not ir.shape(graph, "s").axes.endswith("C")
    assert ir.shape(graph, "o").axes.endswith("C")
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    h = x.view(2, 6, 2, 4)
    o = torch.einsum("bhlm,bmhd->blhd", torch.einsum("blhd,bmhd->bhlm", h, h), h)
    want = torch.nn.functional.layer_norm(o, (4,), module.n.weight, module.n.bias)
    assert torch.allclose(module(x), want, rtol=1e-12, atol=1e-14)


def test_a_value_cast_to_float32_is_read_by_the_algebra_only_until_cast_back():
    text = """network t {{
        input x: 6 x 8 as tokens
           cast("float32")
        f: exp
        {}
    }}"""
    assert codes(text.format("linear(4)")) == ["E0306"]  # a layer reads the module's floats
    assert codes(text.format("add(x)")) == ["E0300"]  # precisions differ: no silent promotion
    graph, module = build(text.format("e: cast_like(f, x)\n        linear(4)"))
    assert ir.shape(graph, "f").dtype == "float32" and ir.shape(graph, "e").dtype == "float"
    assert module(torch.randn(2, 6, 8, dtype=torch.float64)).dtype == torch.float64


def test_an_embedding_names_its_features_last_whatever_the_ids_axes_were_called():
    graph, module = build("""network t {
        input x: 3 x 4 x 5 as channels_last
        argmax                                 # 3 x 4 ids, their axes once H x W
        embedding(100, 6)
        n: layernorm                           # over the 6 features
    }""")
    assert ir.shape(graph, "n").axes.count("C") == 1
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    ids = x.argmax(-1)
    embedded = module.get_submodule("1")(ids)
    want = torch.nn.functional.layer_norm(embedded, (6,), module.n.weight, module.n.bias)
    assert torch.equal(module(x), want)


def test_an_sdpa_mask_of_token_ids_is_E0306():
    text = "network t { input ids: 6 as token_ids\n    e: embedding(10, 8)\n    sdpa(e, e, e, ids) }"
    assert codes(text) == ["E0306"]


def mixtral_moe(x, gate, gate_up, down, top_k):
    """transformers' MixtralSparseMoeBlock (eager experts): float32 router, top-k
    renormalised, each expert run on the tokens routed to it and index_add-ed."""
    h = x.reshape(-1, x.shape[-1])
    probs = torch.softmax(torch.nn.functional.linear(h, gate).float(), -1)
    top, index = torch.topk(probs, top_k, -1)
    top /= top.sum(-1, keepdim=True)
    out = torch.zeros_like(h)
    mask = torch.nn.functional.one_hot(index, gate.shape[0]).permute(2, 1, 0)
    for expert in range(gate.shape[0]):
        slot, token = torch.where(mask[expert])
        g, u = torch.nn.functional.linear(h[token], gate_up[expert]).chunk(2, -1)
        y = torch.nn.functional.linear(torch.nn.functional.silu(g) * u, down[expert])
        out.index_add_(0, token, (y * top[token, slot, None]).to(out.dtype))
    return out.view(x.shape)


@pytest.mark.parametrize("experts, top_k", [(4, 2), (8, 2), (4, 1)])
def test_std_layers_sparse_moe_is_mixtrals_and_costs_only_the_chosen_experts(experts, top_k):
    graph, module = build(f"""import std.layers
    network t {{
        input x: 12 x 16 as tokens
        mlp: sparse_moe({experts}, {top_k}, 24)
    }}""")
    assert list(module.state_dict()) == ["mlp.gate.weight", "mlp.experts.gate_up_proj",
                                         "mlp.experts.down_proj"]
    state = module.state_dict()
    assert state["mlp.experts.gate_up_proj"].shape == (experts, 48, 16)
    assert state["mlp.experts.down_proj"].shape == (experts, 16, 24)
    with torch.no_grad():
        for tensor in state.values():
            tensor.copy_(torch.randn_like(tensor) * 0.3)
    x = torch.randn(1, 12, 16, dtype=torch.float64)
    expected = mixtral_moe(x, *(state[k] for k in state), top_k)
    counter = FlopCounterMode(display=False)
    with counter:
        got = module(x)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-15)
    assert total(graph).macs == counter.get_total_flops() // 2
    router, chosen = 12 * 16 * experts, 12 * top_k * 3 * 16 * 24  # three matrices per expert
    assert total(graph).macs == router + chosen  # not the dense 12 * experts * 3 * 16 * 24


def test_routed_linear_refuses_what_does_not_fit():
    base = """network t {{
        input x: 6 x 8 as tokens
        param w: {w} = normal(std = 0.1)
        i: topk(2, axis = -1, indices = true)
        {call}
    }}"""
    assert codes(base.format(w="8 x 5 x 8", call="routed_linear(x, w, i)")) == []
    assert codes(base.format(w="8 x 5 x 7", call="routed_linear(x, w, i)")) == ["E0300"]
    assert codes(base.format(w="8 x 5", call="routed_linear(x, w, i)")) == ["E0300"]
    assert codes(base.format(w="8 x 5 x 8", call="routed_linear(x, w, x)")) == ["E0306"]
    assert codes(base.format(w="8 x 5 x 8", call="routed_linear(i, w, i)")) == ["E0306"]


def test_one_hot_and_scatter_add_are_torchs_and_ids_take_eight_bytes():
    from archdsl.backends.report_stats import report_stats
    graph, module = build("""network t {
        input ids: 6 as token_ids
        hot: one_hot(10)
        input x: 6 x 10 as tokens
        i: topk(3, axis = -1, indices = true)
        gt(x, 0)
        output mask
        from x
        src: slice(0, 3, axis = -1)
        s: scatter_add(x, i, src, axis = -1)
        f: cast_like(hot, s)
        add(s, f)
        output sum
    }""")
    ids, x = torch.randint(0, 10, (2, 6)), torch.randn(2, 6, 10, dtype=torch.float64)
    index = torch.topk(x, 3, -1)[1]
    expected = x.scatter_add(2, index, x[..., :3]) + torch.nn.functional.one_hot(ids, 10)
    assert torch.equal(module(ids, x)["sum"], expected)
    rows = report_stats(graph).rows
    memory = {row.name: row.activation_bytes for row in rows}
    mask = next(row.activation_bytes for row in rows if row.op == "gt")
    assert (memory["ids"], memory["hot"], memory["i"], mask, memory["x"]) == \
           (6 * 8, 60 * 8, 18 * 8, 60, 60 * 4)


def test_scatter_add_refuses_what_does_not_fit():
    base = """network t {{
        input x: 6 x 10 as tokens
        i: topk(3, axis = -1, indices = true)
        from x
        src: slice(0, {n}, axis = -1)
        scatter_add(x, {index}, src, axis = -1)
    }}"""
    assert codes(base.format(n=3, index="i")) == []
    assert codes(base.format(n=2, index="i")) == ["E0300"]  # indices beyond the source
    assert codes(base.format(n=3, index="src")) == ["E0306"]


@pytest.mark.parametrize("body, fits", [
    ("i: topk(2, axis = -1, indices = true)\n param w: 8 x 4 x 8 = zeros\n"
     " routed_linear(x, w, i)", True),
    ("i: topk(2, axis = -1, indices = true)\n param w: 7 x 4 x 8 = zeros\n"
     " routed_linear(x, w, i)", False),                          # 8 choices, 7 experts
    ("argmax\n transpose(0, 0)\n one_hot(8)", True),
    ("argmax\n reshape(3, 2)\n one_hot(7)", False),             # moved ids keep their range
    ("buffer r: 9 x 9 = relative_position_index(3, 3)\n from x\n t: slice(0, 5, axis = 0)\n"
     " index_select(t, r)", False),                            # 25 rows for a 3x3 window
    ("j: topk(6, axis = 0, indices = true)\n s: scatter_add(j, j, j, axis = 0)\n"
     " embedding(8, 4)", True),                                # sums of indices:
])                                                            # the data's range, not check's
def test_indices_made_in_the_network_stay_within_what_they_pick_from(body, fits):
    text = f"network t {{\n input x: 6 x 8 as tokens\n {body}\n}}"
    assert codes(text) == ([] if fits else ["E0313"]), codes(text)


def test_selective_scan_is_the_mamba_recurrence_and_counts_its_readout():
    graph, module = build("""network t {
        input x: 7 x 6 as tokens
        param a: 6 x 3 as signal = normal(std = 0.5)
        param b: 7 x 3 as signal = normal(std = 0.5)
        param c: 7 x 3 as signal = normal(std = 0.5)
        dt: softplus
        selective_scan(x, dt, a, b, c)
    }""")
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    a, b, c = module.a, module.b, module.c
    dt = torch.nn.functional.softplus(x)
    state = torch.zeros(2, 6, 3, dtype=torch.float64)
    expected = []
    for t in range(7):  # h_t = exp(A dt_t) h_{t-1} + dt_t B_t x_t; y_t = h_t . C_t
        state = torch.exp(a * dt[:, t, :, None]) * state + dt[:, t, :, None] * b[t] * x[:, t, :, None]
        expected.append((state * c[t]).sum(-1))
    torch.testing.assert_close(module(x), torch.stack(expected, 1), rtol=1e-12, atol=1e-14)
    counter = FlopCounterMode(display=False)
    with counter:
        module(x[:1])
    assert total(graph).macs == counter.get_total_flops() // 2 == 7 * 6 * 3


@pytest.mark.parametrize("before, alone, both", [
    ("h: cast(\"float32\")", "cast_like(x)", "cast_like(h, x)"),
    ("param w: 6 x 3 as signal = normal(std = 0.5)\n        from x\n        h: relu",
     "matmul(w)", "matmul(h, w)"),
    ("h: relu", "sub(2)", "sub(h, 2)"),
])
def test_one_operand_of_a_two_value_op_is_taken_with_the_current_value(before, alone, both):
    template = """network t {{
        input x: 4 x 6 as tokens
        {before}
        {call}
    }}"""
    one, two = (compile_source(template.format(before=before, call=call)) for call in (alone, both))
    assert one.ok and two.ok, [d.message for d in one.diagnostics + two.diagnostics]
    last = list(one.graph.nodes)[-1], list(two.graph.nodes)[-1]
    assert ir.node(one.graph, last[0]).inputs == ir.node(two.graph, last[1]).inputs
    assert ir.shape(one.graph, last[0]) == ir.shape(two.graph, last[1])


def test_positions_come_in_the_precision_check_says():
    """`positions` of a float32 value are float32 in check and in the built module, and so
    are those of token ids, whatever the module's precision; `count` whatever the
    value's size."""
    from archdsl import compile_source, ir
    torch = pytest.importorskip("torch")
    from archdsl.backends.lower_fx import lower_fx
    graph = compile_source("""network n { input t: 3 as token_ids
        f: cast("float32")
        p: positions(count = 5)
        q: positions(count = 4, axis = -1)
        from t
        r: positions(0) }""").graph
    assert [ir.shape(graph, n).dtype for n in ("p", "q", "r")] == ["float32"] * 3
    assert [tuple(ir.shape(graph, n)) for n in ("p", "q", "r")] == [(5,), (4,), (3,)]
    out = lower_fx(graph).double()(torch.tensor([[1, 2, 3]]))
    assert out.dtype == torch.float32 and out.shape == (1, 3)


def test_softmax_of_a_value_without_channels_is_over_its_last_axis():
    """Found by the chain generator: positions cast to floats have no channels; check
    accepted a softmax of them, and building it failed."""
    graph = compile_source("""network n { input x: 3 as token_ids
        cast("float32"); softmax }""").graph
    out = lower_fx(graph)(torch.tensor([[1, 2, 3]]))
    torch.testing.assert_close(out, torch.softmax(torch.tensor([[1.0, 2.0, 3.0]]), -1))
