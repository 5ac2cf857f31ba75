"""`archdsl import` through torch.export: models torch.fx cannot trace (control flow on
sizes, a mask made by assignment) are captured with torch.export, whose graph is rebuilt
in torch.fx's form; what imports checks and gives the model's outputs, what does not
stops with one line naming the operation and where it ran."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from archdsl import compile_source  # noqa: E402
from archdsl.backends.lower_fx import lower_fx  # noqa: E402
from archdsl.cli import main  # noqa: E402
from archdsl.tools.import_torch import ImportFailure, import_model  # noqa: E402

import import_models  # noqa: E402
from conftest import ROOT  # noqa: E402


def reproduces(text: str, model: nn.Module, example: torch.Tensor) -> None:
    """The spec checks, has the model's state_dict keys in order and, with its weights,
    gives its outputs (float32, 1e-5)."""
    result = compile_source(text)
    assert result.ok, text
    lowered = lower_fx(result.graph).eval()
    assert list(lowered.state_dict()) == list(model.state_dict())
    lowered.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(lowered(example), model.eval()(example), rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("factory, shape", [
    (import_models.TinyDecoder, (10, 8)), (import_models.MobileNetV2, (3, 32, 32)),
    (import_models.Functional, (3, 8, 8)), (import_models.Products, (3, 6, 6))])
def test_torch_export_gives_the_spec_torch_fx_gives(factory, shape):
    model = factory()
    traced = import_model(model, shape, capture="fx")
    exported = import_model(model, shape, capture="export")
    assert (traced.capture, exported.capture) == ("fx", "export")
    header, _, body = exported.text.partition("\n")
    assert header == "# Captured with torch.export (--capture export)."
    assert body == traced.text


def test_a_model_fx_cannot_trace_is_captured_with_export_and_imports():
    """A branch on the length, heads split by sizes read in forward(), `x[:, 0]`."""
    model = import_models.SizeBranchingEncoder()
    imported = import_model(model, (12,), "encoder", token_ids=True)
    assert imported.capture == "export"
    assert imported.why.startswith("torch.fx could not trace: TraceError: symbolically "
                                   "traced variables cannot be used as inputs to control flow")
    assert imported.why.endswith("sequence length dynamic (2 to 512)")
    assert imported.text.startswith(f"# Captured with torch.export ({imported.why}).\n")
    text = imported.text
    assert "input x: 12 as token_ids" in text and "gelu(approximate = \"tanh\")" in text
    assert "take(0)" in text  # x[:, 0]
    ids = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(1))
    reproduces(text, model, ids)


@pytest.mark.parametrize("factory", [import_models.MaskedDecoder, import_models.GptLike])
def test_a_causal_mask_made_in_forward_is_causal_attention(factory):
    """Made by assignment into `ones`, or by comparing positions from `arange`, and
    handed to every block: `sdpa(..., causal = true)`; GPT-like's position ids from
    `arange` are the input's positions."""
    model = factory()
    text = import_model(model, (12,), token_ids=True).text
    assert text.count("causal = true") == 1 and "attn_mask" not in text
    if factory is import_models.GptLike:
        assert "positions: positions\n" in text and "cast_like(positions, " in text
    reproduces(text, model, torch.randint(0, 50, (3, 12)))


def test_ids_from_buffers_and_a_mask_that_keeps_everything():
    """BERT-like: position ids sliced from a buffer are the positions, token type ids
    from a buffer of zeros the positions times 0; an added mask of zeros is dropped."""
    model = import_models.BertLike()
    text = import_model(model, (12,), token_ids=True).text
    assert "mul(0)" in text and text.count("positions\n") == 2
    assert "sdpa(transpose, transpose_2, transpose_3)\n" in text
    reproduces(text, model, torch.randint(0, 50, (3, 12)))


def test_rotary_tables_made_in_forward_are_rope_and_repeated_keys_grouped_attention():
    """Llama-like: cosines and sines of the positions times the `inv_freq` buffer, applied
    to queries and keys, are `rope` with the θ the buffer was made from; keys and values
    repeated for the query heads are read as they were (sdpa groups them); the head tied
    to the embedding is a `tie`."""
    model = import_models.LlamaLike()
    text = import_model(model, (12,), token_ids=True).text
    assert "import std.layers\n" in text and text.count("rope(theta = 500000)\n") == 2
    assert "expand" not in text and "reshape(12, 2, 8)" in text
    assert "tie lm_head.weight = embed_tokens.weight\n}" in text
    reproduces(text, model, torch.randint(0, 50, (3, 12)))


@pytest.mark.parametrize("theta, scaling, written", [
    (500000.0, (8.0, 1.0, 4.0, 256), "theta = 500000, factor = 8, low_freq_factor = 1, "
                                     "high_freq_factor = 4, original = 256"),  # one blended
    (10000.0, (4.0, 1.0, 16.0, 1000), "theta = 10000, factor = 4, low_freq_factor = 1, "
                                      "high_freq_factor = 16, original = 1000"),  # two
])
def test_rotary_frequencies_scaled_as_llama_3_are_rope_llama3(theta, scaling, written):
    """Frequencies scaled as Llama 3 scales them are `rope_llama3` with the scaling read
    back from them (θ from two unscaled or two scaled neighbours, the factor from the
    longest wavelength, the bounds from the blended ones); the spec reproduces the model."""
    model = import_models.Llama3Rotary(scaling, theta)
    text = import_model(model, (12,), token_ids=True).text
    assert text.count(f"rope_llama3({written})\n") == 2
    reproduces(text, model, torch.randint(0, 50, (3, 12)))


@pytest.mark.parametrize("factory, message", [
    (import_models.BandMasked, r"^`triu` in `forward` \(import_models.py:\d+\): torch.export's "
                               r"`aten.triu.default`: a mask that neither keeps every position "
                               r"nor is causal; archdsl has no equivalent$"),
    (import_models.ScaledRotary, r"^`unsqueeze_\d+` in `forward` \(import_models.py:\d+\): "
                              r"torch.export's `aten.unsqueeze.default` makes a tensor of "
                              r"forward\(\)'s own that is neither positions"),
])
def test_a_made_tensor_archdsl_cannot_write_stops_with_the_operation_and_its_line(
        factory, message):
    with pytest.raises(ImportFailure, match=message):
        import_model(factory(), (12,), token_ids=True)


@pytest.mark.parametrize("capture", ["fx", "export"])
def test_parameters_passed_to_functions_and_a_module_of_two_inputs(capture):
    """GPT-2's Conv1D (`torch.addmm` of its weight) is `matmul(weight)` then `add(bias)` of
    its declared parameters, in the order it registers them; its GELU written out is
    `gelu(approximate = "tanh")`; an RMSNorm written out `rms_norm` then `mul(weight)`;
    BERT's SelfOutput, of two inputs, is written in the enclosing scope by path."""
    model = import_models.WeightsPassed()
    text = import_model(model, (6, 8), capture=capture).text
    assert "param weight: 8 x 16 as signal\n            param bias: 16\n" \
           "            matmul(weight)\n            add(bias)" in text
    assert 'act:            gelu(approximate = "tanh")' in text
    assert "rms_norm\n            mul(weight)" in text
    assert '"output.dense": linear(8)\n    }\n    "output.LayerNorm": layernorm' in text
    reproduces(text, model, torch.randn(3, 6, 8))


@pytest.mark.parametrize("capture", ["fx", "export"])
def test_a_subclass_that_passes_its_weights_to_a_function_is_the_layer(capture):
    """ConvNeXt's LayerNorm2d and ChannelLinear (F.layer_norm and F.linear of their own
    weights between permutes) are `layernorm` and `channel_linear`, their keys kept."""
    model = import_models.channels_last_layers()
    text = import_model(model, (3, 8, 8), capture=capture).text
    assert "1: layernorm(eps = 1e-06)\n    2: channel_linear(16)" in text
    reproduces(text, model, torch.randn(2, 3, 8, 8))


class Broadcasting(nn.Module):
    """`expand_as` before a product that broadcasts anyway, in place."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 1)

    def forward(self, x):
        y = self.a(x)
        y *= torch.sigmoid(self.b(x)).expand_as(y)
        return torch.relu(y)


def test_a_moot_expand_is_dropped_and_an_in_place_product_is_a_product():
    model = Broadcasting()
    text = import_model(model, (6, 4), capture="export").text
    assert "mul {" in text and "b: linear(1)" in text and "expand" not in text
    reproduces(text, model, torch.randn(3, 6, 4))


def test_an_operation_without_equivalent_is_named_with_its_aten_name():
    with pytest.raises(ImportFailure, match=r"^`erfinv` in `forward` \(import_models.py:\d+\): "
                                            r"torch.export's `aten.erfinv.default` has no "
                                            "archdsl equivalent$"):
        import_model(import_models.Unmappable(), (3, 4, 4), capture="export")


class FixedLength(nn.Module):
    """A linear layer over all the positions at once: the length is fixed."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 4)
        self.flatten = nn.Flatten()
        self.out = nn.Linear(6 * 4, 3)

    def forward(self, ids):
        return self.out(self.flatten(self.embed(ids)))


def test_a_length_the_model_fixes_is_captured_static_and_said_so():
    model = FixedLength()
    imported = import_model(model, (6,), capture="export", token_ids=True)
    assert imported.why == "--capture export; sequence length static (the model fixes it)"
    reproduces(imported.text, model, torch.randint(0, 20, (2, 6)))


def test_the_command_says_which_capture_it_used(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    assert main(["import", "import_models:size_branching_encoder", "--input",
                 "12 as token_ids", "-o", "encoder.arch"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("import_models:size_branching_encoder: captured with torch.export "
                          "(torch.fx could not trace: TraceError: ")
    assert (tmp_path / "encoder.arch").read_text().startswith("# Captured with torch.export")
    assert main(["import", "import_models:size_branching_encoder", "--input",
                 "12 as token_ids", "--capture", "fx"]) == 1
    err = capsys.readouterr().err
    assert "torch.fx cannot trace the model: TraceError: " in err and err.count("\n") == 1


@pytest.mark.parametrize("given, message", [
    ("12 as tokens", "import reads `as token_ids`"),
    ("3x4 as token_ids", "token ids have one axis"),
    ("x as token_ids", "bad shape `x`"),
])
def test_bad_token_inputs_are_usage_errors(given, message, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    assert main(["import", "import_models:size_branching_encoder", "--input", given]) == 2
    assert message in capsys.readouterr().err


class SelfAttention(nn.MultiheadAttention):
    """Named as archdsl's own, with another forward(): no `attention` op."""

    def forward(self, x):  # type: ignore[override]
        return super().forward(x, x, x, need_weights=False)[0] * 2


def test_an_exported_files_self_attention_imports_as_attention_by_either_capture():
    """The exported file's copy of archdsl's SelfAttention is read as `attention`, its
    settings read back; a class of that name with a forward() of its own is not."""
    from archdsl.backends.export_pytorch import export_pytorch
    from archdsl.tools.import_layers import own_layer
    spec = ("network tiny {\n    input x: 6 x 16 as tokens\n    norm: layernorm\n"
            "    mix: attention(4, bias = false)\n    out: linear(3)\n}\n")
    names: dict = {}
    exec(compile(export_pytorch(compile_source(spec).graph).source, "tiny.py", "exec"), names)
    model, x = names["Tiny"](), torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(0))
    for capture in ("fx", "export"):
        text = import_model(model, (6, 16), capture=capture).text
        assert "mix:  attention(4, bias = false)" in text
        reproduces(text, model, x)
    assert own_layer(SelfAttention(16, 4, batch_first=True)) is None


def test_a_class_token_and_a_position_embedding_import_as_params_by_either_capture():
    """A parameter expanded to the batch and concatenated is a `param` of tokens joined
    by name; one added, `add(NAME)`; `x[:, 0]` is `take(0)`."""
    model, x = import_models.TinyViT(), torch.randn(2, 3, 8, 8)
    for capture in ("fx", "export"):
        text = import_model(model, (3, 8, 8), capture=capture).text
        assert "param class_token: 1 x 8\n" in text and "param pos_embedding: 5 x 8\n" in text
        assert "concat(class_token, tokens, axis = 0)" in text and "take(0)" in text
        reproduces(text, model, x)


def test_an_exported_files_selective_scan_imports_whole_by_torch_fx():
    """The exported file's copy of archdsl's SelectiveScan, called with five values, is
    `selective_scan` of them by name under torch.fx; torch.export, which records the
    values a layer reads in the order its operations read them, stops."""
    from archdsl.backends.export_pytorch import export_pytorch
    spec = ("network scan {\n    input x: 4 x 4 as tokens\n    dt: linear(4)\n"
            "    act: softplus\n    from x\n    b: linear(3)\n    from x\n    c: linear(3)\n"
            "    from x\n    a: linear(3)\n"  # 4 x 3: I x N, the length being I
            "    y: selective_scan(x, act, a, b, c)\n}\n")
    names: dict = {}
    exec(compile(export_pytorch(compile_source(spec).graph).source, "scan.py", "exec"), names)
    model = names["Scan"]()
    text = import_model(model, (4, 4)).text
    assert "selective_scan(entry, act, a, b, c)" in " ".join(text.split())
    reproduces(text, model, torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ImportFailure, match=r"^`y` \(SelectiveScan\) reads 5 values, whose "
                                            r"order torch.export does not record"):
        import_model(model, (4, 4), capture="export")
