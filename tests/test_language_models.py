"""The language-model specs equal transformers' models, and the DDPM U-Net diffusers' one,
at the small configurations of tests/data/hf_oracle.json (recorded by
tests/data/make_hf_oracle.py): state_dict keys, shapes and order, tied tensors, and float64
outputs (relative 1e-9) under the oracle's deterministic fill; and, at the published
configurations, the published parameter counts. Neither library is needed: the oracle
holds their outputs."""
from __future__ import annotations

import json
import sys

import pytest

from archdsl import compile_file
from archdsl.passes.count_costs import total

from conftest import ROOT, hf_settings

torch = pytest.importorskip("torch")
from archdsl.backends.lower_fx import lower_fx  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "data"))
from make_hf_oracle import fill  # noqa: E402  (the recorder's fill: the same weights)

ORACLE = json.loads((ROOT / "tests" / "data" / "hf_oracle.json").read_text())["models"]


def build(name: str):
    result = compile_file(ROOT / "specs" / f"{name}.arch", settings=hf_settings(name))
    assert result.ok, [d.message for d in result.diagnostics]
    return result.graph, lower_fx(result.graph).double().eval()


CAUSAL = ["gpt2", "llama", "qwen3", "mixtral", "mamba"]
ATTENDING = CAUSAL[:4]  # generate with a KV cache


ENCODERS = ["bert"]
GENERATIVE = ["ddpm_unet"]


@pytest.mark.parametrize("name", CAUSAL + ENCODERS + GENERATIVE)
def test_the_state_dict_is_the_librarys_in_keys_shapes_order_and_ties(name):
    _, model = build(name)
    oracle = ORACLE[name]
    state = model.state_dict(keep_vars=True)
    assert [[k, list(t.shape)] for k, t in state.items()] == \
           [[k, shape] for k, shape, _ in oracle["state_dict"]]
    groups: dict = {}
    for key, tensor in state.items():
        groups.setdefault(tensor.data_ptr(), []).append(key)
    assert [keys for keys in groups.values() if len(keys) > 1] == oracle["tied"]


@pytest.mark.parametrize("name", CAUSAL)
def test_the_logits_are_transformers_in_float64(name):
    graph, model = build(name)
    oracle = ORACLE[name]
    fill(model)
    ids = torch.tensor([oracle["inputs"]["input_ids"]])
    with torch.no_grad():
        logits = model(ids)
    expected = torch.tensor(oracle["outputs"]["logits"], dtype=torch.float64).view_as(logits)
    assert total(graph).params == sum(p.numel() for p in model.parameters())
    if name == "mamba":  # MambaForCausalLM returns float32 logits, and so does the spec:
        # equal within one float32 rounding (transformers' reference path, run beside
        # this spec in float64, agrees before that cast to 2e-15)
        assert logits.dtype == torch.float32
        tolerance = torch.finfo(torch.float32).eps * expected.abs().max().item()
        torch.testing.assert_close(logits.double(), expected, rtol=0, atol=tolerance)
        return
    torch.testing.assert_close(logits, expected, rtol=1e-9, atol=1e-9 * expected.abs().max().item())


def test_berts_hidden_states_and_pooled_output_are_transformers_in_float64():
    graph, model = build("bert")
    oracle = ORACLE["bert"]
    fill(model)
    inputs = [torch.tensor([oracle["inputs"][k]]) for k in ("input_ids", "token_type_ids")]
    with torch.no_grad():
        outputs = model(*inputs)
    for name, value in outputs.items():
        expected = torch.tensor(oracle["outputs"][name], dtype=torch.float64).view_as(value)
        torch.testing.assert_close(value, expected, rtol=1e-9,
                                   atol=1e-9 * expected.abs().max().item())
    assert set(outputs) == set(oracle["outputs"])


def test_the_ddpm_unet_predicts_diffusers_noise_in_float64():
    """The noisy sample and its timestep in, the predicted noise out: diffusers' output
    (its timestep embedding computed in float32, as diffusers does, then cast)."""
    graph, model = build("ddpm_unet")
    oracle = ORACLE["ddpm_unet"]
    config = oracle["config"]
    fill(model)
    size = (1, config["in_channels"], config["sample_size"], config["sample_size"])
    sample = torch.randn(size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    timestep = torch.tensor([oracle["inputs"]["timestep"]])  # batch x 1
    with torch.no_grad():
        predicted = model(sample, timestep)
    expected = torch.tensor(oracle["outputs"]["sample"], dtype=torch.float64).view_as(predicted)
    assert total(graph).params == sum(p.numel() for p in model.parameters())
    torch.testing.assert_close(predicted, expected, rtol=1e-9,
                               atol=1e-9 * expected.abs().max().item())
    with torch.no_grad():  # and a batch of two timesteps, each its own embedding
        both = model(sample.repeat(2, 1, 1, 1), torch.tensor([[10], [500]]))
    torch.testing.assert_close(both[0], predicted[0], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(both[1], predicted[0])


@pytest.mark.parametrize("name", CAUSAL + ENCODERS + GENERATIVE)
def test_the_published_configuration_has_the_published_parameter_count(name):
    result = compile_file(ROOT / "specs" / f"{name}.arch",
                          settings={} if name in GENERATIVE else {"L": 16})
    assert result.ok
    assert total(result.graph).params == ORACLE[name]["full"]["params"]


@pytest.mark.parametrize("name", ATTENDING)
def test_greedy_generation_with_the_kv_cache_is_transformers(name):
    """8 tokens after an 8-token prompt, decoded one at a time from the cache: the same
    tokens as transformers' generate, and every step's logits. transformers hands the
    scores out in float32 (its generate casts them), so they are compared there: equal."""
    import archdsl
    _, model = build(name)
    fill(model)
    expected = ORACLE[name]["generate"]
    result = archdsl.generate(model, expected["prompt"], 8)
    assert result.tokens == [expected["tokens"]]
    logits = torch.tensor(expected["logits"], dtype=torch.float64).view(8, 1, -1)
    assert torch.equal(result.logits.float(), logits.float())


def test_decoding_from_the_cache_equals_running_the_whole_sequence_again():
    import archdsl
    _, model = build("llama")
    fill(model)
    prompt = torch.tensor([[5, 17, 99, 3], [1, 2, 3, 4]])
    result = archdsl.generate(model, prompt, 5, temperature=0.8, top_k=20, seed=3)
    sequence = torch.cat([prompt, torch.tensor(result.tokens)], 1)
    with torch.no_grad():
        whole = model(sequence)
    for step in range(5):  # the logits each token was drawn from, recomputed without cache
        torch.testing.assert_close(result.logits[step], whole[:, 3 + step], rtol=1e-9, atol=1e-12)
    again = archdsl.generate(model, prompt, 5, temperature=0.8, top_k=20, seed=3)
    assert again.tokens == result.tokens  # the seed decides the draw
    assert all(not m.caching and m.cache is None for m in model.modules() if hasattr(m, "caching"))


def test_an_encoder_does_not_generate():
    import archdsl
    from archdsl.errors import UsageError
    _, model = build("bert")
    with pytest.raises(UsageError, match="causal language model"):
        archdsl.generate(model, [1, 2, 3], 2)


def test_the_generate_command_continues_a_prompt_from_saved_weights(tmp_path, capsys):
    import archdsl
    from archdsl.cli import main
    small = ["--set", "n_layer=2", "--set", "n_embd=64", "--set", "n_head=4",
             "--set", "n_positions=32", "--set", "vocab_size=128"]
    settings = {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_positions": 32, "vocab_size": 128}
    model = archdsl.load(ROOT / "specs" / "gpt2.arch", **settings).double()
    fill(model)
    model = model.float()  # as the command builds it
    torch.save(model.state_dict(), tmp_path / "model.pt")
    expected = archdsl.generate(model, [5, 6, 7], 6).tokens[0]
    assert main(["generate", str(ROOT / "specs" / "gpt2.arch"), *small, "--weights",
                 str(tmp_path / "model.pt"), "--prompt", "5, 6, 7", "--max-new-tokens", "6"]) == 0
    assert capsys.readouterr().out.split() == [str(t) for t in expected]
    assert main(["generate", str(ROOT / "specs" / "gpt2.arch"), *small, "--prompt", "1 2",
                 "--max-new-tokens", "40"]) == 2  # past n_positions
    assert "exceed L <= 32" in capsys.readouterr().err


def test_stats_gives_the_kv_cache_and_the_macs_of_one_generated_token():
    """The decode figures of stats against a real step: the cache holds those bytes per
    token, and FlopCounterMode counts those MACs for the token whose step attends to the
    whole context."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from archdsl.backends.report_stats import report_stats
    from archdsl.runtime.generate import _decoding
    graph = compile_file(ROOT / "specs" / "llama.arch", settings=hf_settings("llama") | {"L": 16}).graph
    decode = report_stats(graph).decode
    config = hf_settings("llama")
    per_layer = 2 * config["num_key_value_heads"] * config["head_dim"] * 4  # k and v, fp32
    assert decode.kv_bytes_per_token == config["num_hidden_layers"] * per_layer
    model = lower_fx(graph).eval()
    with torch.no_grad(), _decoding(model) as positions:
        model(torch.randint(0, 128, (1, 15)))  # the prompt: 15 tokens cached
        for module in positions:
            module.offset = 15
        counter = FlopCounterMode(display=False)
        with counter, sdpa_kernel(SDPBackend.MATH):
            model(torch.tensor([[7]]))  # the 16th token, against all 16 keys
        cached = sum(m.cache[0].shape[-2] for m in model.modules() if getattr(m, "cache", None))
    assert counter.get_total_flops() // 2 == decode.macs_per_token
    assert cached == 16 * config["num_hidden_layers"]


def test_stats_give_the_attention_macs_and_the_share_a_causal_mask_keeps():
    """FlopCounterMode's count of the sdpa products, and (L + 1) / 2L of it kept by the
    mask, exactly: at L = 16, 17/32."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from archdsl.backends.report_stats import format_table, report_stats
    graph = compile_file(ROOT / "specs" / "llama.arch", settings=hf_settings("llama") | {"L": 16}).graph
    attention = report_stats(graph).attention
    model = lower_fx(graph).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter, sdpa_kernel(SDPBackend.MATH):
        model(torch.randint(0, 128, (1, 16)))
    counted = sum(v for op, v in counter.get_flop_counts()["Global"].items()
                  if "scaled_dot_product" in str(op) or op in (torch.ops.aten.bmm,))
    assert attention.macs == counted // 2 == attention.causal_total
    assert attention.causal_macs * 32 == attention.macs * 17
    assert "of which a causal mask keeps" in format_table(report_stats(graph))
    bert = compile_file(ROOT / "specs" / "bert.arch", settings=hf_settings("bert") | {"L": 16})
    assert report_stats(bert.graph).attention.causal_total == 0  # no mask, no line
    assert "causal mask" not in format_table(report_stats(bert.graph))


def test_a_mixture_of_experts_reports_the_parameters_one_token_uses():
    from archdsl.backends.report_stats import report_stats
    config = hf_settings("mixtral")
    graph = compile_file(ROOT / "specs" / "mixtral.arch", settings=config | {"L": 16}).graph
    report = report_stats(graph)
    experts, chosen = config["num_local_experts"], config["num_experts_per_tok"]
    one_expert = 3 * config["hidden_size"] * config["intermediate_size"]  # gate, up, down
    idle = config["num_hidden_layers"] * (experts - chosen) * one_expert
    assert report.active_params == report.totals.params - idle
    assert report_stats(compile_file(ROOT / "specs" / "llama.arch",
                                     settings=hf_settings("llama") | {"L": 16}).graph
                        ).active_params is None  # dense: every parameter, every token


def test_mamba_generates_as_transformers_from_its_recurrent_state():
    """Without attention the cache is the recurrent state: after the prompt each step runs
    the scan and the causal convolution on the one new token, from the state and the
    inputs the last step left. The tokens are transformers'; the logits, float32 as both
    return them, within a few float32 roundings (transformers' steps update its state by
    another formula, `mamba_selective_state_update`, rounded to float32 at other places),
    and equal to running the whole sequence again at every step."""
    import archdsl
    from archdsl.ops.functions import SelectiveScan
    _, model = build("mamba")
    fill(model)
    expected = ORACLE["mamba"]["generate"]
    lengths = []
    hooks = [m.register_forward_hook(lambda m, args, out: lengths.append(args[0].shape[1]))
             for m in model.modules() if isinstance(m, SelectiveScan)]
    result = archdsl.generate(model, expected["prompt"], 8)
    for hook in hooks:
        hook.remove()
    layers = ORACLE["mamba"]["config"]["num_hidden_layers"]
    assert lengths == [8] * layers + [1] * (7 * layers)  # the prompt, then one token a step
    assert result.tokens == [expected["tokens"]]
    logits = torch.tensor(expected["logits"], dtype=torch.float64).view(8, 1, -1)
    tolerance = 4 * torch.finfo(torch.float32).eps * logits.abs().max().item()
    torch.testing.assert_close(result.logits.double(), logits, rtol=0, atol=tolerance)
    sequence = torch.tensor([expected["prompt"] + expected["tokens"]])
    with torch.no_grad():
        again = torch.stack([model(sequence[:, :8 + step])[:, -1] for step in range(8)])
    torch.testing.assert_close(result.logits, again, rtol=1e-12, atol=1e-12)
    assert all(not m.caching and m.state is None for m in model.modules()
               if isinstance(m, SelectiveScan))  # as it was


def test_stats_give_a_recurrent_models_state_as_generation_keeps_it():
    """Mamba's decode figures: no KV cache, a state of the same size at any length (each
    scan's h and each convolution's last inputs), as the lowered module holds it while
    generating; the MACs of a step those of one token."""
    from archdsl.backends.report_stats import format_table, report_stats
    from archdsl.ops.functions import SelectiveScan, SequencePad
    from archdsl.runtime.generate import _decoding
    graph = compile_file(ROOT / "specs" / "mamba.arch", settings=hf_settings("mamba") | {"L": 16}).graph
    decode = report_stats(graph).decode
    assert decode.kv_bytes_per_token == 0 and decode.macs_per_token == total(graph).macs // 16
    model = lower_fx(graph).eval()
    with torch.no_grad(), _decoding(model):
        model(torch.randint(0, 128, (1, 5)))
        held = sum(t.numel() * t.element_size() for m in model.modules()
                   for t in [getattr(m, "state", None), getattr(m, "tail", None)]
                   if isinstance(m, (SelectiveScan, SequencePad)) and t is not None)
    assert held == decode.state_bytes > 0
    text = format_table(report_stats(graph))
    assert "recurrent state / sequence" in text and "KV cache" not in text
