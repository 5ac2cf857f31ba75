"""Text generation with a language model built from a spec: the prompt once, then one token
per step, each step reading what it needs of the tokens before it from a cache.

The cache is state of the lowered module, not a recomputation: while `generate` runs,
every attention (`sdpa`, `ScaledDotProductAttention`) keeps the keys and values it has
seen and adds the new ones to them, and every `positions` along the sequence counts on
from the cached length (`Positions.offset`), so rotary and learned position embeddings
see the true positions. A state-space model (Mamba) keeps its recurrent state instead:
each `selective_scan` (`SelectiveScan`) starts from the state its last call left, and
each causal padding of the sequence (`SequencePad`, before a convolution along it) puts
the last entries it saw ahead of the new ones. After the last step the module is as it
was. A model with a layer along the sequence that keeps no such state is run again on
the whole sequence at each step: the same tokens, at quadratic cost.

    tokens = archdsl.generate(model, [37, 107, 12], max_new_tokens=8).tokens
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import ir
from ..errors import UsageError
from ..ops.functions import Positions, ScaledDotProductAttention, SelectiveScan, SequencePad


@dataclass(frozen=True)
class Generation:
    tokens: list[list[int]]  # the new tokens of each sequence of the batch
    logits: Tensor  # steps x batch x vocabulary: the scores each new token was chosen from


def generate(model: nn.Module, prompt, max_new_tokens: int, *, temperature: float = 0.0,
             top_k: int | None = None, seed: int | None = None) -> Generation:
    """Continue `prompt` (token ids: a list, or a batch x length tensor) by
    `max_new_tokens` tokens: greedy (`temperature` 0), or sampled from the softmax of the
    logits / temperature, among the `top_k` likeliest where given, from a generator
    seeded with `seed`."""
    ids = _prompt(prompt, model)
    if max_new_tokens < 1:
        raise UsageError("generate at least one token (max_new_tokens >= 1)")
    if temperature < 0 or (top_k is not None and top_k < 1):
        raise UsageError("temperature must be >= 0 and top_k >= 1")
    generator = torch.Generator(device=ids.device)
    if seed is not None:
        generator.manual_seed(seed)
    chosen, scores = [], []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _decoding(model) as positions:
            cached = positions is not None
            logits = _main(model(ids))
            for step in range(max_new_tokens):
                last = logits[:, -1].float() if logits.dtype in (torch.float16, torch.bfloat16) \
                    else logits[:, -1]
                scores.append(last)
                token = _choose(last, temperature, top_k, generator)
                chosen.append(token)
                if step + 1 == max_new_tokens:
                    break
                if not cached:  # no cache to read from: the whole sequence again
                    logits = _main(model(torch.cat([ids, torch.stack(chosen, 1)], 1)))
                    continue
                for module in positions:
                    module.offset = ids.shape[1] + step
                logits = _main(model(token[:, None]))
    finally:
        model.train(was_training)
    tokens = torch.stack(chosen, 1)
    return Generation(tokens.tolist(), torch.stack(scores))


def prompt_ids(text: str) -> list[int]:
    """`"37 107 12"` or `"37,107,12"` as token ids."""
    parts = text.replace(",", " ").split()
    if not parts or not all(p.isdigit() for p in parts):
        raise UsageError(f"--prompt {text!r}: give token ids, whole numbers separated by "
                         "spaces or commas, e.g. --prompt \"464 3290 318\"")
    return [int(p) for p in parts]


def text_of(tokens: list[int]) -> str:
    """Byte-level tokens as text (UTF-8; an id past 255 or a broken sequence shows as �)."""
    return bytes(t if t < 256 else 0xFF for t in tokens).decode("utf-8", errors="replace")


def within_vocabulary(graph, prompt: list[int]) -> None:
    """UsageError unless every prompt id is one the network scores (its last output axis):
    a text prompt's bytes reach 255."""
    main = next(o for o in ir.network(graph).outputs if not o.train_only)
    vocabulary = ir.shape(graph, main.node)[-1]
    if max(prompt) >= vocabulary:
        raise UsageError(f"--text gives byte ids up to {max(prompt)}, but "
                         f"{ir.network(graph).name} has {vocabulary} tokens: --text is for "
                         "byte-level models (vocab_size 256, as `archdsl train --data text` "
                         "trains them); give token ids with --prompt")


def within_length(graph, length: int) -> None:
    """UsageError unless the network's length symbol allows `length` tokens (prompt and
    new tokens): past it, its positions would read past their table."""
    sizes = ir.network(graph).sizes
    if not sizes:
        raise UsageError(f"{ir.network(graph).name} is built for one length: declare it as "
                         "a symbol (`input ids: L <= 1024 as token_ids`) to generate")
    for name, (_, bound) in sizes.items():
        if bound is not None and length > bound:
            raise UsageError(f"{length} tokens (prompt and new ones) exceed {name} <= {bound}, "
                             f"the longest sequence {ir.network(graph).name} takes")


def _prompt(prompt, model: nn.Module) -> Tensor:
    ids = torch.as_tensor(prompt, dtype=torch.long)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.shape[1] == 0:
        raise UsageError("the prompt is token ids: a list, or batch x length")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return ids.to(device)


def _main(outputs) -> Tensor:
    """The main output (logits): the module's value, or the first of several."""
    return next(iter(outputs.values())) if isinstance(outputs, dict) else outputs


def _choose(logits: Tensor, temperature: float, top_k: int | None, generator) -> Tensor:
    if temperature == 0:
        return logits.argmax(-1)
    scaled = logits.double() / temperature
    if top_k is not None and top_k < scaled.shape[-1]:
        floor = scaled.topk(top_k, -1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < floor, float("-inf"))
    probabilities = torch.softmax(scaled, -1)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(1)


@contextmanager
def _decoding(model: nn.Module):
    """The module with its attentions caching keys and values, its scans and sequence
    paddings their state, and its sequence positions ready to count on; as it was
    afterwards. Yields those positions, or None for a model with none of these layers,
    which has no cache to keep."""
    attentions = [m for m in model.modules() if isinstance(m, ScaledDotProductAttention)]
    positions = [m for m in model.modules() if isinstance(m, Positions)]
    recurrent = [m for m in model.modules() if isinstance(m, (SelectiveScan, SequencePad))]
    if not attentions and not any(isinstance(m, SelectiveScan) for m in recurrent):
        yield None
        return
    if not attentions:
        with _recurrent(recurrent):
            yield [m for m in positions if m.sequence]
        return
    if not all(m.causal for m in attentions):
        raise UsageError("generate needs a causal language model: every `sdpa` with "
                         "`causal = true` (a bidirectional encoder such as BERT does not "
                         "generate)")
    if positions and not any(m.sequence for m in positions):
        raise UsageError("this model was built for one length: declare the length as a "
                         "symbol (`input ids: L <= 1024 as token_ids`) so its positions "
                         "follow the tokens generated")
    sequence = [m for m in positions if m.sequence]
    for module in attentions:
        module.caching, module.cache = True, None
    try:
        with _recurrent(recurrent):
            yield sequence
    finally:
        for module in attentions:
            module.caching, module.cache = False, None
        for module in sequence:
            module.offset = 0


@contextmanager
def _recurrent(modules: list[nn.Module]):
    """Scans and sequence paddings keeping their state from call to call, for the while."""
    for module in modules:
        module.caching = True
        module.forget()
    try:
        yield
    finally:
        for module in modules:
            module.caching = False
            module.forget()
