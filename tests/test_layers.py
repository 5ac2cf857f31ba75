"""The layers of modern CNNs, each against torch: the shapes check infers are the ones
torch computes, parameters and MACs are the ones the module holds and torch counts, and
the semantics are torch's (or torchvision's) own."""
from __future__ import annotations

import pytest

from archdsl import ir  # noqa: E402
from archdsl import compile_source
from archdsl.passes.count_costs import total

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from archdsl import lower  # noqa: E402

NET = "network t {{ input x: {input}\n{body} }}"
CASES = {
    "layernorm over channels": ("8 x 5 x 7", "layernorm(eps = 1e-6)"),
    "layernorm over features": ("12", "layernorm"),
    "groupnorm": ("8 x 5 x 7", "groupnorm(4)"),
    "conv_transpose 2x2/2": ("8 x 5 x 7", "conv_transpose(4, 2, stride = 2)"),
    "conv_transpose output_pad": ("8 x 5 x 7", "conv_transpose(6, 3, stride = 2, pad = 1, "
                                               "output_pad = 1, groups = 2)"),
    "crop": ("4 x 9 x 11", "a: conv(4, 1)\nb: conv(4, 3, stride = 2)\ncrop(a, b)"),
    "channel_shuffle": ("8 x 5 x 7", "channel_shuffle(4)"),
    "channel_linear": ("8 x 5 x 7", "channel_linear(12)"),
    "chunk": ("8 x 5 x 7", "a: chunk(2)\nb: chunk(2, 1)\nfrom a\nc: conv(4, 1)\nconcat(b, c)"),
    "scale": ("8 x 5 x 7", "layer_scale: scale(0.5)"),
    "stochastic_depth": ("8 x 5 x 7", "stochastic_depth(0.25)"),
    "pad_channels": ("4 x 5 x 7", "pad_channels(9)"),
    "channel gate": ("8 x 5 x 7", "a: conv(8, 1)\ng: { global_avgpool; conv(8, 1); sigmoid }\n"
                                  "mul(a, g)"),
    "spatial gate": ("8 x 5 x 7", "a: conv(8, 1)\ng: conv(1, 1)\nmul(g, a)"),
    "conv on a signal": ("4 x 50 as signal", "conv(6, 5, stride = 2, pad = 1)\nbatchnorm\n"
                                              "maxpool(3)\navgpool(2, pad = 1)\nglobal_avgpool"),
    "conv on a volume": ("3 x 6 x 9 x 9", "conv(4, (3, 5, 5), stride = (1, 2, 2), pad = (1, 2, 2))"
                                          "\nbatchnorm\nmaxpool((1, 2, 2))\nglobal_avgpool"),
    "attention": ("10 x 16 as tokens", "ln: layernorm\nattention(4)\nlinear(8)"),
    "attention without bias": ("7 x 12 as tokens", "attention(3, bias = false)"),
    "patch embedding": ("3 x 8 x 8", "conv(16, 2, stride = 2)\nflatten(1, 2)\n"
                                     "transpose(0, 1)\nattention(2)\nmean(0)"),
    "class token": ("3 x 8 x 8", "param cls: 1 x 16 = normal(std = 0.02)\nconv(16, 4, stride = 4)"
                                 "\nflatten(1, 2)\np: transpose(0, 1)\n"
                                 "t: concat(cls, p, axis = 0)\ntake(0)"),
    "window attention": ("8 x 9 x 10", "permute(1, 2, 0)\n"
                                       "window_attention(2, window = 4, shift = 2)"),
    "patch merging": ("5 x 7 x 6 as channels_last", "patch_merging\nlayernorm"),
    "reshape": ("4 x 6 x 6", "reshape(8, -1)\nlinear(3)\ntranspose(0, 1)"),
    "slice": ("3 x 8 x 8", "conv(6, 2, stride = 2)\nflatten(1, 2)\ntranspose(0, 1)\n"
                           "slice(1, -2)\nslice(0, 6, axis = 1, step = 2)\nlinear(2)"),
    "softmax over features": ("6 x 10 as tokens", "softmax\nlinear(4)"),
    "permute to channels last": ("4 x 5 x 6", "permute(1, 2, 0)\nlinear(7)\nlayernorm\n"
                                              "permute(2, 0, 1)"),
}


def _math_attention():
    """Attention as FlopCounterMode counts it: torch's math kernel, and gradients enabled so
    that nn.MultiheadAttention does not take its uncounted inference fast path."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel(SDPBackend.MATH)


def build(input_shape: str, body: str):
    result = compile_source(NET.format(input=input_shape, body=body))
    assert result.ok, [d.message for d in result.diagnostics]
    return result.graph, lower(result.graph)


@pytest.mark.parametrize("case", CASES)
def test_shapes_parameters_and_macs_agree_with_torch(case):
    graph, model = build(*CASES[case])
    x = torch.randn(2, *graph.nodes["x"]["shape"])
    assert sum(p.numel() for p in model.parameters()) == total(graph).params
    counter = FlopCounterMode(display=False)
    with counter, _math_attention():
        out = model.eval()(x).detach()
    assert tuple(out.shape) == (2, *graph.nodes[ir.network(graph).outputs[0].node]["shape"])
    assert counter.get_total_flops() // 2 == 2 * total(graph, train=False).macs
    assert torch.isfinite(out).all()  # every parameter was initialised
    model.train()(x.requires_grad_()).sum().backward()


def test_layernorm_over_channels_is_torchvisions_layernorm2d():
    graph, model = build("8 x 5 x 7", "layernorm(eps = 1e-6)")
    with torch.no_grad():
        model.get_submodule("0").weight.uniform_()
        model.get_submodule("0").bias.uniform_()
    x = torch.randn(2, 8, 5, 7)
    norm = nn.LayerNorm(8, eps=1e-6)
    norm.load_state_dict(model.get_submodule("0").state_dict())
    expected = norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(model(x), expected)


def test_crop_takes_the_centre():
    graph, model = build("1 x 6 x 6", "a: identity\nb: maxpool(3, stride = 1)\ncrop(a, b)")
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    torch.testing.assert_close(model(x), x[:, :, 1:5, 1:5])


def test_scale_is_a_parameter_named_after_the_layer():
    graph, model = build("8 x 5 x 7", "layer_scale: scale(0.5)")
    assert list(model.state_dict()) == ["layer_scale"]
    assert model.state_dict()["layer_scale"].shape == (8, 1, 1)
    x = torch.randn(2, 8, 5, 7)
    torch.testing.assert_close(model(x), 0.5 * x)


def test_stochastic_depth_follows_torchvision():
    graph, model = build("8 x 5 x 7", "stochastic_depth(0.5)")
    x = torch.ones(64, 8, 5, 7)
    torch.testing.assert_close(model.eval()(x), x)
    torch.manual_seed(0)
    out = model.train()(x)
    kept = out.flatten(1).amax(1)
    assert set(kept.tolist()) <= {0.0, 2.0} and 0 < kept.count_nonzero() < 64
    assert all(len(set(row.tolist())) == 1 for row in out.flatten(1))  # whole rows
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    reference = tv.ops.StochasticDepth(0.5, "row").train()(x)
    torch.testing.assert_close(out, reference)


def test_chunk_takes_a_part_of_the_channels():
    graph, model = build("6 x 2 x 2", "a: chunk(3, 2)")
    x = torch.randn(1, 6, 2, 2)
    torch.testing.assert_close(model(x), x[:, 4:6])


def test_pad_channels_adds_zero_channels_on_both_sides():
    graph, model = build("4 x 2 x 2", "pad_channels(8)")
    x = torch.randn(1, 4, 2, 2)
    out = model(x)
    torch.testing.assert_close(out[:, 2:6], x)
    assert out[:, :2].abs().sum() == 0 and out[:, 6:].abs().sum() == 0


def test_activations_overwrite_only_what_nothing_else_reads():
    graph, model = build("8 x 5 x 7", "a: conv(8, 1)\nh: hardswish\nb: conv(8, 1)\ns: silu\n"
                                      "add(h, s, a)\nrelu6")
    assert model.get_submodule("h").inplace is False  # `a` is read again by the add
    assert model.get_submodule("s").inplace is True
    assert model.get_submodule("1").inplace is True   # after the add (`0`)


@pytest.mark.parametrize("body,code", [
    ("a: conv(8, 1)\ng: { global_avgpool; conv(4, 1) }\nmul(a, g)", "E0300"),
    ("a: conv(8, 1)\nb: conv(8, 3, pad = 2)\ncrop(a, b)", "E0309"),
    ("stochastic_depth(1.0)", "E0206"),
    ("groupnorm(3)", "E0304"),
    ("conv_transpose(4, 3, stride = 2, output_pad = 2)", "E0307"),
    ("pad_channels(4)", "E0307"),
    ("a: conv(8, 1)\ncrop(a, a, a)", "E0203"),
    ("chunk(3)", "E0304"),
    ("chunk(2, 2)", "E0307"),
    ("flatten\ngroupnorm(2)", "E0306"),
])
def test_new_layer_errors(body, code):
    result = compile_source(NET.format(input="8 x 5 x 7", body=body))
    assert [d.code for d in result.diagnostics] == [code]


def test_a_top_level_scale_survives_auxiliary_heads():
    graph, model = build("4 x 4 x 4", "s: scale(0.5)\nhead: aux { global_avgpool; flatten; "
                                      "linear(2) }\nconv(3, 1)")
    assert list(model.state_dict())[:1] == ["s"]
    assert sum(p.numel() for p in model.parameters()) == total(graph).params


def test_zero_init_residual_zeroes_the_last_norm_or_scale_of_each_body():
    text = NET.format(input="8 x 5 x 7", body="a: residual { conv(8, 3, pad = 1); groupnorm(2) }\n"
                      "b: residual { conv(8, 1); ls: scale(0.5); stochastic_depth(0.1) }")
    model = lower(compile_source(text).graph, zero_init_residual=True)
    assert model.get_submodule("a.1").weight.abs().sum() == 0   # a's groupnorm
    assert model.get_parameter("b.ls").abs().sum() == 0
    assert model.get_submodule("a.0").weight.abs().sum() > 0    # a's conv untouched


def test_attention_takes_torchs_fused_kernel():
    """The lowered attention calls scaled_dot_product_attention (which dispatches to a
    fused kernel), in training and in inference, as torchvision's ViT does."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Calls(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.add(func.__name__)
            return func(*args, **(kwargs or {}))

    graph, model = build("10 x 16 as tokens", "attention(4)")
    x = torch.randn(2, 10, 16)
    for mode in (model.train, model.eval):
        mode()
        with Calls() as calls:
            model(x)
        fused = [n for n in calls.names if "scaled_dot_product" in n or "multi_head" in n]
        assert fused, sorted(calls.names)
        assert "bmm.default" not in calls.names


def test_softmax_normalises_the_features_wherever_they_are():
    for shape, body, dim in (("6 x 10 as tokens", "softmax", -1), ("4 x 5 x 6", "softmax", 1),
                             ("4 x 5 x 6", "permute(1, 2, 0)\nsoftmax", -1)):
        graph, model = build(shape, body)
        x = torch.randn(2, *graph.nodes["x"]["shape"])
        out = model(x)
        torch.testing.assert_close(out.sum(dim), torch.ones(out.sum(dim).shape))


def test_slice_and_take_pick_what_python_indexing_picks():
    graph, model = build("5 x 4 as tokens", "a: slice(-3, 5)\nb: slice(0, 4, axis = 1, step = 3)\n"
                                            "take(-1)")
    x = torch.randn(2, 5, 4)
    torch.testing.assert_close(model(x), x[:, -3:5][:, :, 0:4:3][:, -1])


@pytest.mark.parametrize("input_, body", [
    ("2 x 16 as signal", "take(0)\n    scale"),
    ("2 x 16 as signal", "take(0)\n    softmax"),
    ("3 x 8 x 8", "mean(0)\n    softmax"),
    ("3 x 8 x 8", "mean(0)\n    scale"),
    ("2 x 3 x 8 x 8 as volume", "take(1)\n    softmax\n    scale"),
])
def test_a_value_that_lost_its_channels_builds_as_check_says(input_, body):
    """What is left when `take` or `mean` removes the channels reads as a tensor of its
    rank does in torch: softmax and layer scale then act on its last axis."""
    result = compile_source(NET.format(input=input_, body="    " + body))
    assert result.ok, [d.message for d in result.diagnostics]
    graph = result.graph
    module = lower(graph)
    dims = graph.nodes["x"]["shape"]
    out = module(torch.randn(3, *dims))
    assert tuple(out.shape) == (3, *graph.nodes[ir.network(graph).outputs[0].node]["shape"])


def test_a_3d_average_pool_larger_than_the_clip_is_refused_by_check():
    result = compile_source(NET.format(input="2 x 2 x 8 x 8 as volume",
                                       body="    avgpool(3, pad = 1)"))
    assert [d.code for d in result.diagnostics] == ["E0303"]
    assert "larger than the 2 x 8 x 8 volume" in result.diagnostics[0].message
    fits = compile_source(NET.format(input="2 x 3 x 8 x 8 as volume", body="    avgpool(3, pad = 1)"))
    assert fits.ok and tuple(lower(fits.graph)(torch.randn(1, 2, 3, 8, 8)).shape) == (
        1, *fits.graph.nodes["0"]["shape"])


def test_one_tuples_parse_as_the_docs_write_them():
    result = compile_source("network t { input x: 4 x 32 as signal\n"
                            "    conv(8, (3,), stride = (2,)); maxpool((2,)) }")
    assert result.ok, [d.message for d in result.diagnostics]
    assert result.graph.nodes["1"]["shape"] == (8, 7)


@pytest.mark.parametrize("init", ["normal", "trunc_normal"])
def test_a_learned_value_of_no_spread_starts_at_its_mean(init):
    text = (f"network t {{ input x: 4 x 3 as tokens\n    a: identity\n"
            f"    param p: 4 x 3 = {init}(std = 0.0, mean = 0.5)\n    add(a, p) }}")
    result = compile_source(text)
    assert result.ok, [d.message for d in result.diagnostics]
    module = lower(result.graph)
    assert torch.all(module.get_parameter("p") == 0.5)


@pytest.mark.parametrize("input_, body, code", [
    ("3 x 1 as signal", "maxpool(2, pad = 1, dilation = 2)", "E0303"),
    ("3 x 3 x 1", "maxpool(2, pad = 1, dilation = 2)", "E0303"),
    ("3", "batchnorm(eps = 0.0)", "E0206"),
])
def test_what_torch_cannot_run_is_refused_by_check(input_, body, code):
    result = compile_source(NET.format(input=input_, body="    " + body))
    assert [d.code for d in result.diagnostics] == [code]


def test_a_leaky_relu_with_a_negative_slope_trains():
    text = NET.format(input="2 x 5 as signal", body="    conv(2, 1)\n    leaky_relu(-0.5)")
    module = lower(compile_source(text).graph).train()
    module(torch.randn(3, 2, 5)).sum().backward()


@pytest.mark.parametrize("mode, corners", [("bilinear", False), ("nearest", False),
                                           ("bicubic", True)])
def test_resize_is_interpolate_to_a_size_or_to_another_value(mode, corners):
    """Segmentation heads exact at any input size: resize_like takes the size of a value
    (the image), not a scale that must divide it."""
    import torch.nn.functional as F
    text = NET.format(input="3 x 25 x 31", body=f"""    f: conv(4, 3, stride = 2, pad = 1)
    r: resize(7, 9, mode = "{mode}", align_corners = {str(corners).lower()})
    output small
    back: resize_like(f, x, mode = "{mode}", align_corners = {str(corners).lower()})
    output back""")
    result = compile_source(text)
    assert result.ok, [d.message for d in result.diagnostics]
    graph = result.graph
    assert ir.shape(graph, "back") == (4, 25, 31) and ir.shape(graph, "r") == (4, 7, 9)
    module = lower(graph)
    x = torch.randn(2, 3, 25, 31)
    out = module(x)
    feature = module.f(x)
    align = None if mode == "nearest" else corners
    assert torch.equal(out["back"], F.interpolate(feature, size=(25, 31), mode=mode,
                                                  align_corners=align))
    assert torch.equal(out["small"], F.interpolate(feature, size=(7, 9), mode=mode,
                                               align_corners=align))
