"""`torch.einsum` in a traced forward() as the language's `einsum`, whose equation names
one lower-case letter per axis of one example, the batch excluded.

The batch is the first letter of the result, and of every operand that is a value of the
example (`Zlc,cd->Zld`, or `Zlc,Zcd->Zld` where a parameter is expanded to the batch as
`archdsl export` writes it); the importer drops it. A parameter's own axes keep their
letters: the spec declares it (`param weight: 768 x 2304 as signal`) and reads it by name,
`einsum("lc,cd->ld", weight)`, the current value first. An equation whose batch is not
plainly the first axis of every value, or that names axes by `...`, is refused.
"""
from __future__ import annotations

import string

import torch
from torch import fx

from .import_layers import ImportFailure, source_line


def is_einsum(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target is torch.einsum


def einsum_operands(node: fx.Node) -> list:
    """The operands, given one by one or as a list (`torch.einsum(eq, [a, b])`)."""
    rest = node.args[1:]
    return list(rest[0]) if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else list(rest)


def einsum_equation(node: fx.Node) -> str:
    """The language's equation of `node`: the batch letter dropped, the letters lower case.

    >>> graph = fx.Graph()
    >>> x, w = graph.placeholder("x"), graph.get_attr("w")
    >>> x.meta["tensor_meta"], w.meta["tensor_meta"] = torch.empty(2, 5, 4), torch.empty(4, 3)
    >>> einsum_equation(graph.call_function(torch.einsum, ("bLc,cd->bLd", x, w)))
    'lc,cd->ld'
    """
    operands = einsum_operands(node)
    inputs, result = _subscripts(node, len(operands))
    batch = result[:1]
    written = []
    for letters, operand in zip(inputs, operands):
        rank = len(_shape(operand))
        parameter = getattr(operand, "op", None) == "get_attr"
        if parameter and len(letters) == rank + 1 or not parameter and len(letters) == rank:
            if letters[:1] != batch:  # a value of the example, or a parameter expanded to it
                _refuse(node, f"the batch (the result's first axis, `{batch}`) is not the "
                              f"first axis of `{letters}`")
            letters = letters[1:]
        if batch and batch in letters:
            _refuse(node, f"the batch (`{batch}`) is not plainly the first axis of every "
                          "operand")
        written.append(letters)
    if not batch:
        _refuse(node, "the result has no batch axis")
    return _lower_case(",".join(written) + "->" + result[1:])


def einsum_merge(node: fx.Node, operands: list[str]) -> str:
    """`einsum("lhd,mhd->hlm", q, k)`: values read by name, in the call's order."""
    return f'einsum("{einsum_equation(node)}", {", ".join(operands)})'


def einsum_text(node: fx.Node, parameter: fx.Node, label: str) -> str:
    """`einsum("lc,cd->ld", weight)`: the current value and a parameter, read by its
    label; the value's subscripts first, since the language reads the current value
    first."""
    operands = einsum_operands(node)
    if len(operands) != 2 or operands.count(parameter) != 1:
        _refuse(node, "a parameter and other than one value")
    inputs, result = einsum_equation(node).split("->")
    first, second = inputs.split(",")
    if operands[0] is parameter:
        first, second = second, first
    return f'einsum("{first},{second}->{result}", {label})'


def _subscripts(node: fx.Node, count: int) -> tuple[list[str], str]:
    equation = node.args[0] if node.args and isinstance(node.args[0], str) else None
    if equation is None or "." in equation:
        _refuse(node, "axes named by `...`, or no equation")
    text = equation.replace(" ", "")
    inputs, arrow, result = text.partition("->")
    letters = inputs.replace(",", "")
    if not arrow:  # torch's implicit result: the letters named once, in order
        result = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    subscripts = inputs.split(",")
    if len(subscripts) != count or not all(c in string.ascii_letters for c in letters + result):
        _refuse(node, "other than one letter per axis of each operand")
    return subscripts, result


def _lower_case(equation: str) -> str:
    """Each letter as a lower-case one: itself where it is one, else its lower case where
    no other letter is that, else the first letter free."""
    given = dict.fromkeys(c for c in equation if c.isalpha())
    names = {c: c for c in given if c.islower()}
    for upper in (c for c in given if c.isupper()):
        free = [c for c in upper.lower() + string.ascii_lowercase
                if c not in given and c not in names.values()]
        if not free:
            raise ImportFailure(f'einsum "{equation}" names more than 26 axes')
        names[upper] = free[0]
    return "".join(names.get(c, c) for c in equation)


def _shape(node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if hasattr(meta, "shape") else ()


def _refuse(node: fx.Node, what: str):
    equation = node.args[0] if node.args else None
    raise ImportFailure(f"`{node.name}`{source_line(node)}: torch.einsum {equation!r}: {what}; "
                        "archdsl's einsum names the axes of one example, the batch first "
                        "in every operand that has it")
