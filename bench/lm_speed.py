"""Language models built from specs vs transformers' own, in one process, alternating runs.

    python bench/lm_speed.py [--models gpt2 llama] [--batch 4] [--length 256] [--steps 10]
                             [--new-tokens 64] [--device cpu|cuda]

Needs transformers beside torch (a side environment: `pip install --no-deps
transformers`, with its small dependencies). For each model, at the small configuration
of tests/data/hf_oracle.json with room for `--length` positions, both models get the
same weights (the spec's state_dict loads into transformers' model: the keys are its
own), transformers with its fused attention (`sdpa`):

1. forward + backward of a batch of `--batch` x `--length` token ids: median seconds of
   each, and the ratio spec / transformers. Target: <= 1.05.
2. greedy decoding of `--new-tokens` tokens after a 16-token prompt, both with their KV
   cache (`archdsl.generate`, transformers' `generate`): tokens per second, the ratio, and
   whether the tokens agree.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import archdsl  # noqa: E402
from conftest import hf_settings  # noqa: E402


def _without_torchvision() -> None:
    """transformers imports torchvision where it is installed, and a torchvision built for
    another torch fails to load: language models need none of it."""
    find = importlib.util.find_spec
    importlib.util.find_spec = lambda name, *a, **k: (
        None if name.startswith("torchvision") else find(name, *a, **k))
    sys.modules["torchvision"] = None


def models(name: str, length: int, device: str):
    """(spec-built model, transformers' model) with the same weights."""
    _without_torchvision()
    import transformers
    settings = hf_settings(name)
    positions = {"gpt2": "n_positions", "llama": "max_position_embeddings",
                 "qwen3": "max_position_embeddings", "mixtral": "max_position_embeddings"}
    settings[positions[name]] = max(settings.get(positions[name], 0), length + 128)
    ours = archdsl.load(ROOT / "specs" / f"{name}.arch", **settings).to(device)
    config_class, model_class = {
        "gpt2": (transformers.GPT2Config, transformers.GPT2LMHeadModel),
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM),
        "mixtral": (transformers.MixtralConfig, transformers.MixtralForCausalLM)}[name]
    import json
    config = json.loads((ROOT / "tests" / "data" / "hf_oracle.json").read_text())[
        "models"][name]["config"]
    config = dict(config, **{positions[name]: settings[positions[name]]})
    if "rope_parameters" in config:
        config["rope_parameters"] = dict(config["rope_parameters"])
    theirs = model_class(config_class(**config, attn_implementation="sdpa")).to(device)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def logits_of(output):
    if isinstance(output, dict):
        return next(iter(output.values()))
    return getattr(output, "logits", output)


def step(model, ids, device: str) -> float:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    model.zero_grad(set_to_none=True)
    sync()
    start = time.perf_counter()
    logits_of(model(ids)).float().logsumexp(-1).mean().backward()
    sync()
    return time.perf_counter() - start


def decode(model, prompt, new_tokens: int, ours: bool) -> tuple[float, list[int]]:
    start = time.perf_counter()
    with torch.no_grad():
        if ours:
            tokens = archdsl.generate(model, prompt, new_tokens).tokens[0]
        else:
            out = model.generate(prompt, max_new_tokens=new_tokens, do_sample=False,
                                 use_cache=True, pad_token_id=0)
            tokens = out[0, prompt.shape[1]:].tolist()
    return new_tokens / (time.perf_counter() - start), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["gpt2", "llama"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    for name in args.models:
        ours, theirs = models(name, args.length, args.device)
        ours.train(), theirs.train()
        ids = torch.randint(0, 128, (args.batch, args.length), device=args.device)
        times = {"spec": [], "transformers": []}
        for _ in range(2):  # warm-up
            step(ours, ids, args.device), step(theirs, ids, args.device)
        for _ in range(args.steps):
            times["spec"].append(step(ours, ids, args.device))
            times["transformers"].append(step(theirs, ids, args.device))
        spec, reference = (statistics.median(times[k]) for k in ("spec", "transformers"))
        print(f"{name} forward+backward, batch {args.batch} x {args.length} tokens "
              f"({args.device}): spec {spec * 1000:.1f} ms, transformers "
              f"{reference * 1000:.1f} ms, ratio {spec / reference:.2f}")
        ours.eval(), theirs.eval()
        prompt = ids[:1, :16]
        rates = {"spec": [], "transformers": []}
        agree = True
        for _ in range(3):
            rate, mine = decode(ours, prompt, args.new_tokens, True)
            rates["spec"].append(rate)
            rate, reference_tokens = decode(theirs, prompt, args.new_tokens, False)
            rates["transformers"].append(rate)
            agree &= mine == reference_tokens
        spec, reference = (statistics.median(rates[k]) for k in ("spec", "transformers"))
        print(f"{name} greedy decoding, {args.new_tokens} tokens after 16: spec {spec:.0f} "
              f"tokens/s, transformers {reference:.0f} tokens/s, ratio {spec / reference:.2f}; "
              f"tokens {'equal' if agree else 'DIFFER'}")


if __name__ == "__main__":
    main()
