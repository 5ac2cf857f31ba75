"""Example inputs of a network: random values of each input's shape and element type, as
`build` runs the module once and `export` traces it. Token ids are drawn below the
smallest vocabulary of the embeddings that read them, so every lookup is valid."""
from __future__ import annotations

import networkx as nx
import torch

from .. import ir


def id_bound(graph: nx.DiGraph, name: str) -> int:
    """One more than the largest id an integer input may hold: the smallest `num` of the
    embeddings and one-hot encodings that read it, or 1 (all zeros, an index valid on any axis) where none do.

    >>> from archdsl import compile_source
    >>> graph = compile_source("network t { input ids: 8 as token_ids; embedding(50, 4) }").graph
    >>> id_bound(graph, "ids")
    50
    """
    readers = [ir.node(graph, n) for n in nx.descendants(graph, name)]
    nums = [item.args["num"] for item in readers if item.op in ("embedding", "one_hot")]
    return min(nums, default=1)


def example_inputs(graph: nx.DiGraph, batch: int = 2, seed: int = 0, *, device=None,
                   dtype=None) -> tuple[torch.Tensor, ...]:
    """One random batch for each input of the network, in its order: floats from a
    normal distribution (in `dtype`), token ids and indices below `id_bound`, masks of
    both values."""
    generator = torch.Generator().manual_seed(seed)
    values = []
    for name in ir.network(graph).inputs:
        shape = ir.shape(graph, name)
        size = (batch, *shape)
        if shape.dtype == "int":
            value = torch.randint(0, id_bound(graph, name), size, generator=generator)
        elif shape.dtype == "bool":
            value = torch.randint(0, 2, size, generator=generator).bool()
        else:
            value = torch.randn(size, generator=generator, dtype=dtype or torch.float32)
        values.append(value.to(device) if device is not None else value)
    return tuple(values)
