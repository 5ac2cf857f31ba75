"""Weight tying in an imported model: one Parameter registered under two names (a
language model's head sharing its embedding's matrix, transformers'
`tie_word_embeddings`) is written as the language's `tie TARGET = SOURCE` at the end of
the network, the name registered first the source, as `named_parameters` lists them.
"""
from __future__ import annotations

from torch import nn

from .import_layers import module_labels


def tie_lines(model: nn.Module) -> list[str]:
    """`tie lm_head.weight = model.embed_tokens.weight` for each name of a Parameter after
    the first, its module's path as the spec writes it (archdsl.tools.import_layers'
    labels).

    >>> head = nn.Linear(4, 10, bias=False)
    >>> model = nn.ModuleDict({"embed": nn.Embedding(10, 4), "head": head})
    >>> head.weight = model["embed"].weight
    >>> tie_lines(model)
    ['tie head.weight = embed.weight']
    """
    labels = module_labels(dict(model.named_modules()))
    first: dict[int, str] = {}
    owners: dict[int, nn.Module] = {}
    lines = []
    for prefix, owner in model.named_modules(remove_duplicate=False):
        for tensor, parameter in owner.named_parameters(recurse=False):
            path = _spec_path(f"{prefix}.{tensor}" if prefix else tensor, labels)
            if owners.setdefault(id(parameter), owner) is not owner:  # another module's too
                lines.append(f"tie {path} = {first[id(parameter)]}")
            first.setdefault(id(parameter), path)
    return lines


def with_ties(text: str, model: nn.Module) -> str:
    """The spec `text` with the model's ties as the last statements of its network."""
    lines = tie_lines(model)
    if not lines:
        return text
    body, close, rest = text.rstrip().rpartition("}")
    return body.rstrip("\n") + "\n" + "".join(f"    {line}\n" for line in lines) + close + \
        rest + "\n"


def _spec_path(name: str, labels: dict[str, str]) -> str:
    module, _, tensor = name.rpartition(".")
    parts = module.split(".") if module else []
    written = [labels.get(".".join(parts[:i + 1]), parts[i]).strip('"')
               for i in range(len(parts))]
    return ".".join(written + [tensor])
