"""archdsl's own functions, as a file `archdsl export --to pytorch` writes copies them
(`routed_linear`: each token through the matrices of the experts it was routed to), kept
whole while torch.export captures a model: each runs as one operation of the program,
`archdsl::NAME`, where torch.export would otherwise trace its loop over the experts and
the sizes that depend on the routing. The importer reads that operation as the
language's op of the same name.
"""
from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from ..ops import functions
from .import_layers import same_code


_ROUTED_LINEAR = functions.routed_linear


@torch.library.custom_op("archdsl::routed_linear", mutates_args=())
def routed_linear(x: Tensor, weight: Tensor, index: Tensor) -> Tensor:
    """archdsl.ops.functions.routed_linear as one operation."""
    return _ROUTED_LINEAR(x, weight, index)


@routed_linear.register_fake
def _(x: Tensor, weight: Tensor, index: Tensor) -> Tensor:
    return x.new_empty((*index.shape, weight.shape[-2]))


WHOLE = {"routed_linear": routed_linear}  # name: the operation it runs as
OPERATIONS = {torch.ops.archdsl.routed_linear.default: functions.routed_linear}


@contextlib.contextmanager
def kept_whole(model: nn.Module):
    """While it lasts, the functions of WHOLE that the model's forward() methods call and
    that are archdsl's own (the same code) run as their one operation."""
    patched = []
    for module in model.modules():
        names = getattr(type(module).forward, "__globals__", {})
        if names is vars(functions):
            continue  # archdsl's own modules call its functions as they are
        for name, operation in WHOLE.items():
            found = names.get(name)
            if found is not operation and same_code(found, getattr(functions, name)):
                patched.append((names, name, found))
                names[name] = operation
    try:
        yield
    finally:
        for names, name, found in reversed(patched):
            names[name] = found
